"""Ad spend in, ROI out (SPEC: spend, ROI): validation with user_id optional, the fold
(neither presence nor a viewer), windows and session, ROI absent while spend is 0, net
ROI with refunds taken off, and a split room merging spend like everything else."""

from __future__ import annotations

import orjson
import pytest

from streams.events import SPEND, decode_record
from streams.rooms.flat import hash64
from streams.rooms.merge import MergedRoom, shard_partial
from streams.rooms.metrics import snapshot
from streams.rooms.room import RoomSettings, RoomState
from streams.state.records import bytes_as_base64

from .helpers import T0, enter, order

S = 1000


def spend(amount, ts=T0, channel="qianchuan", event_id=None, user=""):
    event = {"event_id": event_id or f"s{ts}-{amount}", "room_id": "r", "ts": ts}
    event |= {"channel": channel, "amount": amount}
    if user:
        event["user_id"] = user
    events, rejects = decode_record(orjson.dumps(event), SPEND, T0)
    assert not rejects, rejects
    return events[0]


def test_spend_is_validated_with_user_id_optional():
    assert spend(12.5)[:3] == (SPEND, "s1763000000000-12.5", "")
    assert spend(3, user="ops-1")[2] == "ops-1"
    bad = {"event_id": "x", "room_id": "r", "ts": T0, "channel": "qianchuan", "amount": -1}
    assert decode_record(orjson.dumps(bad), SPEND, T0)[1][0].reason == "out_of_range"
    no_channel = {"event_id": "x", "room_id": "r", "ts": T0, "amount": 1}
    assert decode_record(orjson.dumps(no_channel), SPEND, T0)[1][0].reason == "missing_field"
    on_views = {"event_id": "x", "room_id": "r", "user_id": "u", "ts": T0, "type": "spend"}
    assert decode_record(orjson.dumps(on_views), 0, T0)[1][0].reason == "type_mismatch"


def test_roi_by_window_and_session_absent_while_nothing_is_spent():
    room = RoomState("r", RoomSettings())
    room.apply(enter("u1", ts=T0))
    room.apply(order("u1", 300.0, ts=T0 + S))
    assert snapshot(room)["windows"]["session"]["roi"] is None  # no spend yet
    room.apply(spend(100.0, ts=T0 + 2 * S))
    room.apply(spend(100.0, ts=T0 + 2 * S))  # the same event again: a duplicate
    room.apply(spend(50.0, ts=T0 + 400 * S))  # moves the watermark: the first leaves 5m
    room.apply(order("u1", 60.0, ts=T0 + 401 * S, paid=False))  # a refund
    snap = snapshot(room)
    assert snap["spend_yuan_total"] == 150.0 and room.online == 1
    session = snap["windows"]["session"]
    assert session["roi"] == pytest.approx(300 / 150)
    assert session["net_roi"] == pytest.approx((300 - 60) / 150)
    assert snap["windows"]["5m"]["spend_yuan"] == 50.0 and snap["windows"]["5m"]["roi"] == 0.0
    restored = RoomState("r", RoomSettings())
    restored.load(orjson.loads(orjson.dumps(room.capture_base(), default=bytes_as_base64)))
    assert restored.spend == 150.0


def test_a_split_room_merges_spend_and_roi():
    events = [enter(f"u{i}", ts=T0 + i) for i in range(40)]
    events += [order(f"u{i}", 10.0, ts=T0 + 100 + i) for i in range(40)]
    events += [spend(25.0, ts=T0 + 200 + i, event_id=f"sp{i}") for i in range(8)]
    whole = RoomState("r", RoomSettings())
    shards = [RoomState("r", RoomSettings()) for _ in range(3)]
    for e in events:
        whole.apply(list(e))
        shards[hash64(e[2]) % 3].apply(list(e))
    merged = MergedRoom("r", 3)
    for k, state in enumerate(shards):
        merged.take(orjson.loads(orjson.dumps(shard_partial(state, k, 3, 1))))
    got, want = merged.snapshot(), snapshot(whole)
    assert got["spend_yuan_total"] == want["spend_yuan_total"] == 200.0
    for window in ("1m", "5m", "session"):
        assert got["windows"][window]["roi"] == pytest.approx(want["windows"][window]["roi"])
