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

import orjson

from streams.events import COMMENT, F_COMMENT_TEXT, F_KIND, F_ROOM, F_TS
from streams.rooms import _fold
from streams.rooms.merge import SAMPLES_OVERLAP_S, MergedRoom, shard_partial
from streams.rooms.metrics import snapshot
from streams.rooms.room import DUPLICATE, LATE, RoomSettings, RoomState, fold_event
from streams.rooms.shards import ShardMap

KIND_COUNT = 5  # view, comment, cart, order, spend
# A room with fewer new events than this since its last snapshot is quiet: its next one
# may wait (`due_snapshots`).
BUSY_EVENTS = 5

# A room-events record: groups of [source id, source offset, events].
G_SOURCE, G_OFFSET, G_EVENTS = 0, 1, 2
# A group whose source id is at or above this carries a split room's shard partial
# ([PARTIAL_SOURCE | shard's partition, its applied offset, [partial]]) to the room's
# home partition, which merges it (streams.rooms.merge).
PARTIAL_SOURCE = 1 << 28
# A group whose source id is SOURCE_RESET carries [source id]: that input partition was
# created again and its offsets start over, so its last folded offset is forgotten
# (streams.runtime.lost_input). Sent to every room partition before any new record.
SOURCE_RESET = 1 << 27
# A shard sends its partial again after this long without a change: a merger that
# restarted (its merge is not checkpointed, only the merged PCU) has every shard again.
PARTIAL_REFRESH_S = 5.0


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
        shards: ShardMap | None = None,
        home_of: Callable[[str], int] | None = None,
    ) -> None:
        self.partition = partition
        # Split rooms: which shard of a room this partition holds (None: not split).
        self.shards = shards if shards else None
        self.home_of = home_of
        self.merged: dict[str, MergedRoom] = {}  # split rooms whose home this is
        self.partials_out: list[tuple[int, bytes]] = []  # (home partition, record)
        self._sent_through: dict[str, int] = {}  # samples already sent, per shard room
        self.new_shards: list[tuple[str, int, int, int]] = []  # (room, shard, shards, home)
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
            if source >= PARTIAL_SOURCE:  # idempotent by its own offset: no source skip
                self._take_partial(group[G_EVENTS][0], now)
                continue
            if source == SOURCE_RESET:
                for forgotten in group[G_EVENTS]:
                    sources.pop(forgotten, None)
                continue
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

    # -- split rooms ---------------------------------------------------------------------

    def mark_shards(self) -> None:
        """After `shards` and `home_of` are set (a restore): the rooms that are shards of a
        split room keep their presence samples (what their partials send)."""
        for room_id, room in self.rooms.items():
            room.state.presence.keep_samples = self.shard_of(room_id) is not None

    def shard_of(self, room_id: str) -> tuple[int, int, int] | None:
        """(home partition, shard, shards) of a split room's shard held here, else None."""
        shards = self.shards
        if shards is None or self.home_of is None or shards.count(room_id) == 1:
            return None
        home = self.home_of(room_id)
        shard = shards.shard_at(home, room_id, self.partition)
        return None if shard is None else (home, shard, shards.count(room_id))

    def _take_partial(self, partial: dict[str, Any], now: float) -> None:
        room_id = partial["room_id"]
        room = self.rooms.get(room_id) or self._new_room(room_id, partial["watermark_ms"])
        merged = self._merged(room_id, room.state, partial["shards"])
        if merged.take(partial):
            self._keep_peak(merged, room.state)
            room.last_active = now
            room.dirty_emit = True

    def _merged(self, room_id: str, state: RoomState, shards: int) -> MergedRoom:
        merged = self.merged.get(room_id)
        if merged is None:
            merged = self.merged[room_id] = MergedRoom(room_id, shards)
            merged.peak, merged.merged_through = state.merged_peak, state.merged_through
        return merged

    @staticmethod
    def _keep_peak(merged: MergedRoom, state: RoomState) -> None:
        """The merged PCU lives in the home room's checkpointed scalars."""
        state.merged_peak, state.merged_through = merged.peak, merged.merged_through

    def _partial_of(self, room_id: str, room: Room, shard: int, shards: int) -> dict[str, Any]:
        partial = shard_partial(
            room.state, shard, shards, self.applied_offset, self._sent_through.get(room_id, 0)
        )
        self._sent_through[room_id] = partial["sampled_through"] - SAMPLES_OVERLAP_S
        return partial

    def _split_snapshot(
        self, room_id: str, room: Room, at: tuple[int, int, int], now: float
    ) -> dict[str, Any] | None:
        """A shard of a split room: away from home, its partial goes out (no snapshot of
        its own); at home, it joins the others' and the merged snapshot is the room's."""
        home, shard, shards = at
        if room_id not in self._sent_through:
            self.new_shards.append((room_id, shard, shards, home))  # the worker logs it
        partial = self._partial_of(room_id, room, shard, shards)
        if shard != 0:
            group = [[PARTIAL_SOURCE | self.partition, self.applied_offset, [partial]]]
            self.partials_out.append((home, orjson.dumps(group)))
            room.emitted_at, room.dirty_emit = now, False
            return None
        merged = self._merged(room_id, room.state, shards)
        merged.take(partial)
        self._keep_peak(merged, room.state)
        room.dirty_state = True
        return merged.snapshot()

    def take_partials(self) -> list[tuple[int, bytes]]:
        out, self.partials_out = self.partials_out, []
        return out

    def _new_room(self, room_id: str, ts_ms: int) -> Room:
        room = self.rooms[room_id] = Room(RoomState(room_id, self.settings))
        # Presence samples are what a shard's partials send (the room's PCU): no one
        # reads an unsplit room's.
        room.state.presence.keep_samples = self.shard_of(room_id) is not None
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
        split = self.shards is not None
        for room_id, room in self.rooms.items():
            at = self.shard_of(room_id) if split else None
            if at is not None:
                elapsed = now - room.emitted_at
                if elapsed >= min_interval and (room.dirty_emit or elapsed >= PARTIAL_REFRESH_S):
                    snap = self._split_snapshot(room_id, room, at, now)
                    if snap is not None:
                        snap["emitted_at_ms"] = int(now * 1000)
                        room.snapshot, room.emitted_at, room.dirty_emit = snap, now, False
                        out.append(snap)
                continue
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
            # A product list that leaves sales out keeps the room due (`Products.stale`).
            room.snapshot, room.emitted_at, room.dirty_emit = snap, now, state.products.stale
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
            self.merged.pop(room_id, None)
            self._sent_through.pop(room_id, None)
            if self.rooms.pop(room_id).base_pos is not None:
                self.dropped.append(room_id)  # its checkpoint must say so too
        return idle
