import random

import pytest

from streams.rooms.windows import LastSeen, RecentIds, SecondSums


def test_last_seen_counts_distinct_keys_by_latest_second():
    seen = LastSeen(horizon_s=300)
    seen.touch("a", 100)
    seen.touch("b", 150)
    seen.touch("a", 160)  # a moves to its latest second
    seen.touch("b", 120)  # never moves back in time
    assert seen.count_since(151) == 1
    assert seen.count_since(150) == 2
    assert len(seen) == 2


def test_last_seen_expires_whole_seconds_past_the_horizon():
    seen = LastSeen(horizon_s=60)
    for second, key in enumerate("abcdef", start=100):
        seen.touch(key, second)
    seen.expire(162)  # cutoff 102: a, b, c go
    assert [key in seen for key in "abcdef"] == [False] * 3 + [True] * 3
    seen.touch("z", 90)  # a late key below the cursor is still expired later
    seen.expire(200)
    assert len(seen) == 0


def test_last_seen_survives_a_far_watermark_jump_and_round_trips():
    seen = LastSeen(horizon_s=10)
    seen.touch("a", 5)
    seen.touch("b", 1_000_000)
    seen.expire(1_000_000)
    assert len(seen) == 1 and "b" in seen
    copy = LastSeen(horizon_s=10)
    copy.load(seen.snapshot())
    assert copy.last == seen.last and copy.count_since(0) == 1 and "b" in copy


def test_count_rings_take_a_byte_a_second_until_a_second_holds_more() -> None:
    """The per-second counts of the last-seen and dedup indexes start at 8 bits and
    widen to 16 and 32 bits when a second counts more keys; a restore recounts into the
    narrowest type that fits."""
    seen, ids = LastSeen(horizon_s=300, windows=(60,)), RecentIds(horizon_s=60)
    assert (seen.ring_bytes, ids.ring_bytes) == (301, 61)
    seen.expire(100)  # the kept window now starts at second 41
    for i in range(300):
        seen.touch(f"u{i}", 100)
        assert ids.touch(f"e{i}", 100)
    assert (seen.ring_bytes, ids.ring_bytes) == (602, 122)  # 16-bit: 300 > 255
    for i in range(70_000):
        seen.touch(f"v{i}", 101)
    assert seen.ring_bytes == 1204 and seen.count_since(101) == 70_000
    seen.touch("u0", 101)  # moves a key from a second's count to the next one's
    assert (seen.count_since(100), seen.count_since(101), seen.window_count(60, 41)) == (
        70_300,
        70_001,
        70_300,
    )
    copy, copied_ids = LastSeen(horizon_s=300), RecentIds(horizon_s=60)
    copy.load(seen.snapshot())
    copied_ids.load(ids.snapshot())
    assert copy.count_since(101) == 70_001 and copy.ring_bytes == 1204
    assert not copied_ids.touch("e7", 100) and copied_ids.ring_bytes == 122
    seen.expire(401)  # second 101 leaves the horizon: every key and count goes
    assert (len(seen), seen.count_since(0)) == (0, 0)


def test_second_sums_window_and_expiry():
    sums = SecondSums(width=2, horizon_s=300)
    sums.row(10)[0] += 1
    sums.row(70)[0] += 2
    sums.row(70)[1] += 5.5
    assert sums.sum_since(11) == [2, 5.5]
    assert sums.sum_since(10) == [3, 5.5]
    sums.expire(310)
    assert sums.sum_since(0) == [2, 5.5]


