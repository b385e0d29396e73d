"""Alert transitions waiting for one receiver, kept until it takes them.

A receiver that hangs or answers 500 for an hour must neither slow the rooms nor lose
the page it was due: transitions wait here, bounded. Alertmanager wants only an alert's
latest state, so a newer transition of the same alert replaces the one waiting (no
duplicate posts when it recovers). A webhook (a chat robot) wants every transition.
Over the limit, the oldest *resolved* transition goes first, then the oldest. Every
drop is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.alerts.records import FIRING

Record = dict[str, Any]


class Pending:
    def __init__(self, limit: int, key: Callable[[Record], Any]) -> None:
        self.limit = limit
        self.key = key
        self.items: dict[Any, Record] = {}  # first queued first
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items)

    def put(self, record: Record) -> None:
        key = self.key(record)
        if key in self.items:
            self.items[key] = record  # its place in line stays: it waited that long
            return
        if len(self.items) >= self.limit:
            self._drop_one()
        self.items[key] = record

    def _drop_one(self) -> None:
        victim = next((k for k, r in self.items.items() if r["status"] != FIRING), None)
        if victim is None:
            victim = next(iter(self.items))
        del self.items[victim]
        self.dropped += 1

    def oldest(self, n: int) -> list[tuple[Any, Record]]:
        """Up to `n` waiting transitions, oldest first (they stay until `done`)."""
        out = []
        for item in self.items.items():
            out.append(item)
            if len(out) == n:
                break
        return out

    def done(self, taken: list[tuple[Any, Record]]) -> None:
        """The receiver took these: forget them, unless a newer one replaced them."""
        for key, record in taken:
            if self.items.get(key) is record:
                del self.items[key]


def latest_per_alert(record: Record) -> Any:
    return record["alert_id"]


def every_transition(record: Record) -> Any:
    return (record["alert_id"], record["status"])
