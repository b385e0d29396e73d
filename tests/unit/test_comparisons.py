"""Window-over-window change and peer percentiles: the definitions in README.md."""

import random
import sys

import pytest

from streams.exporter import build_registry
from streams.rooms.metrics import snapshot
from streams.rooms.peers import MIN_PEERS, PeerIndex, band_of
from streams.rooms.room import RoomSettings, RoomState
from streams.rooms.trend import KEPT_MINUTES, MinuteMarks

from .helpers import comment, enter, leave, order
from .test_exporter import samples

MINUTE = 60_000
START = 1_763_000_040_000  # a whole minute


def room_over(minutes, views_per_minute, gmv_per_order=10.0):
    """A room with views_per_minute(m) enters and one order per minute, minute by minute."""
    room = RoomState("r", RoomSettings())
    user = 0
    for m in range(minutes):
        for k in range(views_per_minute(m)):
            user += 1
            room.apply(enter(f"u{user}", ts=START + m * MINUTE + k * 10))
        room.apply(order(f"u{user}", gmv_per_order, ts=START + m * MINUTE + 30_000))
    return room


def test_change_is_the_last_ten_whole_minutes_over_the_ten_before():
    room = room_over(25, lambda m: m + 1)  # minute m has m+1 entries
    # Into minute 25 of the session: the spans are minutes 15-24 and 5-14.
    room.apply(enter("late-comer", ts=START + 25 * MINUTE))
    change = snapshot(room)["change"]
    recent, before = sum(range(16, 26)), sum(range(6, 16))
    assert change["views"] == pytest.approx(recent / before)
    assert change["orders"] == pytest.approx(1.0)  # one order a minute throughout
    assert change["gmv_yuan"] == pytest.approx(1.0)
    assert change["gpm_yuan"] == pytest.approx((10 * 10 / recent) / (10 * 10 / before))
    assert "comments" not in change  # 0 in both spans: absent, never a division by zero
    assert "cart_adds" not in change


def test_change_is_absent_until_the_room_has_twenty_minutes():
    room = room_over(20, lambda m: 5)
    assert snapshot(room)["change"] == {}  # watermark in minute 19: no mark 20 minutes back
    room.apply(enter("next", ts=START + 20 * MINUTE))
    assert snapshot(room)["change"]["views"] == pytest.approx(1.0)


def test_idle_minutes_count_as_zero():
    room = RoomState("r", RoomSettings())
    for m in range(10):
        for k in range(2):
            room.apply(enter(f"u{m}-{k}", ts=START + m * MINUTE + k))
    for k in range(10):  # then only minute 15 has entries
        room.apply(enter(f"v{k}", ts=START + 15 * MINUTE + k))
    room.apply(enter("x", ts=START + 20 * MINUTE))
    assert snapshot(room)["change"]["views"] == pytest.approx(10 / 20)


def test_online_viewers_compare_means_of_the_minute_marks():
    room = RoomState("r", RoomSettings())
    for i in range(10):
        room.apply(enter(f"u{i}", ts=START + i))
    for i in range(5):  # half leave in minute 5; the rest stay active
        room.apply(leave(f"u{i}", ts=START + 5 * MINUTE + i))
    for m in range(1, 20):
        for i in range(5, 10):
            room.apply(comment(f"u{i}", ts=START + m * MINUTE + 30_000))
    room.apply(enter("x", ts=START + 20 * MINUTE))
    # Online as minutes 1-10 began: 10 for 1-5, then 5; as minutes 11-20 began: 5.
    assert snapshot(room)["change"]["online_viewers"] == pytest.approx(5 / 7.5)


def test_marks_survive_a_checkpoint():
    room = room_over(22, lambda m: 2 + m % 3)
    restored = RoomState("r", RoomSettings())
    restored.load(room.capture_base())
    assert snapshot(restored)["change"] == snapshot(room)["change"] != {}
    # A delta carries the marks only when they moved.
    assert "marks" not in room.capture_delta()
    room.apply(enter("next", ts=START + 23 * MINUTE))
    assert "marks" in room.capture_delta()


def snap(room_id, online, conversion, interaction=0.1, gpm=100.0):
    return {
        "room_id": room_id,
        "online_viewers": online,
        "windows": {
            "5m": {
                "conversion_ratio": conversion,
                "interaction_ratio": interaction,
                "gpm_yuan": gpm,
            }
        },
    }


def test_bands():
    assert [band_of(n) for n in (0, 99, 100, 5_000, 10_000, 1_000_000)] == [
        "0-99",
        "0-99",
        "100-999",
        "1k-9.9k",
        "10k-99k",
        "100k+",
    ]


