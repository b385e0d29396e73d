"""A room partition's alerting: each room's watch, the ledger of what was sent, and the
outbox of transitions not yet sent.

Hears of rooms and comments as the partition folds them (it is the partition's
observer), and closes seconds of event time: by the partition's watermark, or by the
clock while no records arrive, so a room (or a whole partition) that goes silent is
still judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from streams.alerts.ledger import AlertLedger
from streams.alerts.product_watch import STEP_S
from streams.alerts.rules import AlertRules
from streams.alerts.watch import RoomWatch
from streams.rooms.partition import RoomPartition
from streams.rooms.room import (
    S_CARTS,
    S_COMMENTS,
    S_NEGATIVE,
    S_ORDERS,
    S_SCORED,
    S_VIEWS,
    SUM_COLUMNS,
)

# With no record for this long, the partition's event time follows the clock.
IDLE_CLOCK_S = 3.0
MAX_CATCH_UP_S = 600  # a room silent for longer is judged on its last 10 minutes only
EMPTY_ROW = (0,) * SUM_COLUMNS

Record = dict[str, Any]


class PartitionAlerts:
    def __init__(self, partition: int, rules: AlertRules, allowed_lateness_ms: int) -> None:
        self.partition = partition
        self.rules = rules
        self.keywords = rules.keywords
        self.allowed_lateness_ms = allowed_lateness_ms
        self.watches: dict[str, RoomWatch] = {}
        self.ledger = AlertLedger()
        self.outbox: list[Record] = []  # transitions not yet sent
        self.unsent: list[Record] = []  # admitted by the ledger, not acknowledged by Kafka
        self.closed_through = -1  # last second every watch was closed through
        self._transitioned: set[str] = set()  # rooms whose alerts changed since capture

    # -- the partition's observer --------------------------------------------------------

    def room_seen(self, room_id: str, ts_ms: int) -> None:
        self._watch(room_id, ts_ms)

    def comment(self, room_id: str, ts_ms: int, text: str) -> None:
        lists = self.keywords.lists_named(text)
        if lists:
            self._watch(room_id, ts_ms).note_keywords(lists, text)

    def _watch(self, room_id: str, ts_ms: int) -> RoomWatch:
        watch = self.watches.get(room_id)
        if watch is None:
            watch = self.watches[room_id] = RoomWatch(room_id, self.rules.for_room(room_id))
            watch.last_closed = max(ts_ms // 1000 - 1, self.closed_through)
        return watch

    # -- closing seconds -----------------------------------------------------------------

    def advance(self, now: float, part: RoomPartition, input_waiting: bool = False) -> None:
        """Feed every room's detectors the seconds the partition's event time has left
        behind (by the watermark, or by the clock while no records arrive).

        `input_waiting`: records the worker has not read yet wait in its input, so no
        record for a while means the worker is behind, not that the rooms went quiet.
        The clock then judges nothing: it would close seconds whose events are still
        on their way, page every room of the partition with a ViewerDrop, and leave
        those events out of every detector (2,276 false ViewerDrops in a `memory` load
        test whose worker fell behind). The watermark still closes seconds as they are
        folded."""
        event_time = part.watermark_ms
        idle = now - part.last_record_at
        if part.last_record_at and idle > IDLE_CLOCK_S and not input_waiting:
            event_time += int(idle * 1000)
        # A second is judged once it is past the allowed lateness: the detectors see
        # exactly what the windows count, out-of-order events included.
        through = (event_time - self.allowed_lateness_ms) // 1000 - 1
        if through <= self.closed_through:
            return
        self.closed_through = through
        announced = self.rules.announced_at
        rooms = part.rooms
        split = part.shards is not None
        for room_id, watch in self.watches.items():
            room = rooms.get(room_id)
            if room is None:
                continue
            state = room.state
            row_at, online, room_through = state.sums.get, state.online, through
            at = part.shard_of(room_id) if split else None
            if at is not None:  # a split room is judged where it is merged, as one room
                merged = part.merged.get(room_id)
                if at[1] != 0 or merged is None:
                    continue
                row_at, online = merged.row, merged.online
                room_through = min(through, merged.rows_final())
            first = max(watch.last_closed + 1, room_through - MAX_CATCH_UP_S)
            for second in range(first, room_through + 1):
                row = row_at(second) or EMPTY_ROW
                changes = watch.close(  # every room every second: positional, the cheaper call
                    second,
                    row[S_VIEWS],  # entries
                    row[S_COMMENTS],
                    row[S_CARTS],
                    row[S_ORDERS],
                    row[S_SCORED],
                    row[S_NEGATIVE],
                    online,
                    announced(room_id, second * 1000),
                )
                if changes:
                    self.outbox.extend(changes)
                    self._transitioned.add(room_id)
                if (second + 1) % STEP_S == 0:  # a product step ends with this second
                    step = second // STEP_S
                    rows = (
                        merged.product_step(step)
                        if at is not None
                        else state.products.step_rows(step)
                    )
                    changes = watch.close_products(step, rows)
                    if changes:
                        self.outbox.extend(changes)
                        self._transitioned.add(room_id)

    def take(self) -> list[Record]:
        """Transitions to send now: any that failed to send before, then the outbox less
        what the ledger says was sent."""
        out = self.unsent + [r for r in map(self.ledger.admit, self.outbox) if r is not None]
        self.unsent = []
        self.outbox.clear()
        return out

    def not_sent(self, records: list[Record]) -> None:
        """The broker did not acknowledge these: they go first next time (the ledger
        already counts them as sent, so they must not pass through it again)."""
        self.unsent = records + self.unsent

    def forget(self, room_ids: Iterable[str]) -> None:
        """Rooms evicted as idle: resolve what they still have firing."""
        for room_id in room_ids:
            watch = self.watches.pop(room_id, None)
            if watch is not None:
                at_ms = (watch.last_closed + 1) * 1000
                self.outbox.extend(watch.close_all(at_ms, "the room went idle."))

    def firing(self) -> list[Record]:
        return self.ledger.firing()

    # -- checkpoints ---------------------------------------------------------------------

    def capture(self, rebased: Iterable[str]) -> list[dict[str, Any]]:
        """Watch states of the rooms rebased in this epoch and of rooms whose alerts
        changed. Detector state is approximate by nature; the firing state matters, and
        the ledger (rebuilt from the alerts topic) guards what was sent."""
        wanted = self._transitioned.union(rebased)
        self._transitioned = set()
        watches = self.watches
        # Serialised now: the watch keeps changing while the epoch is written.
        return [
            {"room": r, "watch": orjson.Fragment(orjson.dumps(watches[r].to_state()))}
            for r in wanted
            if r in watches
        ]

    def load(self, room_id: str, state: dict[str, Any]) -> None:
        watch = self._watch(room_id, 0)
        watch.load_state(state)

    def meta(self) -> dict[str, Any]:
        return {"closed_through": self.closed_through}

    def load_meta(self, meta: dict[str, Any]) -> None:
        self.closed_through = meta.get("closed_through", -1)
