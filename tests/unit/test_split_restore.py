"""A split room's home partition (the merger) crashing at every step of its checkpoint
sequence: restored and replayed, with the shards' partials arriving as room-events
records, it merges to the same room as without a crash (totals, distinct counts,
online, PCU)."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from streams.rooms.flat import hash64
from streams.rooms.merge import MergedRoom, shard_partial
from streams.rooms.partition import PARTIAL_SOURCE, RoomPartition
from streams.rooms.room import RoomSettings, RoomState
from streams.rooms.shards import ShardMap
from streams.runtime import checkpoint
from streams.state.log import MemoryLog

from .helpers import T0, comment, enter, group, leave
from .test_checkpoint_restore import replay_with_crashes

SETTINGS = RoomSettings(session_timeout_s=120)
SHARDS = ShardMap({"mega": 3}, 8)
TOPIC, NOW = "state", 1_000.0


def home_of(room_id: str) -> int:
    return 0


def make_records() -> tuple[list[list], dict]:
    """Room-events records of partition 0: shard 0's events, and partials of shards 1
    and 2 now and then (as their workers send them); the merged room expected."""
    rng = random.Random(4)
    shards = [RoomState("mega", SETTINGS) for _ in range(3)]
    records, offsets, since = [], [0, 0, 0], [0, 0, 0]
    ts = T0
    for n in range(900):
        ts += rng.randrange(5, 400)
        user = f"u{rng.randrange(300)}"
        make = rng.choice((enter, enter, comment, leave))
        event = make(user, ts=ts, room="mega", event_id=f"e{n}")
        k = hash64(user) % 3
        shards[k].apply(list(event))
        offsets[k] += 1
        if k == 0:
            records.append([group(n, [event])])
        if n % 40 == 39 or n == 899:
            for j in (1, 2):
                partial = shard_partial(shards[j], j, 3, offsets[j], since[j])
                since[j] = partial["sampled_through"] - 120
                records.append(
                    [[PARTIAL_SOURCE | j, offsets[j], [orjson.loads(orjson.dumps(partial))]]]
                )
    merged = MergedRoom("mega", 3)
    for j in range(3):
        merged.take(orjson.loads(orjson.dumps(shard_partial(shards[j], j, 3, offsets[j]))))
    return records, merged.snapshot()


def figures(part: RoomPartition) -> dict:
    snaps = part.due_snapshots(NOW + 10**6, quiet_interval=0)  # after every emission above
    snap = next(s for s in snaps if s["room_id"] == "mega")
    keys = ("views_total", "comments_total", "online_viewers", "peak_online_viewers")
    return {k: snap[k] for k in keys} | {"uv": snap["windows"]["session"]["unique_viewers"]}


async def run(records, log: MemoryLog, crash_after: int | None) -> tuple[RoomPartition, int]:
    """The merger's partition, crashing once (test_checkpoint_restore's replay): its own
    partial made before each checkpoint, the shard map set again after a restore."""

    def adopt(part: RoomPartition) -> None:
        part.shards, part.home_of = SHARDS, home_of  # as the worker sets them

    return await replay_with_crashes(
        records,
        log,
        crash_after,
        RoomPartition(0, SETTINGS, None, SHARDS, home_of),
        NOW,
        every=25,
        before_write=lambda part, offset: part.due_snapshots(NOW + offset, quiet_interval=0),
        adopt=adopt,
    )


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(checkpoint, "PIECE_ENTRIES", 40)


def test_the_merger_crashing_at_every_checkpoint_step_merges_the_same_room():
    records, expected = make_records()
    clean = MemoryLog()
    part, _ = asyncio.run(run(records, clean, None))
    want = figures(part)
    keys = ("views_total", "comments_total", "online_viewers", "peak_online_viewers")
    assert want == {k: expected[k] for k in keys} | {
        "uv": expected["windows"]["session"]["unique_viewers"]
    }
    steps = len(clean.partitions[(TOPIC, 0)])
    assert steps > 20
    for crash_after in range(steps):
        part, crashes = asyncio.run(run(records, MemoryLog(), crash_after))
        assert crashes == 1, crash_after
        assert figures(part) == want, f"crash after {crash_after} appended records"
