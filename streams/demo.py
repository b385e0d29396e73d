"""`liveroom demo`: embedded broker + worker + simulated rooms + a live terminal table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.broker import EmbeddedBroker, all_topics, create_topics, start_with_topics
from streams.config import Settings, env_name
from streams.kafka import aiokafka_options
from streams.traffic.model import KINDS, TrafficModel

EVENTS_PER_RECORD = 100


def spawn_worker(
    settings: Settings, log_path: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    """A worker in its own process (what `liveroom worker` runs), tied to this one."""
    env = {**os.environ, env_name("kafka_bootstrap"): settings.kafka_bootstrap, **(extra_env or {})}
    log = open(log_path, "ab")  # noqa: SIM115 - the child holds it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--loglevel", "info"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
        )
    finally:
        log.close()


async def produce_traffic(settings: Settings, model: TrafficModel, stop: asyncio.Event) -> None:
    """One simulated second per wall-clock second, as arrays of events keyed by room."""
    topics = dict(zip(KINDS, settings.input_topics, strict=True))
    producer = AIOKafkaProducer(linger_ms=20, **aiokafka_options(settings))
    await producer.start()
    try:
        t = 0
        started = time.time()
        while not stop.is_set():
            ts_ms = int(time.time() * 1000)
            for kind, events in model.second(t, ts_ms).items():
                by_room: dict[str, list[dict]] = defaultdict(list)
                for event in events:
                    by_room[event["room_id"]].append(event)
                for room_id, room_events in by_room.items():
                    for i in range(0, len(room_events), EVENTS_PER_RECORD):
                        chunk = room_events[i : i + EVENTS_PER_RECORD]
                        await producer.send(topics[kind], orjson.dumps(chunk), key=room_id.encode())
            t += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, started + t - time.time()))
    finally:
        await producer.stop()


def render(rooms: dict[str, dict[str, Any]], limit: int = 15) -> Table:
    table = Table(title="liveroom demo — busiest rooms (Ctrl-C to stop)")
    for column in ("room", "online", "PCU", "UV 5m", "conv 5m", "GMV ¥", "GPM ¥ 5m", "comments"):
        table.add_column(column, justify="right")
    busiest = sorted(rooms.values(), key=lambda s: s["online_viewers"], reverse=True)[:limit]
    for snap in busiest:
        w5 = snap["windows"]["5m"]
        conversion = w5["conversion_ratio"]
        gpm = w5["gpm_yuan"]
        table.add_row(
            snap["room_id"],
            f"{snap['online_viewers']:,}",
            f"{snap['peak_online_viewers']:,}",
            f"{w5['unique_viewers']:,}",
            "-" if conversion is None else f"{conversion:.2%}",
            f"{snap['gmv_yuan_total']:,.0f}",
            "-" if gpm is None else f"{gpm:,.0f}",
            f"{snap['comments_total']:,}",
        )
    return table


async def show_rooms(settings: Settings, stop: asyncio.Event, console: Console) -> None:
    consumer = AIOKafkaConsumer(settings.topic_room_metrics, **aiokafka_options(settings))
    await consumer.start()
    rooms: dict[str, dict[str, Any]] = {}
    try:
        with Live(render(rooms), console=console, refresh_per_second=2) as live:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        snap = orjson.loads(record.value)
                        rooms[snap["room_id"]] = snap
                live.update(render(rooms))
    finally:
        await consumer.stop()


async def _demo(settings: Settings, console: Console) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    model = TrafficModel(rooms=30, total_viewers=20_000, seed=11)
    tasks = [
        asyncio.create_task(produce_traffic(settings, model, stop)),
        asyncio.create_task(show_rooms(settings, stop, console)),
    ]
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_demo(settings: Settings) -> None:
    console = Console()
    logs = Path(tempfile.mkdtemp(prefix="liveroom-demo-"))
    broker: EmbeddedBroker | None = None
    if not settings.kafka_bootstrap:
        broker = start_with_topics(settings, log_path=str(logs / "broker.log"))
        settings = settings.with_overrides(kafka_bootstrap=broker.bootstrap)
        console.print(f"embedded broker on {broker.bootstrap}")
    else:
        asyncio.run(
            create_topics(aiokafka_options(settings), all_topics(settings), settings.partitions)
        )
    worker = spawn_worker(settings, str(logs / "worker.log"))
    base = f"http://127.0.0.1:{settings.metrics_port}"
    console.print(
        f"worker pid {worker.pid}; live rooms page at [bold]{base}/[/bold];"
        f" metrics at {base}/metrics; logs in {logs}"
    )
    try:
        asyncio.run(_demo(settings, console))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        if broker is not None:
            broker.stop()
        console.print(f"stopped (logs in {logs})")
