"""Checkpointing a room partition: capture what changed (synchronously, O(change)),
then write it as one epoch of the state log (asynchronously, in slices).

Every capture writes each changed room as a delta, a new room as a base, and also
rewrites the bases of the rooms whose bases are oldest, about as many entries as the
deltas hold (at least REBASE_MIN_ENTRIES). So the state log a restore has to read
(from the oldest base still needed) stays within about twice the state plus a few
epochs, however long the worker runs and however quiet some rooms are.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from streams.alerts.partition import PartitionAlerts
from streams.rooms.flat import entry_count
from streams.rooms.partition import Room, RoomPartition
from streams.rooms.room import split_piece
from streams.state.writer import EpochWriter

REBASE_MIN_ENTRIES = 20_000
PIECE_ENTRIES = 25_000  # table entries per piece: 400 KB packed, ~530 KB as base64
# A paced capture lets the loop run once this much has passed since it last did: a step
# (one room, or one table copy of a big room: ~4 ms at 200,000 viewers) comes on top.
CAPTURE_SLICE_S = 0.002


@dataclass
class Capture:
    pieces: list[dict[str, Any]] = field(default_factory=list)
    bases: list[tuple[Room, int]] = field(default_factory=list)  # room, index of its base piece
    rooms: list[Room] = field(default_factory=list)  # every room written
    dropped: list[str] = field(default_factory=list)  # rooms evicted
    meta: dict[str, Any] = field(default_factory=dict)
    empty: bool = False  # nothing happened since the last epoch: nothing to write


def next_slot(now: float, interval: float, partition: int, partitions: int) -> float:
    """When partition `partition` checkpoints next: every `interval` seconds, in a slot
    of its own (partition p at p/partitions of the interval), so a worker's partitions
    capture one after another rather than all in one tick, which held the fold for
    ~40-200 ms every interval at 20,000 events/s."""
    phase = interval * (partition % partitions) / partitions
    return now + interval - (now - phase) % interval


def room_size(room: Room) -> int:
    """List entries a base of the room holds (its serialised size, roughly)."""
    state = room.state
    return (
        len(state.presence.at)
        + len(state.seen_event_ids)
        + len(state.recent_viewers)
        + len(state.recent_commenters)
        + len(state.recent_carters)
        + len(state.recent_buyers)
        + sum(
            len(c.exact) if c.exact is not None else 64 for c in (state.viewers, state.commenters)
        )
        + 300
    )


def _entries(piece: dict[str, Any]) -> int:
    n = entry_count(piece.get("presence", ())) + len(piece.get("rows", ()))
    n += sum(entry_count(entries) for entries in piece.get("indexes", {}).values())
    n += sum(
        entry_count(c.get("add", ())) + 64 * ("add" not in c)
        for c in piece.get("counts", {}).values()
    )
    return n


class Checkpointer:
    """Captures and writes the epochs of one partition (one write at a time)."""

    def __init__(
        self,
        writer: EpochWriter,
        part: RoomPartition,
        alerts: PartitionAlerts | None,
        rebase_ratio: float = 1.0,
        rebase_min_entries: int = REBASE_MIN_ENTRIES,
        clock: Callable[[], float] = time.perf_counter,  # paces `capture_paced`
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.rebase_ratio = rebase_ratio  # base entries rewritten per delta entry
        self.rebase_min_entries = rebase_min_entries
        self.part = part
        self.alerts = alerts
        self.last_delta_entries = 0
        self.last_offset = -2  # the offset the last written capture included
        self.durable_offset = part.applied_offset  # the last committed epoch's offset

    def capture(self, now: float, room_ttl: float) -> Capture:
        """Synchronous: evict idle rooms, then copy what the epoch will hold."""
        out = Capture()
        for _ in self._capture_steps(now, room_ttl, out):
            pass
        return out

    async def capture_paced(self, now: float, room_ttl: float) -> Capture:
        """`capture`, letting the event loop run every CAPTURE_SLICE_S: the base of a room of
        200,000 viewers copies a few ms of tables. The caller must keep the partition's
        state still until it returns (the worker holds the lock that folding takes), so
        the epoch is as consistent as a synchronous capture."""
        out = Capture()
        clock = self.clock
        started = clock()
        for _ in self._capture_steps(now, room_ttl, out):
            if clock() - started > CAPTURE_SLICE_S:
                await asyncio.sleep(0)
                started = clock()
        return out

    def _capture_steps(self, now: float, room_ttl: float, out: Capture) -> Iterator[None]:
        """Fills `out`, yielding wherever a pause is harmless (between rooms, and
        between the tables of a room's base)."""
        part = self.part
        evicted = part.evict_idle(now, room_ttl)
        if self.alerts is not None:
            self.alerts.forget(evicted)
        out.empty = not (
            part.applied_offset != self.last_offset
            or part.dropped
            or any(r.dirty_state or r.base_pos is None for r in part.rooms.values())
        )
        if out.empty:
            return  # a quiet partition writes nothing
        self.last_offset = part.applied_offset
        budget = max(self.rebase_ratio * self.last_delta_entries, self.rebase_min_entries)
        spent = 0
        rebase: set[int] = set()
        candidates = (r for r in part.rooms.values() if r.base_pos is not None)
        for room in heapq.nsmallest(64, candidates, key=lambda r: r.base_pos):
            if spent >= budget or budget <= 0:
                break
            rebase.add(id(room))
            spent += room_size(room)
        delta_entries = 0
        for room in list(part.rooms.values()):
            if room.base_pos is None or id(room) in rebase:
                piece: dict[str, Any] = {}
                for base_part in room.state.capture_base_parts():
                    piece.update(base_part)
                    yield
                out.bases.append((room, len(out.pieces)))
            elif room.dirty_state:
                piece = room.state.capture_delta()
                delta_entries += _entries(piece)
            else:
                continue
            piece["room"] = room.state.room_id
            out.pieces.append(piece)  # cut into smaller pieces as it is written
            out.rooms.append(room)
            room.dirty_state = False
            yield
        self.last_delta_entries = delta_entries
        out.dropped, part.dropped = part.dropped, []
        out.pieces.extend({"room": room_id, "drop": True} for room_id in out.dropped)
        if self.alerts is not None:
            out.pieces.extend(self.alerts.capture(r.state.room_id for r, _ in out.bases))
        out.meta = {
            "offset": part.applied_offset,
            "sources": {str(k): v for k, v in part.sources.items()},
            "watermark_ms": part.watermark_ms,
            "alerts": self.alerts.meta() if self.alerts is not None else {},
        }

    async def write(self, capture: Capture) -> int:
        """Write the captured epoch; return its commit offset. If the log fails, every
        room it held is written again as a base in the next epoch."""
        part = self.part

        def restore_from(piece_offsets: list[int]) -> int:
            for room, index in capture.bases:
                room.base_pos = piece_offsets[index]
            positions = [r.base_pos for r in part.rooms.values() if r.base_pos is not None]
            return min(positions) if positions else -1

        if capture.empty:
            return -1
        try:
            committed = await self.writer.write(
                capture.pieces,
                capture.meta,
                restore_from,
                lambda p: split_piece(p, PIECE_ENTRIES),
                bases=[room.state.room_id for room, _ in capture.bases],
                consume=True,  # a capture is written once (a failed one: bases next time)
            )
        except BaseException:
            for room in capture.rooms:
                room.base_pos = None
                room.dirty_state = True
            part.dropped.extend(capture.dropped)
            self.last_offset = -2  # the next capture is written whatever happens
            raise
        self.durable_offset = capture.meta["offset"]
        return committed
