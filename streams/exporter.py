"""Prometheus exposition: a custom collector over live room state plus health metrics.

Room metrics are read from the snapshots the worker already computes (at most one per
room per second), so a scrape costs a walk over dicts, not a recomputation.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streams.rooms.metrics import WINDOWED_GAUGES, WINDOWS

ROOM_COUNTERS = (
    ("views_total", "liveroom_views", "Viewer enter events (PV) in the session."),
    ("comments_total", "liveroom_comments", "Comments in the session."),
    ("cart_adds_total", "liveroom_cart_adds", "Add-to-cart events in the session."),
    ("orders_total", "liveroom_orders", "Paid orders in the session."),
    ("refunds_total", "liveroom_refunds", "Refunded orders in the session."),
    ("gmv_yuan_total", "liveroom_gmv_yuan", "GMV: sum of paid order amounts, yuan."),
    ("refunds_yuan_total", "liveroom_refunds_yuan", "Sum of refunded amounts, yuan."),
)
WINDOWED_HELP = {
    "unique_viewers": "Distinct users with an enter event (UV).",
    "buyers": "Distinct users with a paid order.",
    "interaction_ratio": "Distinct commenters / unique viewers.",
    "cart_ratio": "Distinct users who added to cart / unique viewers.",
    "conversion_ratio": "Distinct buyers / unique viewers.",
    "cart_to_order_ratio": "Distinct buyers / distinct users who added to cart.",
    "gpm_yuan": "GMV per 1000 views, yuan.",
    "uv_value_yuan": "GMV / unique viewers, yuan.",
    "average_order_value_yuan": "GMV / buyers, yuan.",
    "negative_comment_ratio": "Negative comments / scored comments.",
    "comment_sentiment_score": "Mean sentiment score of scored comments, -1 (negative) to 1.",
}
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class EventLagHistogram(Collector):
    """`liveroom_event_lag_seconds` with a bulk observe (one call per batch, not per event)."""

    def __init__(self, buckets: Iterable[float] = LAG_BUCKETS) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe_many(self, lags: Iterable[float]) -> None:
        bounds, counts = self.bounds, self.counts
        for lag in lags:
            counts[bisect.bisect_left(bounds, lag)] += 1
            self.total += lag

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "liveroom_event_lag_seconds",
            "Processing time minus event time of events folded into room state.",
            buckets=buckets,
            sum_value=self.total,
        )


class HealthMetrics:
    """Processor health counters (no room label)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.processed = Counter(
            "liveroom_events_processed",
            "Valid events folded into room state.",
            ["topic"],
            registry=registry,
        )
        self.rejected = Counter(
            "liveroom_events_rejected",
            "Input rejected to the dead-letter topic.",
            ["topic", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "liveroom_duplicate_events",
            "Events dropped as a repeated event_id.",
            ["topic"],
            registry=registry,
        )
        self.late = Counter(
            "liveroom_late_events",
            "Events later than the allowed lateness (cumulative only).",
            ["topic"],
            registry=registry,
        )
        self.alerts = Counter(
            "liveroom_alerts", "Alerts fired.", ["kind", "severity"], registry=registry
        )
        self.deliveries = Counter(
            "liveroom_alert_deliveries",
            "Alert posts to Alertmanager or the webhook, by outcome (sent, failed, dropped).",
            ["target", "outcome"],
            registry=registry,
        )
        self.lag = EventLagHistogram()
        registry.register(self.lag)
        self.checkpoint_seconds = Gauge(
            "liveroom_checkpoint_duration_seconds",
            "Duration of the last state checkpoint.",
            registry=registry,
        )


SnapshotSource = Callable[[], Iterable[dict[str, Any]]]
AlertSource = Callable[[], Iterable[tuple[str, str, str]]]
LagSource = Callable[[], Iterable[tuple[str, int, int]]]


class ConsumerLagCollector(Collector):
    """`liveroom_consumer_lag_records{topic,partition}`: records not yet processed."""

    def __init__(self, lags: LagSource) -> None:
        self.lags = lags

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "liveroom_consumer_lag_records",
            "Records between the log end and the next record this worker will process.",
            labels=["topic", "partition"],
        )
        for topic, partition, lag in self.lags():
            family.add_metric([topic, str(partition)], lag)
        yield family


