"""send_in_batches: records grouped into aiokafka batches per partition, in order."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatch

from streams.kafka import send_in_batches


class Unsent(AIOKafkaProducer):
    """A producer that is never started: its batches are kept, not sent."""

    def __init__(self, **options) -> None:
        super().__init__(bootstrap_servers="127.0.0.1:9", **options)
        self.batches: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []

    async def send_batch(self, batch, topic, *, partition):
        buffer = batch._builder.build()
        records = [(r.key, r.value) for r in DefaultRecordBatch(bytes(buffer))]
        self.batches.append((topic, partition, records))
        return asyncio.get_running_loop().create_future()


def test_records_go_in_one_batch_per_partition_in_their_order_and_a_full_one_is_sent():
    async def run() -> Unsent:
        producer = Unsent(max_batch_size=4096)
        records = [(i % 3, f"room-{i}".encode(), b"x" * 500) for i in range(30)]
        sent = await send_in_batches(producer, "metrics", records)
        assert len(sent) == len(producer.batches)
        return producer

    producer = asyncio.run(run())
    by_partition: dict[int, list[bytes]] = {}
    for topic, partition, records in producer.batches:
        assert topic == "metrics"
        assert len(records) <= 7  # 4 kB batches of ~560-byte records
        by_partition.setdefault(partition, []).extend(key for key, _ in records)
    assert by_partition == {
        p: [f"room-{i}".encode() for i in range(30) if i % 3 == p] for p in range(3)
    }
    assert len(producer.batches) > 3  # full batches were sent before the end
