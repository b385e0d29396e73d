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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.broker import (
    EmbeddedBroker,
    all_topics,
    create_topics,
    die_with_parent,
    start_with_topics,
)
from streams.config import Settings, env_name
from streams.demo_alerting import CUT_LENGTH_S, AlertingError, AlertingStack
from streams.demo_rotation import Generation, rotate_when_full
from streams.kafka import aiokafka_options
from streams.runtime.broker_memory import ENV_PID, ENV_ROTATES_AT, default_cap, rss_bytes
from streams.traffic.model import KINDS, TrafficModel
from streams.traffic.session import STREAM_CUT, Incident, SessionShape

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
            preexec_fn=die_with_parent,  # and a demo killed outright takes it along
        )
    finally:
        log.close()


async def produce_traffic(
    gen: Generation,
    model: TrafficModel,
    stop: asyncio.Event,
    broker_pid: int | None = None,
    console: Console | None = None,
) -> None:
    """One simulated second per wall-clock second, as arrays of events keyed by room, to
    the topics of the current generation (paused while the topics rotate). With the
    embedded broker (`broker_pid`), traffic stops when the broker's memory reaches half
    of the machine's (rotation off, or not keeping up): it must not take the machine
    down."""
    cap = default_cap()
    producer = AIOKafkaProducer(linger_ms=20, **aiokafka_options(gen.settings))
    await producer.start()
    try:
        t = 0
        started = time.time()
        while not stop.is_set():
            if not gen.running.is_set():  # the topics rotate: wait, then go on from now
                await producer.flush()
                gen.paused.set()
                await gen.running.wait()
                gen.paused.clear()
                started = time.time() - t
            topics = dict(zip(KINDS, gen.settings.input_topics, strict=True))
            if broker_pid is not None and t % 10 == 0 and (rss_bytes(broker_pid) or 0) >= cap:
                if console is not None:
                    console.print(
                        f"traffic stopped: the embedded broker holds {cap // 2**20:,} MB, half "
                        "of this machine's memory (it keeps every record). Ctrl-C and start "
                        "the demo again, or run beside Kafka."
                    )
                return
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


async def show_rooms(gen: Generation, stop: asyncio.Event, console: Console) -> None:
    topic = gen.settings.topic_room_metrics
    consumer = AIOKafkaConsumer(topic, **aiokafka_options(gen.settings))
    await consumer.start()
    rooms: dict[str, dict[str, Any]] = {}
    try:
        with Live(render(rooms), console=console, refresh_per_second=2) as live:
            while not stop.is_set():
                if gen.settings.topic_room_metrics != topic:  # the topics rotated
                    await consumer.stop()
                    topic = gen.settings.topic_room_metrics
                    consumer = AIOKafkaConsumer(topic, **aiokafka_options(gen.settings))
                    await consumer.start()
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        snap = orjson.loads(record.value)
                        rooms[snap["room_id"]] = snap
                live.update(render(rooms))
    finally:
        await consumer.stop()


def demo_model(break_after: float | None) -> TrafficModel:
    """The demo's rooms; with `break_after`, the biggest room's stream is cut then."""
    sessions = None
    if break_after is not None:
        cut = Incident(STREAM_CUT, break_after, break_after + CUT_LENGTH_S)
        sessions = {0: SessionShape(duration_s=10**9, ramp_s=0, decay_s=0, incidents=[cut])}
    return TrafficModel(rooms=30, total_viewers=20_000, seed=11, sessions=sessions)


async def _demo(
    settings: Settings,
    console: Console,
    workers: list[subprocess.Popen],
    start_worker: Callable[[dict[str, str]], subprocess.Popen],
    break_after: float | None = None,
    broker_pid: int | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a closed terminal too
        loop.add_signal_handler(sig, stop.set)
    model = demo_model(break_after)
    gen = Generation(settings)
    tasks = [
        asyncio.create_task(produce_traffic(gen, model, stop, broker_pid, console)),
        asyncio.create_task(show_rooms(gen, stop, console)),
    ]
    if broker_pid is not None and settings.embedded_rotate_mb:
        limit = settings.embedded_rotate_mb * 2**20
        tasks.append(
            asyncio.create_task(
                rotate_when_full(gen, broker_pid, limit, workers, start_worker, console, stop)
            )
        )
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_demo(settings: Settings, alerting: bool = False, break_after: float = 60.0) -> None:
    console = Console()
    logs = Path(tempfile.mkdtemp(prefix="liveroom-demo-"))
    broker: EmbeddedBroker | None = None
    stack: AlertingStack | None = None
    if alerting:  # first: a missing tool stops the demo before anything else starts
        try:
            stack = AlertingStack(logs, settings.metrics_port, console).start()
        except AlertingError as exc:
            raise SystemExit(f"liveroom: {exc}") from None
        settings = settings.with_overrides(alertmanager_url=stack.alertmanager_url)
        console.print(
            f"Alertmanager on {stack.alertmanager_url} (its alerts: `amtool "
            f"--alertmanager.url={stack.alertmanager_url} alert query`; Debian's build has no "
            f"web UI), Prometheus on http://127.0.0.1:{stack.prometheus_port}; the biggest "
            f"room's stream is cut {break_after:.0f} s in, for {CUT_LENGTH_S:.0f} s: watch its "
            "ViewerDrop page on-call here, and on the live page"
        )
    if not settings.kafka_bootstrap:
        broker = start_with_topics(settings, log_path=str(logs / "broker.log"))
        settings = settings.with_overrides(kafka_bootstrap=broker.bootstrap)
        console.print(f"embedded broker on {broker.bootstrap}")
    else:
        asyncio.run(
            create_topics(aiokafka_options(settings), all_topics(settings), settings.partitions)
        )
    extra = {env_name("alertmanager_url"): settings.alertmanager_url} if stack else {}
    if broker is not None and broker.process is not None:
        extra[ENV_PID] = str(broker.process.pid)  # the worker watches its memory
        if settings.embedded_rotate_mb:  # ...which the demo keeps in a band
            extra[ENV_ROTATES_AT] = str(settings.embedded_rotate_mb)

    def start_worker(topics: dict[str, str]) -> subprocess.Popen:
        return spawn_worker(settings, str(logs / "worker.log"), {**extra, **topics})

    workers = [start_worker({})]
    base = f"http://127.0.0.1:{settings.metrics_port}"
    console.print(
        f"worker pid {workers[0].pid}; live rooms page at [bold]{base}/[/bold];"
        f" metrics at {base}/metrics; logs in {logs}"
    )
    try:
        broker_pid = broker.process.pid if broker is not None and broker.process else None
        cut = break_after if stack else None
        asyncio.run(_demo(settings, console, workers, start_worker, cut, broker_pid))
    finally:
        worker = workers[0]
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        if broker is not None:
            broker.stop()
        if stack is not None:
            stack.stop()
        console.print(f"stopped (logs in {logs})")
