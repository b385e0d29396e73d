"""A small log interface: append records to a partition, read an offset range back.

`KafkaLog` is the aiokafka implementation; `MemoryLog` is an in-memory fake with the
same semantics, for tests and benchmarks (it can also fail on purpose after a number
of appends, to abort a checkpoint at any step).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

READ_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class LogRecord:
    offset: int
    key: bytes | None
    value: bytes | None


class LogReader(Protocol):
    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record will get (the log end)."""
        ...

    def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[LogRecord]]:
        """Batches of the records with start <= offset < end."""
        ...


class LogWriter(Protocol):
    async def append(
        self, topic: str, partition: int, records: Sequence[tuple[bytes, bytes]]
    ) -> list[int]:
        """Append (key, value) records in order; return their offsets once durable."""
        ...


class LogFailure(RuntimeError):
    """The fake log failing on purpose (a crash in the middle of a write)."""


class MemoryLog:
    """The log interface over in-memory lists."""

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], list[LogRecord]] = defaultdict(list)
        self.fail_after: int | None = None  # appends of single records still allowed

    async def end_offset(self, topic: str, partition: int) -> int:
        return len(self.partitions[(topic, partition)])

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[LogRecord]]:
        records = self.partitions[(topic, partition)]
        for first in range(max(start, 0), min(end, len(records)), 100):
            yield records[first : min(first + 100, end)]

    async def append(
        self, topic: str, partition: int, records: Sequence[tuple[bytes, bytes]]
    ) -> list[int]:
        log = self.partitions[(topic, partition)]
        offsets = []
        for key, value in records:
            if self.fail_after is not None:
                if self.fail_after <= 0:
                    raise LogFailure("the log failed on purpose")
                self.fail_after -= 1
            offsets.append(len(log))
            log.append(LogRecord(len(log), key, value))
        return offsets


class KafkaLog:
    """The log interface over aiokafka: a producer (shared) and a reader consumer."""

    def __init__(self, options: Mapping[str, Any], producer: AIOKafkaProducer | None) -> None:
        self.options = options
        self.producer = producer

    async def end_offset(self, topic: str, partition: int) -> int:
        return (await end_offsets(self.options, [(topic, partition)]))[(topic, partition)]

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[LogRecord]]:
        if start >= end:
            return
        tp = TopicPartition(topic, partition)
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a range below the log start begins at the start
            fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_wait_ms=50,
            **self.options,
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
            while await consumer.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    position = await consumer.position(tp)
                    raise TimeoutError(f"reading {tp} stalled at {position} of [{start}, {end})")
                fetched = (await consumer.getmany(tp, timeout_ms=500)).get(tp, ())
                batch = [LogRecord(r.offset, r.key, r.value) for r in fetched if r.offset < end]
                if batch:
                    yield batch
        finally:
            await consumer.stop()

    async def append(
        self, topic: str, partition: int, records: Sequence[tuple[bytes, bytes]]
    ) -> list[int]:
        assert self.producer is not None, "a read-only KafkaLog"
        futures = [
            await self.producer.send(topic, value, key=key, partition=partition)
            for key, value in records
        ]
        return [(await future).offset for future in futures]


async def end_offsets(
    options: Mapping[str, Any], tps: Sequence[tuple[str, int]], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """Log end offsets, read from Fetch responses' high-water marks.

    Kafka's ListOffsets(latest) would do on Kafka, but the embedded broker (Tansu 0.6)
    answers it with the base offset of the newest batch + 1, short of the end. A Fetch
    from just below the listed offset carries the true high-water mark on both.
    """
    consumer = AIOKafkaConsumer(enable_auto_commit=False, max_partition_fetch_bytes=1024, **options)
    await consumer.start()
    result = {tp: 0 for tp in tps}
    try:
        wanted = {TopicPartition(*tp): tp for tp in tps}
        consumer.assign(list(wanted))
        listed = await consumer.end_offsets(list(wanted))
        for kafka_tp in wanted:
            consumer.seek(kafka_tp, max(listed.get(kafka_tp, 0) - 1, 0))
            result[wanted[kafka_tp]] = listed.get(kafka_tp, 0)
        pending = {kafka_tp for kafka_tp in wanted if listed.get(kafka_tp, 0) > 0}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while pending and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200)
            for kafka_tp in list(pending):
                highwater = consumer.highwater(kafka_tp)
                if highwater is not None:
                    result[wanted[kafka_tp]] = max(result[wanted[kafka_tp]], highwater)
                    pending.discard(kafka_tp)
    finally:
        await consumer.stop()
    return result
