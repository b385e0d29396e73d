"""Distinct counting: exact up to EXACT_LIMIT keys, then a HyperLogLog.

SPEC.md: distinct counts are exact up to 10,000 distinct users per room and window;
above that an estimate within 2 % is fine. The exact set is a flat table of the ids'
64-bit hashes (streams.rooms.flat: 8 bytes and a bit a slot, its values all 0 and so
not held, where a set of strings held ~100 bytes a user); past the limit a sketch keeps
16 KB whatever the audience (p = 14: ~0.8 % standard error). The sketch takes the same
hashes, which are stable across processes, so a sketch restored from a checkpoint keeps
counting the same users as the same.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

from streams.rooms.flat import MODE_SET, FlatMap, hash64, packed, unpacked

EXACT_LIMIT = 10_000
P = 14
M = 1 << P
ALPHA = 0.7213 / (1 + 1.079 / M)
REST_BITS = 64 - P
# Sketches written before the flat tables hashed ids with blake2b: their registers are
# kept, and a user counted in them and again since may count twice (in rooms that
# were past EXACT_LIMIT when the worker was upgraded).
SKETCH_FORMAT = "hll2"


class DistinctCount:
    """A set that becomes a HyperLogLog past EXACT_LIMIT keys (add and len only)."""

    __slots__ = ("_changed", "_converted", "exact", "inverse_sum", "registers", "zeros")

    def __init__(self) -> None:
        self.exact: FlatMap | None = FlatMap()
        self.registers: bytearray | None = None
        self.inverse_sum = float(M)  # sum of 2^-register, kept up to date
        self.zeros = M
        # What changed since the last take_changes(), for incremental checkpoints (the
        # exact table marks its own new keys).
        # Registers raised (a sketch); made when first needed: 216 bytes an empty set, four
        # a room, and most rooms never become sketches.
        self._changed: set[int] | None = None
        self._converted = False  # became a sketch

    @classmethod
    def sketch(cls) -> DistinctCount:
        """An empty count that is a sketch from the start (16 KB)."""
        count = cls()
        count._to_sketch()
        count._converted = False
        return count

    def add(self, key: str) -> None:
        exact = self.exact
        if exact is not None:
            if exact.add(key) and len(exact) > EXACT_LIMIT:
                self._to_sketch()
            return
        self._add_hashed(hash64(key))

    def update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def __contains__(self, key: str) -> bool:
        """Exact while exact; a sketch cannot say (False)."""
        return self.exact is not None and key in self.exact

    def _add_hashed(self, h: int) -> None:
        index = h >> REST_BITS
        self._raise(index, REST_BITS - (h & ((1 << REST_BITS) - 1)).bit_length() + 1)

    def _raise(self, index: int, rank: int) -> None:
        """Register `index` to at least `rank`, keeping the estimate's sums current."""
        registers = self.registers
        assert registers is not None
        old = registers[index]
        if rank > old:
            registers[index] = rank
            if self._changed is None:
                self._changed = set()
            self._changed.add(index)
            self.inverse_sum += 2.0**-rank - 2.0**-old
            if old == 0:
                self.zeros -= 1

    def _to_sketch(self) -> None:
        entries = self.exact.items() if self.exact is not None else []
        self.exact = None
        self.registers = bytearray(M)
        for h, _ in entries:
            self._add_hashed(h)
        self._converted = True

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

    # -- checkpoints -------------------------------------------------------------------

    def take_changes(self) -> dict[str, Any] | None:
        """What changed since the last call (None: nothing), as `load` takes it."""
        if self.exact is not None:
            added = self.exact.take_changes()
            return {"add": added} if added else None
        if self._converted:
            self._converted, self._changed = False, None
            return self.snapshot()
        if not self._changed:
            return None
        registers = self.registers
        assert registers is not None
        changed, self._changed = self._changed, None
        return {"reg": [[i, registers[i]] for i in changed]}

    def snapshot(self) -> dict[str, Any]:
        """The whole count (a base); resets the changes."""
        self._changed, self._converted = None, False
        if self.exact is not None:
            return {"add": self.exact.snapshot()}
        assert self.registers is not None
        return {SKETCH_FORMAT: base64.b64encode(bytes(self.registers)).decode()}

    def load(self, change: dict[str, Any]) -> None:
        """Apply a base or a delta of `take_changes`/`snapshot` (idempotent)."""
        if "add" in change:
            if self.exact is not None:
                self.exact.load(packed(change["add"]), MODE_SET)
                if len(self.exact) > EXACT_LIMIT:
                    self._to_sketch()
            else:
                for h, _ in unpacked(change["add"]):
                    self._add_hashed(h)
        elif SKETCH_FORMAT in change or "hll" in change:
            self.exact = None
            registers = change.get(SKETCH_FORMAT, change.get("hll"))
            self.registers = bytearray(base64.b64decode(registers))
            self.inverse_sum = sum(2.0**-r for r in self.registers)
            self.zeros = self.registers.count(0)
        else:
            if self.registers is None:
                # Raised registers of a sketch, onto an exact count: a restore meets a
                # room's deltas before its latest base (that base replaces the room).
                # As a sketch it holds what it has; alone (no base at all) it is short.
                self._to_sketch()
            for index, rank in change["reg"]:
                self._raise(index, rank)
        self._changed, self._converted = None, False  # (a table's load marks nothing)
