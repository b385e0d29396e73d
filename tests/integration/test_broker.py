"""The embedded broker's quirk the log reader works around, shown on the real binary."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.broker import create_topics
from streams.state.log import end_offsets

pytestmark = pytest.mark.integration


def test_fetch_highwater_is_the_log_end_where_list_offsets_is_not(broker):
    async def scenario():
        options = {"bootstrap_servers": broker.bootstrap}
        await create_topics(options, ["quirk-probe"], 1)
        producer = AIOKafkaProducer(**options)
        await producer.start()
        for batch in range(3):
            for i in range(200):
                await producer.send("quirk-probe", b"%d-%d" % (batch, i), partition=0)
            await producer.flush()
        await producer.stop()
        tp = TopicPartition("quirk-probe", 0)
        consumer = AIOKafkaConsumer(**options)
        await consumer.start()
        listed = (await consumer.end_offsets([tp]))[tp]
        await consumer.stop()
        fetched = await end_offsets(options, [("quirk-probe", 0)])
        return listed, fetched[("quirk-probe", 0)]

    listed, fetched = asyncio.run(scenario())
    assert fetched == 600
    assert listed < 600  # Tansu 0.6: base offset of the newest batch + 1
