"""A pinned split room through the real wiring, in process: input records routed by the
ingest stage's `route`, room-events records folded by one `RoomPartition` per
partition, shard partials sent back as room-events records to the home partition,
whose merged snapshot is the room's. Against one unsplit fold of the same events."""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from streams.alerts.partition import PartitionAlerts
from streams.alerts.rules import AlertRules
from streams.events import decode_record
from streams.kafka import RoomPartitions
from streams.rooms.metrics import snapshot
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.room import RoomSettings, RoomState
from streams.rooms.shards import ShardMap
from streams.runtime.ingest import route

from .helpers import T0

P = 8
SETTINGS = RoomSettings()
KINDS = ("view", "comment", "cart", "order")


@dataclass
class Record:
    offset: int
    key: bytes | None
    value: bytes


def events(rng: random.Random, seconds: int) -> list[tuple[int, dict]]:
    """(kind, event) in event-time order: a mega room of 3,000 viewers and a calm one."""
    out = []
    for n in range(seconds * 60):
        ts = T0 + n * 1000 // 60
        room = "mega" if rng.random() < 0.9 else "calm"
        user = f"{room}-u{rng.randrange(3_000 if room == 'mega' else 50)}"
        kind = rng.choices(range(4), (5, 3, 1, 1))[0]
        event = {"event_id": f"e{n}", "room_id": room, "user_id": user, "ts": ts}
        if kind == 0:
            event["action"] = "leave" if rng.random() < 0.2 else "enter"
        elif kind == 1:
            event["text"] = rng.choice(("好看", "假货吧", "多少钱", "哈哈"))
        elif kind == 2:
            event["product_id"] = "p1"
        else:
            event.update(order_id=f"o{n}", product_id="p1", amount=rng.choice((9.9, 59.0)))
        out.append((kind, event))
    return out


def run(stream: list[tuple[int, dict]], shards: ShardMap, with_alerts: bool = False):
    partition_of = RoomPartitions(P, shards)
    rules = AlertRules.load()
    parts = {}
    for p in range(P):
        alerts = PartitionAlerts(p, rules, SETTINGS.allowed_lateness_ms) if with_alerts else None
        parts[p] = RoomPartition(p, SETTINGS, alerts, shards, partition_of.home)
    offsets = dict.fromkeys(range(P), 0)
    outcome = Outcome()
    now_ms = stream[-1][1]["ts"] + 1_000

    def deliver(p: int, value: bytes) -> None:
        parts[p].apply(offsets[p], orjson.loads(value), now, outcome)
        offsets[p] += 1

    input_offset = 0
    for start in range(0, len(stream), 60):  # a second of events per fetch, arrays of 10
        now = (stream[start][1]["ts"] + 200) / 1000
        fetched = []
        for kind in range(4):
            batch = [e for k, e in stream[start : start + 60] if k == kind]
            records = [
                Record(input_offset + j, None, orjson.dumps(batch[i : i + 10]))
                for j, i in enumerate(range(0, len(batch), 10))
            ]
            input_offset += len(records)
            fetched.append((KINDS[kind], kind, 0, records))
        routed = route(fetched, partition_of, now_ms)
        assert not routed.deadletters
        for p, values in routed.records.items():
            for value in values:
                deliver(p, value)
        for part in parts.values():
            part.due_snapshots(now)
            if part.observer is not None:
                part.observer.advance(now, part)
            for home, value in part.take_partials():
                deliver(home, value)
    return parts, partition_of


def unsplit(stream: list[tuple[int, dict]], room_id: str) -> RoomState:
    room = RoomState(room_id, SETTINGS)
    for kind, event in stream:
        if event["room_id"] == room_id:
            decoded, rejects = decode_record(orjson.dumps(event), kind, event["ts"])
            assert not rejects
            room.apply(list(decoded[0]))
    return room


def test_a_pinned_split_room_merges_to_the_unsplit_figures():
    rng = random.Random(21)
    stream = events(rng, 180)
    tail_ts = stream[-1][1]["ts"] + 30_000  # every shard's watermark past the lateness
    stream += [
        (
            0,
            {
                "event_id": f"t{i}",
                "room_id": "mega",
                "user_id": f"tail{i}",
                "ts": tail_ts,
                "action": "leave",
            },
        )
        for i in range(40)
    ]
    shards = ShardMap({"mega": 4}, P)
    parts, partition_of = run(stream, shards)
    home = partition_of.home("mega")
    holders = [p for p, part in parts.items() if "mega" in part.rooms]
    assert len(holders) == 4 and home in holders  # one shard a partition
    folded = [len(parts[p].rooms["mega"].state.viewers) for p in holders]
    assert all(n > 400 for n in folded), folded  # the viewers really are spread
    for p in holders:
        if p != home:
            assert parts[p].rooms["mega"].snapshot is None  # no shard publishes the room
    # One more round so the last partials reach the home and it publishes.
    now = tail_ts / 1000 + 10
    for part in parts.values():
        part.due_snapshots(now)
        for h, value in part.take_partials():
            parts[h].apply(10**6, orjson.loads(value), now, Outcome())
    got = parts[home].due_snapshots(now + 1, quiet_interval=0) or [
        parts[home].rooms["mega"].snapshot
    ]
    merged = next(s for s in got if s["room_id"] == "mega")
    want = snapshot(unsplit(stream, "mega"))
    assert merged["shards"] == 4
    for key in (
        "views_total",
        "comments_total",
        "orders_total",
        "online_viewers",
        "peak_online_viewers",
    ):
        assert merged[key] == want[key], key
    assert abs(merged["gmv_yuan_total"] - want["gmv_yuan_total"]) < 1e-6
    for window in ("1m", "5m", "session"):
        for key in ("unique_viewers", "buyers", "cart_users", "commenters", "views", "orders"):
            assert merged["windows"][window][key] == want["windows"][window][key], (window, key)
    calm = parts[partition_of.home("calm")].rooms["calm"].snapshot
    assert calm is not None and "shards" not in calm
    # Presence samples (a shard's partials carry them for the PCU) are kept by shards
    # only: an unsplit room's would be memory no one reads.
    calm_presence = parts[partition_of.home("calm")].rooms["calm"].state.presence
    assert not calm_presence.keep_samples and not calm_presence.samples
    assert all(parts[p].rooms["mega"].state.presence.samples for p in holders)


def test_only_the_home_partition_judges_a_split_room():
    rng = random.Random(22)
    stream = events(rng, 90)
    shards = ShardMap({"mega": 4}, P)
    parts, partition_of = run(stream, shards, with_alerts=True)
    home = partition_of.home("mega")
    for p, part in parts.items():
        watch = part.observer.watches.get("mega")
        if watch is None:
            continue
        if p == home:
            assert watch.last_closed > (T0 // 1000) + 60  # judged, on merged rows
        else:
            assert watch.last_closed <= T0 // 1000  # shards away from home never judge it


def test_a_restored_partition_marks_which_of_its_rooms_keep_presence_samples():
    shards = ShardMap({"mega": 4}, P)
    partition_of = RoomPartitions(P, shards)
    home = partition_of.home("mega")
    part = RoomPartition(home, SETTINGS)  # as restore_partition builds it: no shards yet
    for room_id in ("mega", "calm"):
        part.rooms[room_id] = part._new_room(room_id, T0)
    part.shards, part.home_of = shards, partition_of.home  # what the worker then sets
    part.mark_shards()
    assert part.rooms["mega"].state.presence.keep_samples
    assert not part.rooms["calm"].state.presence.keep_samples