def test_kept_windows_equal_a_full_recount_under_disorder_jumps_and_restores():
    """The incremental 1m/5m sums and distinct counts against summing every bucket, after
    every event of a shuffled stream with late events, idle gaps and a restore."""
    import random

    import pytest

    from streams.rooms.room import KEPT_WINDOWS, RoomSettings, RoomState

    from .helpers import T0, cart, comment, enter, order

    rng = random.Random(11)
    settings = RoomSettings(allowed_lateness_ms=5_000)
    room = RoomState("r", settings)
    t = T0
    checked = 0
    for step in range(6_000):
        t += rng.choice((0, 10, 250, 900)) if step % 1500 else 400_000  # idle gaps too
        ts = t - rng.randint(0, 8_000)  # out of order, some beyond the lateness
        user = f"u{rng.randint(0, 300)}"
        maker = rng.choice((enter, enter, comment, cart))
        event = maker(user, ts=ts) if rng.random() > 0.1 else order(user, rng.random() * 100, ts=ts)
        room.apply(event)
        if step == 3_000:  # a restore: windows are recounted, then kept again
            restored = RoomState("r", settings)
            restored.load(room.capture_base())
            restored.settle()
            room = restored
        watermark_s = room.watermark_ms // 1000
        for length in KEPT_WINDOWS:
            first = watermark_s - length + 1
            assert room.sums.window_sum(length, first) == pytest.approx(room.sums.sum_since(first))
            for index in (room.recent_viewers, room.recent_buyers, room.recent_carters):
                assert index.window_count(length, first) == index.count_since(first)
            checked += 1
    assert checked == 12_000
    # The kept path was the one answering (not the fallback).
    # One array of [length, first, count] threes: lists and their ints took ~280 bytes a
    # window, 5.6 MB at 5,000 rooms.
    assert room.recent_viewers._windows.typecode == "q" and len(room.recent_viewers._windows) == 6
    length, first, _ = room.recent_viewers._windows[:3]
    assert first == room.watermark_ms // 1000 - length + 1
    assert room.sums._windows[0][1] == room.watermark_ms // 1000 - 60 + 1
    assert room.sums._windows[0][3].typecode == "d"  # the totals: an array, not floats


@pytest.mark.parametrize(
    ("count_columns", "money_columns", "lateness"),
    # 12: hot rows inside the 10 s window's settled span
    [((), (), 6), ((0, 2), (), 6), ((), (), 12), ((0, 2), (1,), 6)],
)
def test_second_sums_ring_equals_a_dict_of_rows_through_growth_jumps_and_reloads(
    count_columns: tuple[int, ...], money_columns: tuple[int, ...], lateness: int
) -> None:
    """The ring against the plain model it replaced (a dict of rows, expired by the
    watermark): late rows below the oldest, growth from 8 rows to the horizon, jumps
    past the horizon, full expiry, and a copy rebuilt from a base plus deltas. With
    count columns too: 8-bit counts in the ring, widened by a second past 255 (to 16
    bits), then past 65,535 (to 32); and a column of yuan held as fen."""
    import random

    rng = random.Random(5)
    horizon, width = 40, 3
    sums = SecondSums(width, horizon, (10, 40), count_columns, money_columns)
    copy = SecondSums(width, horizon, (10, 40), count_columns, money_columns)
    copy.load(sums.snapshot())
    model: dict[int, list[float]] = {}
    watermark = 1_000
    ring_sizes, typecodes = set(), set()
    for step in range(5_000):
        gap = rng.choice((0, 0, 1, 1, 2, 5)) if step % 700 else rng.choice((45, 300))
        if gap:
            watermark += gap
            sums.advance(watermark, watermark - lateness)
            model = {s: row for s, row in model.items() if s > watermark - horizon}
        second = watermark - rng.randint(0, lateness)
        column = rng.randrange(width)
        if column in count_columns:
            value = {2_000: 300, 3_000: 70_000}.get(step, rng.choice((1, 2, 3)))
        else:
            value = rng.choice((1, 2, 0.25))
        sums.row(second)[column] += value
        model.setdefault(second, [0.0] * width)[column] += value
        ring_sizes.add(sums._rows)
        typecodes.add(sums._planes[0].typecode)
        if step % 50 == 0:  # settled rows straight into the ring, as a restore loads them
            copy.load(sums.take_changes(), watermark - lateness)
            copy.advance(watermark, watermark - lateness)
        for first in (watermark - 9, watermark - 39, watermark - 100):
            expected = [sum(row[i] for s, row in model.items() if s >= first) for i in range(3)]
            assert sums.sum_since(first) == expected
        for length in (10, 40):
            first = watermark - length + 1
            assert sums.window_sum(length, first) == sums.sum_since(first)
        held = [s for s in range(watermark - 99, watermark + 1) if any(sums.get(s) or ())]
        assert held == sorted(s for s, row in model.items() if any(row))
        assert list(sums.get(second)) == model[second]
    # It grew through the powers of two to the horizon (less the hot seconds).
    assert ring_sizes >= ({8, 16, 32, 41} if lateness < 10 else {8, 16, 32})
    if count_columns:  # 8-bit counts until a second held more, then 16, then 32
        assert typecodes == {"B", "H", "i"} and sums._planes[0].typecode == "i"
    if money_columns:  # 0.25 yuan a step: 25 fen, 16 bits once a second holds 11 of them
        assert sums._planes[1].typecode == "H"
    copy.load(sums.take_changes())
    copy.advance(watermark, watermark - lateness)
    assert sorted(copy.snapshot()) == sorted(sums.snapshot())
    sums.expire(watermark + horizon)  # everything behind: the ring is freed
    assert sums.ring_bytes == 0 and sums.sum_since(0) == [0.0] * width


