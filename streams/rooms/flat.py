"""Flat tables (the C extension `_flat.c`) and how their entries travel in checkpoints.

A table's entries are captured as packed bytes (16 bytes an entry), written into the state
log's JSON as base64 (`streams.state.records.bytes_as_base64`), and loaded back by
copying. State written before the flat tables (maps and lists of ids) still loads: its
ids are hashed as the tables hash them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pybase64

from streams.rooms._flat import ENTRY_BYTES, MODE_ADD, MODE_MAX, MODE_SET, FlatMap, hash64

__all__ = [
    "ENTRY_BYTES",
    "MODE_ADD",
    "MODE_MAX",
    "MODE_SET",
    "FlatMap",
    "entry_count",
    "hash64",
    "packed",
    "sorted_entries",
    "unpacked",
]


def packed(entries: Any) -> bytes:
    """Packed entries from a checkpoint: bytes as captured, base64 as read from JSON, or
    a map {id: value} / list of ids (state written before the flat tables)."""
    if isinstance(entries, bytes | bytearray | memoryview):
        return bytes(entries)
    if isinstance(entries, str):
        return pybase64.b64decode(entries, validate=True)  # SIMD: ~40x binascii's
    table = FlatMap()
    if isinstance(entries, dict):
        for key, value in entries.items():
            table.set(key, value)
    else:
        for key in entries:
            table.set(key, 0)
    return table.snapshot()


def entry_count(entries: Any) -> int:
    """Entries in a captured piece's field (packed bytes, or a map or list)."""
    if isinstance(entries, bytes | bytearray):
        return len(entries) // ENTRY_BYTES
    return len(entries)


def unpacked(entries: Any) -> Iterator[tuple[int, int]]:
    """The (key, value) pairs of a checkpoint's entries (see `packed`)."""
    return struct.iter_unpack("<Qq", packed(entries))


def sorted_entries(entries: Any) -> list[tuple[int, int]]:
    """(key, value) pairs of packed entries in key order: an order-free comparison (a
    table's bytes follow its slots, which depend on its history)."""
    return sorted(unpacked(entries))
