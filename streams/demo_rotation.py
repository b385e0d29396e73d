"""The demo's side of rotating the embedded broker's topics (streams.runtime.rotation):
pause the simulator, stop the worker, check that everything was folded, carry the
state to a new generation of topics, delete the old one, start the worker again.

The demo owns the three processes involved, which is what makes it possible: a worker
on the embedded broker fed by outside producers cannot stop them, and only warns.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from rich.console import Console

from streams.alerts.rules import AlertRules
from streams.broker import all_topics, create_topics
from streams.config import Settings, env_name, topic_fields
from streams.kafka import aiokafka_options
from streams.runtime.broker_memory import rss_bytes
from streams.runtime.rotation import carry_state, drained, generation
from streams.state.log import KafkaLog, end_offsets

DRAIN_S = 3.0  # after the simulator pauses, before the worker is stopped
STOP_TIMEOUT_S = 60.0
CHECK_EVERY_S = 10.0


@dataclass
class Generation:
    """The topics in use, and whether the simulator may write to them."""

    base: Settings
    number: int = 0
    settings: Settings = field(init=False)
    running: asyncio.Event = field(default_factory=asyncio.Event)  # the simulator may write
    paused: asyncio.Event = field(default_factory=asyncio.Event)  # it flushed and waits

    def __post_init__(self) -> None:
        self.settings = generation(self.base, self.number)
        self.running.set()

    def worker_env(self) -> dict[str, str]:
        """The topic names of this generation, for the worker's environment."""
        return {env_name(name): getattr(self.settings, name) for name in topic_fields()}


async def committed_offsets(
    settings: Settings, tps: list[tuple[str, int]]
) -> dict[tuple[str, int], int | None]:
    consumer = AIOKafkaConsumer(
        group_id=settings.app_id, enable_auto_commit=False, **aiokafka_options(settings)
    )
    await consumer.start()
    try:
        return {tp: await consumer.committed(TopicPartition(*tp)) for tp in tps}
    finally:
        await consumer.stop()


async def stop_worker(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(worker.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        await asyncio.to_thread(worker.wait)


async def rotate(
    gen: Generation,
    worker: subprocess.Popen,
    start_worker: Callable[[dict[str, str]], subprocess.Popen],
    console: Console,
) -> subprocess.Popen:
    """Move everything to the next generation; return the worker now running."""
    old = gen.settings
    new = generation(gen.base, gen.number + 1)
    options = aiokafka_options(old)
    started = time.perf_counter()
    gen.running.clear()  # the simulator pauses, once what it sent is acknowledged
    try:
        await asyncio.wait_for(gen.paused.wait(), STOP_TIMEOUT_S)
        await asyncio.sleep(DRAIN_S)  # the worker takes in the last records
        await stop_worker(worker)
        tps = [
            (topic, p)
            for topic in (*old.input_topics, old.topic_room_events)
            for p in range(old.partitions)
        ]
        left = drained(await end_offsets(options, tps), await committed_offsets(old, tps))
        if left:
            console.print(
                f"rotation skipped: the worker stopped before folding {', '.join(left[:3])}; "
                "the topics stay as they are and it starts again"
            )
            return start_worker(gen.worker_env())
        await create_topics(options, all_topics(new), new.partitions)
        producer = AIOKafkaProducer(**options)
        await producer.start()
        try:
            carried = await carry_state(
                KafkaLog(options, None),
                KafkaLog(options, producer),
                old,
                new,
                old.room_settings(),
                AlertRules.load(old.alert_rules),
                time.time(),
            )
        finally:
            await producer.stop()
        admin = AIOKafkaAdminClient(**options)
        await admin.start()
        try:
            await admin.delete_topics(all_topics(old))
        finally:
            await admin.close()
        gen.number, gen.settings = gen.number + 1, new
        worker = start_worker(gen.worker_env())
        console.print(
            f"topics rotated to generation {gen.number} in {time.perf_counter() - started:.1f} s "
            f"({carried.rooms} rooms and {carried.firing_alerts} firing alerts carried, the "
            "old topics deleted): the embedded broker's memory goes back down"
        )
        return worker
    finally:
        gen.running.set()


async def rotate_when_full(
    gen: Generation,
    broker_pid: int,
    limit_bytes: int,
    workers: list[subprocess.Popen],
    start_worker: Callable[[dict[str, str]], subprocess.Popen],
    console: Console,
    stop: asyncio.Event,
) -> None:
    """Rotate whenever the broker holds `limit_bytes`; `workers[0]` is the running one."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), CHECK_EVERY_S)
            return
        except TimeoutError:
            pass
        if (rss_bytes(broker_pid) or 0) >= limit_bytes:
            workers[0] = await rotate(gen, workers[0], start_worker, console)
