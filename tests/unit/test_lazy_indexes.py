"""The per-second indexes keep their keys in flat tables (ids hashed) with counts per
second, and expire by a pass over the table. These tests drive them with many moves,
late and shuffled events and expiries, and compare them after every step with a plain
dict that recomputes everything."""

import random

from streams.rooms.flat import hash64, sorted_entries
from streams.rooms.presence import Presence
from streams.rooms.windows import LastSeen, RecentIds


def test_presence_equals_a_recomputed_model_under_disorder_moves_and_restores() -> None:
    rng = random.Random(11)
    horizon = 30
    presence = Presence(horizon)
    model: dict[str, int] = {}  # user -> latest word's time, negative for a leave
    watermark = 100
    for step in range(20_000):
        user = f"u{rng.randrange(300)}"
        ts = (watermark - rng.randrange(40)) * 1000 + rng.randrange(1000)  # up to 40 s late
        prev = model.get(user)
        action = rng.random()
        if action < 0.4:
            presence.word(user, ts, False)
            if prev is None or (ts > prev if prev >= 0 else ts > -prev):
                model[user] = ts
        elif action < 0.7:
            presence.word(user, ts, True)
            if prev is None or (ts >= prev if prev >= 0 else ts > -prev):
                model[user] = -ts
        else:  # a comment, cart add or order: presence, so it can bring a user back
            presence.word(user, ts, False)
            if prev is None or (ts > prev if prev >= 0 else ts > -prev):
                model[user] = ts
        if rng.random() < 0.05:
            watermark += rng.choice((1, 1, 2, 5, 45))
            presence.expire(watermark)
            cutoff = watermark - horizon
            model = {u: v for u, v in model.items() if abs(v) // 1000 > cutoff}
            assert dict(presence.at.items()) == hashed(model), step
        if step % 5_000 == 4_999:  # a restore from a base keeps the same state
            restored = Presence(horizon)
            restored.load(presence.snapshot())
            presence = restored
        assert presence.online == sum(v >= 0 for v in model.values()), step


def test_last_seen_equals_a_recomputed_model_with_keys_moving_often() -> None:
    rng = random.Random(12)
    seen = LastSeen(60, (10, 60))
    model: dict[str, int] = {}
    watermark = 1_000
    for step in range(30_000):
        key = f"k{rng.randrange(200)}"  # few keys, so most touches move a key
        second = watermark - rng.randrange(8)
        seen.touch(key, second)
        model[key] = max(model.get(key, second), second)
        if rng.random() < 0.1:
            watermark += 70 if rng.random() < 0.01 else rng.choice((1, 1, 1, 2, 3))
            seen.expire(watermark)
            model = {k: s for k, s in model.items() if s > watermark - 60}
            assert dict(seen.last.items()) == hashed(model), step
            for length in (10, 60):
                first = watermark - length + 1
                expected = sum(s >= first for s in model.values())
                assert seen.window_count(length, first) == expected, (step, length)
                assert seen.count_since(first) == expected
    # A restore recounts the per-second counts from the table.
    restored = LastSeen(60, (10, 60))
    restored.load(seen.snapshot())
    restored.expire(watermark)
    assert restored.window_count(10, watermark - 9) == seen.window_count(10, watermark - 9)
    assert restored._live == seen._live


def test_recent_ids_remember_ids_for_the_horizon_and_round_trip() -> None:
    rng = random.Random(13)
    ids = RecentIds(60)
    model: dict[str, int] = {}
    watermark = 5_000
    for step in range(30_000):
        key = f"e{rng.randrange(5_000)}"
        # As a room touches them: before its watermark moves (an id may be ahead of it,
        # by more than the horizon), and a late event's id at any age.
        draw = rng.random()
        if draw < 0.01:
            second = watermark - rng.randrange(55, 300)
        elif draw < 0.02:
            second = watermark + rng.choice((1, 3, 61, 200))
        else:
            second = watermark - rng.randrange(5)
        assert (key in ids) == (key in model), step
        assert ids.touch(key, second) == (key not in model), step
        model.setdefault(key, second)
        if second > watermark or rng.random() < 0.02:
            watermark = max(second, watermark + (90 if rng.random() < 0.02 else rng.choice((1, 2))))
            ids.expire(watermark)
            model = {k: s for k, s in model.items() if s > watermark - 60}
            held = dict(ids.first_seen.items())
            live = {k: s for k, s in held.items() if not ids._expired or s > ids._cutoff}
            assert live == hashed(model) and len(ids) == len(model), step
            assert len(held) - len(live) == ids._expired, step  # expired, not yet swept
            assert sum(ids._counts) + ids._older == len(model), step  # each id counted once
    assert sorted_entries(ids.snapshot()) == sorted(hashed(model).items())
    restored = RecentIds(60)
    restored.load(ids.snapshot())
    assert dict(restored.first_seen.items()) == hashed(model) and len(restored) == len(model)
    assert restored.take_changes() == b""
    restored.expire(watermark + 60)  # the per-second counts, recounted, expire them all
    assert len(restored) == 0


def test_the_dedup_index_sweeps_expired_ids_only_when_they_are_a_sixteenth_of_it() -> None:
    """A busy room's 10 minutes of ids: each second some expire, and sweeping the whole
    table each second cost ~7 ms. They stay held (taken as absent) until they are a
    sixteenth of the table; an expired id seen again counts as new."""
    ids = RecentIds(600)
    sweeps = 0
    for second in range(1_000, 2_190):
        for i in range(10):
            assert ids.touch(f"e{second}-{i}", second)
        before = len(ids.first_seen)
        ids.expire(second)
        sweeps += len(ids.first_seen) < before
        assert len(ids) == 10 * min(600, second - 999), second  # (second - 600, second]
        assert ids._expired * 16 < len(ids.first_seen), second
    assert 10 <= sweeps <= 20  # one in ~40 seconds once ids expire (from 1,600), not 600
    assert ids._expired == 300  # swept at 2,159; cutoff now 1,589
    assert "e1589-9" not in ids and ids.first_seen.get("e1589-9") == 1_589 and "e1590-0" in ids
    assert ids.touch("e1589-9", 2_189) and "e1589-9" in ids  # expired: new again
    assert ids._expired == 299 and len(ids) == 6_001
    assert not ids.touch("e1590-0", 2_189)  # within 10 minutes: a repeat


def test_an_id_seen_again_past_the_horizon_is_restored_at_its_new_second() -> None:
    """A delta carries the id's new second; a restore from the older base keeps the
    later one (loads take the max), so a retry of the retry is still a repeat."""
    ids = RecentIds(60)
    assert ids.touch("x", 100) and ids.touch("y", 101)
    base = ids.snapshot()
    ids.expire(200)  # both expired; 2 of 2 is more than a sixteenth: swept
    assert ids.touch("x", 200)  # the same id again, 100 s later: new
    delta = ids.take_changes()
    restored = RecentIds(60)
    restored.load(base)
    restored.load(delta)
    assert restored.first_seen.get("x") == 200
    assert not restored.touch("x", 210)  # within 60 s of its second sighting
    assert restored.touch("y", 210) and len(restored) == 2


def hashed(model: dict[str, int]) -> dict[int, int]:
    return {hash64(key): value for key, value in model.items()}
