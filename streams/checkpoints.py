"""Room partitions owned by this worker: restore, catch up, checkpoint.

The room-state table (a Faust table with a changelog) holds one checkpoint per room
plus one marker per partition: "every room of partition p is checkpointed up to
room-events offset N". Rooms are written before their marker, into the same changelog
partition, so any prefix of the changelog is consistent. After an assignment the
worker restores the checkpoints, then reads room-events itself from marker + 1 to
the partition's end (the high-water mark of a Fetch, which is right even on brokers
whose ListOffsets answer is not). Records the agent is then handed again are skipped
by offset. Faust's committed offsets therefore never decide correctness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from streams.config import Settings
from streams.kafka import aiokafka_options, partition_for
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.room import RoomSettings

log = logging.getLogger(__name__)

MARKER_PREFIX = "__checkpoint__:"


def marker_keys(partitions: int) -> dict[int, str]:
    """A table key per partition that the default partitioner maps to that partition."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions:
        key = f"{MARKER_PREFIX}{n}"
        keys.setdefault(partition_for(key, partitions), key)
        n += 1
    return keys


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else key


class RoomStore:
    """The RoomPartitions of this worker and their durable checkpoints."""

    def __init__(
        self,
        settings: Settings,
        table: MutableMapping[Any, Any],
        score: Callable[[str], float] | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.score = score
        self.room_settings = RoomSettings(
            allowed_lateness_ms=int(settings.allowed_lateness_seconds * 1000),
            session_timeout_s=settings.session_timeout_seconds,
        )
        self.partitions: dict[int, RoomPartition] = {}
        self.markers = marker_keys(settings.partitions)
        self._restoring: dict[int, asyncio.Future[RoomPartition]] = {}
        self._marked: dict[int, int] = {}  # partition -> offset of the last marker written
        self._last_checkpoint = 0.0

    # -- ownership ---------------------------------------------------------------------

    async def partition(self, p: int) -> RoomPartition:
        part = self.partitions.get(p)
        if part is not None:
            return part
        pending = self._restoring.get(p)
        if pending is None:
            pending = self._restoring[p] = asyncio.ensure_future(self._restore(p))
        try:
            return await asyncio.shield(pending)
        finally:
            self._restoring.pop(p, None)

    async def adopt(self, partitions: set[int]) -> None:
        """Restore every newly assigned partition (called once tables are recovered)."""
        await asyncio.gather(*(self.partition(p) for p in partitions))

    def revoke(self, partitions: set[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)
            self._marked.pop(p, None)

    async def _restore(self, p: int) -> RoomPartition:
        started = time.monotonic()
        part = RoomPartition(p, self.room_settings)
        raw_marker = self.table.get(self.markers[p])
        marker = orjson.loads(raw_marker) if raw_marker is not None else -1
        now = time.time()
        states = []
        for key, value in list(self.table.items()):
            room_id = _text(key)
            if room_id.startswith(MARKER_PREFIX) or value is None:
                continue
            if partition_for(room_id, self.settings.partitions) == p:
                states.append((room_id, orjson.loads(value)))
        part.restore(marker, states, now)
        replayed = await self._catch_up(part)
        self.partitions[p] = part
        log.info(
            "partition %d restored: %d rooms, marker %d, %d records replayed in %.2fs",
            p,
            len(states),
            marker,
            replayed,
            time.monotonic() - started,
        )
        return part

    async def _catch_up(self, part: RoomPartition) -> int:
        """Fold room-events from the marker to the partition's end into `part`."""
        tp = TopicPartition(self.settings.topic_room_events, part.partition)
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            **aiokafka_options(self.settings),
        )
        await consumer.start()
        replayed = 0
        outcome = Outcome()
        try:
            consumer.assign([tp])
            consumer.seek(tp, part.applied_offset + 1)
            empty_polls = 0
            while True:
                batches = await consumer.getmany(tp, timeout_ms=200)
                now = time.time()
                for record in batches.get(tp, ()):
                    part.apply(record.offset, orjson.loads(record.value), now, outcome, self.score)
                    replayed += 1
                highwater = consumer.highwater(tp)
                position = await consumer.position(tp)
                if highwater is not None and position >= highwater:
                    break
                if not batches:
                    empty_polls += 1
                    if highwater is None and empty_polls >= 3:
                        break  # an empty partition answers no high-water mark
        finally:
            await consumer.stop()
        return replayed

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint_due(self, now: float) -> bool:
        return now - self._last_checkpoint >= self.settings.checkpoint_interval_seconds

    def checkpoint(self, now: float) -> int:
        """Write changed rooms, then each partition's marker; drop idle rooms."""
        written = 0
        for p, part in list(self.partitions.items()):
            for room_id in part.evict_idle(now, self.settings.room_ttl_seconds):
                self.table.pop(room_id, None)
            states = part.checkpoint()
            for room_id, state in states.items():
                self.table[room_id] = orjson.dumps(state)
            written += len(states)
            if self._marked.get(p) != part.applied_offset:
                self.table[self.markers[p]] = orjson.dumps(part.applied_offset)
                self._marked[p] = part.applied_offset
        self._last_checkpoint = now
        return written