def _activity(snap: dict[str, Any]) -> float:
    w = snap["windows"]["5m"]
    return w["views"] + w["comments"] + w["cart_adds"] + w["orders"]


class RoomCollector(Collector):
    """Per-room families from the latest snapshots, busiest `max_rooms` first."""

    def __init__(
        self,
        snapshots: SnapshotSource,
        max_rooms: int,
        firing_alerts: AlertSource = lambda: (),
    ) -> None:
        self.snapshots = snapshots
        self.max_rooms = max_rooms
        self.firing_alerts = firing_alerts

    def collect(self) -> Iterator[Metric]:
        rooms = list(self.snapshots())
        if len(rooms) > self.max_rooms:
            rooms.sort(key=_activity, reverse=True)
        exported, unexported = rooms[: self.max_rooms], len(rooms) - self.max_rooms

        live = GaugeMetricFamily("liveroom_live_rooms", "Rooms with state on this worker.")
        live.add_metric([], len(rooms))
        yield live
        left_out = GaugeMetricFamily(
            "liveroom_rooms_unexported", "Live rooms left out by LIVEROOM_MAX_ROOMS."
        )
        left_out.add_metric([], max(unexported, 0))
        yield left_out

        online = GaugeMetricFamily(
            "liveroom_online_viewers",
            "Users who entered, have not left and are not silent.",
            labels=["room_id"],
        )
        peak = GaugeMetricFamily(
            "liveroom_peak_online_viewers",
            "PCU: peak online viewers in the session.",
            labels=["room_id"],
        )
        entries = GaugeMetricFamily(
            "liveroom_entries_per_minute",
            "Enter events in the last minute of event time.",
            labels=["room_id"],
        )
        counters = {
            field: CounterMetricFamily(name, doc, labels=["room_id"])
            for field, name, doc in ROOM_COUNTERS
        }
        windowed = {
            name: GaugeMetricFamily(
                f"liveroom_{name}", WINDOWED_HELP[name], labels=["room_id", "window"]
            )
            for name in WINDOWED_GAUGES
        }
        for snap in exported:
            room = [snap["room_id"]]
            online.add_metric(room, snap["online_viewers"])
            peak.add_metric(room, snap["peak_online_viewers"])
            entries.add_metric(room, snap["entries_per_minute"])
            for field, family in counters.items():
                family.add_metric(room, snap[field])
            for window in WINDOWS:
                values = snap["windows"][window]
                for name, family in windowed.items():
                    value = values[name]
                    if value is not None:
                        family.add_metric([snap["room_id"], window], value)
        yield online
        yield peak
        yield entries
        yield from counters.values()
        yield from windowed.values()

        firing = GaugeMetricFamily(
            "liveroom_alerts_firing",
            "Alerts currently firing.",
            labels=["room_id", "kind", "severity"],
        )
        # Two alerts of one kind in one room (spikes of entries and of comments) share
        # a label set: the value counts them.
        for labels, count in collections.Counter(self.firing_alerts()).items():
            firing.add_metric(list(labels), count)
        yield firing


def build_registry(
    snapshots: SnapshotSource,
    max_rooms: int,
    firing_alerts: AlertSource = lambda: (),
    lags: LagSource = lambda: (),
) -> tuple[CollectorRegistry, HealthMetrics]:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # RSS and CPU for the processor dashboard
    registry.register(RoomCollector(snapshots, max_rooms, firing_alerts))
    registry.register(ConsumerLagCollector(lags))
    return registry, HealthMetrics(registry)
