"""All rooms of one partition of the room-events topic, and what makes them exact.

Exactness across a worker crash rests on numbers kept with the state, not on Kafka
transactions:
- `applied_offset`: the last room-events record folded in. The worker resumes the
  partition right after it, and skips a record at or below it.
- `sources`: per input partition, the last input offset whose events were folded in.
  A room-events record carries its events grouped by the input record they came from
  (see streams.runtime.ingest); the ingest stage re-sends the groups of input records
  it had not committed when it crashed, and the groups at or below `sources` are
  skipped here, whatever their event time.
Repeated `event_id`s (client retries) are dropped by the room itself.

The partition knows nothing of alerts: an optional observer (streams.alerts) hears of
comments and rooms as they are folded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.events import COMMENT, F_COMMENT_TEXT, F_KIND, F_ROOM, F_TS
from streams.rooms import _fold
from streams.rooms.metrics import snapshot
from streams.rooms.room import DUPLICATE, LATE, RoomSettings, RoomState, fold_event

KIND_COUNT = 4
# A room with fewer new events than this since its last snapshot is quiet: its next one
# may wait (`due_snapshots`).
BUSY_EVENTS = 5

# A room-events record: groups of [source id, source offset, events].
G_SOURCE, G_OFFSET, G_EVENTS = 0, 1, 2


def source_id(kind: int, partition: int) -> int:
    """One number per input partition: kind (0-3) and partition."""
    return kind << 20 | partition


@dataclass(slots=True)
class Outcome:
    """What a batch did, per event kind (index = kind)."""

    applied: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    late: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    duplicates: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    skipped_replays: int = 0  # groups or records already folded
    event_ts: list[int] = field(default_factory=list)  # event times folded (lag histogram)


class PartitionObserver(Protocol):
    def room_seen(self, room_id: str, ts_ms: int) -> None: ...

    def comment(self, room_id: str, ts_ms: int, text: str) -> None: ...


@dataclass(slots=True, eq=False)
class Room:
    """One live room: its state and what the worker keeps about it."""

    state: RoomState
    last_active: float = 0.0  # processing time of its last folded event
    snapshot: dict[str, Any] | None = None  # the last one emitted
    emitted_at: float = 0.0
    emitted_events: int = 0  # its views, comments, carts, orders and refunds then
    dirty_emit: bool = False  # changed since its last snapshot
    dirty_state: bool = False  # changed since the last checkpoint capture
    base_pos: int | None = None  # state-log offset of its latest base (None: none yet)


# The group fold in C reads a Room's slots at their offsets.
_fold.setup_partition(Room, F_ROOM, F_COMMENT_TEXT)


class RoomPartition:
    def __init__(
        self,
        partition: int,
        settings: RoomSettings,
        observer: PartitionObserver | None = None,
    ) -> None:
        self.partition = partition
        self.settings = settings
        self.observer = observer
        self.rooms: dict[str, Room] = {}
        self.applied_offset = -1
        self.sources: dict[int, int] = {}
        self.watermark_ms = 0  # highest event time of the partition
        self.last_record_at = 0.0  # processing time of the last record folded
        self.dropped: list[str] = []  # rooms evicted since the last checkpoint capture

    # -- folding -----------------------------------------------------------------------

    def apply(
        self,
        offset: int,
        groups: Sequence[Sequence[Any]],
        now: float,
        outcome: Outcome,
        score: Callable[[str], float] | None = None,
    ) -> None:
        """Fold room-events record `offset` (groups of events by input record)."""
        if offset <= self.applied_offset:
            outcome.skipped_replays += 1
            return
        sources = self.sources
        for group in groups:
            source, source_offset = group[G_SOURCE], group[G_OFFSET]
            if source_offset <= sources.get(source, -1):
                outcome.skipped_replays += 1
                continue
            self._fold(group[G_EVENTS], now, outcome, score)
            sources[source] = source_offset
        self.applied_offset = offset
        self.last_record_at = now

    def _fold(
        self,
        events: Sequence[Sequence[Any]],
        now: float,
        outcome: Outcome,
        score: Callable[[str], float] | None,
    ) -> None:
        """A group's events into their rooms: in C (`_fold.c`), or `_fold_python` for a
        group of an unexpected shape."""
        if not _fold.fold_group(self, events, now, outcome, score):
            self._fold_python(events, now, outcome, score)

    def _new_room(self, room_id: str, ts_ms: int) -> Room:
        room = self.rooms[room_id] = Room(RoomState(room_id, self.settings))
        if self.observer is not None:
            self.observer.room_seen(room_id, ts_ms)
        return room

    def _fold_python(
        self,
        events: Sequence[Sequence[Any]],
        now: float,
        outcome: Outcome,
        score: Callable[[str], float] | None,
    ) -> None:
        """`_fold` in Python, step for step as `_fold.fold_group` does it."""
        rooms, observer = self.rooms, self.observer
        watermark = self.watermark_ms
        applied, late, duplicates = outcome.applied, outcome.late, outcome.duplicates
        event_ts = outcome.event_ts
        for event in events:
            room_id = event[F_ROOM]
            room = rooms.get(room_id)
            if room is None:
                room = self._new_room(room_id, event[F_TS])
            kind = event[F_KIND]
            sentiment = None
            if kind == COMMENT:
                text = event[F_COMMENT_TEXT]
                if score is not None:
                    sentiment = score(text)
                if observer is not None:
                    observer.comment(room_id, event[F_TS], text)
            result = fold_event(room.state, event, sentiment)  # RoomState.apply, in C
            if result == DUPLICATE:
                duplicates[kind] += 1
                continue
            applied[kind] += 1
            ts = event[F_TS]
            event_ts.append(ts)
            if result == LATE:
                late[kind] += 1
            elif ts > watermark:
                watermark = ts
            room.last_active = now
            room.dirty_emit = room.dirty_state = True
        self.watermark_ms = watermark

    # -- snapshots out -----------------------------------------------------------------

    def due_snapshots(
        self,
        now: float,
        min_interval: float = 1.0,
        quiet_interval: float = 1.0,
        busy_events: int = BUSY_EVENTS,
    ) -> list[dict[str, Any]]:
        """Snapshots of rooms changed since their last one, at most one per room per
        `min_interval`. A room with fewer than `busy_events` events since its last one
        waits until `quiet_interval` has passed: a quiet room's figures barely move, and
        at 5,000 rooms most rooms are quiet (a snapshot costs ~80 us a room in the
        worker). A room's first snapshot goes out at once."""
        out = []
        for room in self.rooms.values():
            if not room.dirty_emit:
                continue
            elapsed = now - room.emitted_at
            if elapsed < min_interval:
                continue
            state = room.state
            events = state.views + state.comments + state.cart_adds + state.orders + state.refunds
            if (
                elapsed < quiet_interval
                and events - room.emitted_events < busy_events
                and room.snapshot is not None
            ):
                continue
            snap = snapshot(state)
            snap["emitted_at_ms"] = int(now * 1000)
            room.snapshot, room.emitted_at, room.dirty_emit = snap, now, False
            room.emitted_events = events
            out.append(snap)
        return out

    def latest(self, horizon: float) -> list[dict[str, Any]]:
        """The last snapshot of every room active since `horizon` (processing time)."""
        return [
            room.snapshot
            for room in self.rooms.values()
            if room.snapshot is not None and room.last_active > horizon
        ]

    def evict_idle(self, now: float, ttl: float) -> list[str]:
        """Forget rooms with no event for `ttl` seconds of processing time."""
        idle = [room_id for room_id, room in self.rooms.items() if now - room.last_active >= ttl]
        for room_id in idle:
            if self.rooms.pop(room_id).base_pos is not None:
                self.dropped.append(room_id)  # its checkpoint must say so too
        return idle
