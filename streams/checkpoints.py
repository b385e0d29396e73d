"""Room partitions owned by this worker: restore, catch up, checkpoint.

The room-state table (a Faust table with a changelog) holds one checkpoint per room
plus one marker per partition: "every room of partition p is checkpointed up to
room-events offset N". Rooms are written before their marker, into the same changelog
partition, so any prefix of the changelog is consistent. After an assignment the
worker restores the checkpoints, then reads room-events itself from marker + 1 up to
the group's committed offset, where the agent resumes. Records the agent is handed
that a newer room checkpoint already holds are skipped by offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import orjson

from streams.alerts.rules import AlertRules
from streams.config import Settings
from streams.kafka import aiokafka_options, partition_for
from streams.offsets import IDLE_BEFORE_TAIL_CHECK_S, committed_offsets, read_range
from streams.quirks import fetched_highwaters
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.room import RoomSettings
from streams.state_table import RoomStateTable

log = logging.getLogger(__name__)

MARKER_PREFIX = "#checkpoint#"  # "#" never appears in a room_id
SENT_ALERTS_TAIL = 20_000  # alert records read back per partition to rebuild its ledger


def marker_keys(partitions: int) -> dict[int, str]:
    """A table key per partition that the default partitioner maps to that partition."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions:
        key = f"{MARKER_PREFIX}{n}"
        keys.setdefault(partition_for(key, partitions), key)
        n += 1
    return keys


class RoomStore:
    """The RoomPartitions of this worker and their durable checkpoints."""

    def __init__(
        self,
        settings: Settings,
        table: MutableMapping[Any, Any],
        score: Callable[[str], float] | None = None,
        rules: AlertRules | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.score = score
        self.rules = rules
        self.room_settings = RoomSettings(
            allowed_lateness_ms=int(settings.allowed_lateness_seconds * 1000),
            session_timeout_s=settings.session_timeout_seconds,
            dedup_horizon_s=settings.dedup_horizon_seconds,
        )
        self.partitions: dict[int, RoomPartition] = {}
        self.markers = marker_keys(settings.partitions)
        self.states = RoomStateTable(table, settings.partitions, settings.checkpoint_chunk_bytes)
        self._restoring: dict[int, asyncio.Future[RoomPartition]] = {}
        self._marked: dict[int, int] = {}  # partition -> offset of the last marker written
        self._last_checkpoint = 0.0
        self.options = aiokafka_options(settings)
        self._last_delivery: dict[int, float] = {}

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
        part = RoomPartition(p, self.room_settings, self.rules)
        if self.rules is not None:
            part.ledger.load(await self._sent_alerts(p))
        raw_marker = self.table.get(self.markers[p])
        marker = orjson.loads(raw_marker) if raw_marker is not None else -1
        states = self.states.read_partition(p)
        part.restore(marker, states, time.time())
        replayed = await self._catch_up(part)
        self.partitions[p] = part
        self._last_delivery[p] = time.monotonic()  # give the stream time to deliver first
        log.info(
            "partition %d restored: %d rooms, marker %d, %d records replayed in %.2fs",
            p,
            len(states),
            marker,
            replayed,
            time.monotonic() - started,
        )
        return part

    async def _sent_alerts(self, p: int) -> list[dict[str, Any]]:
        """The tail of this partition of the alerts topic: what was already sent."""
        tp = (self.settings.topic_alerts, p)
        end = (await fetched_highwaters(self.options, {tp: None}))[tp]
        sent = []
        async for batch in read_range(self.options, *tp, max(0, end - SENT_ALERTS_TAIL), end):
            sent.extend(orjson.loads(record.value) for record in batch)
        return sent

    async def _catch_up(self, part: RoomPartition) -> int:
        """Fold room-events from the marker up to where the agent will resume.

        The agent resumes at the group's committed offset, so that is the end: every
        record before it is folded here, every record from it on by the agent."""
        topic = self.settings.topic_room_events
        committed = await committed_offsets(
            self.options, self.settings.app_id, [(topic, part.partition)]
        )
        end = committed[(topic, part.partition)] or 0
        return await self._fold_range(part, part.applied_offset + 1, end, Outcome())

    async def _fold_range(self, part: RoomPartition, start: int, end: int, outcome: Outcome) -> int:
        count = 0
        topic = self.settings.topic_room_events
        async for batch in read_range(self.options, topic, part.partition, start, end):
            now = time.time()
            for record in batch:
                part.apply(record.offset, orjson.loads(record.value), now, outcome, self.score)
            count += len(batch)
        return count

    async def fold(
        self, messages: Iterable[Any], outcome: Outcome, lags: list[float]
    ) -> list[tuple[int, int, int]]:
        """Fold room-events records as the agent receives them, in offset order per
        partition; a record beyond the next expected offset first refills the gap.
        Returns the refilled (partition, start, end) ranges."""
        now = time.time()
        refilled: list[tuple[int, int, int]] = []
        for message in messages:
            part = await self.partition(message.partition)
            offset = message.offset
            if offset <= part.applied_offset:
                continue  # already folded (catch-up, or a newer room checkpoint)
            if offset > part.applied_offset + 1:
                start = part.applied_offset + 1
                count = await self._fold_range(part, start, offset, outcome)
                refilled.append((message.partition, start, offset))
                log.warning(
                    "refilled %d room-events records of partition %d [%d, %d) "
                    "that the stream skipped",
                    count,
                    part.partition,
                    start,
                    offset,
                )
            events = orjson.loads(message.value)
            part.apply(offset, events, now, outcome, self.score)
            self._last_delivery[message.partition] = time.monotonic()
            lags.extend([now - e[3] / 1000.0 for e in events])
        return refilled

    async def refill_tails(
        self, highwater: Callable[[int], int | None], outcome: Outcome
    ) -> list[tuple[int, int, int]]:
        """Fold what the stream skipped at the end of quiet partitions (see offsets.py).
        Returns the refilled (partition, start, end) ranges."""
        now = time.monotonic()
        refilled: list[tuple[int, int, int]] = []
        for p, part in list(self.partitions.items()):
            end = highwater(p)
            start = part.applied_offset + 1
            quiet = now - self._last_delivery.get(p, 0.0) > IDLE_BEFORE_TAIL_CHECK_S
            if end is not None and end > start and quiet:
                count = await self._fold_range(part, start, end, outcome)
                refilled.append((p, start, end))
                self._last_delivery[p] = time.monotonic()
                log.warning(
                    "refilled %d room-events records at the end of partition %d "
                    "[%d, %d) that the stream skipped",
                    count,
                    p,
                    start,
                    end,
                )
        return refilled

    # -- checkpoints -------------------------------------------------------------------

    def checkpoint_due(self, now: float) -> bool:
        return now - self._last_checkpoint >= self.settings.checkpoint_interval_seconds

    def checkpoint(self, now: float) -> int:
        """Write changed rooms, then each partition's marker; drop idle rooms."""
        written = 0
        for p, part in list(self.partitions.items()):
            for room_id in part.evict_idle(now, self.settings.room_ttl_seconds):
                self.states.delete(room_id)
            before = self.states.writes
            marker = part.checkpoint(now, self.states.write)
            written += self.states.writes - before
            if self._marked.get(p) != marker:
                self.table[self.markers[p]] = orjson.dumps(marker)
                self._marked[p] = marker
        self._last_checkpoint = now
        return written
