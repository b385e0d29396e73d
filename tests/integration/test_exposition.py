"""The exposition of a live worker passes `promtool check metrics`."""

import subprocess
import time
import urllib.request

import pytest

from .conftest import require_tool, total, wait_until

pytestmark = pytest.mark.integration


def test_promtool_accepts_the_exposition(stack):
    """With the opt-in per-product series too."""
    worker = stack.worker(LIVEROOM_PRODUCT_SERIES_PER_ROOM="2")
    worker.wait_ready()
    now = int(time.time() * 1000)
    stack.produce(
        "views",
        [
            {"event_id": f"v{i}", "room_id": f"r{i % 3}", "user_id": f"u{i}", "ts": now}
            for i in range(30)
        ],
    )
    stack.produce(
        "carts",
        [
            {
                "event_id": f"c{i}",
                "room_id": "r0",
                "user_id": f"u{i}",
                "ts": now,
                "product_id": f"sku-{i % 3}",
            }
            for i in range(6)
        ],
    )
    stack.produce(
        "orders",
        [
            {
                "event_id": f"o{i}",
                "room_id": "r0",
                "user_id": f"u{i}",
                "ts": now,
                "order_id": f"o{i}",
                "product_id": f"sku-{i % 3}",
                "amount": 10.0 * (i + 1),
            }
            for i in range(3)
        ],
    )
    stack.produce("orders", b"garbage")
    stack.flush()
    wait_until(
        lambda: total(worker.scrape(), "liveroom_events_processed_total") == 39,
        30,
        "events processed",
    )
    wait_until(
        lambda: total(worker.scrape(), "liveroom_product_gmv_yuan_total") == 50.0,
        30,
        "the top 2 products' GMV (sku-2 30 + sku-1 20) exported",
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as r:
        exposition = r.read()
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"NaN" not in exposition


def test_stale_rooms_leave_and_the_room_cap_holds(stack):
    from .conftest import room_value, rooms_in

    worker = stack.worker(LIVEROOM_ROOM_TTL_SECONDS="4", LIVEROOM_MAX_ROOMS="2")
    worker.wait_ready()
    now = int(time.time() * 1000)
    for room, viewers in (("big", 5), ("mid", 3), ("small", 1)):
        stack.produce(
            "views",
            [
                {"event_id": f"{room}{i}", "room_id": room, "user_id": f"u{i}", "ts": now}
                for i in range(viewers)
            ],
        )
    stack.flush()
    samples = wait_until(
        lambda: (s := worker.scrape()) and rooms_in(s) == {"big", "mid"} and s,
        30,
        "the two busiest rooms exported",
    )
    assert total(samples, "liveroom_rooms_unexported") == 1
    assert total(samples, "liveroom_live_rooms") == 3
    assert room_value(samples, "liveroom_views_total", "big") == 5

    def keep_big_alive():
        stack.produce(
            "views",
            {
                "event_id": f"big-{time.monotonic_ns()}",
                "room_id": "big",
                "user_id": "u0",
                "ts": int(time.time() * 1000),
            },
        )
        stack.flush()
        s = worker.scrape()
        return s if rooms_in(s) == {"big"} and total(s, "liveroom_live_rooms") == 1 else None

    samples = wait_until(keep_big_alive, 30, "idle rooms gone after the TTL", interval=1.0)
    assert total(samples, "liveroom_rooms_unexported") == 0
