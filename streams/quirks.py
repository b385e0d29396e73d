"""Workarounds for the embedded broker, applied only when the broker is Tansu.

Tansu 0.6 answers ListOffsets(latest) with the base offset of the newest record batch
+ 1, not the log end. Faust ends table recovery at that offset, so a restarted worker
would stop replaying its changelog early. Fetch responses carry the right high-water
mark, so when the broker is Tansu the worker asks a Fetch instead. Real Kafka is never
touched: the patch is installed only after the cluster identified itself as Tansu
(or LIVEROOM_BROKER_QUIRKS=tansu says so).

Tansu also holds a Fetch for its whole max wait when the records arrive after the
request, and Faust asks for 1,500 ms: every hop of the pipeline then waits up to
1.5 s. On Tansu the worker's consumers ask for TANSU_FETCH_WAIT_MS instead (on Kafka
a fetch returns as soon as records arrive, so Faust's value is harmless there).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)

TANSU_CLUSTER_IDS = ("tansu_cluster",)
TANSU_FETCH_WAIT_MS = 20


async def cluster_id(options: Mapping[str, Any]) -> str | None:
    client = AIOKafkaClient(**options)
    await client.bootstrap()
    try:
        node = client.get_random_node()
        response = await client.send(node, MetadataRequest([]))
        return getattr(response, "cluster_id", None)
    finally:
        await client.close()


async def needs_tansu_fixes(mode: str, options: Mapping[str, Any]) -> bool:
    if mode != "AUTO":
        return mode == "TANSU"
    return await cluster_id(options) in TANSU_CLUSTER_IDS


async def fetched_highwaters(
    options: Mapping[str, Any], listed: Mapping[Any, int | None], timeout_s: float = 5.0
) -> dict[Any, int]:
    """High-water marks read from Fetch responses; `listed` (ListOffsets) is a floor."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, max_partition_fetch_bytes=1024, **options)
    await consumer.start()
    result = {tp: value or 0 for tp, value in listed.items()}
    try:
        tps = {TopicPartition(*tp): tp for tp in listed}  # (topic, partition) pairs
        consumer.assign(list(tps))
        for kafka_tp, tp in tps.items():
            consumer.seek(kafka_tp, max((listed[tp] or 0) - 1, 0))
        pending = set(tps)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while pending and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(*pending, timeout_ms=200)
            for kafka_tp in list(pending):
                highwater = consumer.highwater(kafka_tp)
                if highwater is not None:
                    result[tps[kafka_tp]] = max(result[tps[kafka_tp]], highwater)
                    pending.discard(kafka_tp)
                elif not batches:
                    pending.discard(kafka_tp)  # empty partition: nothing to fetch
    finally:
        await consumer.stop()
    return result


def install_faust_highwater_fix(options: Mapping[str, Any]) -> None:
    """Make Faust's changelog end offsets come from Fetch high-water marks."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    listed_highwaters = AIOKafkaConsumerThread._highwaters
    if getattr(listed_highwaters, "liveroom_fix", False):
        return

    async def _highwaters(self: Any, partitions: Iterable[Any]) -> Mapping[Any, int]:
        listed = await listed_highwaters(self, partitions)
        return await fetched_highwaters(options, listed)

    _highwaters.liveroom_fix = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._highwaters = _highwaters
    log.info("broker is Tansu: changelog end offsets come from Fetch high-water marks")


def install_faust_fetch_wait_fix(wait_ms: int = TANSU_FETCH_WAIT_MS) -> None:
    """Make Faust's consumers wait at most `wait_ms` for a fetch (see the module doc)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "liveroom_fix", False):
        return

    def _create_worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read by the Fetcher created at start()
        return consumer

    _create_worker_consumer.liveroom_fix = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    log.info("broker is Tansu: fetches wait at most %d ms", wait_ms)
