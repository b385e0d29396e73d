"""Spend in, ROI out, and the product list, through a real broker: the fifth input
topic is read, validated (a bad spend event dead-lettered), and a room's spend, ROI and
products match a count made here, across a SIGKILL and restart of the worker in the
middle (replayed records included)."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict

import orjson
import pytest

from .conftest import Stack, room_value, wait_until

pytestmark = pytest.mark.integration


PRODUCTS = ("sku-a", "sku-b", "sku-c")


class ProductCount:
    """The product list's figures, counted here from what is produced."""

    def __init__(self) -> None:
        self.carts: dict[str, int] = defaultdict(int)
        self.carters: dict[str, set[str]] = defaultdict(set)
        self.orders: dict[str, int] = defaultdict(int)
        self.buyers: dict[str, set[str]] = defaultdict(set)
        self.gmv: dict[str, float] = defaultdict(float)

    def expected(self) -> dict[str, tuple]:
        return {
            p: (
                self.carts[p],
                len(self.carters[p]),
                self.orders[p],
                len(self.buyers[p]),
                self.gmv[p],
            )
            for p in PRODUCTS
        }


def product_list(port: int, room: str) -> dict[str, tuple]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/rooms/{room}", timeout=5) as r:
        rows = orjson.loads(r.read())["room"]["products"]["session"]
    return {
        row["product_id"]: (
            row["cart_adds"],
            row["carters"],
            row["orders"],
            row["buyers"],
            row["gmv_yuan"],
        )
        for row in rows
    }


def test_spend_roi_and_products_are_exact_across_a_restart(stack: Stack):
    worker = stack.worker(LIVEROOM_CHECKPOINT_INTERVAL_SECONDS="1")
    worker.wait_ready()
    now = int(time.time() * 1000)
    room = "roi-room"
    count = ProductCount()

    def order(i: int, amount: float) -> dict:
        product = PRODUCTS[i % 3]
        count.orders[product] += 1
        count.buyers[product].add(f"u{i}")
        count.gmv[product] += amount
        return {
            "event_id": f"o{i}",
            "room_id": room,
            "user_id": f"u{i}",
            "ts": now + i,
            "order_id": f"o{i}",
            "product_id": product,
            "amount": amount,
        }

    def cart(i: int) -> dict:
        product, user = PRODUCTS[i % 3], f"u{i % 7}"  # users cart more than one product
        count.carts[product] += 1
        count.carters[product].add(user)
        return {
            "event_id": f"k{i}",
            "room_id": room,
            "user_id": user,
            "ts": now + i,
            "product_id": product,
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
    stack.produce("carts", [cart(i) for i in range(40)])
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
    # Sent after the last checkpoint, before the kill: folded, then replayed on restart.
    stack.produce("carts", [cart(i) for i in range(40, 60)])
    stack.flush()
    worker.kill()
    stack.produce("spend", [spend(10 + i, 25.0) for i in range(4)])
    stack.produce("spend", [spend(0, 40.0)])  # a retry of one already counted
    stack.produce("orders", [order(i, 30.0) for i in range(20, 30)])
    stack.flush()
    restarted = stack.worker()
    restarted.wait_ready()

    def exact() -> bool:
        samples = restarted.scrape()
        assert room_value(samples, "liveroom_spend_yuan_total", room) == 300.0
        assert room_value(samples, "liveroom_gmv_yuan_total", room) == 1300.0
        assert room_value(samples, "liveroom_roi", room, window="session") == pytest.approx(
            1300 / 300
        )
        return product_list(restarted.port, room) == count.expected()

    wait_until(exact, 60, "spend, ROI and products exact after the restart")
    assert count.expected()["sku-a"] == (20, 7, 10, 10, 440.0)  # the count itself adds up
