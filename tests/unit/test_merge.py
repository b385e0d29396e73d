"""A split room's shards, merged, against an unsplit fold of the same events: every
figure of the snapshot equal when arrival is in order; session totals and distinct
counts equal under any order; windows within the stated bound under disorder."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.rooms.flat import hash64
from streams.rooms.merge import SAMPLES_OVERLAP_S, MergedRoom, shard_partial
from streams.rooms.metrics import snapshot
from streams.rooms.room import RoomSettings, RoomState
from streams.rooms.shards import ShardMap, parse_room_shards

from .helpers import T0, cart, comment, enter, leave, order

SETTINGS = RoomSettings(session_timeout_s=120)


def stream(rng: random.Random, n: int, users: int, rate: float = 40.0) -> list:
    ts, out = T0, []
    for i in range(n):
        ts += int(rng.expovariate(rate) * 1000)
        if rng.random() < 0.002:
            ts += rng.randrange(30, 200) * 1000  # an idle gap: presence expires
        user = f"u{rng.randrange(users)}"
        roll, eid = rng.random(), f"e{i}"
        if roll < 0.4:
            event = enter(user, ts=ts, event_id=eid)
        elif roll < 0.55:
            event = leave(user, ts=ts, event_id=eid)
        elif roll < 0.8:
            event = comment(user, ts=ts, event_id=eid)
        elif roll < 0.9:
            event = cart(user, ts=ts, event_id=eid)
        else:
            event = order(
                user, rng.choice((9.9, 100.0, 0.5)), ts=ts, paid=rng.random() < 0.9, event_id=eid
            )
        out.append(event)
        if rng.random() < 0.02:
            out.append(event)  # a client's retry: the same event_id, the same user
    return out


def fold_split(events, shards: int, partial_every: int = 97) -> tuple[list[RoomState], MergedRoom]:
    """Fold each event into its viewer's shard, sending partials now and then (as the
    worker does once a second) and at the end; the partials go through JSON."""
    states = [RoomState("r", SETTINGS) for _ in range(shards)]
    merged = MergedRoom("r", shards)
    offsets, since = [0] * shards, [0] * shards

    def send(k: int) -> None:
        partial = shard_partial(states[k], k, shards, offsets[k], since[k])
        since[k] = partial["sampled_through"] - SAMPLES_OVERLAP_S  # as the partition does
        merged.take(orjson.loads(orjson.dumps(partial)))

    for i, event in enumerate(events):
        k = hash64(event[2]) % shards
        states[k].apply(list(event))
        offsets[k] += 1
        if i % partial_every == 0:
            send(k)
    for k in range(shards):
        send(k)
    return states, merged


def figures(snap: dict) -> dict:
    out = {k: v for k, v in snap.items() if k not in ("room_id", "shards", "emitted_at_ms")}
    return orjson.loads(orjson.dumps(out))


def close(a, b, rel: float = 1e-9) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= rel * max(1.0, abs(a), abs(b))
    return a == b


def tail(events, gap_s: int = 20) -> list:
    """Leaves of unknown users well after the last event, on every shard-to-be: every
    shard's watermark moves past the lateness, so every second of the stream is settled
    everywhere, and online does not move."""
    last = max(e[3] for e in events)
    return [leave(f"tail{i}", ts=last + gap_s * 1000 + i, event_id=f"t{i}") for i in range(64)]


@pytest.mark.parametrize("seed,shards", [(1, 2), (2, 4), (3, 8), (4, 3)])
def test_split_equals_unsplit_when_arrival_is_in_order(seed, shards):
    rng = random.Random(seed)
    events = stream(rng, 8_000, users=400)
    events += tail(events)
    whole = RoomState("r", SETTINGS)
    for event in events:
        whole.apply(list(event))
    _, merged = fold_split(events, shards)
    want, got = figures(snapshot(whole)), figures(merged.snapshot())
    assert want["views_total"] > 1_000 and want["peak_online_viewers"] > want["online_viewers"]
    assert close(want, got), {k: (want[k], got[k]) for k in want if not close(want[k], got.get(k))}
    assert merged.snapshot()["shards"] == shards


def test_distinct_counts_past_the_exact_limit_stay_within_two_percent():
    rng = random.Random(9)
    events = [enter(f"v{i}", ts=T0 + i, event_id=f"e{i}") for i in range(30_000)]
    rng.shuffle(events)
    whole = RoomState("r", SETTINGS)
    for event in events:
        whole.apply(list(event))
    _, merged = fold_split(events, 4)
    got = merged.snapshot()["windows"]["session"]["unique_viewers"]
    assert abs(got - 30_000) <= 0.02 * 30_000
    assert abs(len(whole.viewers) - 30_000) <= 0.02 * 30_000


def test_session_totals_and_online_are_exact_under_any_order_within_the_lateness():
    rng = random.Random(5)
    events = stream(rng, 6_000, users=300)
    events += tail(events)
    shuffled = sorted(events, key=lambda e: e[3] + rng.random() * SETTINGS.allowed_lateness_ms)
    whole = RoomState("r", SETTINGS)
    for event in events:
        whole.apply(list(event))
    _, merged = fold_split(shuffled, 4)
    want, got = figures(snapshot(whole)), figures(merged.snapshot())
    for key in (
        "views_total",
        "comments_total",
        "orders_total",
        "gmv_yuan_total",
        "online_viewers",
    ):
        assert close(want[key], got[key]), key
    assert close(want["windows"]["session"], got["windows"]["session"])
    assert want["peak_online_viewers"] == got["peak_online_viewers"]


def test_partials_applied_twice_or_out_of_order_change_nothing():
    rng = random.Random(6)
    events = stream(rng, 3_000, users=200)
    states, merged = fold_split(events, 3)
    before = figures(merged.snapshot())
    old = shard_partial(states[1], 1, 3, 1)  # an older offset: ignored
    assert not merged.take(orjson.loads(orjson.dumps(old)))
    again = shard_partial(states[2], 2, 3, 10**9)
    merged.take(again)
    merged.take(again)
    assert figures(merged.snapshot()) == before


def test_shard_map_places_shards_on_distinct_partitions_and_parses_settings():
    shards = ShardMap(parse_room_shards(" big=4, huge=8 ,calm=1"), partitions=16)
    assert shards.count("calm") == 1 and shards.count("other") == 1 and bool(shards)
    for room, count in (("big", 4), ("huge", 8)):
        home = 5
        places = [shards.partition_of_shard(home, room, k) for k in range(count)]
        assert len(set(places)) == count and places[0] == home
        assert [shards.shard_at(home, room, p) for p in places] == list(range(count))
    assert shards.shard_at(5, "big", 9) is None and shards.shard_at(5, "big", 4) is None
    users = [shards.shard_of_user("big", f"u{i}") for i in range(4_000)]
    assert all(abs(users.count(k) - 1_000) < 120 for k in range(4))
    with pytest.raises(ValueError, match="at most as many shards"):
        ShardMap({"big": 32}, partitions=16)
    for bad in ("big", "big=x", "b@d=2", "big=0"):
        with pytest.raises(ValueError):
            parse_room_shards(bad)


def test_split_advice_from_a_snapshot_rate():
    from streams.rooms.shards import events_per_second, shards_needed

    snap = {
        "windows": {"1m": {"views": 600_000, "comments": 900_000, "cart_adds": 60, "orders": 60}}
    }
    assert events_per_second(snap) == 25_002
    assert shards_needed(25_002, 25_000) == 2 and shards_needed(24_000, 25_000) == 1
    assert shards_needed(79_000, 25_000) == 4
