"""Open-loop producers: the scenario's traffic at its own pace, whatever the worker does.

Each producer process owns a share of the rooms (room index mod producers). Every
second of the run it generates that second's events from the shared traffic model,
then sends them in ten slices paced over the second, each event stamped with the
time it is sent (late events keep their older time). If generating and sending
take longer than the second, the producer falls behind the schedule and says so:
the offered rate is the schedule, the achieved rate what was acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from loadtest.probe import SAMPLE_EVERY
from loadtest.scenario import Scenario
from streams.traffic.model import KINDS

SLICES = 10  # sends per second: traffic arrives spread over the second, not in one burst


@dataclass(frozen=True)
class ProducerJob:
    scenario: Scenario
    share: int
    producers: int
    options: dict[str, Any]  # aiokafka client options
    topics: tuple[str, str, str, str]  # views, comments, carts, orders
    start_at: float  # wall-clock second 0 of the run


def run_producer(job: ProducerJob, stats: Queue, stop: Event) -> None:
    """Entry point of a producer process."""
    asyncio.run(_produce(job, stats, stop))


def records_of(events: list[dict[str, Any]], batch: int) -> list[bytes]:
    if batch == 1:
        return [orjson.dumps(e) for e in events]
    return [orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch)]


async def _produce(job: ProducerJob, stats: Queue, stop: Event) -> None:
    scenario = job.scenario
    model = scenario.model(seed_offset=job.share, producers=job.producers, share=job.share)
    first_rate = scenario.steps[0] if scenario.steps else scenario.rate
    peaks = [room.peak_viewers for room in model.rooms]
    producer = AIOKafkaProducer(
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        **job.options,
    )
    await producer.start()
    topics = dict(zip(KINDS, job.topics, strict=True))
    try:
        t = 0
        while t < scenario.total_duration and not stop.is_set():
            scale = scenario.rate_at(t) / first_rate
            for room, peak in zip(model.rooms, peaks, strict=True):
                room.peak_viewers = max(1, int(peak * scale))
            second_start = job.start_at + t
            generated_at = time.time()
            events = model.second(t, int(second_start * 1000))
            generate_s = time.time() - generated_at
            offered = sum(len(v) for v in events.values())
            pending = []
            records = 0
            samples: list[tuple[str, int]] = []
            for j in range(SLICES):
                delay = second_start + j / SLICES - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                now_ms = int(time.time() * 1000)
                for kind in KINDS:
                    todo = events[kind]
                    part = todo[len(todo) * j // SLICES : len(todo) * (j + 1) // SLICES]
                    for i, event in enumerate(part):
                        if not event.pop("late", False):
                            event["ts"] = now_ms
                            if i % SAMPLE_EVERY == 0 and "user_id" in event:
                                samples.append((event["room_id"], now_ms))
                    for value in records_of(part, scenario.batch):
                        pending.append(await producer.send(topics[kind], value))
                        records += 1
            acked = await asyncio.gather(*pending, return_exceptions=True)
            failed = sum(isinstance(a, Exception) for a in acked)
            stats.put(
                {
                    "share": job.share,
                    "t": t,
                    "offered": offered,
                    "records": records - failed,
                    "failed_records": failed,
                    "produced": offered if not failed else _acked_events(acked, events, scenario),
                    "behind_s": max(0.0, time.time() - (second_start + 1)),
                    "generate_s": generate_s,
                    "injected": dict(model.injected),
                    "samples": samples,
                }
            )
            t += 1
        await producer.flush()
    finally:
        await producer.stop()
        stats.put({"share": job.share, "done": True, "injected": dict(model.injected)})


def _acked_events(acked: list[Any], events: dict[str, list], scenario: Scenario) -> int:
    """Events in acknowledged records when some sends failed (approximate by records)."""
    ok = sum(not isinstance(a, Exception) for a in acked)
    total = sum(len(v) for v in events.values())
    return total * ok // max(len(acked), 1)
