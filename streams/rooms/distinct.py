"""Distinct counting: exact up to EXACT_LIMIT keys, then a HyperLogLog.

SPEC.md: distinct counts are exact up to 10,000 distinct users per room and window;
above that an estimate within 2 % is fine. A room with hundreds of thousands of
viewers would otherwise keep every user id of its session in memory (~100 bytes
each); the sketch keeps 16 KB whatever the audience (p = 14: ~0.8 % standard error).
Hashes are stable across processes (blake2b), so a sketch restored from a checkpoint
keeps counting the same users as the same.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable
from typing import Any

EXACT_LIMIT = 10_000
P = 14
M = 1 << P
ALPHA = 0.7213 / (1 + 1.079 / M)
REST_BITS = 64 - P


def _hash64(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


class DistinctCount:
    """A set that becomes a HyperLogLog past EXACT_LIMIT keys (add and len only)."""

    __slots__ = ("exact", "inverse_sum", "registers", "zeros")

    def __init__(self) -> None:
        self.exact: set[str] | None = set()
        self.registers: bytearray | None = None
        self.inverse_sum = float(M)  # sum of 2^-register, kept up to date
        self.zeros = M

    def add(self, key: str) -> None:
        exact = self.exact
        if exact is not None:
            exact.add(key)
            if len(exact) > EXACT_LIMIT:
                self._to_sketch()
            return
        self._add_hashed(_hash64(key))

    def update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def __contains__(self, key: str) -> bool:
        """Exact while exact; a sketch cannot say (False)."""
        return self.exact is not None and key in self.exact

    def _add_hashed(self, h: int) -> None:
        registers = self.registers
        assert registers is not None
        index = h >> REST_BITS
        rank = REST_BITS - (h & ((1 << REST_BITS) - 1)).bit_length() + 1
        old = registers[index]
        if rank > old:
            registers[index] = rank
            self.inverse_sum += 2.0**-rank - 2.0**-old
            if old == 0:
                self.zeros -= 1

    def _to_sketch(self) -> None:
        keys, self.exact = self.exact or set(), None
        self.registers = bytearray(M)
        for key in keys:
            self._add_hashed(_hash64(key))

    def __len__(self) -> int:
        if self.exact is not None:
            return len(self.exact)
        estimate = ALPHA * M * M / self.inverse_sum
        if estimate <= 2.5 * M and self.zeros:
            estimate = M * math.log(M / self.zeros)  # linear counting for the low range
        return round(estimate)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistinctCount):
            return NotImplemented
        return self.exact == other.exact and self.registers == other.registers

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def to_state(self) -> Any:
        if self.exact is not None:
            return list(self.exact)
        assert self.registers is not None
        return {"hll": base64.b64encode(bytes(self.registers)).decode()}

    @classmethod
    def from_state(cls, state: Any) -> DistinctCount:
        out = cls()
        if isinstance(state, dict):
            out.exact = None
            out.registers = bytearray(base64.b64decode(state["hll"]))
            out.inverse_sum = sum(2.0**-r for r in out.registers)
            out.zeros = out.registers.count(0)
        else:
            out.exact = set(state)
        return out
