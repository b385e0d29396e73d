"""What was already sent: one transition per alert, across replays, restarts and
rebalances.

After a restart a partition replays room-events from its last checkpoint, and its
detectors see the same seconds again and call the same transitions. The ledger of
the partition, rebuilt from the tail of the alerts topic it owns, drops a firing
already sent (the alert is firing) and a resolve already sent, and gives a resolve
the id and start of the firing that was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.alerts.records import FIRING, identity

Record = dict[str, Any]


MAX_REMEMBERED = 50_000


class AlertLedger:
    def __init__(self) -> None:
        self.last: dict[tuple[str, str, str], Record] = {}
        self.sent: dict[tuple[str, str], None] = {}  # (alert_id, status), insertion-ordered

    def admit(self, record: Record) -> Record | None:
        """The record to send for this transition, or None if it was sent already."""
        if (record["alert_id"], record["status"]) in self.sent:
            return None  # a replay of exactly this transition
        key = identity(record)
        sent = self.last.get(key)
        if record["status"] == FIRING:
            if sent is not None and sent["status"] == FIRING:
                return None
        else:
            if sent is None or sent["status"] != FIRING:
                return None
            record = {
                **record,
                "alert_id": sent["alert_id"],
                "starts_at": sent["starts_at"],
                "starts_at_ms": sent["starts_at_ms"],
            }
        self._remember(record)
        return record

    def load(self, sent: Iterable[Record]) -> None:
        """Records read back from the alerts topic, oldest first."""
        for record in sent:
            self._remember(record)

    def _remember(self, record: Record) -> None:
        self.last[identity(record)] = record
        self.sent[(record["alert_id"], record["status"])] = None
        if len(self.sent) > MAX_REMEMBERED:
            for old in list(self.sent)[: MAX_REMEMBERED // 5]:
                del self.sent[old]
            self.last = {k: r for k, r in self.last.items() if r["status"] == FIRING}

    def firing(self) -> list[Record]:
        return [r for r in self.last.values() if r["status"] == FIRING]
