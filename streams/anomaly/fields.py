"""Base classes of unboxed numeric fields for the detectors' statistics (`_fields.c`).

`fields("Ewma", decay="d", mean="d", weight="d")` is a base whose instances hold three C
doubles in place: 56 bytes with the headers, where __slots__ with float objects took
104. A subclass declares `__slots__ = ()` (or adds its own) and keeps its code. Codes:
"d" a double (reads as float), "q" a 64-bit int, "?" a bool.

LIVEROOM_PURE_FIELDS=1 builds the same classes over plain __slots__ instead: the
reference tests/unit/test_fields.py holds the C storage to.
"""

from __future__ import annotations

import os

from streams.anomaly._fields import EwmaFields, struct_type

PURE = os.environ.get("LIVEROOM_PURE_FIELDS") == "1"


def fields(name: str, **codes: str) -> type:
    """A base class holding the named fields, each of its code's type."""
    if PURE:
        return type(f"{name}Fields", (), {"__slots__": tuple(codes)})
    return struct_type(f"{name}Fields", "".join(codes.values()), tuple(codes))


def ewma_fields() -> type:
    """The decayed mean's base: its fields, and in C also its `update` (`_fields.c`)."""
    if PURE:
        return fields("Ewma", decay="d", mean="d", weight="d")
    return EwmaFields
