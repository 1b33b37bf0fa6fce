"""Chaos suite: two chatserver instances, a private PostgreSQL and Redis, clients that follow
docs/protocol.md, and the faults of issue #11, with the delivery invariants checked after each.

Run it with `make chaos` or `python -m chaos` (see docs/architecture.md, "Chaos suite").
"""
