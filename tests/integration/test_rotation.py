"""Rotating the embedded broker's topics under a live worker (issue 39: an embedded
default that can run for days): the state moves whole to a new generation of topics,
the old one is deleted, and the figures go on exactly, duplicates across the change
included."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from streams.demo_rotation import Generation, rotate

from .conftest import Stack, room_value, wait_until

pytestmark = pytest.mark.integration
ROOM = "rotating-room"


def views(first: int, last: int, now: int) -> list[dict]:
    return [
        {"event_id": f"v{i}", "room_id": ROOM, "user_id": f"u{i}", "ts": now + i}
        for i in range(first, last)
    ]


def test_a_rotation_moves_the_state_whole_and_deletes_the_old_topics(stack: Stack):
    workers = [stack.worker()]
    workers[0].wait_ready()
    now = int(time.time() * 1000)
    stack.produce("views", views(0, 100, now), ROOM.encode())
    stack.flush()
    wait_until(
        lambda: room_value(workers[0].scrape(), "liveroom_views_total", ROOM) == 100,
        30,
        "the first generation folded",
    )

    def start_worker(topics: dict[str, str]):
        workers.append(stack.worker(**topics))
        return workers[-1].process

    async def rotation() -> Generation:
        gen = Generation(stack.settings)
        gen.paused.set()  # no simulator here: nothing to pause
        await rotate(gen, workers[0].process, start_worker, Console(quiet=True))
        return gen

    gen = asyncio.run(rotation())
    assert gen.number == 1 and gen.settings.topic_views == stack.topic("views") + ".g1"
    restarted = workers[-1]
    restarted.wait_ready()
    # The new generation: 50 new viewers, and 10 events sent again (a client retry
    # across the change): duplicates, as the carried dedup ids know.
    value = orjson.dumps(views(100, 150, now) + views(90, 100, now))
    stack.producer.produce(gen.settings.topic_views, value, key=ROOM.encode())
    stack.flush()

    def exact() -> bool:
        samples = restarted.scrape()
        return (
            room_value(samples, "liveroom_views_total", ROOM) == 150
            and room_value(samples, "liveroom_unique_viewers", ROOM, window="session") == 150
            and room_value(samples, "liveroom_online_viewers", ROOM) == 150
        )

    wait_until(exact, 60, "views, UV and online exact after the rotation")

    async def topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    names = asyncio.run(topics())
    assert stack.topic("views") not in names and stack.topic("room_state") not in names
    assert gen.settings.topic_room_state in names