def test_second_sums_freeze_rows_a_horizon_apart_in_any_order():
    """Restored rows come in any order; once settled, one a horizon behind the newest
    settled row counts nowhere (the same expiry drops it) and never overwrites the
    newer row that shares its place in the ring."""
    sums = SecondSums(width=2, horizon_s=40)
    sums.load([[461, [1, 0]], [420, [2, 0]], [455, [4, 0]], [469, [8, 0.5]]])
    sums.advance(469, 465)  # 461, 420 and 455 settle, in that order; 469 stays hot
    assert sums.get(420) is None
    assert sums.sum_since(0) == [13.0, 0.5]
    assert list(sums.get(461) or ()) == [1.0, 0.0]


def test_second_sums_count_columns_take_rows_written_as_doubles():
    """A checkpoint written by the all-doubles ring holds counts as 2.0: they load into
    the 16-bit counts as whole numbers, and the amounts stay exact doubles."""
    sums = SecondSums(width=2, horizon_s=40, count_columns=(0,))
    sums.load([[420, [2.0, 0.5]], [430, [70_000.0, 1.25]]], settled_before=440)
    assert sums.get(420) == [2, 0.5] and sums.get(430) == [70_000, 1.25]
    assert sums.sum_since(0) == [70_002.0, 1.75]
    assert sums.ring_bytes == 16 * 4 + 16 * 8  # 16 rows (11 seconds): 32-bit counts, doubles


def _money_sums() -> SecondSums:
    return SecondSums(width=3, horizon_s=40, windows=(10,), money_columns=(0, 1))


def test_yuan_columns_hold_whole_fen_in_the_narrowest_type_and_sum_exactly():
    """GMV and refunds as whole fen: a column of zeros stays 8-bit, GMV widens as a
    second needs it, and a window of 0.1 + 0.2 a second is 0.3 a second, not the
    doubles' 0.30000000000000004 (the third column stays doubles)."""
    sums = _money_sums()
    for second in range(100, 110):
        row = sums.row(second)
        row[0] += 0.1
        row[0] += 0.2
        row[2] += 0.1
        row[2] += 0.2
    sums.advance(115, 110)  # all ten settle
    assert [p.typecode for p in sums._planes] == ["B", "B", "d"]
    assert sums.get(105) == [0.3, 0.0, 0.30000000000000004]
    assert sums.sum_since(100)[0] == 3.0
    sums.row(112)[0] += 1_234.56  # 123,456 fen: 32 bits
    sums.row(113)[0] += 3e8  # 3e10 fen: 64 bits
    sums.advance(120, 115)
    assert [p.typecode for p in sums._planes] == ["q", "B", "d"]
    assert sums.get(112) == [1_234.56, 0.0, 0.0] and sums.get(113) == [3e8, 0.0, 0.0]
    assert sums.window_sum(10, 111)[0] == 300_001_234.56 == sums.sum_since(111)[0]
    assert sums.ring_bytes == 16 * (8 + 1 + 8)  # 16 rows: 64-bit fen, 8-bit fen, doubles


