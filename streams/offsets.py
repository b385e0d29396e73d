"""Reading exact offset ranges, and refilling the gaps Faust leaves in a stream.

faust-streaming 0.15 drops records it fetched for a partition that is not active yet
(while tables recover after an assignment), and when the next record of that
partition arrives it marks the skipped offsets as acknowledged, so a commit moves past
records nobody processed. Both agents therefore know the next offset they expect per
partition and, when a record arrives beyond it, read the missing range themselves
with a plain consumer before going on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

RANGE_READ_TIMEOUT_S = 300.0

log = logging.getLogger(__name__)


async def read_range(
    options: Mapping[str, Any],
    topic: str,
    partition: int,
    start: int,
    end: int,
    timeout_s: float = RANGE_READ_TIMEOUT_S,
) -> AsyncIterator[list[ConsumerRecord]]:
    """Batches of the records with start <= offset < end of one partition."""
    if start >= end:
        return
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a range below the log start begins at the start
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **options,
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + timeout_s
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                position = await consumer.position(tp)
                raise TimeoutError(f"reading {tp} stalled at {position} of [{start}, {end})")
            batch = [
                r
                for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, ())
                if r.offset < end
            ]
            if batch:
                yield batch
    finally:
        await consumer.stop()


async def committed_offsets(
    options: Mapping[str, Any], group_id: str, tps: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int | None]:
    """The group's committed offsets (None where nothing was committed)."""
    consumer = AIOKafkaConsumer(group_id=group_id, enable_auto_commit=False, **options)
    await consumer.start()
    try:
        return {(topic, p): await consumer.committed(TopicPartition(topic, p)) for topic, p in tps}
    finally:
        await consumer.stop()


TP = tuple[str, int]
IDLE_BEFORE_TAIL_CHECK_S = 2.0


class GapFiller:
    """Next expected offset per input partition; refills what the stream skipped.

    A gap shows when a later record arrives. When the skipped records were the last
    of their partition nothing arrives, so `stalled_tails` also reports partitions
    that have been quiet for a while although their high-water mark is ahead."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        self.expected: dict[TP, int] = {}
        self.last_delivery: dict[TP, float] = {}

    def reset(self, offsets: Mapping[TP, int | None]) -> None:
        """Where the stream resumes after an assignment: the committed offset, or the
        start of the log where the group has committed nothing (offset reset earliest)."""
        now = time.monotonic()
        for tp, offset in offsets.items():
            self.expected[tp] = offset or 0
            self.last_delivery[tp] = now  # give the stream time to deliver first

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.expected.pop(tp, None)
            self.last_delivery.pop(tp, None)

    async def admit(self, messages: Iterable[Any]) -> tuple[list[Any], list[tuple[TP, int, int]]]:
        """The messages to process, in order (refilled gaps first, replays dropped),
        and the refilled ranges, to be acknowledged once the messages are processed."""
        out: list[Any] = []
        refilled: list[tuple[TP, int, int]] = []
        expected = self.expected
        for message in messages:
            tp = (message.topic, message.partition)
            offset = message.offset
            want = expected.get(tp)
            if want is not None:
                if offset < want:
                    continue  # delivered again after a seek back: already handled
                if offset > want:
                    before = len(out)
                    async for batch in read_range(self.options, *tp, want, offset):
                        out.extend(batch)
                    refilled.append((tp, want, offset))
                    log.warning(
                        "refilled %d records of %s [%d, %d) that the stream skipped",
                        len(out) - before,
                        tp,
                        want,
                        offset,
                    )
            out.append(message)
            expected[tp] = offset + 1
            self.last_delivery[tp] = time.monotonic()
        return out, refilled

    def stalled_tails(
        self, highwater: Callable[[TP], int | None], idle_s: float = IDLE_BEFORE_TAIL_CHECK_S
    ) -> list[tuple[TP, int, int]]:
        """(partition, first missing offset, high-water mark) of quiet partitions."""
        now = time.monotonic()
        out = []
        for tp, want in self.expected.items():
            end = highwater(tp)
            if end is not None and end > want and now - self.last_delivery.get(tp, 0.0) > idle_s:
                out.append((tp, want, end))
        return out

    async def refill_tail(self, tp: TP, start: int, end: int) -> list[Any]:
        """The records [start, end) of `tp`, read directly; they count as delivered."""
        if self.expected.get(tp) != start:
            return []  # the stream delivered meanwhile
        records: list[Any] = []
        async for batch in read_range(self.options, *tp, start, end):
            records.extend(batch)
        self.expected[tp] = end
        self.last_delivery[tp] = time.monotonic()
        log.warning(
            "refilled %d records at the end of %s [%d, %d) that the stream skipped",
            len(records),
            tp,
            start,
            end,
        )
        return records


AckRange = Callable[[str, int, int, int], Awaitable[None]]


def defer_faust_gap_acks(consumer: Any) -> AckRange:
    """Stop Faust from acknowledging skipped offsets the moment it sees a gap.

    Returns the function that acknowledges [start, end) of a topic partition; call it
    once the refilled records of that range have been processed, so no commit can
    move past records nobody processed.
    """
    from faust.types import TP as FaustTP

    add_gap = consumer._add_gap  # bound method: Faust's own gap bookkeeping

    async def ignore_gap(tp: Any, offset_from: int, offset_to: int) -> None:
        return None

    async def ack_range(topic: str, partition: int, start: int, end: int) -> None:
        if start < end:
            await add_gap(FaustTP(topic, partition), start, end - 1)  # Faust's end is inclusive

    consumer._add_gap = ignore_gap
    return ack_range
