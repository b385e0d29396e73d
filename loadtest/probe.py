"""What the load test watches while it runs: the worker's /metrics, the room-metrics
topic (event→metric latency) and the alerts topic (detection delays)."""

from __future__ import annotations

import asyncio
import bisect
import math
import urllib.request
from collections import defaultdict, deque
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

SAMPLE_EVERY = 50  # producers report one event in this many for the latency probe
# Latency histogram bins: 1 ms to ~2 min, 5 % apart.
BINS = [0.001 * 1.05**i for i in range(240)]


class Histogram:
    """Weighted latencies in log-spaced bins; percentiles within 5 %."""

    def __init__(self) -> None:
        self.counts = [0.0] * (len(BINS) + 1)
        self.total = 0.0

    def add(self, value: float, weight: float = 1.0) -> None:
        self.counts[bisect.bisect_left(BINS, max(value, 0.0))] += weight
        self.total += weight

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.total += other.total

    def percentile(self, q: float) -> float | None:
        if self.total <= 0:
            return None
        target, seen = q * self.total, 0.0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= target:
                return BINS[min(i, len(BINS) - 1)]
        return BINS[-1]


WANTED = {
    "liveroom_events_processed_total": "processed",
    "liveroom_events_rejected_total": "rejected",
    "liveroom_duplicate_events_total": "duplicates",
    "liveroom_late_events_total": "late",
    "liveroom_consumer_lag_records": "lag_records",
    "liveroom_live_rooms": "live_rooms",
    "process_cpu_seconds_total": "cpu_seconds",
    "process_resident_memory_bytes": "rss_bytes",
    "liveroom_alerts_total": "alerts",
}
LAG_BUCKET = "liveroom_event_lag_seconds_bucket"
_PREFIXES = (*WANTED, LAG_BUCKET)


def scrape(url: str) -> dict[str, Any]:
    """Sums of the worker's counters and gauges this report uses.

    Only those lines are parsed: with thousands of rooms /metrics is megabytes, and a
    full parse would take the probe longer than the second it has."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, Any] = dict.fromkeys(WANTED.values(), 0.0)
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith(_PREFIXES):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name == LAG_BUCKET:
            le = name_labels.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(le)] = float(value)
        elif name in WANTED:
            out[WANTED[name]] += float(value)
    out["fold_lag_buckets"] = buckets
    return out


def merge_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several workers as one group's: counters, gauges (rooms, RSS,
    CPU seconds, lag) and histogram buckets are all sums, as their partitions are
    disjoint."""
    out: dict[str, Any] = dict.fromkeys(WANTED.values(), 0.0)
    buckets: dict[float, float] = {}
    for sample in samples:
        for key in WANTED.values():
            out[key] += sample[key]
        for le, count in sample["fold_lag_buckets"].items():
            buckets[le] = buckets.get(le, 0.0) + count
    out["fold_lag_buckets"] = buckets
    return out


def bucket_percentiles(
    before: dict[float, float], after: dict[float, float]
) -> dict[str, float | None]:
    """p50/p95/p99 of a Prometheus histogram between two scrapes (linear in a bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]  # cumulative
    total = counts[-1] if counts else 0.0
    out: dict[str, float | None] = {}
    for q in (50, 95, 99):
        if total <= 0:
            out[f"p{q}"] = None
            continue
        target = q / 100 * total
        low_bound, low_count = 0.0, 0.0
        for bound, count in zip(bounds, counts, strict=True):
            if count >= target:
                if math.isinf(bound):
                    out[f"p{q}"] = low_bound
                else:
                    share = (target - low_count) / max(count - low_count, 1e-9)
                    out[f"p{q}"] = round(low_bound + share * (bound - low_bound), 4)
                break
            low_bound, low_count = bound, count
    return out


class SnapshotLatency:
    """Event→metric latency from the room-metrics topic, for a sample of events.

    The producers report the room and send time of every SAMPLE_EVERY-th event. The
    first snapshot of that room whose watermark (its newest event time) reaches the
    event's time is the first metric that holds it: latency = the snapshot's emit time
    minus the event time. Samples and snapshots arrive by different paths, so each
    side waits for the other (a few recent snapshots are kept per room).
    `freshness` is the emit time minus the watermark: how old the newest event in a
    published metric is.
    """

    def __init__(self, started_ms: int) -> None:
        self.started_ms = started_ms
        self.per_second: dict[int, Histogram] = defaultdict(Histogram)
        self.freshness: dict[int, Histogram] = defaultdict(Histogram)
        self.pending: dict[str, deque[int]] = defaultdict(deque)  # sampled event times
        self.recent: dict[str, deque[tuple[int, int]]] = defaultdict(lambda: deque(maxlen=16))
        self.snapshots = 0
        self.matched = 0
        self.queued: list[int] = []  # ms from building a snapshot to its record's timestamp

    def expect(self, room_id: str, ts_ms: int) -> None:
        """A sampled event: match it to a snapshot already seen, or wait for one."""
        for emitted_ms, watermark in self.recent.get(room_id, ()):
            if watermark >= ts_ms:
                self._record(emitted_ms, ts_ms)
                return
        self.pending[room_id].append(ts_ms)

    def add(self, emitted_ms: int, snap: dict[str, Any]) -> None:
        self.snapshots += 1
        made = snap.get("emitted_at_ms")
        if made is not None:
            self.queued.append(emitted_ms - made)
        room, watermark = snap["room_id"], snap["watermark_ms"]
        second = (emitted_ms - self.started_ms) // 1000
        self.freshness[second].add((emitted_ms - watermark) / 1000)
        self.recent[room].append((emitted_ms, watermark))
        waiting = self.pending.get(room)
        while waiting and waiting[0] <= watermark:
            self._record(emitted_ms, waiting.popleft())

    def _record(self, emitted_ms: int, ts_ms: int) -> None:
        self.matched += 1
        second = (emitted_ms - self.started_ms) // 1000
        self.per_second[second].add((emitted_ms - ts_ms) / 1000)


async def follow_topics(
    options: Mapping[str, Any],
    metrics_topic: str,
    alerts_topic: str,
    latency: SnapshotLatency,
    alerts: list[dict[str, Any]],
    stop: asyncio.Event,
) -> None:
    """Read room-metrics from now on and alerts from the start until `stop`."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **options)
    await consumer.start()
    try:
        metric_tps = [
            TopicPartition(metrics_topic, p)
            for p in consumer.partitions_for_topic(metrics_topic) or ()
        ]
        alert_tps = [
            TopicPartition(alerts_topic, p)
            for p in consumer.partitions_for_topic(alerts_topic) or ()
        ]
        consumer.assign(metric_tps + alert_tps)
        await consumer.seek_to_end(*metric_tps)
        for tp in alert_tps:
            consumer.seek(tp, 0)
        loads = orjson.loads
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for tp, records in batches.items():
                if tp.topic == metrics_topic:
                    for record in records:
                        latency.add(record.timestamp, loads(record.value))
                else:
                    alerts.extend(loads(record.value) for record in records)
    finally:
        await consumer.stop()


def percentiles(hist: Histogram) -> dict[str, float | None]:
    return {f"p{q}": _round(hist.percentile(q / 100)) for q in (50, 95, 99)}


def _round(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)
