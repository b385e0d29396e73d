"""The Faust app: broker settings, topics, the room-state table, web pages. Wiring only."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import faust

from streams.config import Settings
from streams.kafka import faust_broker_url, faust_credentials

# Tansu (the embedded broker) holds every JoinGroup for half the session timeout;
# Faust's 60 s default means a 30 s wait at every start. These values join in ~3 s
# there and are ordinary, safe values for Kafka too.
SESSION_TIMEOUT_S = 6.0
HEARTBEAT_INTERVAL_S = 1.0
REBALANCE_TIMEOUT_S = 10.0


@dataclass
class Topics:
    inputs: Any  # one Faust topic over the four input topics
    room_events: Any
    room_metrics: Any
    alerts: Any
    deadletter: Any


def create_app(settings: Settings) -> tuple[faust.App, Topics, Any]:
    datadir = settings.data_dir or tempfile.mkdtemp(prefix="liveroom-")
    app = faust.App(
        settings.app_id,
        broker=faust_broker_url(settings),
        broker_credentials=faust_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        datadir=os.path.join(datadir, "faust"),
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        broker_rebalance_timeout=REBALANCE_TIMEOUT_S,
        broker_commit_interval=1.0,
        # Records are batches of events: fetch and buffer many at once, but bound what a
        # worker that is behind holds in memory: Faust buffers up to stream_buffer_maxsize
        # records per partition (at 8,192 records of ~15 kB arrays a lagging worker held
        # gigabytes; 1,024 still feeds batches of LIVEROOM_BATCH_RECORDS=500).
        broker_max_poll_records=1000,
        consumer_max_fetch_size=2 * 1024 * 1024,
        stream_buffer_maxsize=1024,
        stream_wait_empty=False,
        producer_linger_ms=5,
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
        table_standby_replicas=0,
        web_port=settings.metrics_port,
        web_bind=settings.metrics_host,
        web_transport="tcp://",
    )
    topics = Topics(
        inputs=app.topic(*settings.input_topics, key_type=bytes, value_type=bytes),
        room_events=app.topic(
            settings.topic_room_events,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            internal=True,
        ),
        room_metrics=app.topic(settings.topic_room_metrics, key_type=bytes, value_type=bytes),
        alerts=app.topic(settings.topic_alerts, key_type=bytes, value_type=bytes),
        deadletter=app.topic(settings.topic_deadletter, key_type=bytes, value_type=bytes),
    )
    room_state = app.Table(
        "room-state",
        key_type=str,
        value_type=bytes,
        partitions=settings.partitions,
        use_partitioner=True,  # same partitioner as room-events: a room's checkpoint
        # lands in the changelog partition numbered like its room-events partition
        help="Per-room checkpoints and per-partition markers (see streams.checkpoints).",
    )
    return app, topics, room_state


def add_web_pages(app: faust.App, exposition: Any) -> None:
    """/metrics for Prometheus, /healthz for liveness, /readyz for readiness."""

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp takes the charset separately; this is prometheus_client's CONTENT_TYPE_LATEST.
        # `?rooms=0` leaves the per-room families out: for a probe that wants only the
        # processor's health every second (the load test), not thousands of rooms.
        rooms = request.query.get("rooms") != "0"
        return web.bytes(exposition.render(rooms), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.text("ok\n")

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        if app.rebalancing:
            return web.text("rebalancing\n", status=503)
        return web.text("ready\n")
