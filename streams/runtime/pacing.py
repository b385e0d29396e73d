"""Reading the input partitions evenly in time, as Kafka Streams does.

A room's events arrive on every input partition: four topics, and the load generator
and most producers spread records over a topic's partitions. A worker behind its
input gets whole fetches: a fetch of a busy views partition covers a few seconds of
traffic, one of a thin orders partition minutes. Folded as fetched, the thin
partitions run ahead, each room's watermark follows the furthest, and the views that
come after it are late. In a `memory` load test whose worker fell behind, more than
half the events folded were beyond the 5 s of allowed lateness, so they reached no
window and no detector.

So the ingest stage keeps each input partition's fetched records in a queue and
routes only those within `slack_ms` (record timestamps) of the partition furthest
behind; a partition with records queued is paused (no fetch, no memory) until its
queue drains. An empty partition with records still to read holds the others back
while it is being fetched (`hold_s` since it last delivered, or `hold_takes` takes:
a worker busy elsewhere, its loop held for seconds, still waits for the fetch on its
way), not longer: a partition whose lag never reaches zero (a transaction marker at
the end of a Kafka log) must not stop the rest.

Pure: records are anything with `offset` and `timestamp` (ms); the worker pauses and
resumes the consumer's partitions from `backlogged()`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import Any

TP = tuple[str, int]

HOLD_S = 1.0  # an empty partition with records to read holds the rest this long,
HOLD_TAKES = 20  # or this many takes

_timestamp = attrgetter("timestamp")


class InputPacer:
    def __init__(self, slack_ms: int, hold_s: float = HOLD_S, hold_takes: int = HOLD_TAKES) -> None:
        self.slack_ms = slack_ms
        self.hold_s = hold_s
        self.hold_takes = hold_takes
        self.takes = 0
        self.queued: dict[TP, list[Any]] = {}  # fetched, not taken yet (never empty)
        self.taken_to: dict[TP, int] = {}  # timestamp of the last record taken
        self.delivered_at: dict[TP, tuple[float, int]] = {}  # its last fetch: time, takes

    def add(self, tp: TP, records: Sequence[Any], now: float) -> None:
        """A fetch's records of `tp`; any it already holds are not queued twice."""
        if not records:
            return
        queue = self.queued.get(tp)
        if queue is None:
            self.queued[tp] = list(records)
        else:
            last = queue[-1].offset
            queue.extend(r for r in records if r.offset > last)
        self.delivered_at[tp] = (now, self.takes)

    def take(self, now: float, reading: Callable[[TP], bool]) -> dict[TP, list[Any]]:
        """The queued records due: those within `slack_ms` of the furthest behind of the
        queues' heads and of the empty partitions `reading` says have records to read.
        At least the furthest-behind head is always due."""
        queued = self.queued
        self.takes += 1
        if not queued:
            return {}
        floor = min(queue[0].timestamp for queue in queued.values())
        for tp, ts in self.taken_to.items():
            if ts < floor and tp not in queued and self._holding(tp, now) and reading(tp):
                floor = ts
        bound = floor + self.slack_ms
        due = {}
        for tp, queue in list(queued.items()):
            # One producer's timestamps rise along its partition; when they do not (many
            # producers, skewed clocks) the cut is still a prefix and the head is due.
            cut = bisect_right(queue, bound, key=_timestamp)
            if not cut:
                continue
            due[tp] = queue[:cut]
            self.taken_to[tp] = queue[cut - 1].timestamp
            if cut == len(queue):
                del queued[tp]
            else:
                queued[tp] = queue[cut:]
        return due

    def _holding(self, tp: TP, now: float) -> bool:
        at, takes = self.delivered_at.get(tp, (now, self.takes))
        return now - at <= self.hold_s or self.takes - takes <= self.hold_takes

    def backlogged(self) -> set[TP]:
        """Partitions with records queued: not to be fetched until they drain."""
        return set(self.queued)

    def forget(self, tps: Iterable[TP]) -> int:
        """Revoked, or read again from the cursor: what was queued is fetched again. The
        number of records that were queued."""
        dropped = 0
        for tp in tps:
            dropped += len(self.queued.pop(tp, ()))
            self.taken_to.pop(tp, None)
            self.delivered_at.pop(tp, None)
        return dropped
