"""The worker: wiring only.

Both stages consume with aiokafka directly, in whole fetches: Faust's per-record path
costs ~150-250 µs of CPU per record, more than the work itself (decode + fold is a few
µs per event), and exactness needs control of positions and commits that Faust's
consumer does not give without patching it. One consumer in the app's group reads the
input topics and room-events; one producer writes records and alerts, another (zstd)
checkpoints. Faust runs the process (lifecycle, signals, web endpoints, timers).

- ingest: a fetch of input records -> queued per partition, taken evenly in record
  time (`InputPacer`) -> `route` -> room-events records by partition and dead letters
  -> produced, and acknowledged by the broker, before the input offsets move (and are
  committed).
- rooms: a fetch of room-events records -> each owned partition's `RoomPartition.apply`.
  The partition's position is part of its checkpoint: after an assignment the worker
  restores the partition and seeks to the record after its checkpoint.
- tick: alerts (clock-driven seconds, sent before the checkpoint that holds the detector
  state behind them), checkpoints (captured synchronously, written in the background),
  commits, and every 10 s the heap's free pages back to the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mode
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from aiokafka.structs import TopicPartition

from streams import sentiment
from streams.alerts.delivery import AlertDelivery
from streams.alerts.partition import PartitionAlerts
from streams.alerts.rules import AlertRules
from streams.app import add_web_pages, create_app
from streams.broker import all_topics, create_topics, partition_count
from streams.config import Settings
from streams.events import KIND_NAMES
from streams.exporter import build_registry
from streams.kafka import RoomPartitions, aiokafka_options, send_in_batches
from streams.live.pages import LiveSource, add_live_pages
from streams.live.view import LiveView, RateMeter
from streams.logs import limit_repeats
from streams.rooms.partition import SOURCE_RESET, Outcome, RoomPartition, source_id
from streams.rooms.peers import PeerIndex
from streams.rooms.shards import ShardMap, events_per_second, shards_needed
from streams.runtime.broker_memory import (
    ENV_PID,
    ENV_ROTATES_AT,
    MemoryForecast,
    default_cap,
    rss_bytes,
)
from streams.runtime.checkpoint import Capture, Checkpointer, next_slot
from streams.runtime.cursor import OffsetCursor
from streams.runtime.heap import release_free_memory, tune_malloc
from streams.runtime.ingest import Routed, route
from streams.runtime.lost_input import RECREATED, RETENTION, out_of_range
from streams.runtime.pacing import InputPacer
from streams.runtime.restore import restore_when_answered
from streams.runtime.startup import UNREACHABLE, TopicLayoutError, layout_problem, until_connected
from streams.sentiment.scorer import RepeatedTexts
from streams.state.log import KafkaLog, end_offsets
from streams.state.writer import EpochWriter

log = logging.getLogger(__name__)

SNAPSHOT_CHECK_S = 0.1
TICK_S = 0.25
COMMIT_INTERVAL_S = 1.0
LIVE_CLEANUP_S = 10.0  # rooms gone idle or moved leave the peer ranks and the page
# Freed heap pages back to the system this often (streams.runtime.heap): ~1-2 ms each.
HEAP_TRIM_S = 10.0
SLOW_TRIM_S = 0.02  # a trim that held the loop longer than this is logged
POLL_TIMEOUT_MS = 100
# Tansu (the embedded broker) holds every JoinGroup for half the session timeout; these
# join in ~3 s there and are ordinary, safe values for Kafka too.
SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_INTERVAL_MS = 1_000
REBALANCE_TIMEOUT_MS = 10_000
# Tansu holds a fetch for its whole max wait when records arrive after the request; on
# Kafka a fetch returns as soon as records arrive, so a short wait costs nothing there.
FETCH_MAX_WAIT_MS = 20
# A worker behind its input holds up to a fetch of every input partition in the pacer
# (streams.runtime.pacing) besides the fetcher's buffers: in the `memory` load test,
# 650,000 events behind, the pacer held 33 MB of record values at 512 kB a partition,
# and the worker's RSS peaked 20 MB lower than at 2 MB (16 MB a fetch) with less behind.
# A record bigger than this still comes whole (a fetch's first batch is never cut, KIP-74).
FETCH_PARTITION_BYTES = 512 * 1024
FETCH_BYTES = 4 * 1024 * 1024
# Metadata round trip that tells whether the broker answers; after BROKER_DOWN_S without
# an answer /readyz reports the outage (the worker keeps running and resumes by itself).
BROKER_PROBE_S = 2.0
BROKER_PROBE_TIMEOUT_S = 3.0
BROKER_DOWN_S = 5.0
# SIGTERM: final checkpoints and commits get this long, then each client's stop gets
# CLIENTS_STOP_S: about 10 s in all when the broker is gone, within Kubernetes' default
# 30 s grace (deploy/k8s), where it would otherwise wait for the broker to come back.
SHUTDOWN_GRACE_S = 8.0
CLIENTS_STOP_S = 2.0


@dataclass
class OwnedPartition:
    part: RoomPartition
    alerts: PartitionAlerts | None
    checkpointer: Checkpointer
    writing: asyncio.Task[Any] | None = None
    checkpoint_at: float = 0.0  # the next checkpoint's slot (processing time)


class StreamWorker:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.app = create_app(settings)
        self.rules = AlertRules.load(settings.alert_rules)
        self.room_settings = settings.room_settings()
        # The sentiment model: swapped without a restart when its file changes (or on
        # SIGHUP); one that fails to load is refused and the running one kept. Loaded
        # once here (the settings check already refused a bad file).
        self.model_path = settings.sentiment_model
        self.model_info: dict[str, Any] = {"name": "shipped", "sha256": "-"}
        if self.model_path:
            from streams.sentiment.adapt import load_model

            scorer, self.model_info = load_model(self.model_path)
        else:
            scorer = sentiment.default_scorer()
        self.score = RepeatedTexts(scorer.score)
        self._model_stamp = self._model_file_stamp()
        self._reload_model = False
        self.options = aiokafka_options(settings)
        self.kind_by_topic = {name: kind for kind, name in enumerate(settings.input_topics)}
        self.writer_id = uuid.uuid4().hex[:12]
        self.adoptions = 0  # names each ownership's state writer apart
        self.owned: dict[int, OwnedPartition] = {}
        self.cursor = OffsetCursor()
        # Input records are routed evenly in time, within half the allowed lateness of
        # the partition furthest behind (streams.runtime.pacing).
        self.pacer = InputPacer(self.room_settings.allowed_lateness_ms // 2)
        self._routed_last = False  # the last step routed queued records: more may be due
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.state_producer: AIOKafkaProducer | None = None  # checkpoints, compressed
        self.log: KafkaLog | None = None
        self.assigned_once = False
        self.start_problem: str | None = None  # why start() is still waiting
        self.restore_problems: dict[int, str] = {}  # partition -> why its restore waits
        self.assignments = 0  # rebalances seen: a fetch that one overtook is read again
        self.restoring = 0  # room partitions being restored from the state log
        self.rebalancing = True
        self.stopping = False
        self._last_commit = 0.0
        # Hot rooms pinned to shards: routed by viewer, merged by their home partition.
        self.shards = ShardMap(
            {**self.rules.shards, **settings.room_shard_counts}, settings.partitions
        )
        self.partition_of = RoomPartitions(settings.partitions, self.shards)
        self.advised: set[str] = set()  # hot rooms the log has advised to pin
        # In embedded mode (`liveroom demo`), the broker this worker depends on keeps
        # every record in memory: watched, forecast, and said (streams.runtime.broker_memory).
        broker_pid = os.environ.get(ENV_PID, "")
        self.broker_pid = int(broker_pid) if broker_pid.isdigit() else None
        rotates_at = os.environ.get(ENV_ROTATES_AT, "")
        self.broker_memory = (
            MemoryForecast(default_cap(), rotates_at_mb=int(rotates_at or 0))
            if self.broker_pid
            else None
        )
        self._last_broker_sample = 0.0
        self._broker_warned = False
        if self.broker_memory is not None:
            log.warning("%s", self.broker_memory.summary()["note"])
        self.metrics_partition_of: RoomPartitions | None = None  # of the room-metrics topic
        self.broker_answered_at = clock()  # last metadata answer from the broker
        self.exposition, self.health = build_registry(
            self._snapshots,
            settings.max_rooms,
            firing_alerts=self._firing_alerts,
            lags=self._lags,
            series_budget=settings.metrics_series_budget,
            families=settings.room_families,
            delivery_pending=lambda: self.delivery.pending(),
            product_series=settings.product_series_per_room,
        )
        self.health.sentiment_model.labels(self.model_info["name"], self.model_info["sha256"]).set(
            1
        )
        # Exported at 0 from the start: the alert on it, and a test, can tell "none"
        # from "not exported".
        self.health.passed_over.labels(settings.topic_room_events)
        for topic in settings.input_topics:
            self.health.input_lost.labels(topic)
        self.delivery = AlertDelivery(
            alertmanager_url=settings.alertmanager_url,
            webhook_url=settings.alert_webhook_url,
            timeout_s=settings.alert_delivery_timeout_seconds,
            retries=settings.alert_delivery_retries,
            resend_s=settings.alertmanager_resend_seconds,
            outcome=lambda target, result: self.health.deliveries.labels(target, result).inc(),
        )
        self.delivery.follow_firing(self._firing_records)
        add_web_pages(self.app, self.exposition, self.readiness, settings.metrics_token)
        self.peers = PeerIndex()
        self.live = LiveView()
        self.event_rate = RateMeter()
        self._last_live_cleanup = 0.0
        self._last_heap_trim = 0.0
        add_live_pages(
            self.app,
            LiveSource(
                view=self.live,
                snapshots=self._snapshots,
                room=self._room_snapshot,
                firing=self._firing_records,
                health=self._live_health,
                clock=self.clock,
            ),
            settings.metrics_token,
        )
        self._wire()

    # -- what the web pages and the exporter read ------------------------------------------

    def readiness(self) -> str | None:
        if self.start_problem:
            return self.start_problem
        silent = self.clock() - self.broker_answered_at
        if silent >= BROKER_DOWN_S:
            return f"broker unreachable for {silent:.0f} s (processing resumes when it answers)"
        for problem in self.restore_problems.values():  # the broker went away mid-restore
            return problem
        if self.restoring:  # a big state takes a while (README: restore time)
            return f"restoring room partitions from the state log ({self.restoring} left)"
        if not self.assigned_once:
            return "starting"
        if self.rebalancing:
            return "rebalancing"
        return None

    def _model_file_stamp(self) -> tuple[float, int] | None:
        if not self.model_path:
            return None
        try:
            stat = os.stat(self.model_path)
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    async def watch_sentiment_model(self) -> None:
        """Load the model file again when it changed (or after SIGHUP), off the event
        loop; swap the scorer in one assignment between two batches."""
        if not self.model_path:
            return
        stamp = self._model_file_stamp()
        if stamp == self._model_stamp and not self._reload_model:
            return
        self._model_stamp, self._reload_model = stamp, False
        from streams.sentiment.adapt import ModelError, load_model

        try:
            scorer, info = await asyncio.to_thread(load_model, self.model_path)
        except ModelError as exc:
            log.warning(
                "sentiment model not swapped, %s; %s keeps running", exc, self.model_info["name"]
            )
            return
        old = self.model_info
        self.score = RepeatedTexts(scorer.score)
        self.model_info = info
        self.health.sentiment_model.clear()
        self.health.sentiment_model.labels(info["name"], info["sha256"]).set(1)
        log.info(
            "sentiment model swapped: %s (%s) replaces %s (%s); dev accuracy %s",
            info["name"],
            info["sha256"],
            old["name"],
            old["sha256"],
            info["accuracy"].get("dev"),
        )

    def watch_broker_memory(self) -> None:
        """Every 10 s in embedded mode: the broker's memory and the hours left."""
        forecast, now = self.broker_memory, time.monotonic()
        if forecast is None or self.broker_pid is None or now - self._last_broker_sample < 10:
            return
        self._last_broker_sample = now
        rss = rss_bytes(self.broker_pid)
        if rss is None:
            return
        forecast.observe(now, rss)
        hours = forecast.hours_left()
        if hours is not None and hours < 24 and not self._broker_warned:
            self._broker_warned = True
            log.warning(
                "the embedded broker holds %d MB and grows %d MB/h: ~%.1f h until it takes "
                "%d MB (half of this machine); restart it, or run beside Kafka",
                rss // 2**20,
                (forecast.bytes_per_hour() or 0) // 2**20,
                hours,
                forecast.cap // 2**20,
            )

    async def probe_broker(self) -> None:
        """One metadata request: does the broker answer?"""
        self.watch_broker_memory()
        await self.watch_sentiment_model()
        consumer = self.consumer
        if consumer is None or self.stopping:
            return
        try:
            await asyncio.wait_for(consumer.topics(), BROKER_PROBE_TIMEOUT_S)
        except Exception:  # a timeout or a connection error: the broker is not answering
            self.health.broker_up.set(0)
            return
        self.broker_answered_at = self.clock()
        self.health.broker_up.set(1)

    def _snapshots(self) -> list[dict[str, Any]]:
        horizon = self.clock() - self.settings.room_ttl_seconds
        return [snap for owned in list(self.owned.values()) for snap in owned.part.latest(horizon)]

    def _room_snapshot(self, room_id: str) -> dict[str, Any] | None:
        owned = self.owned.get(self.partition_of.home(room_id))
        room = owned.part.rooms.get(room_id) if owned is not None else None
        if room is None or room.last_active <= self.clock() - self.settings.room_ttl_seconds:
            return None
        return room.snapshot

    def _live_health(self) -> dict[str, Any]:
        problem = self.readiness()
        return {
            "events_per_second": round(self.event_rate.rate, 1),
            "consumer_lag_records": sum(lag for _, _, lag in self._lags()),
            "late_events_total": _total(self.health.late),
            "rejected_events_total": _total(self.health.rejected),
            "duplicate_events_total": _total(self.health.duplicates),
            "live_rooms": sum(len(owned.part.rooms) for owned in list(self.owned.values())),
            "ready": problem is None,
            "not_ready": problem,
            "sentiment_model": f"{self.model_info['name']} ({self.model_info['sha256']})",
            **(
                {"embedded_broker": self.broker_memory.summary()}
                if self.broker_memory is not None
                else {}
            ),
        }

    def _firing_records(self) -> list[dict[str, Any]]:
        return [
            record
            for owned in list(self.owned.values())
            if owned.alerts is not None
            for record in owned.alerts.firing()
        ]

    def _firing_alerts(self) -> list[tuple[str, str, str]]:
        return [(r["room_id"], r["kind"], r["severity"]) for r in self._firing_records()]

    def _lags(self) -> list[tuple[str, int, int]]:
        consumer = self.consumer
        if consumer is None:
            return []
        out = []
        for (topic, partition), position in self.cursor.positions().items():
            lag = _lag(consumer, topic, partition, position)
            if lag is not None:
                out.append((topic, partition, lag))
        return out

    # -- lifecycle -----------------------------------------------------------------------

    def _wire(self) -> None:
        app, worker = self.app, self

        class StreamService(mode.Service):
            async def on_start(self) -> None:
                await worker.start()

            @mode.Service.task
            async def _consume(self) -> None:
                while not self.should_stop and not worker.stopping:
                    await worker.step()

            async def on_stop(self) -> None:
                await worker.shutdown()

        @app.task
        async def start_stream() -> None:
            await app.add_runtime_dependency(StreamService())

        @app.timer(SNAPSHOT_CHECK_S)
        async def snapshot_timer() -> None:
            await self.emit_snapshots()

        @app.timer(TICK_S)
        async def tick_timer() -> None:
            await self.tick()

        @app.timer(BROKER_PROBE_S)
        async def broker_probe() -> None:
            await self.probe_broker()

        @app.task
        async def deliver_alerts() -> None:
            await self.delivery.run()

    async def start(self) -> None:
        """Connect, retrying until the broker answers (the web pages answer meanwhile:
        /healthz live, /readyz 503 with the reason). A topic layout no retry can fix
        stops the worker with exit code 2 and one line."""

        def waiting(reason: str | None) -> None:
            self.start_problem = reason

        with contextlib.suppress(NotImplementedError, RuntimeError):  # SIGHUP: reload
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: setattr(self, "_reload_model", True)
            )
        self.start_problem = f"connecting to the broker at {self.settings.kafka_bootstrap}"
        try:
            await until_connected(
                self._connect,
                waiting,
                self.settings.kafka_bootstrap,
                stopping=lambda: self.stopping,
            )
        except TopicLayoutError as exc:
            log.error("%s", exc)
            print(f"liveroom: {exc}", file=sys.stderr, flush=True)
            os._exit(2)  # nothing started yet: no state to flush

    async def _connect(self) -> None:
        """Topics created and checked, clients started; on a failure, the clients started
        so far are stopped again (the next attempt starts over)."""
        try:
            await create_topics(self.options, all_topics(self.settings), self.settings.partitions)
            counts = {
                topic: await partition_count(self.options, topic)
                for topic in (
                    self.settings.topic_room_events,
                    self.settings.topic_room_state,
                    self.settings.topic_alerts,
                )
            }
            problem = layout_problem(counts, self.settings)
            if problem:
                raise TopicLayoutError(problem)
            await self._start_clients()
        except UNREACHABLE:
            for client in (self.consumer, self.state_producer, self.producer):
                if client is not None:
                    try:
                        await client.stop()
                    except Exception as exc:  # a client that never started
                        log.debug("stopping a half-started client: %r", exc)
            self.consumer = self.producer = self.state_producer = None
            raise

    async def _start_clients(self) -> None:
        settings = self.settings
        self.producer = self._producer()
        await self.producer.start()
        # Checkpoints have a producer of their own, zstd-compressed: their JSON repeats
        # user ids and compresses ~7x (~90-160 bytes an event before, more than the
        # input), at ~430 MB/s, <1 % of a core; and megabytes of them no longer queue
        # ahead of the routed records and alerts whose acks the fold and tick wait for.
        self.state_producer = self._producer(compression_type="zstd")
        await self.state_producer.start()
        self.log = KafkaLog(self.options, self.state_producer)
        self.consumer = AIOKafkaConsumer(
            group_id=settings.app_id,
            enable_auto_commit=False,
            # No silent jump: a position outside the log is decided on
            # (streams.runtime.lost_input); a partition with no offset starts at its first.
            auto_offset_reset="none",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=FETCH_PARTITION_BYTES,
            fetch_max_bytes=FETCH_BYTES,
            **self.options,
        )
        await self.consumer.start()
        self.consumer.subscribe(
            [*settings.input_topics, settings.topic_room_events], listener=_Listener(self)
        )

    def _producer(self, compression_type: str | None = None) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            linger_ms=5,
            max_batch_size=512 * 1024,
            max_request_size=1024 * 1024,
            compression_type=compression_type,
            **self.options,
        )

    async def shutdown(self) -> None:
        """Finish the batch in hand, write a final checkpoint, commit, leave the group,
        within SHUTDOWN_GRACE_S: a broker that does not answer by then (an outage) is
        left behind, and the restart resumes from the last durable checkpoints (exact,
        it only replays more)."""
        if self.stopping:
            return
        self.stopping = True  # no new fetch is folded, no tick starts
        try:
            await asyncio.wait_for(self._final_checkpoints(), SHUTDOWN_GRACE_S)
            outcome = "final checkpoints written and offsets committed"
        except TimeoutError:
            outcome = (
                f"the broker took no final checkpoint within {SHUTDOWN_GRACE_S:.0f} s: a "
                "restart resumes from the last durable one"
            )
        clients = [c for c in (self.consumer, self.producer, self.state_producer) if c is not None]
        try:  # the consumer leaves the group, the producers send what they hold
            await asyncio.wait_for(asyncio.gather(*(c.stop() for c in clients)), CLIENTS_STOP_S)
        except TimeoutError:
            outcome += f"; the Kafka clients did not stop within {CLIENTS_STOP_S:.0f} s"
        log.info("worker stopped: %s", outcome)

    async def _final_checkpoints(self) -> None:
        async with self.lock:  # once the batch in hand is folded
            for p in list(self.owned):
                await self._flush(p)
            await self._commit()

    # -- the stream ----------------------------------------------------------------------

    async def step(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        assignments = self.assignments
        # Records queued and due: fetch what has arrived, without waiting for more.
        wait_ms = 0 if self._routed_last and self.pacer.queued else POLL_TIMEOUT_MS
        try:
            fetched = await consumer.getmany(
                timeout_ms=wait_ms, max_records=self.settings.batch_records
            )
        except OffsetOutOfRangeError as exc:
            async with self.lock:
                await self._out_of_range(exc.args[0] if exc.args else {})
            return
        except NoOffsetForPartitionError as exc:  # a new group: from the first record
            for tp in exc.args:
                if isinstance(tp, TopicPartition):
                    await consumer.seek_to_beginning(tp)
            return
        if not fetched and not self.pacer.queued:
            return
        async with self.lock:
            if self.stopping:
                return
            if assignments != self.assignments:
                # A rebalance ran while this fetch was in flight or waited for the lock:
                # it may come from where the consumer stood before the assignment moved
                # it (the group's committed offset, not the restored checkpoint), and the
                # cursor would take it as a jump and skip what lies between. Read again.
                self._rewind([(tp.topic, tp.partition) for tp in fetched])
                return
            now = self.clock()
            rooms = []
            room_events = self.settings.topic_room_events
            for tp, records in fetched.items():
                key = (tp.topic, tp.partition)
                admitted = self.cursor.admit(key, records)
                if not admitted:
                    continue
                if tp.topic != room_events:
                    self.pacer.add(key, admitted, now)
                    continue
                if passed := self.cursor.passed_over(key, admitted):
                    # Only workers write room-events: a gap is a record a fetch left out
                    # (seen once in a load test, not reproduced) until a second fetch
                    # from the same offset says so too.
                    if self.cursor.first_sight_of_gap(key):
                        log.warning(
                            "room-events partition %d: a fetch skipped %d offsets after %d; "
                            "reading them again",
                            tp.partition,
                            passed,
                            self.cursor.next[key],
                        )
                        consumer.seek(tp, self.cursor.next[key])
                        continue
                    self._passed_over(tp, passed)
                rooms.append((tp.partition, admitted))
            inputs = []
            for key, records in self.pacer.take(now, self._reading).items():
                if passed := self.cursor.passed_over(key, records):
                    self._passed_over(TopicPartition(*key), passed)
                inputs.append((key[0], self.kind_by_topic[key[0]], key[1], records))
            self._routed_last = bool(inputs)
            # Routed records go out first and the fetched room-events are folded while
            # the broker acknowledges them: the fold's CPU time overlaps the round trip.
            # Still one fetch in flight: the input offsets move only once it is acked.
            sent = None
            if inputs:
                try:
                    sent = await self._send_routed(inputs, now)
                    await asyncio.sleep(0)  # the producer's sender puts them on the wire
                except KafkaError as exc:
                    self._not_routed(inputs, exc)
            if rooms:
                self.fold(rooms, now)
            if sent is not None:
                try:
                    await self._acknowledged(inputs, sent)
                except KafkaError as exc:
                    self._not_routed(inputs, exc)
            self._pace()

    def _reading(self, key: tuple[str, int]) -> bool:
        """Records of this partition are still to be read (its lag is above 0)."""
        consumer, position = self.consumer, self.cursor.next.get(key)
        if consumer is None or position is None:
            return False
        return bool(_lag(consumer, key[0], key[1], position))

    def _pace(self) -> None:
        """Input partitions with records queued are paused until their queue drains."""
        consumer = self.consumer
        assert consumer is not None
        backlogged = self.pacer.backlogged()
        paused = consumer.paused()
        resume = [tp for tp in paused if (tp.topic, tp.partition) not in backlogged]
        if resume:
            consumer.resume(*resume)
        if backlogged:
            assigned = consumer.assignment()
            pause = [
                tp
                for tp in map(TopicPartition._make, backlogged)
                if tp in assigned and tp not in paused
            ]
            if pause:
                consumer.pause(*pause)

    async def _out_of_range(self, positions: dict[TopicPartition, int]) -> None:
        """Fetch positions outside their partition's log: retention or a topic created
        again (streams.runtime.lost_input)."""
        consumer = self.consumer
        assert consumer is not None
        for tp, fetch_at in positions.items():
            key = (tp.topic, tp.partition)
            first = (await consumer.beginning_offsets([tp]))[tp]
            end = (await end_offsets(self.options, [key]))[key]
            seen = out_of_range(fetch_at, first, end)
            if tp.topic == self.settings.topic_room_events:
                log.error(
                    "room-events partition %d: records at %d no longer exist (log %d-%d): "
                    "raise the topic's retention above a restore's replay",
                    tp.partition,
                    fetch_at,
                    first,
                    end,
                )
            elif seen.kind == RETENTION:  # the records queued before the gap still go out
                self.health.input_lost.labels(tp.topic).inc(seen.lost)
                log.warning(
                    "%s partition %d: %d records deleted before they were read (retention; "
                    "offsets %d-%d): counted in liveroom_input_records_lost_total, resuming "
                    "at %d",
                    tp.topic,
                    tp.partition,
                    seen.lost,
                    fetch_at,
                    first - 1,
                    first,
                )
            elif seen.kind == RECREATED:
                # Records of the deleted topic not yet routed cannot follow the reset.
                queued = self.pacer.forget([key])
                if queued:
                    self.health.input_lost.labels(tp.topic).inc(queued)
                log.warning(
                    "%s partition %d was created again (its log ends at %d, before this "
                    "worker's position %d): reading it from its start%s",
                    tp.topic,
                    tp.partition,
                    end,
                    fetch_at,
                    f"; {queued} records of the old topic not yet routed are lost"
                    if queued
                    else "",
                )
                await self._reset_source(tp)
                self.cursor.start(key, seen.resume_at)
                await self._commit(only={key})
            consumer.seek(tp, seen.resume_at)

    async def _find_shorter_logs(self) -> None:
        """An input log whose end (the high-water mark of the last fetch) is below this
        worker's position was created again. Kafka answers such a fetch with
        OFFSET_OUT_OF_RANGE (`step`); the embedded broker answers it with nothing."""
        consumer = self.consumer
        if consumer is None:
            return
        room_events = self.settings.topic_room_events
        shorter = {}
        for (topic, partition), position in self.cursor.positions().items():
            if topic == room_events or position <= 0:
                continue
            tp = TopicPartition(topic, partition)
            end = consumer.highwater(tp)
            if end is not None and end < position:
                shorter[tp] = position
        if shorter:
            await self._out_of_range(shorter)

    async def _reset_source(self, tp: TopicPartition) -> None:
        """Every room partition forgets this input partition's last folded offset, before
        any new record of it is routed (acknowledged first)."""
        producer = self.producer
        assert producer is not None
        source = source_id(self.kind_by_topic[tp.topic], tp.partition)
        value = orjson.dumps([[SOURCE_RESET, 0, [source]]])
        pending = [
            await producer.send(self.settings.topic_room_events, value, partition=p)
            for p in range(self.settings.partitions)
        ]
        await asyncio.gather(*pending)

    def _passed_over(self, tp: TopicPartition, offsets: int) -> None:
        self.health.passed_over.labels(tp.topic).inc(offsets)
        if tp.topic == self.settings.topic_room_events:  # only this worker writes it
            log.error(
                "room-events partition %d: %d offsets passed over with no record; their "
                "events are not in the rooms' state",
                tp.partition,
                offsets,
            )

    def _not_routed(self, inputs: list[tuple[str, int, int, list[Any]]], exc: Exception) -> None:
        """Not acknowledged: read these records again."""
        log.warning("routing a fetch failed (%r); its records are read again", exc)
        self._rewind([(topic, partition) for topic, _, partition, _ in inputs])

    def _rewind(self, keys: list[tuple[str, int]]) -> None:
        """Seek back to the next record not yet processed: whatever of the batch reached
        room-events is skipped there by its source offset (RoomPartition)."""
        consumer = self.consumer
        assert consumer is not None
        self.pacer.forget(keys)  # queued past the cursor: fetched again
        positions = self.cursor.positions()
        for key in keys:
            if key in positions:
                # -1: nothing committed yet. From 0, a log that starts later resets to
                # its start (auto_offset_reset=earliest), as an unpositioned one would.
                consumer.seek(TopicPartition(*key), max(positions[key], 0))
        self._pace()  # what was queued is fetched again

    async def _send_routed(
        self, inputs: list[tuple[str, int, int, list[Any]]], now: float
    ) -> tuple[Routed, list[asyncio.Future[Any]]]:
        """Route `inputs` and hand the result to the producer; the futures resolve when
        the broker acknowledges."""
        routed = route(inputs, self.partition_of, int(now * 1000))
        producer = self.producer
        assert producer is not None
        topic, deadletter = self.settings.topic_room_events, self.settings.topic_deadletter
        pending = []
        for partition, values in routed.records.items():
            for value in values:
                pending.append(await producer.send(topic, value, partition=partition))
        for key, value in routed.deadletters:
            pending.append(await producer.send(deadletter, value, key=key))
        return routed, pending

    async def _acknowledged(
        self,
        inputs: list[tuple[str, int, int, list[Any]]],
        sent: tuple[Routed, list[asyncio.Future[Any]]],
    ) -> None:
        routed, pending = sent
        await asyncio.gather(*pending)  # durable before the input offsets move
        for (topic, reason), count in routed.rejected.items():
            self.health.rejected.labels(topic, reason).inc(count)
        for topic, _, partition, records in inputs:
            self.cursor.advance((topic, partition), records)

    def fold(self, rooms: list[tuple[int, list[Any]]], now: float) -> None:
        outcome = Outcome()
        loads, score = orjson.loads, self.score
        topic = self.settings.topic_room_events
        for partition, records in rooms:
            owned = self.owned.get(partition)
            if owned is None:
                continue  # revoked while fetched
            apply = owned.part.apply
            for record in records:
                apply(record.offset, loads(record.value), now, outcome, score)
            self.cursor.advance((topic, partition), records)
        self._count(outcome, now)

    def _count(self, outcome: Outcome, now: float) -> None:
        topics = self.settings.input_topics
        for kind in range(len(KIND_NAMES)):
            if outcome.applied[kind]:
                self.health.processed.labels(topics[kind]).inc(outcome.applied[kind])
            if outcome.late[kind]:
                self.health.late.labels(topics[kind]).inc(outcome.late[kind])
            if outcome.duplicates[kind]:
                self.health.duplicates.labels(topics[kind]).inc(outcome.duplicates[kind])
        self.health.lag.observe_event_times(int(now * 1000), outcome.event_ts)

    # -- timers --------------------------------------------------------------------------

    async def emit_snapshots(self) -> None:
        """Room snapshots out, each as soon as its room is due (<= 1 per room per second)."""
        producer = self.producer
        if producer is None or self.stopping:
            return
        now = self.clock()
        topic = self.settings.topic_room_metrics
        quiet = self.settings.snapshot_quiet_seconds
        snaps = [
            snap
            for owned in list(self.owned.values())
            for snap in owned.part.due_snapshots(now, quiet_interval=quiet)
        ]
        await self._send_partials(producer)
        if not snaps:
            return
        for snap in snaps:
            self.peers.observe(snap, now)  # sets its peer percentiles
            self.live.observe(snap, now)
            self._advise_split(snap)
        try:
            # Keyed by room, in the partition Kafka's default partitioner would choose,
            # remembered per room (murmur2 is pure Python), sent a batch per partition.
            partitions = len(await producer.partitions_for(topic))
            partition_of = self.metrics_partition_of
            if partition_of is None or partition_of.partitions != partitions:
                partition_of = self.metrics_partition_of = RoomPartitions(partitions)
            records = []
            for snap in snaps:
                room_id = snap["room_id"]
                records.append((partition_of[room_id], room_id.encode(), orjson.dumps(snap)))
            await send_in_batches(producer, topic, records)
        except KafkaError as exc:  # the next change of a room sends a newer one
            log.warning("room snapshots not sent (%r)", exc)

    def _advise_split(self, snap: dict[str, Any]) -> None:
        """A room above LIVEROOM_SPLIT_EVENTS_PER_SECOND over the last minute that is not
        split: said once in the log, and in its snapshot (the live page shows it). A
        live room is not split by itself: see README, split rooms."""
        if snap.get("shards", 1) > 1:
            return
        threshold = self.settings.split_events_per_second
        rate = events_per_second(snap)
        if rate <= threshold:
            return
        needed = shards_needed(rate, threshold)
        snap["split_advised"] = needed
        room_id = snap["room_id"]
        if room_id not in self.advised:
            self.advised.add(room_id)
            log.warning(
                f"room {room_id} sustains {rate:,.0f} events/s, above "
                f"LIVEROOM_SPLIT_EVENTS_PER_SECOND={threshold:,.0f}: one worker folds it; for "
                f"its next session set LIVEROOM_ROOM_SHARDS={room_id}={needed} on every worker"
            )

    async def _send_partials(self, producer: AIOKafkaProducer) -> None:
        """Split rooms' shard partials to their home partitions of room-events. Not
        awaited for the broker: a lost one is replaced by the next (absolute figures,
        sent again at least every few seconds)."""
        topic = self.settings.topic_room_events
        for owned in list(self.owned.values()):
            for room_id, shard, shards, home in owned.part.new_shards:
                log.info(
                    "split room %s: shard %d of %d folded on room-events partition %d%s",
                    room_id,
                    shard,
                    shards,
                    owned.part.partition,
                    " (its home: merged and published here)"
                    if shard == 0
                    else f" (merged on partition {home})",
                )
            owned.part.new_shards.clear()
        records = [
            (home, None, value)
            for owned in list(self.owned.values())
            for home, value in owned.part.take_partials()
        ]
        if not records:
            return
        try:
            await send_in_batches(producer, topic, records)
        except KafkaError as exc:
            log.warning("split rooms' partials not sent (%r)", exc)

    async def tick(self) -> None:
        if self.producer is None or self.stopping:
            return
        async with self.lock:
            if self.stopping:
                return
            now = self.clock()
            await self._find_shorter_logs()
            unsent = False
            taken = []
            # Records this worker has not read yet: it is behind, and a partition with no
            # record folded lately is not a quiet one (streams.alerts.partition).
            waiting = any(lag > 0 for _, _, lag in self._lags())
            for p, owned in list(self.owned.items()):
                if owned.alerts is not None:
                    owned.alerts.advance(now, owned.part, input_waiting=waiting)
                    taken.append((p, owned.alerts, owned.alerts.take()))
            # Every partition's alerts in flight at once: one round trip under the lock.
            results = await asyncio.gather(
                *(self.send_alerts(p, records) for p, _, records in taken), return_exceptions=True
            )
            for (p, alerts, records), result in zip(taken, results, strict=True):
                if isinstance(result, KafkaError):  # the broker is slow or gone: next tick
                    log.warning("alerts of partition %d not sent (%r); retried", p, result)
                    alerts.not_sent(records)
                    unsent = True
                elif isinstance(result, BaseException):
                    raise result
            # Alerts go out before the checkpoint that holds the detector state behind them.
            if not unsent:
                # The partitions in their slot are captured here, under the lock (no fold
                # while it pauses), and written in the background once all are captured:
                # a write started earlier would run in the later captures' pauses, and
                # the fold would wait for it too. One still writing waits for a next tick.
                interval = self.settings.checkpoint_interval_seconds
                captured = []
                for p, owned in list(self.owned.items()):
                    if now < owned.checkpoint_at or not (
                        owned.writing is None or owned.writing.done()
                    ):
                        continue
                    owned.checkpoint_at = next_slot(now, interval, p, self.settings.partitions)
                    started = time.perf_counter()
                    captured.append((owned, await self._capture(owned, now), started))
                for owned, capture, started in captured:
                    owned.writing = asyncio.create_task(self._write(owned, capture, started))
            if now - self._last_commit >= COMMIT_INTERVAL_S:
                self._last_commit = now
                self.event_rate.sample(_total(self.health.processed), now)
                await self._commit()
            if now - self._last_live_cleanup >= LIVE_CLEANUP_S:
                self._last_live_cleanup = now
                self.peers.expire(now - self.settings.room_ttl_seconds)
                self.live.keep_only(r for o in self.owned.values() for r in o.part.rooms)
            if now - self._last_heap_trim >= HEAP_TRIM_S:
                self._last_heap_trim = now
                took = release_free_memory()
                if took > SLOW_TRIM_S:
                    log.warning("giving freed memory back took %.0f ms", took * 1000)

    async def _checkpoint(self, owned: OwnedPartition, now: float) -> None:
        """Capture and write one epoch (the caller holds the lock)."""
        started = time.perf_counter()
        await self._write(owned, await self._capture(owned, now), started)

    async def _capture(self, owned: OwnedPartition, now: float) -> Capture:
        """The caller holds the lock: folding waits while the capture lets the loop run."""
        started = time.perf_counter()
        capture = await owned.checkpointer.capture_paced(now, self.settings.room_ttl_seconds)
        self.health.checkpoint_capture_seconds.set(time.perf_counter() - started)
        return capture

    async def _write(self, owned: OwnedPartition, capture: Capture, started: float) -> None:
        """Write one captured epoch. A failed write is logged, not raised (it runs in the
        background): the checkpointer writes what it held again as bases next time."""
        writer = owned.checkpointer.writer
        written = writer.bytes_written
        try:
            await owned.checkpointer.write(capture)
        except Exception:
            log.exception("checkpoint of partition %d failed", owned.part.partition)
            return
        self.health.checkpoint_seconds.set(time.perf_counter() - started)
        self.health.checkpoint_bytes.inc(writer.bytes_written - written)

    async def send_alerts(self, partition: int, records: list[dict[str, Any]]) -> None:
        """To the alerts topic (the partition of the rooms, where the ledger is read back
        from), to the Prometheus counter, and to the optional HTTP receivers."""
        if not records:
            return
        producer = self.producer
        assert producer is not None
        now_ms = int(self.clock() * 1000)
        pending = []
        for record in records:
            record["emitted_at_ms"] = now_ms
            self.live.alert(record)
            pending.append(
                await producer.send(
                    self.settings.topic_alerts,
                    orjson.dumps(record),
                    key=record["room_id"].encode(),
                    partition=partition,
                )
            )
            if record["status"] == "firing":
                self.health.alerts.labels(record["kind"], record["severity"]).inc()
            self.delivery.submit(record)
        await asyncio.gather(*pending)

    async def _commit(self, only: set[tuple[str, int]] | None = None) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        room_events = self.settings.topic_room_events
        offsets = {}
        for tp, offset in self.cursor.positions().items():
            if only is not None and tp not in only:
                continue
            owned = self.owned.get(tp[1]) if tp[0] == room_events else None
            if owned is not None:
                # A room partition resumes from its checkpoint, not from this offset:
                # the group's offset says what a restart replays (what the last durable
                # checkpoint lacks), never more than that checkpoint holds.
                offset = min(offset, owned.checkpointer.durable_offset + 1)
            if offset >= 0:
                offsets[TopicPartition(*tp)] = offset
        if offsets:
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # a rebalance under way: the next commit covers it
                log.warning("commit failed (%s); it is retried with the next one", exc)

    # -- ownership -----------------------------------------------------------------------

    async def _flush(self, p: int) -> None:
        """Write a final checkpoint of partition p (waiting for one in flight first)."""
        owned = self.owned.get(p)
        if owned is None:
            return
        if owned.writing is not None:
            await asyncio.gather(owned.writing, return_exceptions=True)
        if owned.alerts is not None:
            records = owned.alerts.take()
            try:
                await self.send_alerts(p, records)
            except KafkaError as exc:
                # No final checkpoint then: the next owner restores the one before these
                # transitions and raises them again (the ledger has not seen them sent).
                log.warning("alerts of partition %d not sent (%r); no final checkpoint", p, exc)
                owned.alerts.not_sent(records)
                return
        await self._checkpoint(owned, self.clock())

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            self.rebalancing = True
            if self.stopping:
                return
            room_events = self.settings.topic_room_events
            rooms = [tp.partition for tp in revoked if tp.topic == room_events]
            keys = {(tp.topic, tp.partition) for tp in revoked}
            try:
                for p in rooms:
                    await self._flush(p)
                await self._commit(keys)  # while the checkpoints just written are known
            finally:
                for p in rooms:
                    gone = self.owned.pop(p, None)
                    for room_id in gone.part.rooms if gone is not None else ():
                        self.peers.forget(room_id)
                self.cursor.forget(keys)
                self.pacer.forget(keys)

    async def assign(self, assigned: set[TopicPartition]) -> None:
        consumer, log_ = self.consumer, self.log
        assert consumer is not None and log_ is not None
        async with self.lock:
            if self.stopping:
                return
            self.assignments += 1
            room_events = self.settings.topic_room_events
            mine = [tp for tp in assigned if tp.topic == room_events]
            started = time.perf_counter()
            self.restoring = len(mine)
            try:
                restored = await asyncio.gather(*(self._adopt(tp.partition) for tp in mine))
            finally:
                self.restoring = 0
            self.health.restore_seconds.set(time.perf_counter() - started)
            if self.stopping:
                return  # stopped while waiting for the broker: nothing to fold
            now = self.clock()
            for tp, owned in zip(mine, restored, strict=True):
                assert owned is not None
                owned.checkpoint_at = next_slot(
                    now,
                    self.settings.checkpoint_interval_seconds,
                    tp.partition,
                    self.settings.partitions,
                )
                self.owned[tp.partition] = owned
                consumer.seek(tp, owned.part.applied_offset + 1)
                self.cursor.start((tp.topic, tp.partition), owned.part.applied_offset + 1)
            for tp in assigned:
                if tp.topic != room_events:
                    committed = await consumer.committed(tp)
                    if committed is None:  # a new group: from the first record that exists
                        await consumer.seek_to_beginning(tp)
                    self.cursor.start(
                        (tp.topic, tp.partition), -1 if committed is None else committed
                    )
            self.rebalancing = False
            if not self.assigned_once:
                self.assigned_once = True
                log.info("Worker ready: %d partitions assigned", len(assigned))

    async def _adopt(self, p: int) -> OwnedPartition | None:
        """Partition `p` restored and ready to fold (None: the worker stopped first)."""
        log_ = self.log
        assert log_ is not None

        def waiting(reason: str | None) -> None:
            if reason is None:
                self.restore_problems.pop(p, None)
            else:
                self.restore_problems[p] = reason

        restored = await restore_when_answered(
            log_,
            (self.settings.topic_room_state, self.settings.topic_alerts),
            p,
            self.room_settings,
            self.rules,
            self.clock,
            waiting,
            f"{self.settings.kafka_bootstrap} (restoring room partition {p})",
            stopping=lambda: self.stopping,
        )
        if restored is None:
            return None
        restored.part.shards = self.shards or None
        restored.part.home_of = self.partition_of.home
        restored.part.mark_shards()
        self.restoring = max(self.restoring - 1, 0)
        r = restored.restored
        if restored.without_base:
            self.health.rooms_without_base.inc(len(restored.without_base))
            log.error(
                "partition %d restored %d rooms from deltas without their base (%s): the "
                "state log's chain is broken there, their distinct counts are short",
                p,
                len(restored.without_base),
                ", ".join(restored.without_base[:10]),
            )
        log.info(
            "partition %d restored: %d rooms, offset %d, %d state records from %d in %.2fs",
            p,
            len(restored.part.rooms),
            restored.part.applied_offset,
            r.records_read,
            r.read_from,
            restored.seconds,
        )
        # A writer name per ownership: a worker that gets a partition back starts its
        # epochs at 1 again, and must not reuse the ids of its earlier ownership's.
        self.adoptions += 1
        writer = EpochWriter(
            log_,
            self.settings.topic_room_state,
            p,
            f"{self.writer_id}.{self.adoptions}",
            r.epoch,
            chunk_bytes=self.settings.checkpoint_chunk_bytes,
        )
        return OwnedPartition(
            restored.part, restored.alerts, Checkpointer(writer, restored.part, restored.alerts)
        )


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: StreamWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.worker.assign(set(assigned))


def _lag(consumer: AIOKafkaConsumer, topic: str, partition: int, position: int) -> int | None:
    """Records between the cursor and the log end the last fetch reported (None: no
    fetch yet). Position -1 (nothing read, nothing committed) counts from 0."""
    highwater = consumer.highwater(TopicPartition(topic, partition))
    if highwater is None:
        return None
    return max(highwater - max(position, 0), 0)


def _total(counter: Any) -> float:
    """A labelled prometheus_client counter summed over its labels."""
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def tune_gc() -> None:
    """Fewer, cheaper garbage collections: the state is a few big dicts and sets, but
    every fetch allocates a container per event, and CPython's default (a collection
    every 700 allocations, full ones scanning the whole heap) spent more time than the
    fold on big rooms. Objects alive at start-up are frozen out of the scans."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker in the foreground until SIGINT/SIGTERM."""
    import faust

    tune_gc()
    tune_malloc()
    # A broker outage would log ~36 reconnect errors a second, and a loaded loop a timer
    # overlap warning every tick: each kind once per 30 s, with a count of the rest.
    limit_repeats("mode.timers", limit_repeats("aiokafka"))
    worker = StreamWorker(settings)
    faust.Worker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()
