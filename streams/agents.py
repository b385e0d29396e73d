"""Agents: decode and route (ingest), fold into rooms (rooms), emit and checkpoint (tick).

ingest: input topics -> validated compact events, re-keyed by room_id into the
        room-events topic (arrays per partition), rejects -> dead-letter topic.
        The record key of an input record is never trusted.
rooms:  room-events -> RoomPartition state (pure core) -> counters.
tick:   snapshots -> room-metrics topic (<= 1 per room per second); checkpoints.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import defaultdict
from typing import Any

import faust
import orjson

from streams.app import add_web_pages, create_app
from streams.checkpoints import RoomStore
from streams.config import Settings
from streams.events import KIND_NAMES, Reject, decode_record
from streams.exporter import build_registry
from streams.kafka import partition_for
from streams.rooms.partition import Outcome

log = logging.getLogger(__name__)

MAX_EVENTS_PER_RECORD = 512
MAX_RECORD_BYTES = 900_000  # below Kafka's default 1 MB message limit
TAKE_WITHIN_S = 0.05


def encode_chunks(events: list[tuple]) -> list[bytes]:
    """JSON arrays of at most MAX_EVENTS_PER_RECORD events and ~MAX_RECORD_BYTES bytes."""
    out: list[bytes] = []
    for start in range(0, len(events), MAX_EVENTS_PER_RECORD):
        pending = [events[start : start + MAX_EVENTS_PER_RECORD]]
        while pending:
            chunk = pending.pop()
            data = orjson.dumps(chunk)
            if len(data) > MAX_RECORD_BYTES and len(chunk) > 1:
                half = len(chunk) // 2
                pending += [chunk[half:], chunk[:half]]
            else:
                out.append(data)
    return out


def deadletter_record(source_topic: str, partition: int, offset: int, reject: Reject) -> bytes:
    try:
        text: str | None = reject.raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return orjson.dumps(
        {
            "source_topic": source_topic,
            "partition": partition,
            "offset": offset,
            "index": reject.index,
            "reason": reject.reason,
            "detail": reject.detail,
            "value": text,
            "value_base64": base64.b64encode(reject.raw).decode(),
            "rejected_at_ms": int(time.time() * 1000),
        }
    )


class Pipeline:
    """One worker's agents, state and metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app, self.topics, self.table = create_app(settings)
        self.store = RoomStore(settings, self.table)
        self.registry, self.health = build_registry(self._snapshots, settings.max_rooms)
        self.kind_by_topic = {name: kind for kind, name in enumerate(settings.input_topics)}
        self._room_partition: dict[str, int] = {}
        add_web_pages(self.app, self.registry)
        self._wire()

    def _snapshots(self) -> list[dict[str, Any]]:
        horizon = time.time() - self.settings.room_ttl_seconds
        return [
            snap
            for part in list(self.store.partitions.values())
            for room_id, snap in part.latest.items()
            if part.last_active.get(room_id, 0.0) > horizon
        ]

    def _partition_of(self, room_id: str) -> int:
        p = self._room_partition.get(room_id)
        if p is None:
            if len(self._room_partition) > 100_000:
                self._room_partition.clear()
            p = self._room_partition[room_id] = partition_for(room_id, self.settings.partitions)
        return p

    # -- ingest ------------------------------------------------------------------------

    async def ingest(self, records: list[Any]) -> None:
        now_ms = int(time.time() * 1000)
        by_partition: dict[int, list[tuple]] = defaultdict(list)
        rejected = self.health.rejected
        for record in records:
            message = record.message
            kind = self.kind_by_topic[message.topic]
            events, rejects = decode_record(message.value, kind, now_ms)
            for event in events:
                by_partition[self._partition_of(event[4])].append(event)
            for reject in rejects:
                rejected.labels(message.topic, reject.reason).inc()
                await self.topics.deadletter.send(
                    key=message.key,
                    value=deadletter_record(
                        message.topic, message.partition, message.offset, reject
                    ),
                )
        for partition, events in by_partition.items():
            for data in encode_chunks(events):
                await self.topics.room_events.send(value=data, partition=partition)

    # -- rooms -------------------------------------------------------------------------

    async def fold(self, records: list[Any]) -> None:
        now = time.time()
        outcome = Outcome()
        lags: list[float] = []
        for record in records:
            message = record.message
            part = await self.store.partition(message.partition)
            if message.offset <= part.applied_offset:
                continue  # already folded by the catch-up after a restore
            events = orjson.loads(message.value)
            part.apply(message.offset, events, now, outcome, self.store.score)
            lags.extend([now - e[3] / 1000.0 for e in events])
        self._count(outcome)
        self.health.lag.observe_many(lags)

    def _count(self, outcome: Outcome) -> None:
        topics = self.settings.input_topics
        for kind in range(len(KIND_NAMES)):
            if outcome.applied[kind]:
                self.health.processed.labels(topics[kind]).inc(outcome.applied[kind])
            if outcome.late[kind]:
                self.health.late.labels(topics[kind]).inc(outcome.late[kind])
            if outcome.duplicates[kind]:
                self.health.duplicates.labels(topics[kind]).inc(outcome.duplicates[kind])

    # -- tick --------------------------------------------------------------------------

    async def tick(self) -> None:
        now = time.time()
        for part in list(self.store.partitions.values()):
            for snap in part.due_snapshots(now):
                await self.topics.room_metrics.send(
                    key=snap["room_id"].encode(), value=orjson.dumps(snap)
                )
        if self.store.checkpoint_due(now):
            started = time.perf_counter()
            self.store.checkpoint(now)
            self.health.checkpoint_seconds.set(time.perf_counter() - started)

    # -- wiring ------------------------------------------------------------------------

    def _wire(self) -> None:
        app, settings = self.app, self.settings
        batch = settings.batch_records

        @app.agent(self.topics.inputs, name="ingest")
        async def ingest_agent(stream: faust.StreamT) -> None:
            async for records in stream.take_events(batch, within=TAKE_WITHIN_S):
                await self.ingest(records)

        @app.agent(self.topics.room_events, name="rooms")
        async def rooms_agent(stream: faust.StreamT) -> None:
            async for records in stream.take_events(batch, within=TAKE_WITHIN_S):
                await self.fold(records)

        @app.timer(0.25)
        async def tick_timer() -> None:
            await self.tick()

        @self.table.on_recover
        async def adopt_partitions() -> None:
            mine = {
                tp.partition
                for tp in app.assignor.assigned_actives()
                if tp.topic == settings.topic_room_events
            }
            self.store.revoke(set(self.store.partitions) - mine)
            await self.store.adopt(mine)

        @app.on_partitions_revoked.connect
        async def drop_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
            self.store.revoke(
                {tp.partition for tp in revoked if tp.topic == settings.topic_room_events}
            )


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker in the foreground until SIGINT/SIGTERM."""
    pipeline = Pipeline(settings)
    worker = faust.Worker(pipeline.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
