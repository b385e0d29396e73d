"""Window over window: a room's last 10 minutes against the 10 before.

The room's session totals are marked each time its event-time watermark enters a new
minute, so the events of any whole-minute span are the difference of two marks: O(1)
per minute crossed, nothing per event, and 21 small marks per room. Late events (within
the allowed lateness) count in the span they arrive in, as in the session totals.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

SPAN_MINUTES = 10
KEPT_MINUTES = 2 * SPAN_MINUTES + 1

# What a mark holds, in order: session totals, then online viewers (a gauge).
MARKED = ("views", "comments", "cart_adds", "orders", "gmv_yuan", "online_viewers")
(M_VIEWS, M_COMMENTS, M_CARTS, M_ORDERS, M_GMV, M_ONLINE) = range(len(MARKED))
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
    """{minute: totals when the watermark entered it} for the last 21 minutes.

    A mark's totals are an array of doubles (exact for counts below 2**53): a list of
    their int and float objects took ~250 bytes a mark, ~5,000 marks a room-hour."""

    __slots__ = ("changed", "marks")

    def __init__(self) -> None:
        self.marks: dict[int, Sequence[float]] = {}
        self.changed = False

    def cross(self, old_minute: int, new_minute: int, totals: list[float]) -> None:
        """The watermark moved from `old_minute` into `new_minute` with these totals: every
        minute entered on the way starts with them (nothing happened in between)."""
        mark = array("d", totals)  # one array, shared by every minute entered
        first = max(old_minute + 1, new_minute - KEPT_MINUTES + 1)
        if not self.marks:
            first = new_minute  # a new room: its session starts here
        for minute in range(first, new_minute + 1):
            self.marks[minute] = mark
        for minute in [m for m in self.marks if m <= new_minute - KEPT_MINUTES]:
            del self.marks[minute]
        self.changed = True

    def change(self, minute: int) -> dict[str, float]:
        """{metric: last 10 whole minutes / the 10 before} for the watermark's `minute`.

        A metric is absent while either span is 0 or the room has not yet been live for
        both spans (no mark 20 minutes back).
        """
        marks = self.marks
        now, mid, old = (
            marks.get(minute),
            marks.get(minute - SPAN_MINUTES),
            marks.get(minute - 2 * SPAN_MINUTES),
        )
        if now is None or mid is None or old is None:
            return {}
        out: dict[str, float] = {}
        recent = [now[i] - mid[i] for i in range(M_ONLINE)]
        before = [mid[i] - old[i] for i in range(M_ONLINE)]
        spans = {
            "online_viewers": (
                _mean(marks, minute - SPAN_MINUTES + 1, minute),
                _mean(marks, minute - 2 * SPAN_MINUTES + 1, minute - SPAN_MINUTES),
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
        return [[minute, list(totals)] for minute, totals in self.marks.items()]

    def load(self, rows: list[list[Any]]) -> None:
        self.marks = {minute: array("d", totals) for minute, totals in rows}
        self.changed = False


def _mean(marks: dict[int, Sequence[float]], first: int, last: int) -> float:
    """Mean online viewers over the marks of minutes first..last (all present)."""
    return sum(marks[m][M_ONLINE] for m in range(first, last + 1)) / (last - first + 1)


def _per_mille(gmv: float, views: float) -> float:
    return gmv / views * 1000.0 if views else 0.0
