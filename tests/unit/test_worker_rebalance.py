"""The worker's wiring across a rebalance, in-process: a fake consumer, the in-memory
state log, no broker.

A worker restarted after a SIGKILL restores each room partition from its checkpoint
and seeks there. aiokafka may already have fetched from where the group's committed
offset stood (further on): a fetch that the assignment overtook must be read again
from the checkpoint, not folded. Folded, the cursor took it as a jump and dropped the
records between the checkpoint and the committed offset when they came: events lost
for good, with nothing in the logs (found under CPU contention by the real-broker
SIGKILL test, test_restart.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.structs import TopicPartition

from streams import config
from streams.runtime.worker import StreamWorker
from streams.state.log import MemoryLog

from .helpers import T0, enter, group

RECORDS = 6  # room-events records, one view each


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes
    key: bytes | None = None


class FakeConsumer:
    """What the worker uses of AIOKafkaConsumer, over one room-events partition."""

    def __init__(self, tp: TopicPartition, records: list[Record], position: int) -> None:
        self.tp = tp
        self.records = records
        self.position = position  # where the group's committed offset put it
        self.commits: list[dict[TopicPartition, int]] = []
        self.overtaken: asyncio.Event | None = None  # set: hand out a fetch made earlier

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict[Any, list[Any]]:
        fetched = self.records[self.position :]
        self.position = len(self.records)
        if self.overtaken is not None:
            gate, self.overtaken = self.overtaken, None
            await gate.wait()  # the rebalance runs meanwhile
        return {self.tp: fetched} if fetched else {}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert tp == self.tp and offset >= 0
        self.position = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def paused(self) -> set[TopicPartition]:
        return set()  # room-events partitions are never paused (only input ones)

    def pause(self, *tps: TopicPartition) -> None:
        raise AssertionError(f"a room-events partition paused: {tps}")


def room_events() -> list[Record]:
    """One view each, every one in the room partition 0 (the fold does not check)."""
    return [
        Record(offset, orjson.dumps([group(offset, [enter(f"u{offset}", T0 + offset, "r")])]))
        for offset in range(RECORDS)
    ]


def make_worker(tmp_path: Any) -> tuple[StreamWorker, FakeConsumer, TopicPartition]:
    settings = config.load({}, data_dir=str(tmp_path), partitions=1)
    worker = StreamWorker(settings, clock=lambda: T0 / 1000 + 10)
    tp = TopicPartition(settings.topic_room_events, 0)
    # The state log is empty (no checkpoint yet: resume at 0); the group's committed
    # offset says 3: the first worker committed its cursor before its checkpoint.
    consumer = FakeConsumer(tp, room_events(), position=3)
    worker.consumer = consumer  # type: ignore[assignment]
    worker.log = MemoryLog()  # type: ignore[assignment]
    return worker, consumer, tp


async def catch_up(worker: StreamWorker, consumer: FakeConsumer) -> None:
    while consumer.position < len(consumer.records):
        await worker.step()


def test_a_fetch_made_before_the_assignment_is_read_again_from_the_checkpoint(tmp_path):
    async def run() -> int:
        worker, consumer, tp = make_worker(tmp_path)
        consumer.overtaken = gate = asyncio.Event()
        fetching = asyncio.create_task(worker.step())  # fetches 3..5, from the old position
        await asyncio.sleep(0)
        await worker.assign({tp})  # restores (nothing: resume at 0) and seeks to 0
        assert consumer.position == 0
        gate.set()
        await fetching
        assert worker.owned[0].part.applied_offset == -1, "the overtaken fetch was folded"
        await catch_up(worker, consumer)
        return worker.owned[0].part.rooms["r"].state.views

    assert asyncio.run(run()) == RECORDS  # folded without the fix: 3 (records 3..5)


def test_the_group_offset_of_a_room_partition_never_passes_its_durable_checkpoint(tmp_path):
    async def run() -> list[dict[TopicPartition, int]]:
        worker, consumer, tp = make_worker(tmp_path)
        await worker.assign({tp})
        await catch_up(worker, consumer)
        await worker._commit()  # folded to 5, nothing checkpointed: a restart replays all
        owned = worker.owned[0]
        await worker._checkpoint(owned, worker.clock())
        await worker._commit()  # checkpointed through 5
        return consumer.commits

    tp = TopicPartition("liveroom.room-events", 0)
    assert asyncio.run(run()) == [{tp: 0}, {tp: RECORDS}]


def test_room_events_offsets_passed_over_are_counted_and_logged(tmp_path, caplog):
    """Never silent: records 2 and 3 are gone from the log (a bug, or retention), the
    rooms miss their events, and the worker says so."""

    async def run() -> tuple[list[tuple[dict[str, str], float]], int]:
        worker, consumer, tp = make_worker(tmp_path)
        consumer.position = 0
        consumer.records = [r for r in consumer.records if r.offset not in (2, 3)]
        await worker.assign({tp})
        await catch_up(worker, consumer)
        samples = [
            (sample.labels, sample.value)
            for metric in worker.health.passed_over.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        ]
        return samples, worker.owned[0].part.rooms["r"].state.views

    samples, views = asyncio.run(run())
    assert samples == [({"topic": "liveroom.room-events"}, 2.0)]
    assert views == RECORDS - 2
    assert "room-events partition 0: 2 offsets passed over with no record" in caplog.text


class SlowLog(MemoryLog):
    """The in-memory log, holding every restore until `opened` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = asyncio.Event()

    async def end_offset(self, topic: str, partition: int) -> int:
        await self.opened.wait()
        return await super().end_offset(topic, partition)


def test_readiness_says_the_worker_is_restoring_and_the_restore_time_is_exported(tmp_path):
    async def run() -> tuple[str | None, str | None, float]:
        worker, _, tp = make_worker(tmp_path)
        worker.log = log = SlowLog()  # type: ignore[assignment]
        assigning = asyncio.create_task(worker.assign({tp}))
        await asyncio.sleep(0.05)
        during = worker.readiness()
        log.opened.set()
        await assigning
        restore_s = worker.health.restore_seconds.collect()[0].samples[0].value
        return during, worker.readiness(), restore_s

    during, after, restore_s = asyncio.run(run())
    assert during == "restoring room partitions from the state log (1 left)"
    assert after is None
    assert 0.05 <= restore_s < 5
