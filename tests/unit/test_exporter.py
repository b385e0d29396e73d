import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.exporter import build_registry
from streams.rooms.metrics import snapshot
from streams.rooms.room import RoomSettings, RoomState

from .helpers import cart, comment, enter, order


def samples(exposition):
    text = exposition.render().decode()
    assert "NaN" not in text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def room_snapshot(room_id, viewers, orders=0):
    room = RoomState(room_id, RoomSettings())
    for i in range(viewers):
        room.apply(enter(f"u{i}", room=room_id))
    for i in range(orders):
        room.apply(order(f"u{i}", 10.0, room=room_id))
    return snapshot(room)


def test_room_families_and_no_ratio_without_denominator():
    talk = RoomState("talk", RoomSettings())  # a room with a comment and no viewers
    talk.apply(comment("x", room="talk"))
    snaps = [room_snapshot("busy", 4, orders=1), snapshot(talk)]
    registry, _ = build_registry(lambda: snaps, max_rooms=10)
    got = samples(registry)
    assert got[("liveroom_views_total", (("room_id", "busy"),))] == 4
    assert got[("liveroom_gmv_yuan_total", (("room_id", "busy"),))] == 10.0
    assert got[("liveroom_conversion_ratio", (("room_id", "busy"), ("window", "1m")))] == 0.25
    assert got[("liveroom_unique_viewers", (("room_id", "busy"), ("window", "session")))] == 4
    assert ("liveroom_conversion_ratio", (("room_id", "talk"), ("window", "1m"))) not in got
    assert got[("liveroom_comments_total", (("room_id", "talk"),))] == 1
    assert got[("liveroom_live_rooms", ())] == 2


def test_room_cap_keeps_the_busiest_and_counts_the_rest():
    snaps = [room_snapshot(f"r{n}", n) for n in range(1, 6)]
    registry, _ = build_registry(lambda: snaps, max_rooms=2)
    got = samples(registry)
    exported = {dict(labels)["room_id"] for (name, labels) in got if name == "liveroom_views_total"}
    assert exported == {"r5", "r4"}
    assert got[("liveroom_rooms_unexported", ())] == 3


def test_health_metrics_and_lag_histogram():
    registry, health = build_registry(lambda: [], max_rooms=10)
    health.rejected.labels("liveroom.views", "invalid_json").inc(2)
    now_ms = 1_763_000_000_000
    health.lag.observe_event_times(now_ms, [now_ms - 10, now_ms - 300, now_ms - 7000])
    got = samples(registry)
    key = (
        "liveroom_events_rejected_total",
        (("reason", "invalid_json"), ("topic", "liveroom.views")),
    )
    assert got[key] == 2
    assert got[("liveroom_event_lag_seconds_bucket", (("le", "0.05"),))] == 1
    assert got[("liveroom_event_lag_seconds_bucket", (("le", "0.5"),))] == 2
    assert got[("liveroom_event_lag_seconds_count", ())] == 3


def test_consumer_lag_gauge_per_partition():
    registry, _ = build_registry(lambda: [], 10, lags=lambda: [("liveroom.views", 3, 42)])
    got = samples(registry)
    assert (
        got[("liveroom_consumer_lag_records", (("partition", "3"), ("topic", "liveroom.views")))]
        == 42
    )


def test_rooms_can_be_left_out_for_a_health_probe():
    snaps = [room_snapshot(f"r{n}", n) for n in range(1, 4)]
    exposition, _ = build_registry(lambda: snaps, max_rooms=2)
    text = exposition.render(rooms=False).decode()
    assert "liveroom_live_rooms 3.0" in text and "liveroom_rooms_unexported 1.0" in text
    assert "room_id=" not in text and "process_cpu_seconds_total" in text


