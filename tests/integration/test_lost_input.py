"""An input topic deleted and created again under a running worker (the embedded
broker has no retention, so this is the out-of-range case it can provoke): the worker
logs it, reads the new topic from its start, folds its records (their offsets start
over below what it had folded) and folds nothing twice."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .conftest import PARTITIONS, Stack, room_value, wait_until

pytestmark = pytest.mark.integration


def views(prefix: str, n: int, now: int) -> list[dict]:
    return [
        {
            "event_id": f"{prefix}{i}",
            "room_id": "recreated",
            "user_id": f"{prefix}u{i}",
            "ts": now + i,
        }
        for i in range(n)
    ]


async def recreate(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        for _ in range(50):  # deletion completes asynchronously
            if topic not in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


def test_an_input_topic_created_again_is_read_from_its_start(stack: Stack):
    worker = stack.worker()
    worker.wait_ready()
    now = int(time.time() * 1000)
    topic = stack.topic("views")
    for event in views("old", 40, now):  # one record each: positions well past 5
        stack.produce("views", event, key=b"recreated")
    stack.flush()
    wait_until(
        lambda: room_value(worker.scrape(), "liveroom_views_total", "recreated") == 40,
        30,
        "the old topic folded",
    )
    asyncio.run(recreate(stack.bootstrap, topic))
    for event in views("new", 5, now + 1000):  # the new log ends below the old position
        stack.produce("views", event, key=b"recreated")
    stack.flush()
    wait_until(
        lambda: room_value(worker.scrape(), "liveroom_views_total", "recreated") == 45,
        60,
        "the new topic's records folded, none skipped as replays",
    )
    time.sleep(3)
    samples = worker.scrape()
    assert room_value(samples, "liveroom_views_total", "recreated") == 45  # nothing twice
    assert samples[("liveroom_input_records_lost_total", (("topic", topic),))] == 0
    log = worker.log_path.read_text(errors="replace")
    assert "was created again" in log and "Traceback" not in log
