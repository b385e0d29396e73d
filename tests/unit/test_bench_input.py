"""The bench's fetches: every record once, each input partition's in offset order,
whatever the number of records per kind (fewer than the partitions, or none)."""

from __future__ import annotations

from loadtest.bench import interleaved


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
