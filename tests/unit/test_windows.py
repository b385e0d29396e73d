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
    assert sorted(seen.last) == ["d", "e", "f"]
    seen.touch("z", 90)  # a late key below the cursor is still expired later
    seen.expire(200)
    assert len(seen) == 0


def test_last_seen_survives_a_far_watermark_jump_and_round_trips():
    seen = LastSeen(horizon_s=10)
    seen.touch("a", 5)
    seen.touch("b", 1_000_000)
    seen.expire(1_000_000)
    assert list(seen.last) == ["b"]
    copy = LastSeen(horizon_s=10)
    copy.load(seen.snapshot())
    assert copy.last == seen.last and copy.count_since(0) == 1


def test_second_sums_window_and_expiry():
    sums = SecondSums(width=2, horizon_s=300)
    sums.row(10)[0] += 1
    sums.row(70)[0] += 2
    sums.row(70)[1] += 5.5
    assert sums.sum_since(11) == [2, 5.5]
    assert sums.sum_since(10) == [3, 5.5]
    sums.expire(310)
    assert sums.sum_since(0) == [2, 5.5]
