"""Window over window: a room's last 10 minutes against the 10 before.

The room's session totals are marked each time its event-time watermark enters a new
minute, so the events of any whole-minute span are the difference of two marks: O(1)
per minute crossed, nothing per event, and 21 small marks per room. Late events (within
the allowed lateness) count in the span they arrive in, as in the session totals.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

SPAN_MINUTES = 10
KEPT_MINUTES = 2 * SPAN_MINUTES + 1

# What a mark holds, in order: session totals, then online viewers (a gauge).
MARKED = ("views", "comments", "cart_adds", "orders", "gmv_yuan", "online_viewers")
(M_VIEWS, M_COMMENTS, M_CARTS, M_ORDERS, M_GMV, M_ONLINE) = range(len(MARKED))
WIDTH = len(MARKED)
SUMMED = {"views": M_VIEWS, "comments": M_COMMENTS, "cart_adds": M_CARTS, "orders": M_ORDERS}
# `liveroom_window_change_ratio{metric}` values, in exposition order.
CHANGE_METRICS = (
    "online_viewers",
    "views",
    "comments",
    "cart_adds",
    "orders",
    "gmv_yuan",
    "gpm_yuan",
)


class MinuteMarks:
    """The session totals when the watermark entered each of the last 21 minutes.

    Packed: the minutes in an array of ints, ascending, and their totals in one array of
    doubles (exact for counts below 2**53), WIDTH a mark. An array and a dict entry a
    mark took ~170 bytes (~3.6 kB a room once it holds all 21, 18 MB at 5,000 rooms);
    these take 56, ~1.5 kB a room. Minutes are contiguous as the watermark crosses them,
    but a split room's summed marks may miss some (streams.rooms.merge)."""

    __slots__ = ("changed", "minutes", "totals")

    def __init__(self) -> None:
        self.minutes = array("q")
        self.totals = array("d")
        self.changed = False

    def __len__(self) -> int:
        return len(self.minutes)

    def get(self, minute: int) -> Sequence[float] | None:
        """The totals marked when the watermark entered `minute`, if kept."""
        i = bisect_left(self.minutes, minute)
        if i == len(self.minutes) or self.minutes[i] != minute:
            return None
        return self.totals[i * WIDTH : (i + 1) * WIDTH]

    def put(self, minute: int, totals: Sequence[float]) -> None:
        """Mark `minute` with `totals` (a row shorter than WIDTH, from older state, is
        padded with zeros)."""
        row = array("d", totals)
        row.extend([0.0] * (WIDTH - len(row)))
        minutes = self.minutes
        i = bisect_left(minutes, minute)
        if i < len(minutes) and minutes[i] == minute:
            self.totals[i * WIDTH : (i + 1) * WIDTH] = row[:WIDTH]
            return
        minutes.insert(i, minute)
        self.totals[i * WIDTH : i * WIDTH] = row[:WIDTH]

    def cross(self, old_minute: int, new_minute: int, totals: list[float]) -> None:
        """The watermark moved from `old_minute` into `new_minute` with these totals: every
        minute entered on the way starts with them (nothing happened in between)."""
        first = max(old_minute + 1, new_minute - KEPT_MINUTES + 1)
        if not self.minutes:
            first = new_minute  # a new room: its session starts here
        for minute in range(first, new_minute + 1):
            self.put(minute, totals)
        gone = bisect_right(self.minutes, new_minute - KEPT_MINUTES)
        if gone:
            del self.minutes[:gone]
            del self.totals[: gone * WIDTH]
        self.changed = True

    def change(self, minute: int) -> dict[str, float]:
        """{metric: last 10 whole minutes / the 10 before} for the watermark's `minute`.

        A metric is absent while either span is 0 or the room has not yet been live for
        both spans (no mark 20 minutes back).
        """
        now, mid, old = (
            self.get(minute),
            self.get(minute - SPAN_MINUTES),
            self.get(minute - 2 * SPAN_MINUTES),
        )
        if now is None or mid is None or old is None:
            return {}
        out: dict[str, float] = {}
        recent = [now[i] - mid[i] for i in range(M_ONLINE)]
        before = [mid[i] - old[i] for i in range(M_ONLINE)]
        spans = {
            "online_viewers": (
                self._mean(minute - SPAN_MINUTES + 1, minute),
                self._mean(minute - 2 * SPAN_MINUTES + 1, minute - SPAN_MINUTES),
            ),
            **{name: (recent[i], before[i]) for name, i in SUMMED.items()},
            "gmv_yuan": (recent[M_GMV], before[M_GMV]),
            "gpm_yuan": (
                _per_mille(recent[M_GMV], recent[M_VIEWS]),
                _per_mille(before[M_GMV], before[M_VIEWS]),
            ),
        }
        for name in CHANGE_METRICS:
            this, previous = spans[name]
            if this and previous:
                out[name] = this / previous
        return out

    def take_changes(self) -> list[list[Any]] | None:
        """All marks when any changed (21 short rows at most), else None."""
        if not self.changed:
            return None
        return self.snapshot()

    def snapshot(self) -> list[list[Any]]:
        self.changed = False
        return self.rows()

    def rows(self) -> list[list[Any]]:
        """[[minute, totals], ...] as JSON takes them."""
        totals = self.totals
        return [
            [minute, totals[i * WIDTH : (i + 1) * WIDTH].tolist()]
            for i, minute in enumerate(self.minutes)
        ]

    def load(self, rows: list[list[Any]]) -> None:
        self.minutes, self.totals = array("q"), array("d")
        for minute, totals in rows:
            self.put(minute, totals)
        self.changed = False

    def _mean(self, first: int, last: int) -> float:
        """Mean online viewers over the marks of minutes first..last (those kept)."""
        i, n = bisect_left(self.minutes, first), last - first + 1
        if i + n <= len(self.minutes) and self.minutes[i + n - 1] == last:  # contiguous
            at = i * WIDTH + M_ONLINE
            return sum(self.totals[at : at + n * WIDTH : WIDTH]) / n
        kept = [row[M_ONLINE] for m in range(first, last + 1) if (row := self.get(m))]
        return sum(kept) / len(kept) if kept else 0.0


def _per_mille(gmv: float, views: float) -> float:
    return gmv / views * 1000.0 if views else 0.0
