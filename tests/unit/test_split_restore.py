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
from streams.rooms.partition import PARTIAL_SOURCE, Outcome, RoomPartition
from streams.rooms.room import RoomSettings, RoomState
from streams.rooms.shards import ShardMap
from streams.runtime import checkpoint
from streams.runtime.checkpoint import Checkpointer
from streams.runtime.restore import restore_partition
from streams.state.log import LogFailure, MemoryLog
from streams.state.writer import EpochWriter

from .helpers import T0, comment, enter, group, leave

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
    part = RoomPartition(0, SETTINGS, None, SHARDS, home_of)
    cp = Checkpointer(EpochWriter(log, TOPIC, 0, "w1", None, 700, 2000), part, None)
    log.fail_after = crash_after
    crashes, offset = 0, 0
    while offset < len(records):
        part.apply(offset, records[offset], NOW, Outcome())
        offset += 1
        if offset % 25 and offset != len(records):
            continue
        part.due_snapshots(NOW + offset, quiet_interval=0)  # the merger's own partial
        try:
            await cp.write(cp.capture(NOW, room_ttl=3600))
        except LogFailure:
            crashes += 1
            log.fail_after = None
            restored = await restore_partition(log, TOPIC, 0, SETTINGS, None, NOW)
            part = restored.part
            part.shards, part.home_of = SHARDS, home_of  # as the worker sets them
            writer = EpochWriter(
                log, TOPIC, 0, f"w{crashes + 1}", restored.restored.epoch, 700, 2000
            )
            cp = Checkpointer(writer, part, None)
            offset = part.applied_offset + 1
    return part, crashes


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
