"""Realtime: ticket rooms over WebSocket, the local hub, and the broker between instances."""
