"""Agents: decode and route (ingest), fold into rooms (rooms), emit and checkpoint (tick).

ingest: input topics -> validated compact events, re-keyed by room_id into the
        room-events topic (arrays per partition), rejects -> dead-letter topic.
        The record key of an input record is never trusted.
rooms:  room-events -> RoomPartition state (pure core) -> counters.
emit:   snapshots -> room-metrics topic (<= 1 per room per second), checked every 0.1 s.
tick:   alerts (clock-driven seconds, delivery), refills, checkpoints.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import faust
import orjson
from faust.types import TP

from streams import sentiment
from streams.alerts.delivery import AlertDelivery
from streams.alerts.rules import AlertRules
from streams.app import add_web_pages, create_app
from streams.checkpoints import RoomStore
from streams.config import Settings
from streams.events import KIND_NAMES, Reject, decode_record
from streams.exporter import build_registry
from streams.kafka import partition_for
from streams.offsets import AckRange, GapFiller, committed_offsets, defer_faust_gap_acks
from streams.rooms.partition import Outcome

log = logging.getLogger(__name__)

MAX_EVENTS_PER_RECORD = 512
SNAPSHOT_CHECK_S = 0.1
MAX_RECORD_BYTES = 900_000  # below Kafka's default 1 MB message limit
# A dead letter keeps at most this much of the rejected bytes (base64 adds a third)...
DEADLETTER_MAX_BYTES = 256 * 1024
# ...and repeats them as JSON text only up to this size (escaping can grow text 6x).
DEADLETTER_MAX_TEXT_BYTES = 64 * 1024


async def buffered_batches(
    stream: faust.StreamT, max_records: int
) -> AsyncIterator[list[faust.EventT]]:
    """Records in batches of whatever is already buffered (up to `max_records`).

    Each batch is acked only after the caller has finished with it, so a committed
    offset never covers an unprocessed record. (Faust's `take_events` was seen to ack
    and drop records that arrived while a batch was being processed.)
    """
    manual = stream.noack()
    queue = manual.channel.queue
    batch: list[faust.EventT] = []
    async for event in manual.events():
        batch.append(event)
        if len(batch) >= max_records or queue.empty():
            yield batch
            for done in batch:
                await manual.ack(done)
            batch = []


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
    """The dead letter of one reject, always below Kafka's default 1 MB record limit.

    `value_base64` holds the original bytes (their first DEADLETTER_MAX_BYTES when
    `truncated`); `value` repeats them as text when they are short, valid UTF-8."""
    kept = reject.raw[:DEADLETTER_MAX_BYTES]
    text: str | None = None
    if len(kept) <= DEADLETTER_MAX_TEXT_BYTES:
        try:
            text = kept.decode("utf-8")
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
            "value_base64": base64.b64encode(kept).decode(),
            "value_bytes": len(reject.raw),
            "truncated": len(kept) < len(reject.raw),
            "rejected_at_ms": int(time.time() * 1000),
        }
    )


async def _ack_nothing(topic: str, partition: int, start: int, end: int) -> None:
    return None


class Pipeline:
    """One worker's agents, state and metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app, self.topics, self.table = create_app(settings)
        self.rules = AlertRules.load(settings.alert_rules)
        self.store = RoomStore(
            settings, self.table, score=sentiment.default_scorer().score, rules=self.rules
        )
        self.gaps = GapFiller(self.store.options)
        self._ingest_lock = asyncio.Lock()
        self._ack_range: AckRange = _ack_nothing  # set once the consumer exists
        self.exposition, self.health = build_registry(
            self._snapshots,
            settings.max_rooms,
            firing_alerts=self._firing_alerts,
            lags=self._consumer_lags,
        )
        self.delivery = AlertDelivery(
            alertmanager_url=settings.alertmanager_url,
            webhook_url=settings.alert_webhook_url,
            timeout_s=settings.alert_delivery_timeout_seconds,
            retries=settings.alert_delivery_retries,
            resend_s=settings.alertmanager_resend_seconds,
            outcome=lambda target, result: self.health.deliveries.labels(target, result).inc(),
        )
        self.delivery.follow_firing(self._firing_records)
        self.kind_by_topic = {name: kind for kind, name in enumerate(settings.input_topics)}
        self._room_partition: dict[str, int] = {}
        add_web_pages(self.app, self.exposition)
        self._wire()

    def _snapshots(self) -> list[dict[str, Any]]:
        horizon = time.time() - self.settings.room_ttl_seconds
        return [
            snap
            for part in list(self.store.partitions.values())
            for room_id, snap in part.latest.items()
            if part.last_active.get(room_id, 0.0) > horizon
        ]

    def _firing_records(self) -> list[dict[str, Any]]:
        return [r for part in list(self.store.partitions.values()) for r in part.ledger.firing()]

    def _firing_alerts(self) -> list[tuple[str, str, str]]:
        return [(r["room_id"], r["kind"], r["severity"]) for r in self._firing_records()]

    def _consumer_lags(self) -> list[tuple[str, int, int]]:
        """Log end minus the next offset each stage will process, per owned partition."""
        out = []
        for (topic, partition), expected in list(self.gaps.expected.items()):
            end = self._highwater(topic, partition)
            if end is not None:
                out.append((topic, partition, max(end - expected, 0)))
        room_events = self.settings.topic_room_events
        for partition, part in list(self.store.partitions.items()):
            end = self._highwater(room_events, partition)
            if end is not None:
                out.append((room_events, partition, max(end - part.applied_offset - 1, 0)))
        return out

    def _partition_of(self, room_id: str) -> int:
        p = self._room_partition.get(room_id)
        if p is None:
            if len(self._room_partition) > 100_000:
                self._room_partition.clear()
            p = self._room_partition[room_id] = partition_for(room_id, self.settings.partitions)
        return p

    # -- ingest ------------------------------------------------------------------------

    async def ingest(self, messages: list[Any]) -> None:
        async with self._ingest_lock:
            admitted, refilled = await self.gaps.admit(messages)
            await self._forward(admitted)
            for (topic, partition), start, end in refilled:
                await self._ack_range(topic, partition, start, end)

    async def _forward(self, messages: list[Any]) -> None:
        now_ms = int(time.time() * 1000)
        by_partition: dict[int, list[tuple]] = defaultdict(list)
        rejected = self.health.rejected
        for message in messages:
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

    async def fold(self, messages: list[Any]) -> None:
        outcome = Outcome()
        lags: list[float] = []
        refilled = await self.store.fold(messages, outcome, lags)
        self._count(outcome)
        for partition, start, end in refilled:
            await self._ack_range(self.settings.topic_room_events, partition, start, end)
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

    def _highwater(self, topic: str, partition: int) -> int | None:
        return self.app.consumer.highwater(TP(topic, partition))

    async def refill_stalled(self) -> None:
        """Records Faust skipped at the end of a quiet partition (see streams.offsets)."""
        for tp, start, end in self.gaps.stalled_tails(lambda tp: self._highwater(*tp)):
            async with self._ingest_lock:
                records = await self.gaps.refill_tail(tp, start, end)
                await self._forward(records)
                if records:
                    await self._ack_range(*tp, start, end)
        outcome = Outcome()
        room_events = self.settings.topic_room_events
        refilled = await self.store.refill_tails(lambda p: self._highwater(room_events, p), outcome)
        self._count(outcome)
        for partition, start, end in refilled:
            await self._ack_range(room_events, partition, start, end)

    async def emit_snapshots(self) -> None:
        """Room snapshots out, each as soon as its room is due (<= 1 per room per second):
        checked often, so an event waits at most ~1.1 s for the metric that holds it."""
        now = time.time()
        for part in list(self.store.partitions.values()):
            for snap in part.due_snapshots(now):
                await self.topics.room_metrics.send(
                    key=snap["room_id"].encode(), value=orjson.dumps(snap)
                )

    async def tick(self) -> None:
        if not self.app.rebalancing:
            await self.refill_stalled()
        now = time.time()
        for part in list(self.store.partitions.values()):
            part.advance_watches(now)
            await self.send_alerts(part.partition, part.take_alerts())
        # Alerts go out before the checkpoint that holds the detector state behind them.
        if self.store.checkpoint_due(now):
            started = time.perf_counter()
            self.store.checkpoint(now)
            self.health.checkpoint_seconds.set(time.perf_counter() - started)

    async def send_alerts(self, partition: int, records: list[dict[str, Any]]) -> None:
        """To the alerts topic (the partition of the rooms, where the ledger is read back
        from), to the Prometheus counter, and to the optional HTTP receivers."""
        now_ms = int(time.time() * 1000)
        for record in records:
            record["emitted_at_ms"] = now_ms
            await self.topics.alerts.send(
                key=record["room_id"].encode(), value=orjson.dumps(record), partition=partition
            )
            if record["status"] == "firing":
                self.health.alerts.labels(record["kind"], record["severity"]).inc()
            self.delivery.submit(record)

    # -- wiring ------------------------------------------------------------------------

    def _wire(self) -> None:
        app, settings = self.app, self.settings
        batch = settings.batch_records

        @app.agent(self.topics.inputs, name="ingest")
        async def ingest_agent(stream: faust.StreamT) -> None:
            async for records in buffered_batches(stream, batch):
                await self.ingest([record.message for record in records])

        @app.agent(self.topics.room_events, name="rooms")
        async def rooms_agent(stream: faust.StreamT) -> None:
            async for records in buffered_batches(stream, batch):
                await self.fold([record.message for record in records])

        @app.timer(SNAPSHOT_CHECK_S)
        async def snapshot_timer() -> None:
            await self.emit_snapshots()

        @app.timer(0.25)
        async def tick_timer() -> None:
            await self.tick()

        @app.task
        async def deliver_alerts() -> None:
            await self.delivery.run()

        @self.table.on_recover
        async def adopt_partitions() -> None:
            if self._ack_range is _ack_nothing:
                self._ack_range = defer_faust_gap_acks(app.consumer)
            actives = app.assignor.assigned_actives()
            mine = {tp.partition for tp in actives if tp.topic == settings.topic_room_events}
            self.store.revoke(set(self.store.partitions) - mine)
            await self.store.adopt(mine)
            inputs = [(tp.topic, tp.partition) for tp in actives if tp.topic in self.kind_by_topic]
            self.gaps.reset(await committed_offsets(self.store.options, settings.app_id, inputs))

        @app.on_partitions_revoked.connect
        async def drop_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
            self.store.revoke(
                {tp.partition for tp in revoked if tp.topic == settings.topic_room_events}
            )
            self.gaps.forget((tp.topic, tp.partition) for tp in revoked)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker in the foreground until SIGINT/SIGTERM."""
    pipeline = Pipeline(settings)
    worker = faust.Worker(pipeline.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
