"""Event-time building blocks: second-granular sliding sums and last-seen indexes.

Both keep state per whole second of event time and expire whole seconds once the
watermark has moved past their horizon, so every update is O(1) and memory is
proportional to what is inside the horizon, not to the event rate.

Both also remember what changed since the last `take_changes()`: an incremental
checkpoint writes those entries only (values are absolute, so applying a change twice
is harmless), and `changes_since_base()`-free restores rebuild the rest from a base.
Expiry is not a change: it follows from the watermark, which a restore re-applies.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from sys import intern
from typing import Any


class LastSeen:
    """Distinct keys by the second they were last seen, for a bounded horizon.

    Answers "how many distinct keys were seen in the last N seconds" exactly (at
    one-second granularity) and "was this key seen within the horizon".

    A key's latest second is in `last`; the per-second buckets are lists, appended to
    when a key moves to a later second and not searched to remove it from the earlier
    one: expiry drops a key only if its latest second has expired, and `_live` counts
    the keys whose latest second each second is. A list slot is 8 bytes where a set
    entry was ~40, and a second with a few keys costs ~80 bytes where a small set cost
    ~220 (5,000 small rooms hold a bucket for most of their 300 seconds).
    """

    __slots__ = ("_buckets", "_live", "_oldest", "_windows", "changed", "horizon", "last")

    def __init__(self, horizon_s: int, windows: tuple[int, ...] = ()) -> None:
        self.horizon = horizon_s
        self.last: dict[Hashable, int] = {}
        self._buckets: dict[int, list] = {}  # second -> keys moved to it (some since moved on)
        self._live: dict[int, int] = {}  # second -> keys whose latest second it is
        self._oldest: int | None = None  # no bucket is older than this second
        self.changed: dict = {}  # key -> second, for keys touched since take_changes()
        # Trailing windows kept counted as keys move and the watermark advances, so a
        # snapshot reads a count instead of summing buckets: [length, first second, count].
        self._windows: list[list[Any]] = [[length, None, 0] for length in windows]

    def __len__(self) -> int:
        return len(self.last)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.last

    def touch(self, key: Hashable, second: int) -> None:
        """Record `key` as seen at `second` (never moves a key back in time)."""
        last, live = self.last, self._live
        prev = last.get(key)
        if prev is not None:
            if prev >= second:
                return
            live[prev] -= 1
        for window in self._windows:
            first = window[1]
            if first is not None and second >= first and (prev is None or prev < first):
                window[2] += 1
        last[key] = second
        self.changed[key] = second
        bucket = self._buckets.get(second)
        if bucket is None:
            self._buckets[second] = [key]
            live[second] = 1
            if self._oldest is None or second < self._oldest:
                self._oldest = second
        else:
            bucket.append(key)
            live[second] += 1

    def count_since(self, first_second: int) -> int:
        """Distinct keys last seen at or after `first_second`."""
        return sum(n for s, n in self._live.items() if s >= first_second)

    def window_count(self, length: int, first_second: int) -> int:
        """`count_since(first_second)`, O(1) for a kept window the watermark has moved to."""
        for window_length, first, count in self._windows:
            if window_length == length and first == first_second:
                return count
        return self.count_since(first_second)

    def expire(self, watermark_s: int) -> None:
        """Forget keys last seen at or before `watermark_s - horizon`, and move the kept
        windows to end at `watermark_s` (before the buckets they leave are dropped)."""
        live = self._live
        for window in self._windows:
            length, first, _ = window
            new_first = watermark_s - length + 1
            if first is None or new_first - first > len(live):
                window[2] = self.count_since(new_first)  # first move, or a long jump
            elif new_first > first:
                window[2] -= sum(live.get(s, 0) for s in range(first, new_first))
            window[1] = max(new_first, first) if first is not None else new_first
        cutoff = watermark_s - self.horizon
        if self._oldest is None or self._oldest > cutoff:
            return
        last, buckets = self.last, self._buckets
        for s in seconds_up_to(buckets, self._oldest, cutoff):
            del live[s]
            for key in buckets.pop(s):
                latest = last.get(key)
                if latest is not None and latest <= cutoff:  # not moved on since
                    del last[key]
        self._oldest = cutoff + 1

    def take_changes(self) -> dict[Any, int]:
        """{key: second} of every key touched since the last call (the delta).

        Kept as touched, so taking it is O(1); a dict, not a list of pairs, so a big
        room's delta has no container per entry. (A key expired since it was touched may
        still be in it: harmless, a restore expires it again.)"""
        out, self.changed = self.changed, {}
        return out

    def snapshot(self) -> dict[Any, int]:
        """{key: second} of every key (a base, a copy); resets the changes."""
        self.changed = {}
        return self.last.copy()

    def load(self, pairs: dict[Any, int]) -> None:
        """Apply {key: second} of a base or a delta (max semantics). String keys are
        interned, as `RoomState.apply` interns user ids: one object per user."""
        touch = self.touch
        for key, second in pairs.items():
            touch(intern(key) if type(key) is str else key, second)
        self.changed = {}
        for window in self._windows:  # recounted when the watermark next moves
            window[1], window[2] = None, 0


class RecentIds:
    """Event ids seen within a horizon of event time, to drop repeats (client retries).

    `LastSeen` with less per id, for the busiest index a room has (every event's id):
    an id never moves (a repeat is dropped, not touched again), so it needs no live
    counts and no check at expiry, only its first second in a dict (a base is one
    C-level copy of it) and in that second's list.
    """

    __slots__ = ("_oldest", "_seconds", "changed", "first_seen", "horizon")

    def __init__(self, horizon_s: int) -> None:
        self.horizon = horizon_s
        self.first_seen: dict[Hashable, int] = {}
        self._seconds: dict[int, list[Hashable]] = {}  # second first seen -> ids
        self._oldest: int | None = None
        self.changed: dict[Hashable, int] = {}  # ids added since take_changes()

    def __len__(self) -> int:
        return len(self.first_seen)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.first_seen

    def touch(self, key: Hashable, second: int) -> None:
        """Remember `key` as first seen at `second` (a key already held stays put)."""
        first_seen = self.first_seen
        if key in first_seen:
            return
        first_seen[key] = second
        self.changed[key] = second
        bucket = self._seconds.get(second)
        if bucket is None:
            self._seconds[second] = [key]
            if self._oldest is None or second < self._oldest:
                self._oldest = second
        else:
            bucket.append(key)

    def expire(self, watermark_s: int) -> None:
        """Forget ids first seen at or before `watermark_s - horizon`."""
        cutoff = watermark_s - self.horizon
        if self._oldest is None or self._oldest > cutoff:
            return
        seconds, first_seen = self._seconds, self.first_seen
        for s in seconds_up_to(seconds, self._oldest, cutoff):
            for key in seconds.pop(s):
                del first_seen[key]
        self._oldest = cutoff + 1

    def take_changes(self) -> dict[Hashable, int]:
        out, self.changed = self.changed, {}
        return out

    def snapshot(self) -> dict[Hashable, int]:
        """{id: second} of every id (a base, a copy); resets the changes."""
        self.changed = {}
        return self.first_seen.copy()

    def load(self, pairs: dict[Hashable, int]) -> None:
        touch = self.touch
        for key, second in pairs.items():
            touch(key, second)
        self.changed = {}


class SecondSums:
    """Per-second sums of a fixed set of counters, summed over any trailing window.

    Kept windows are summed incrementally: a row no event can change any more (older
    than the allowed lateness, `settled_before`) is added to a window's total once, and
    subtracted once when the window leaves it; a window's sum is that total plus the
    few unsettled rows. Callers add to rows in place, so only settled rows are totalled.
    """

    __slots__ = ("_oldest", "_rows", "_watermark", "_windows", "changed", "horizon", "width")

    def __init__(self, width: int, horizon_s: int, windows: tuple[int, ...] = ()) -> None:
        self.width = width
        self.horizon = horizon_s
        self._rows: dict[int, list[float]] = {}
        self._oldest: int | None = None
        self.changed: set[int] = set()  # seconds written since the last take_changes()
        self._watermark: int | None = None
        # [length, first second, settled up to (exclusive), totals of rows first..settled-1]
        self._windows: list[list[Any]] = [[length, None, None, None] for length in windows]

    def row(self, second: int) -> list[float]:
        """The row of `second`, to add to (marked changed)."""
        self.changed.add(second)
        row = self._rows.get(second)
        if row is None:
            row = self._rows[second] = [0] * self.width
            if self._oldest is None or second < self._oldest:
                self._oldest = second
        return row

    def get(self, second: int) -> list[float] | None:
        """The sums of one second, None if nothing happened in it."""
        return self._rows.get(second)

    def sum_since(self, first_second: int) -> list[float]:
        total = [0] * self.width
        for s, row in self._rows.items():
            if s >= first_second:
                for i, v in enumerate(row):
                    total[i] += v
        return total

    def window_sum(self, length: int, first_second: int) -> list[float]:
        """`sum_since(first_second)`, from the kept window's total when it is there."""
        for window_length, first, settled, totals in self._windows:
            if window_length == length and first == first_second and self._watermark is not None:
                out = list(totals)
                rows = self._rows
                for s in range(settled, self._watermark + 1):
                    row = rows.get(s)
                    if row is not None:
                        for i, v in enumerate(row):
                            out[i] += v
                return out
        return self.sum_since(first_second)

    def _add_rows(self, totals: list[float], first: int, end: int, sign: int) -> None:
        rows = self._rows
        seconds = range(first, end) if end - first <= len(rows) else sorted(rows)
        for s in seconds:
            if first <= s < end and (row := rows.get(s)) is not None:
                for i, v in enumerate(row):
                    totals[i] += sign * v

    def advance(self, watermark_s: int, settled_before: int) -> None:
        """The watermark moved to `watermark_s`; rows before `settled_before` are final.
        Moves the kept windows, then expires rows past the horizon."""
        self._watermark = watermark_s
        for window in self._windows:
            length, first, settled, totals = window
            new_first = watermark_s - length + 1
            new_settled = max(min(settled_before, watermark_s + 1), new_first)
            if first is None or totals is None:
                totals = [0] * self.width
                self._add_rows(totals, new_first, new_settled, 1)
            else:
                self._add_rows(totals, first, min(new_first, settled), -1)  # left the window
                if new_first >= settled:
                    totals = [0] * self.width  # nothing settled inside: no float residue
                self._add_rows(totals, max(settled, new_first), new_settled, 1)
            window[1], window[2], window[3] = new_first, new_settled, totals
        self.expire(watermark_s)

    def expire(self, watermark_s: int) -> None:
        cutoff = watermark_s - self.horizon
        if self._oldest is None or self._oldest > cutoff:
            return
        for s in seconds_up_to(self._rows, self._oldest, cutoff):
            del self._rows[s]
        self._oldest = cutoff + 1

    def take_changes(self) -> list[list[Any]]:
        """[second, row copy] of the rows written since the last call (the delta)."""
        rows = self._rows
        out = [[s, list(rows[s])] for s in self.changed if s in rows]
        self.changed = set()
        return out

    def snapshot(self) -> list[list[Any]]:
        self.changed = set()
        return [[s, list(row)] for s, row in self._rows.items()]

    def load(self, rows: Iterable[list[Any]]) -> None:
        """Set whole rows (absolute values) from a base or a delta."""
        for second, row in rows:
            if self._oldest is None or second < self._oldest:
                self._oldest = second
            self._rows[second] = list(row)
        self.changed = set()
        for window in self._windows:  # totalled again when the watermark next moves
            window[1] = window[2] = window[3] = None


def seconds_up_to(buckets: dict[int, Any], oldest: int, cutoff: int) -> list[int]:
    """Keys of `buckets` in [oldest, cutoff]: walk the seconds when the span is short
    (the usual one-second step), scan the keys when the watermark jumped far."""
    if cutoff - oldest < 4 * len(buckets):
        return [s for s in range(oldest, cutoff + 1) if s in buckets]
    return [s for s in buckets if s <= cutoff]
