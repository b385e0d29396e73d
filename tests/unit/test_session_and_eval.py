"""The session model's shape and labels, and the alert evaluation on a small run."""

from __future__ import annotations

import random

from streams.anomaly.eval import evaluate, render
from streams.traffic.session import (
    BOT_FLOOD,
    CHECKOUT_BROKEN,
    PRODUCT_LINK_BROKEN,
    STREAM_CUT,
    Incident,
    SessionShape,
    random_session,
)


def test_session_ramps_up_plateaus_and_decays() -> None:
    shape = SessionShape(duration_s=3600, ramp_s=300, decay_s=600)
    assert shape.audience(0) == 0.1
    assert shape.audience(150) == 0.55
    assert shape.audience(1000) == 1.0
    assert 0.02 < shape.audience(3599) < 0.05
    assert shape.audience(3600) == 0.0


def test_incidents_change_exactly_their_series_in_their_window() -> None:
    shape = SessionShape(
        duration_s=3600,
        ramp_s=0,
        decay_s=1,
        incidents=[
            Incident(STREAM_CUT, 100, 200),
            Incident(CHECKOUT_BROKEN, 300, 400),
            Incident(BOT_FLOOD, 500, 600),
        ],
    )
    cut, broken, flood, normal = (shape.factors(t) for t in (150, 350, 550, 700))
    assert (cut.entries, cut.comments, cut.carts, cut.orders) == (0, 0, 0, 0)
    assert broken.orders == 0 and broken.carts == 1 and broken.entries == 1
    assert flood.comments == 12 and flood.entries == 1
    assert (normal.entries, normal.comments, normal.orders) == (1, 1, 1)


def test_products_follow_zipf_launches_list_new_ones_and_a_broken_link_is_one_product() -> None:
    shape = SessionShape(
        duration_s=3600,
        launches=[(1000.0, 30.0, 2.5)],
        incidents=[Incident(PRODUCT_LINK_BROKEN, 2000, 2300, product=8)],
    )
    before, after, broken = (shape.product_mix(t) for t in (999, 1000, 2100))
    assert len(before.weights) == 9 and before.weights[8] == 0  # listed at its launch
    assert before.weights[0] == 2 * before.weights[1] == 8 * before.weights[7]
    assert after.weights[8] == max(after.weights) and abs(sum(after.shares()) - 1) < 1e-9
    assert broken.broken == {8} and not after.broken
    assert shape.factors(2100).orders == 1  # the room as a whole still pays
    for seed in range(20):
        s = random_session(random.Random(seed), 3600, incident=PRODUCT_LINK_BROKEN)
        (incident,) = s.incidents
        weights = s.product_mix(incident.start_s).weights
        assert weights[incident.product] >= sorted(weights)[-2]  # one of the two best
        assert 240 <= incident.end_s - incident.start_s <= 480


def test_random_sessions_are_reproducible_and_keep_sales_off_incidents() -> None:
    a = random_session(random.Random(3), 3600, incident=STREAM_CUT, flash_sale=True)
    b = random_session(random.Random(3), 3600, incident=STREAM_CUT, flash_sale=True)
    assert a == b
    for seed in range(50):
        shape = random_session(random.Random(seed), 3600, incident=BOT_FLOOD, flash_sale=True)
        (incident,) = shape.incidents
        (sale,) = shape.flash_sales
        assert incident.start_s >= 600 and 120 <= incident.end_s - incident.start_s <= 300
        assert not incident.start_s - 120 < sale[0] < incident.end_s + 60


def test_evaluation_of_a_small_run_finds_the_incidents() -> None:
    report = evaluate(rooms=12, hours=0.75, seed=4)
    assert report["incidents"] == 11  # one room in 7 has none
    assert report["overall"]["recall"] >= 0.9
    assert report["false_alarms_per_room_hour"] <= 0.5
    assert set(report["by_kind"]) == {
        "stream_cut",
        "checkout_broken",
        "bot_flood",
        "conversion_collapse",
        "negative_wave",
        "product_link_broken",
    }
    text = render(report)
    assert "| stream_cut |" in text and "false alarms" in text
    assert report["tail"]["rooms"] == 0 and "long tail" not in text


def test_the_long_tail_of_small_rooms_opening_with_a_rush_pages_nobody() -> None:
    """Rooms of 10-300 viewers whose audience arrives in their first seconds: 2 false
    ViewerDrops in these 17 room-hours (2-3 for seeds 1-3), where the code before the
    level's warm start paged 79 (66-79)."""
    report = evaluate(rooms=1, hours=0.5, seed=1, tail_rooms=40)
    tail = report["tail"]
    assert tail["rooms"] == 40 and 15 < tail["room_hours"] < 20
    assert tail["false_alarm_kinds"].get("ViewerDrop", 0) <= 5
    assert "long tail: 40 rooms" in render(report)
