"""Events in through a real broker (produced by confluent-kafka), a real worker, exact
values out of /metrics, dead letters read back with kcat."""

from __future__ import annotations

import base64
import subprocess
import time

import orjson
import pytest

from .conftest import kcat_env, require_tool, room_value, total, wait_until

pytestmark = pytest.mark.integration


def make_events(now: int) -> list[tuple[str, object, bytes | None]]:
    def e(event_id, room, user, **fields):
        return {"event_id": event_id, "room_id": room, "user_id": user, "ts": now, **fields}

    A, B = "r-alpha", "r-beta"
    return [
        ("views", e("v1", A, "u1"), A.encode()),
        ("views", [e("v2", A, "u2"), e("v3", A, "u3", action="enter"), {"room_id": A}], None),
        ("views", e("v1", A, "u1"), A.encode()),  # duplicate of v1
        ("views", [e("v4", A, "u4", type="view"), e("v5", A, "u1")], b"wrong-key"),
        ("views", e("v6", A, "u2", action="leave"), A.encode()),
        ("views", e("v7", B, "u9"), B.encode()),
        ("views", e("v8", A, "u5", type="order"), None),  # type_mismatch
        ("views", e("v9", A, "u5", ts=now - 2 * 86_400_000), None),  # ts_out_of_range
        ("comments", e("c1", A, "u1", text="主播好 👍"), None),
        ("comments", [e("c2", A, "u3", text="is it real?")], None),
        ("comments", b'{"event_id": "c3", "text": "\xff\xfe"}', None),  # invalid_utf8
        ("carts", [e("k1", A, "u1", product_id="p1"), e("k2", A, "u3", product_id="p2")], None),
        ("carts", e("k3", A, "u4", product_id="p1", quantity=2), None),
        ("carts", e("k4", A, "u4", product_id="p1", quantity="2"), None),  # wrong_type
        ("orders", e("o1", A, "u1", order_id="1", product_id="p1", amount=100), None),
        ("orders", e("o2", A, "u3", order_id="2", product_id="p2", amount=50.5), None),
        (
            "orders",
            e("o3", A, "u1", order_id="1", product_id="p1", amount=20, status="refunded"),
            None,
        ),
        ("orders", e("o4", B, "u9", order_id="4", product_id="p7", amount=10), None),
        ("orders", b"not json", None),  # invalid_json
    ]


def test_metrics_exact_rejects_dead_lettered_and_duplicates_counted_once(stack):
    worker = stack.worker()
    worker.wait_ready()
    for kind, value, key in make_events(int(time.time() * 1000)):
        stack.produce(kind, value, key)
    stack.flush()

    def settled():
        samples = worker.scrape()
        done = total(samples, "liveroom_events_processed_total") == 16
        done = done and total(samples, "liveroom_events_rejected_total") == 6
        # The counters move as events fold; a room's figures with its next snapshot (a
        # quiet room's may come LIVEROOM_SNAPSHOT_QUIET_SECONDS later): wait for both.
        done = done and room_value(samples, "liveroom_orders_total", "r-beta")
        done = done and room_value(samples, "liveroom_orders_total", "r-alpha") == 2
        return samples if done and room_value(samples, "liveroom_views_total", "r-alpha") else None

    m = wait_until(settled, 30, "all events processed")
    A = "r-alpha"
    assert room_value(m, "liveroom_views_total", A) == 5
    assert room_value(m, "liveroom_unique_viewers", A, window="session") == 4
    assert room_value(m, "liveroom_unique_viewers", A, window="1m") == 4
    assert room_value(m, "liveroom_online_viewers", A) == 3  # u2 left
    assert room_value(m, "liveroom_comments_total", A) == 2
    assert room_value(m, "liveroom_cart_adds_total", A) == 3
    assert room_value(m, "liveroom_orders_total", A) == 2
    assert room_value(m, "liveroom_gmv_yuan_total", A) == pytest.approx(150.5)
    assert room_value(m, "liveroom_refunds_yuan_total", A) == pytest.approx(20.0)
    for window in ("1m", "5m", "session"):
        assert room_value(m, "liveroom_buyers", A, window=window) == 2
        assert room_value(m, "liveroom_interaction_ratio", A, window=window) == pytest.approx(0.5)
        assert room_value(m, "liveroom_cart_ratio", A, window=window) == pytest.approx(0.75)
        assert room_value(m, "liveroom_conversion_ratio", A, window=window) == pytest.approx(0.5)
        assert room_value(m, "liveroom_cart_to_order_ratio", A, window=window) == pytest.approx(
            2 / 3
        )
        assert room_value(m, "liveroom_gpm_yuan", A, window=window) == pytest.approx(30_100.0)
        assert room_value(m, "liveroom_uv_value_yuan", A, window=window) == pytest.approx(37.625)
        assert room_value(
            m, "liveroom_average_order_value_yuan", A, window=window
        ) == pytest.approx(75.25)
    B = "r-beta"
    assert room_value(m, "liveroom_gmv_yuan_total", B) == pytest.approx(10.0)
    assert room_value(m, "liveroom_conversion_ratio", B, window="session") == 1.0
    assert room_value(m, "liveroom_cart_to_order_ratio", B, window="session") is None  # 0 carts

    views, comments = stack.topic("views"), stack.topic("comments")
    carts, orders = stack.topic("carts"), stack.topic("orders")
    rejected = {
        (dict(labels)["topic"], dict(labels)["reason"]): v
        for (name, labels), v in m.items()
        if name == "liveroom_events_rejected_total"
    }
    assert rejected == {
        (views, "missing_field"): 1,  # the array element without event_id
        (views, "type_mismatch"): 1,
        (views, "ts_out_of_range"): 1,
        (comments, "invalid_utf8"): 1,
        (carts, "wrong_type"): 1,
        (orders, "invalid_json"): 1,
    }
    assert total(m, "liveroom_duplicate_events_total") == 1

    # The dead-letter topic, read with a real Kafka tool.
    kcat = require_tool("kcat")
    out = subprocess.run(
        [
            kcat,
            "-b",
            stack.bootstrap,
            "-C",
            "-t",
            stack.topic("deadletter"),
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
        ],
        env=kcat_env(),
        capture_output=True,
        timeout=30,
        check=True,
    ).stdout
    letters = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    assert sorted((d["source_topic"], d["reason"]) for d in letters) == sorted(
        (t, r) for (t, r), n in rejected.items() for _ in range(int(n))
    )
    element = next(d for d in letters if d["index"] is not None)
    assert element["reason"] == "missing_field" and element["index"] == 2
    assert orjson.loads(element["value"]) == {"room_id": "r-alpha"}
    utf8 = next(d for d in letters if d["reason"] == "invalid_utf8")
    assert utf8["value"] is None
    assert b"\xff\xfe" in base64.b64decode(utf8["value_base64"])


def test_commits_advance_past_every_processed_record(stack):
    """Input offsets are committed to the end of every partition once the records are
    processed (and their room-events are durable)."""
    worker = stack.worker()
    worker.wait_ready()
    for kind, value, key in make_events(int(time.time() * 1000)):
        stack.produce(kind, value, key)
    stack.flush()
    ends = {}
    for kind in ("views", "comments", "carts", "orders"):
        for p, count in enumerate(stack.record_counts(kind)):
            ends[(stack.topic(kind), p)] = count

    def all_committed():
        got = stack.committed(list(ends))
        return all((got[tp] or 0) == end for tp, end in ends.items())

    wait_until(all_committed, 30, "input offsets committed to the end")
