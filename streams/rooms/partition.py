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

from streams.events import COMMENT, F_ROOM
from streams.rooms.metrics import snapshot
from streams.rooms.room import DUPLICATE, LATE, RoomSettings, RoomState

KIND_COUNT = 4
COST_FACTOR = 20  # a room's checkpoint may take at most ~5% of the worker's time
MAX_DEFER_S = 60.0


@dataclass(slots=True)
class Outcome:
    """What a batch did, per event kind (index = kind)."""

    applied: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    late: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    duplicates: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    skipped_replays: int = 0


class RoomPartition:
    def __init__(self, partition: int, settings: RoomSettings) -> None:
        self.partition = partition
        self.settings = settings
        self.rooms: dict[str, RoomState] = {}
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
        for event in events:
            room_id = event[F_ROOM]
            room = rooms.get(room_id)
            if room is None:
                room = rooms[room_id] = RoomState(room_id, self.settings)
            elif offset <= room.applied_offset:
                continue  # already inside this room's restored checkpoint
            sentiment = score(event[5]) if score is not None and event[0] == COMMENT else None
            result = room.apply(event, sentiment)
            kind = event[0]
            if result == DUPLICATE:
                outcome.duplicates[kind] += 1
                continue
            outcome.applied[kind] += 1
            if result == LATE:
                outcome.late[kind] += 1
            self.last_active[room_id] = now
            self._dirty_emit.add(room_id)
            self._dirty_checkpoint.add(room_id)
        self.applied_offset = offset

    # -- snapshots out -----------------------------------------------------------------

    def due_snapshots(self, now: float, min_interval: float = 1.0) -> list[dict[str, Any]]:
        """Snapshots of rooms changed since their last one, at most one per room per interval."""
        out = []
        for room_id in list(self._dirty_emit):
            if now - self._last_emit.get(room_id, 0.0) < min_interval:
                continue
            snap = snapshot(self.rooms[room_id])
            self.latest[room_id] = snap
            self._last_emit[room_id] = now
            self._dirty_emit.discard(room_id)
            out.append(snap)
        return out

    def evict_idle(self, now: float, ttl: float) -> list[str]:
        """Forget rooms with no event for `ttl` seconds of processing time."""
        idle = [r for r, t in self.last_active.items() if now - t >= ttl]
        for room_id in idle:
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
            write(room_id, room.to_state())
            cost = clock() - started
            self._next_checkpoint[room_id] = now + min(MAX_DEFER_S, COST_FACTOR * cost)
            self._dirty_checkpoint.discard(room_id)
        deferred = (self.rooms[r].applied_offset for r in self._dirty_checkpoint)
        return min([self.applied_offset, *deferred])

    def restore(self, marker_offset: int, states: Iterable[tuple[str, dict[str, Any]]], now: float):
        """Load checkpointed rooms; replay must start after `marker_offset`."""
        self.applied_offset = marker_offset
        for room_id, state in states:
            self.rooms[room_id] = RoomState.from_state(room_id, self.settings, state)
            self.last_active[room_id] = now
            self._dirty_emit.add(room_id)
