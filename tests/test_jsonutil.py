"""JSON helpers: asyncpg's UUIDs serialise as strings, anything orjson cannot serialise is refused."""

from __future__ import annotations

import uuid

import pytest
from asyncpg.pgproto.pgproto import UUID as AsyncpgUUID

from chatserver.jsonutil import dumps, dumps_bytes

SOME_ID = "8d2f6feb-f1e0-4f71-8da6-f41edbb50c5c"


def test_asyncpg_and_standard_uuids_serialise_as_strings() -> None:
    assert dumps({"a": AsyncpgUUID(SOME_ID), "b": uuid.UUID(SOME_ID)}) == f'{{"a":"{SOME_ID}","b":"{SOME_ID}"}}'
    assert dumps_bytes([AsyncpgUUID(SOME_ID)]) == f'["{SOME_ID}"]'.encode()


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        dumps({"a": object()})
