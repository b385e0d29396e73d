"""Spend in, ROI out, through a real broker: the fifth input topic is read, validated
(a bad spend event dead-lettered), and a room's spend and ROI match a count made here,
across a SIGKILL and restart of the worker in the middle."""

from __future__ import annotations

import time

import pytest

from .conftest import Stack, room_value, wait_until

pytestmark = pytest.mark.integration


def test_spend_and_roi_are_exact_across_a_restart(stack: Stack):
    worker = stack.worker(LIVEROOM_CHECKPOINT_INTERVAL_SECONDS="1")
    worker.wait_ready()
    now = int(time.time() * 1000)
    room = "roi-room"

    def order(i: int, amount: float) -> dict:
        return {
            "event_id": f"o{i}",
            "room_id": room,
            "user_id": f"u{i}",
            "ts": now + i,
            "order_id": f"o{i}",
            "product_id": "p1",
            "amount": amount,
        }

    def spend(i: int, amount: float) -> dict:
        return {
            "event_id": f"s{i}",
            "room_id": room,
            "ts": now + i,
            "channel": "qianchuan",
            "amount": amount,
        }

    stack.produce("orders", [order(i, 50.0) for i in range(20)])
    stack.produce("spend", [spend(i, 40.0) for i in range(5)])
    stack.produce("spend", {"event_id": "bad", "room_id": room, "ts": now, "amount": 1.0})
    stack.flush()
    wait_until(
        lambda: room_value(worker.scrape(), "liveroom_spend_yuan_total", room) == 200.0,
        30,
        "spend folded",
    )
    key = (
        "liveroom_events_rejected_total",
        (("reason", "missing_field"), ("topic", stack.topic("spend"))),
    )
    wait_until(lambda: worker.scrape().get(key) == 1, 30, "the spend without a channel rejected")
    time.sleep(2)  # a checkpoint covers it
    worker.kill()
    stack.produce("spend", [spend(10 + i, 25.0) for i in range(4)])
    stack.produce("spend", [spend(0, 40.0)])  # a retry of one already counted
    stack.flush()
    restarted = stack.worker()
    restarted.wait_ready()

    def exact() -> bool:
        samples = restarted.scrape()
        assert room_value(samples, "liveroom_spend_yuan_total", room) == 300.0
        assert room_value(samples, "liveroom_gmv_yuan_total", room) == 1000.0
        assert room_value(samples, "liveroom_roi", room, window="session") == pytest.approx(
            1000 / 300
        )
        return True

    wait_until(exact, 60, "spend and ROI exact after the restart")