def test_percentile_is_the_mid_rank_within_the_band():
    index = PeerIndex()
    snaps = [snap(f"r{i}", 500, conversion=i / 100) for i in range(MIN_PEERS - 1)]
    for s in snaps:
        index.observe(s, now=0)
    assert snaps[-1]["peers"] == {}  # four rooms in the band: no percentile yet
    index.observe(snap("big", 50_000, 0.9), now=0)  # another band does not count
    fifth = snap("r4", 500, conversion=0.04)
    index.observe(fifth, now=0)
    assert fifth["band"] == "100-999"
    assert fifth["peers"]["conversion_ratio"] == 1.0  # the highest of five
    lowest = snap("r0", 500, conversion=0.0)
    index.observe(lowest, now=0)
    assert lowest["peers"]["conversion_ratio"] == 0.0
    tie = snap("r2", 500, conversion=0.01)  # r1 has 0.01 too: they share 1.5 of 0-4
    index.observe(tie, now=0)
    assert tie["peers"]["conversion_ratio"] == pytest.approx(1.5 / 4)
    assert tie["peers"]["gpm_yuan"] == pytest.approx(0.5)  # all five equal


def test_a_room_moves_band_and_idle_rooms_leave():
    index = PeerIndex()
    for i in range(5):
        index.observe(snap(f"r{i}", 500, conversion=i / 100), now=float(i))
    moved = snap("r4", 5_000, conversion=0.04)
    index.observe(moved, now=10.0)
    assert moved["peers"] == {}  # alone in 1k-9.9k, and gone from 100-999
    index.expire(horizon=2.0)  # r0 and r1 not observed since
    assert len(index) == 3
    again = snap("r2", 500, conversion=0.02)
    index.observe(again, now=11.0)
    assert again["peers"] == {}  # two rooms left in the band


def test_comparisons_in_the_exposition():
    room = room_over(21, lambda m: 3)
    s = snapshot(room)
    s["peers"] = {"conversion_ratio": 0.25}
    registry, _ = build_registry(lambda: [s], max_rooms=10)
    got = samples(registry)
    assert got[("liveroom_window_change_ratio", (("metric", "views"), ("room_id", "r")))] == 1.0
    assert (
        got[("liveroom_peer_percentile", (("metric", "conversion_ratio"), ("room_id", "r")))]
        == 0.25
    )
    assert ("liveroom_peer_percentile", (("metric", "gpm_yuan"), ("room_id", "r"))) not in got


def test_observing_a_room_again_moves_only_what_changed():
    index = PeerIndex()
    for i in range(5):
        index.observe(snap(f"r{i}", 500, conversion=i / 100), now=0)
    for _ in range(3):  # the same values again: still one entry per room
        again = snap("r2", 500, conversion=0.02)
        index.observe(again, now=1)
        assert again["peers"]["conversion_ratio"] == 0.5
    up = snap("r2", 500, conversion=0.5, interaction=0.1)
    index.observe(up, now=2)
    assert up["peers"] == {"conversion_ratio": 1.0, "interaction_ratio": 0.5, "gpm_yuan": 0.5}
    assert index.percentile("100-999", "conversion_ratio", 0.0) == 0.0


class DictMarks:
    """The marks as a dict of minutes, as they were held until 2026-12-07: the model."""

    def __init__(self):
        self.marks = {}

    def cross(self, old_minute, new_minute, totals):
        first = max(old_minute + 1, new_minute - KEPT_MINUTES + 1)
        if not self.marks:
            first = new_minute
        for minute in range(first, new_minute + 1):
            self.marks[minute] = list(totals)
        self.marks = {m: t for m, t in self.marks.items() if m > new_minute - KEPT_MINUTES}


def test_packed_marks_hold_what_a_dict_of_minutes_held_in_about_a_third_of_the_bytes():
    rng = random.Random(7)
    packed, model = MinuteMarks(), DictMarks()
    minute, totals = 29_383_000, [0.0] * 6
    for _ in range(400):
        step = rng.choice((1, 1, 1, 2, 3, 25))  # a jump past all 21 kept minutes, at times
        totals = [t + rng.randrange(50) for t in totals[:5]] + [float(rng.randrange(900))]
        packed.cross(minute, minute + step, totals)
        model.cross(minute, minute + step, totals)
        minute += step
        assert packed.rows() == [[m, t] for m, t in sorted(model.marks.items())]
        assert [packed.get(m) is not None for m in range(minute - 30, minute + 2)] == [
            m in model.marks for m in range(minute - 30, minute + 2)
        ]
        copy = MinuteMarks()
        copy.load(packed.rows())
        assert copy.rows() == packed.rows() and copy.change(minute) == packed.change(minute)
    assert len(packed) == KEPT_MINUTES  # the last step was not a jump past them all
    # 21 marks: two arrays, ~1.5 kB, where an array, an int and a dict slot a mark took ~3.6.
    assert sys.getsizeof(packed.minutes) + sys.getsizeof(packed.totals) < 1_600
    # A split room's summed marks may miss a minute: looked up, and averaged, without it.
    gappy = MinuteMarks()
    for m in (100, 101, 103):
        gappy.put(m, [0, 0, 0, 0, 0, m])
    assert gappy.get(102) is None and list(gappy.get(103)) == [0, 0, 0, 0, 0, 103]
    assert gappy._mean(100, 103) == pytest.approx((100 + 101 + 103) / 3)