def test_a_yuan_amount_that_is_not_whole_fen_turns_its_column_into_doubles():
    """Nothing is rounded away: 0.001 yuan makes GMV doubles of yuan for good, with the
    fen already held converted; refunds stay fen."""
    sums = _money_sums()
    sums.row(100)[0] += 19.9
    sums.advance(110, 105)
    sums.row(106)[0] += 0.001
    sums.row(106)[1] += 5.5
    sums.advance(115, 110)
    assert [p.typecode for p in sums._planes] == ["d", "H", "d"]  # 550 fen: 16 bits
    assert sums.get(100) == [19.9, 0.0, 0.0] and sums.get(106) == [0.001, 5.5, 0.0]
    assert sums.sum_since(0)[:2] == [19.901, 5.5]
    copy = _money_sums()
    copy.load(sums.snapshot(), settled_before=110)
    assert copy.get(106) == [0.001, 5.5, 0.0] and copy.sum_since(0) == sums.sum_since(0)


def test_rows_loaded_more_than_a_horizon_apart_land_where_they_belong():
    """A piece whose settled rows span more than the horizon: the ring cannot be sized for
    all at once, so placing the middle ones grows it (8 -> 16 -> 32 rows); each row
    still lands in its own second, and the one a horizon older than the newest counts
    nowhere."""
    sums = SecondSums(width=2, horizon_s=40, money_columns=(1,))
    rows = [[500, [1, 0.5]], [455, [2, 0.25]], [490, [4, 1.0]], [470, [8, 2.0]]]
    sums.load(rows, settled_before=501)
    sums.advance(505, 501)
    assert [sums.get(s) for s in (470, 490, 500)] == [[8.0, 2.0], [4.0, 1.0], [1.0, 0.5]]
    assert sums.get(455) is None and sums.sum_since(0) == [13.0, 3.5]


def test_settled_score_sums_are_held_in_units_of_a_ten_thousandth_in_two_bytes() -> None:
    """The sentiment column was the ring's widest as doubles (8 bytes a second); a
    settled second's score sum now moves by at most half of 1e-4, nothing else does."""
    score = 8  # the room's column of score sums (streams.rooms.room.S_SCORE_SUM)
    sums = SecondSums(9, 300, (60, 300), (0, 1), (4, 5), (score,))
    rng = random.Random(3)
    exact: dict[int, float] = {}
    for second in range(1_000, 1_200):
        sums.advance(second, second - 5)
        for _ in range(rng.randrange(4)):
            s = rng.uniform(-1, 1)  # a comment's score, as a model gives it
            sums.row(second)[score] += s
            exact[second] = exact.get(second, 0.0) + s
    sums.advance(1_210, 1_205)  # every second above settled
    plane = next(p for p in sums._planes if p.columns == (score,))
    assert plane.typecode == "h" and plane.data.itemsize == 2
    for second, total in exact.items():
        if second > 1_210 - 300:
            assert sums.get(second)[score] == round(total * 10_000) / 10_000
    held = sums.window_sum(300, 1_210 - 299)[score]
    assert abs(held - sum(exact.values())) <= 0.5e-4 * len(exact)
    copy = SecondSums(9, 300, (60, 300), (0, 1), (4, 5), (score,))
    copy.load(sums.snapshot(), 1_205)
    copy.advance(1_210, 1_205)
    restored = copy.window_sum(300, 1_210 - 299)  # summed afresh: equal but for residue
    assert restored == pytest.approx(sums.window_sum(300, 1_210 - 299), abs=1e-9)
    sums.row(1_209)  # a hot second: no rounding until it settles
    sums.row(1_211)[score] += 4.0  # past 32,767 units: the plane widens, keeping the rest
    sums.advance(1_220, 1_215)
    assert plane.typecode == "i" and sums.get(1_211)[score] == 4.0
    assert sums.get(1_100)[score] == round(exact[1_100] * 10_000) / 10_000
