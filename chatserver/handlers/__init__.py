"""Thin HTTP / WebSocket / page handlers: parse, call a service, shape a response."""
