"""Where each stage is in each partition it owns: the next offset to process.

One abstraction for both stages. A fetch may deliver records again after a seek (a
restored partition resumes at its checkpoint); those below the cursor are dropped.
Offsets may legitimately jump (transaction markers, compaction on Kafka), so a record
beyond the cursor is processed and the cursor moves past it. Lag is the log end (the
high-water mark a fetch reported) minus the cursor; a commit covers exactly what the
cursor has passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

TP = tuple[str, int]


class OffsetCursor:
    def __init__(self) -> None:
        self.next: dict[TP, int] = {}  # -1: nothing committed, take what comes
        self.gap_at: dict[TP, int] = {}  # where a fetch last came back with a gap

    def start(self, tp: TP, offset: int) -> None:
        self.next[tp] = offset

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.next.pop(tp, None)

    def admit(self, tp: TP, records: Sequence[Any]) -> Sequence[Any]:
        """The records of a fetch still to process (all of them, usually)."""
        want = self.next.get(tp)
        if want is None:
            return ()  # no longer ours
        if not records or records[0].offset >= want:
            return records
        return [r for r in records if r.offset >= want]

    def passed_over(self, tp: TP, records: Sequence[Any]) -> int:
        """Offsets that admitting `records` moves past with no record: before the first
        (from the cursor) and between them. Legitimate on Kafka input topics (transaction
        markers, compaction); on room-events, records the rooms never fold. O(1)."""
        if not records:
            return 0
        want = self.next.get(tp, -1)
        before = records[0].offset - want if want >= 0 else 0
        between = records[-1].offset - records[0].offset + 1 - len(records)
        return max(before, 0) + between

    def first_sight_of_gap(self, tp: TP) -> bool:
        """A fetch came back with a gap at the cursor: True the first time at this
        position (read it again), False when the fetch again has it (it is real)."""
        want = self.next.get(tp, -1)
        if self.gap_at.get(tp) == want:
            return False
        self.gap_at[tp] = want
        return True

    def advance(self, tp: TP, records: Sequence[Any]) -> None:
        """The records have been processed (and their output is durable)."""
        if records:
            self.next[tp] = records[-1].offset + 1

    def positions(self) -> dict[TP, int]:
        return dict(self.next)
