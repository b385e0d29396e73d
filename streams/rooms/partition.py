"""All rooms of one partition of the room-events topic, and what makes them exact.

Exactness across a worker crash rests on two numbers, not on Kafka transactions:
- `applied_offset`: the last room-events record folded into this partition. A record
  at or below it is a replay and is skipped whole.
- each room's own `applied_offset`, written into its checkpoint: after a restart a
  room restored from a newer checkpoint than the partition marker skips the records
  it already holds while the others replay them.
Events re-sent by the ingest stage after its own restart carry the same `event_id`
and are dropped as duplicates by the room.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.alerts.ledger import AlertLedger
from streams.alerts.rules import AlertRules
from streams.alerts.watch import RoomWatch
from streams.events import COMMENT, F_ROOM
from streams.rooms.metrics import snapshot
from streams.rooms.room import (
    DUPLICATE,
    LATE,
    S_CARTS,
    S_COMMENTS,
    S_NEGATIVE,
    S_ORDERS,
    S_SCORED,
    S_VIEWS,
    SUM_COLUMNS,
    RoomSettings,
    RoomState,
)

KIND_COUNT = 4
COST_FACTOR = 20  # a room's checkpoint may take at most ~5% of the worker's time
MAX_DEFER_S = 60.0
# With no record for this long, the partition's event time follows the clock: a room
# (or a whole partition) that went silent is still judged.
IDLE_CLOCK_S = 3.0
MAX_CATCH_UP_S = 600  # a room silent for longer is judged on its last 10 minutes only


EMPTY_ROW = (0,) * SUM_COLUMNS


@dataclass(slots=True)
class Outcome:
    """What a batch did, per event kind (index = kind)."""

    applied: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    late: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    duplicates: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    skipped_replays: int = 0


class RoomPartition:
    def __init__(
        self, partition: int, settings: RoomSettings, rules: AlertRules | None = None
    ) -> None:
        self.partition = partition
        self.settings = settings
        self.rules = rules
        self.rooms: dict[str, RoomState] = {}
        self.watches: dict[str, RoomWatch] = {}
        self.ledger = AlertLedger()
        self.outbox: list[dict[str, Any]] = []  # alert transitions not yet sent
        self.watermark_ms = 0  # highest event time of the partition
        self._last_record_at = 0.0  # processing time of the last record applied
        self._closed_through = -1  # last second every watch was closed through
        self.applied_offset = -1
        self.last_active: dict[str, float] = {}  # room -> processing time of last event
        self.latest: dict[str, dict[str, Any]] = {}  # room -> last emitted snapshot
        self._last_emit: dict[str, float] = {}
        self._dirty_emit: set[str] = set()
        self._dirty_checkpoint: set[str] = set()
        self._next_checkpoint: dict[str, float] = {}  # room -> when it may be written again

    # -- applying ----------------------------------------------------------------------

    def apply(
        self,
        offset: int,
        events: Sequence[Sequence[Any]],
        now: float,
        outcome: Outcome,
        score: Callable[[str], float] | None = None,
    ) -> None:
        """Fold the events of room-events record `offset` into their rooms."""
        if offset <= self.applied_offset:
            outcome.skipped_replays += 1
            return
        rooms = self.rooms
        keywords = self.rules.keywords if self.rules is not None else None
        watermark = self.watermark_ms
        for event in events:
            room_id = event[F_ROOM]
            room = rooms.get(room_id)
            if room is None:
                room = rooms[room_id] = RoomState(room_id, self.settings)
            elif offset <= room.applied_offset:
                continue  # already inside this room's restored checkpoint
            kind = event[0]
            sentiment = None
            if kind == COMMENT:
                text = event[5]
                if score is not None:
                    sentiment = score(text)
                if keywords is not None:
                    lists = keywords.lists_named(text)
                    if lists:
                        self._watch(room_id, event[3]).note_keywords(lists, text)
            result = room.apply(event, sentiment)
            if result == DUPLICATE:
                outcome.duplicates[kind] += 1
                continue
            outcome.applied[kind] += 1
            if result == LATE:
                outcome.late[kind] += 1
            elif event[3] > watermark:
                watermark = event[3]
            self.last_active[room_id] = now
            self._dirty_emit.add(room_id)
            self._dirty_checkpoint.add(room_id)
            if self.rules is not None and room_id not in self.watches:
                self._watch(room_id, event[3])
        self.applied_offset = offset
        self.watermark_ms = watermark
        self._last_record_at = now
        if self.rules is not None:
            self.advance_watches(now)

    # -- alerts ------------------------------------------------------------------------

    def _watch(self, room_id: str, ts_ms: int) -> RoomWatch:
        watch = self.watches.get(room_id)
        if watch is None:
            assert self.rules is not None
            watch = self.watches[room_id] = RoomWatch(room_id, self.rules.for_room(room_id))
            watch.last_closed = max(ts_ms // 1000 - 1, self._closed_through)
        return watch

    def advance_watches(self, now: float) -> None:
        """Feed every room's detectors the seconds the partition's event time has left
        behind (by the watermark, or by the clock while no records arrive)."""
        event_time = self.watermark_ms
        idle = now - self._last_record_at
        if self._last_record_at and idle > IDLE_CLOCK_S:
            event_time += int(idle * 1000)
        # A second is judged once it is past the allowed lateness: the detectors see
        # exactly what the windows count, out-of-order events included.
        through = (event_time - self.settings.allowed_lateness_ms) // 1000 - 1
        if through <= self._closed_through:
            return
        self._closed_through = through
        assert self.rules is not None
        announced = self.rules.announced_at
        for room_id, watch in self.watches.items():
            room = self.rooms[room_id]
            sums = room.sums
            first = max(watch.last_closed + 1, through - MAX_CATCH_UP_S)
            for second in range(first, through + 1):
                row = sums.get(second)
                if row is None:
                    row = EMPTY_ROW
                changes = watch.close(
                    second,
                    entries=row[S_VIEWS],
                    comments=row[S_COMMENTS],
                    carts=row[S_CARTS],
                    orders=row[S_ORDERS],
                    scored=row[S_SCORED],
                    negative=row[S_NEGATIVE],
                    online=room.online,
                    announced=announced(room_id, second * 1000),
                )
                if changes:
                    self.outbox.extend(changes)
                    self._dirty_checkpoint.add(room_id)

    def take_alerts(self) -> list[dict[str, Any]]:
        """Transitions to send now: the outbox less what the ledger says was sent."""
        out = [r for r in map(self.ledger.admit, self.outbox) if r is not None]
        self.outbox.clear()
        return out

    # -- snapshots out -----------------------------------------------------------------

    def due_snapshots(self, now: float, min_interval: float = 1.0) -> list[dict[str, Any]]:
        """Snapshots of rooms changed since their last one, at most one per room per interval."""
        out = []
        for room_id in list(self._dirty_emit):
            if now - self._last_emit.get(room_id, 0.0) < min_interval:
                continue
            snap = snapshot(self.rooms[room_id])
            snap["emitted_at_ms"] = int(now * 1000)
            self.latest[room_id] = snap
            self._last_emit[room_id] = now
            self._dirty_emit.discard(room_id)
            out.append(snap)
        return out

    def evict_idle(self, now: float, ttl: float) -> list[str]:
        """Forget rooms with no event for `ttl` seconds of processing time."""
        idle = [r for r, t in self.last_active.items() if now - t >= ttl]
        for room_id in idle:
            watch = self.watches.pop(room_id, None)
            if watch is not None:
                at_ms = (watch.last_closed + 1) * 1000
                self.outbox.extend(watch.close_all(at_ms, "the room went idle."))
            for table in (
                self.rooms,
                self.last_active,
                self.latest,
                self._last_emit,
                self._next_checkpoint,
            ):
                table.pop(room_id, None)
            self._dirty_emit.discard(room_id)
            self._dirty_checkpoint.discard(room_id)
        return idle

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint(
        self,
        now: float,
        write: Callable[[str, dict[str, Any]], None],
        clock: Callable[[], float] = time.perf_counter,
    ) -> int:
        """Write the changed rooms that are due, each stamped with the partition offset
        it includes; return the marker to write after them: the offset every room's
        checkpoint includes.

        Writing a room costs time in proportion to its state (a 200k-viewer room ~70 ms),
        so a room is next due after COST_FACTOR times its last cost, at most
        MAX_DEFER_S later. The marker stays at the oldest stamp of a deferred room, so a
        restart replays a little more and stays exact."""
        for room_id in list(self._dirty_checkpoint):
            if now < self._next_checkpoint.get(room_id, 0.0):
                continue
            room = self.rooms[room_id]
            room.applied_offset = self.applied_offset
            started = clock()
            state = room.to_state()
            watch = self.watches.get(room_id)
            if watch is not None:
                state["watch"] = watch.to_state()
            write(room_id, state)
            cost = clock() - started
            self._next_checkpoint[room_id] = now + min(MAX_DEFER_S, COST_FACTOR * cost)
            self._dirty_checkpoint.discard(room_id)
        deferred = (self.rooms[r].applied_offset for r in self._dirty_checkpoint)
        return min([self.applied_offset, *deferred])

    def restore(self, marker_offset: int, states: Iterable[tuple[str, dict[str, Any]]], now: float):
        """Load checkpointed rooms; replay must start after `marker_offset`."""
        self.applied_offset = marker_offset
        for room_id, state in states:
            room = self.rooms[room_id] = RoomState.from_state(room_id, self.settings, state)
            self.last_active[room_id] = now
            self._dirty_emit.add(room_id)
            self.watermark_ms = max(self.watermark_ms, room.watermark_ms)
            if self.rules is not None and "watch" in state:
                watch = self._watch(room_id, room.watermark_ms)
                watch.load_state(state["watch"])
