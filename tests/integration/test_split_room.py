"""A hot room pinned to 4 shards (LIVEROOM_ROOM_SHARDS) on the embedded broker, with
worker processes killed, restarted, added and removed mid-stream: the room is still
one room, exported by one worker with liveroom_room_shards 4, and its totals and
distinct counts are exact against an oracle computed here. So are the other rooms'."""

from __future__ import annotations

import time

import pytest

from .conftest import Stack, WorkerProcess, room_value, rooms_in, wait_until
from .test_restart import assert_exact, generate, oracle, produce_paced, room_totals

pytestmark = pytest.mark.integration

HOT = "room-00"  # the Pareto stream's top room: over half of the events
PINNED = {"LIVEROOM_ROOM_SHARDS": f"{HOT}=4", "LIVEROOM_CHECKPOINT_INTERVAL_SECONDS": "1"}


def exported_by(workers: list[WorkerProcess]) -> dict[str, list[tuple[WorkerProcess, dict]]]:
    """room -> the live workers whose /metrics export it, with their scrape."""
    out: dict[str, list[tuple[WorkerProcess, dict]]] = {}
    for worker in workers:
        if worker.process is None or worker.process.poll() is not None:
            continue
        samples = worker.scrape()
        for room in rooms_in(samples):
            out.setdefault(room, []).append((worker, samples))
    return out


def test_a_split_room_is_exact_across_kills_joins_and_leaves(stack: Stack):
    records = generate(seed=17, batches=700, now=int(time.time() * 1000))
    expected = oracle(records)
    hot_share = expected[HOT]["views"] / sum(r["views"] for r in expected.values())
    assert hot_share > 0.5
    first = stack.worker(**PINNED)
    first.wait_ready()
    second = stack.worker(**PINNED)
    second.wait_ready()

    producer = produce_paced(stack, records, b"any")
    time.sleep(2)
    second.kill()  # a shard's worker, or the merger: SIGKILL mid-stream
    time.sleep(1)
    restarted = stack.worker(**PINNED)
    restarted.wait_ready()
    third = stack.worker(**PINNED)
    third.wait_ready()
    time.sleep(1)
    third.stop()  # leaves the group
    producer.join()
    workers = [first, restarted]

    def read() -> dict[str, dict[str, float]]:
        by_room = exported_by(workers)
        return {
            room: room_totals(by_room[room][0][1], room) if room in by_room else {}
            for room in expected
        }

    def exact() -> bool:
        got = read()
        assert all(got.values()), [room for room, v in got.items() if not v]
        assert_exact(got, expected)
        return True

    wait_until(exact, 150, "every room exact, the split one merged")
    time.sleep(3)  # anything counted twice would show now
    assert_exact(read(), expected)
    by_room = exported_by(workers)
    assert len(by_room[HOT]) == 1, "a split room is exported by one worker only"
    samples = by_room[HOT][0][1]
    assert room_value(samples, "liveroom_room_shards", HOT) == 4
    other = next(room for room in expected if room != HOT and room in by_room)
    assert room_value(by_room[other][0][1], "liveroom_room_shards", other) == 1
    assert not any("shard" in dict(labels) for (_, labels) in samples)
    # The shards were folded by more than one worker process, as their logs say.
    folding = {
        worker.log_path.name
        for worker in (first, second, restarted)
        if f"split room {HOT}: shard" in worker.log_path.read_text(errors="replace")
    }
    assert len(folding) >= 2, folding
