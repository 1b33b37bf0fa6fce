"""Load generators for chatserver: each scenario starts the real server, PostgreSQL database,
Redis and fake Groq on loopback, drives them, and prints figures (see docs/performance.md)."""