def series_count(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_the_series_budget_keeps_the_busiest_rooms_that_fit():
    snaps = [room_snapshot(f"r{n}", n, orders=1) for n in range(1, 41)]
    unlimited, _ = build_registry(lambda: snaps, max_rooms=100)
    whole = unlimited.render().decode()
    per_room = unlimited.rooms.exported_series / 40
    # 4 (with room_shards) + 8 counters (with spend) + 8 windowed gauges x 3 (no
    # cart-to-order, negative, sentiment or ROI without carts, comments and spend; no
    # change or peers yet)
    assert per_room == 36
    budget = series_count(whole) - 10 * 36  # room for all but 10 rooms
    exposition, _ = build_registry(lambda: snaps, max_rooms=100, series_budget=budget)
    text = exposition.render().decode()
    assert series_count(text) <= budget
    got = samples(exposition)
    exported = {dict(labels)["room_id"] for (name, labels) in got if name == "liveroom_views_total"}
    assert exported == {f"r{n}" for n in range(11, 41)}  # the 30 busiest
    assert got[("liveroom_rooms_unexported", ())] == 10
    assert got[("liveroom_live_rooms", ())] == 40


def test_operators_choose_the_room_families():
    snaps = [room_snapshot(f"r{n}", n, orders=1) for n in range(1, 4)]
    families = ["liveroom_online_viewers", "liveroom_conversion_ratio"]
    exposition, _ = build_registry(lambda: snaps, max_rooms=10, families=families)
    got = samples(exposition)
    names = {name for (name, labels) in got if ("room_id", "r1") in labels}
    assert names == {"liveroom_online_viewers", "liveroom_conversion_ratio"}
    assert exposition.rooms.exported_series == 3 * (1 + 3)
    with pytest.raises(ValueError, match="liveroom_nonsense"):
        build_registry(lambda: snaps, max_rooms=10, families=["liveroom_nonsense"])


def shop_snapshot(room_id: str) -> dict:
    """A room selling three products: p3 the most GMV, then p2, then p1."""
    room = RoomState(room_id, RoomSettings())
    for rank, product in enumerate(("p1", "p2", "p3"), start=1):
        for i in range(2 * rank):
            room.apply(cart(f"{product}-{i}", room=room_id, product=product))
        room.apply(order(f"{product}-0", 10.0 * rank, room=room_id, product=product))
    return snapshot(room)


def test_per_product_series_are_off_by_default_and_the_top_k_by_gmv_when_asked():
    snaps = [shop_snapshot("shop")]
    off, _ = build_registry(lambda: snaps, max_rooms=10)
    assert "liveroom_product_" not in off.render().decode()
    on, _ = build_registry(lambda: snaps, max_rooms=10, product_series=2)
    got = samples(on)
    products = {
        (name, dict(labels)["product_id"]): value
        for (name, labels), value in got.items()
        if name.startswith("liveroom_product_")
    }
    assert products == {
        ("liveroom_product_cart_adds_total", "p3"): 6,
        ("liveroom_product_cart_adds_total", "p2"): 4,
        ("liveroom_product_orders_total", "p3"): 1,
        ("liveroom_product_orders_total", "p2"): 1,
        ("liveroom_product_gmv_yuan_total", "p3"): 30.0,
        ("liveroom_product_gmv_yuan_total", "p2"): 20.0,
        ("liveroom_product_cart_to_order_ratio", "p3"): 1 / 6,
        ("liveroom_product_cart_to_order_ratio", "p2"): 1 / 4,
    }
    # They count in the series budget: 8 more than the room's own.
    assert on.rooms.exported_series == off.rooms.exported_series + 8


def test_lag_histogram_buckets_each_event_as_prometheus_would():
    """The bulk observe (sorted times, one bisection per bound) puts every lag where a
    per-event `le` comparison does, the bounds themselves included."""
    from streams.exporter import LAG_BUCKETS, EventLagHistogram

    now_ms = 1_763_000_000_000
    rng = random.Random(7)
    lags_ms = [int(b * 1000) + d for b in LAG_BUCKETS for d in (-1, 0, 1)]
    lags_ms += [rng.randrange(0, 400_000) for _ in range(2000)] + [0, -5]
    histogram = EventLagHistogram()
    histogram.observe_event_times(now_ms, [now_ms - lag for lag in lags_ms[:1000]])
    histogram.observe_event_times(now_ms, [now_ms - lag for lag in lags_ms[1000:]])
    histogram.observe_event_times(now_ms, [])
    expected = [0] * (len(LAG_BUCKETS) + 1)
    for lag in lags_ms:
        slot = next((i for i, b in enumerate(LAG_BUCKETS) if lag <= b * 1000), len(LAG_BUCKETS))
        expected[slot] += 1
    assert histogram.counts == expected
    assert histogram.total == pytest.approx(sum(lags_ms) / 1000)
