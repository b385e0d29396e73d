"""A worker that starts behind its input reads the input partitions evenly in time:
two minutes of views and of comments waiting for it, read whole, would put one of the
two topics far behind the room's watermark and all of its events would be late."""

from __future__ import annotations

import time

import orjson
import pytest

from .conftest import room_value, total, wait_until

pytestmark = pytest.mark.integration

ROOM = "r-paced"
SECONDS = 120
VIEWS_PER_SECOND = 10


def test_a_backlog_of_two_topics_is_folded_in_time_order_with_no_late_event(stack):
    start_ms = int(time.time() * 1000) - (SECONDS + 10) * 1000
    produce = stack.producer.produce
    for second in range(SECONDS):
        ts = start_ms + second * 1000
        views = [
            {"event_id": f"v{second}-{i}", "room_id": ROOM, "user_id": f"u{second}-{i}", "ts": ts}
            for i in range(VIEWS_PER_SECOND)
        ]
        comment = {
            "event_id": f"c{second}",
            "room_id": ROOM,
            "user_id": f"u{second}-0",
            "ts": ts,
            "text": "主播好",
        }
        # Each topic's records on one partition, stamped with their events' time.
        produce(stack.topic("views"), orjson.dumps(views), partition=0, timestamp=ts)
        produce(stack.topic("comments"), orjson.dumps(comment), partition=1, timestamp=ts)
        stack.producer.poll(0)
    stack.flush()

    worker = stack.worker()  # starts with the whole backlog waiting
    worker.wait_ready()
    events = SECONDS * (VIEWS_PER_SECOND + 1)

    def folded():
        samples = worker.scrape()
        done = total(samples, "liveroom_events_processed_total") == events
        # and the room's snapshot taken after the last of them
        done = done and room_value(samples, "liveroom_views_total", ROOM) == events - SECONDS
        done = done and room_value(samples, "liveroom_comments_total", ROOM) == SECONDS
        return samples if done else None

    m = wait_until(folded, 60, "the backlog folded")
    assert total(m, "liveroom_late_events_total") == 0
    # The last minute of event time holds 60 seconds of both topics, as produced.
    assert room_value(m, "liveroom_unique_viewers", ROOM, window="1m") == 60 * VIEWS_PER_SECOND
    assert room_value(m, "liveroom_unique_viewers", ROOM, window="5m") == events - SECONDS
    assert room_value(m, "liveroom_interaction_ratio", ROOM, window="1m") == pytest.approx(0.1)
