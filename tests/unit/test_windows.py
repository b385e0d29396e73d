from streams.rooms.windows import LastSeen, SecondSums


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
    length, first, _ = room.recent_viewers._windows[0]
    assert first == room.watermark_ms // 1000 - length + 1
    assert room.sums._windows[0][1] == room.watermark_ms // 1000 - 60 + 1
