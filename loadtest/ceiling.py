"""The raw ceiling: aiokafka `getmany` + `orjson.loads` of the same records, nothing
else. Every throughput figure is also given as a ratio to it, measured in the same run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition


async def raw_ceiling(
    options: Mapping[str, Any], topics: list[str], expected_records: int
) -> tuple[float, int]:
    """(seconds, events) to fetch and decode every record of `topics` from the start."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **options,
    )
    await consumer.start()
    seen = events = 0
    loads = orjson.loads
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        started = time.perf_counter()
        deadline = started + 600
        while seen < expected_records and time.perf_counter() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in batch:
                    value = loads(record.value)
                    events += len(value) if isinstance(value, list) else 1
                seen += len(batch)
        return time.perf_counter() - started, events
    finally:
        await consumer.stop()
