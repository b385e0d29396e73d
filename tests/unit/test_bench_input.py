"""The bench's helpers. Its fetches: every record once, each input partition's in
offset order, whatever the number of records per kind (fewer than the partitions, or
none). Its loop-hold timer: the longest stretch a piece of work held the event loop."""

from __future__ import annotations

import asyncio
import time

from loadtest.bench import interleaved, time_loop_hold


def test_fetches_hold_every_record_once_in_offset_order_per_partition():
    data = {
        "views": [b"v%d" % i for i in range(200)],
        "comments": [b"c0", b"c1", b"c2"],  # fewer than the 8 partitions
        "carts": [],
        "orders": [b"o0"],
    }
    fetches = interleaved(data)
    seen: dict[tuple[str, int], list[int]] = {}
    values = []
    for topic, _, partition, records in fetches:
        seen.setdefault((topic, partition), []).extend(r.offset for r in records)
        values.extend(r.value for r in records)
    assert sorted(values) == sorted(v for recs in data.values() for v in recs)
    assert all(offsets == list(range(len(offsets))) for offsets in seen.values())
    assert len(seen) == 8 + 3 + 1


def test_a_stretch_that_never_yields_is_measured_whole():
    async def holds_20ms() -> None:
        time.sleep(0.02)

    took, longest = time_loop_hold(holds_20ms)
    assert longest >= 0.02 and took >= 0.02


def test_work_that_yields_is_measured_by_its_longest_stretch():
    async def three_stretches() -> None:
        for hold in (0.005, 0.03, 0.005):
            time.sleep(hold)
            await asyncio.sleep(0)

    took, longest = time_loop_hold(three_stretches)
    assert 0.03 <= longest < took
