"""Prometheus exposition: health metrics through prometheus_client, room metrics as
text rendered once per room snapshot.

Room metrics are read from the snapshots the worker already computes (at most one per
room per second), so a scrape joins cached lines, not a recomputation.
"""

from __future__ import annotations

import collections
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from streams.rooms.metrics import WINDOWED_GAUGES, WINDOWS
from streams.rooms.peers import PEER_METRICS
from streams.rooms.trend import CHANGE_METRICS

ROOM_COUNTERS = (
    ("views_total", "liveroom_views", "Viewer enter events (PV) in the session."),
    ("comments_total", "liveroom_comments", "Comments in the session."),
    ("cart_adds_total", "liveroom_cart_adds", "Add-to-cart events in the session."),
    ("orders_total", "liveroom_orders", "Paid orders in the session."),
    ("refunds_total", "liveroom_refunds", "Refunded orders in the session."),
    ("gmv_yuan_total", "liveroom_gmv_yuan", "GMV: sum of paid order amounts, yuan."),
    ("refunds_yuan_total", "liveroom_refunds_yuan", "Sum of refunded amounts, yuan."),
    ("spend_yuan_total", "liveroom_spend_yuan", "Ad spend on the room's traffic, yuan."),
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
    "roi": "Return on ad spend (投产比): GMV / spend; absent while spend is 0.",
}
# Fine around the 0.25 s event->state target, so a p99 read from the buckets is not a
# guess across a quarter-second bucket.
LAG_BUCKETS = (
    0.025,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# Per-room families, in exposition order: (name, help, type).
ROOM_FAMILIES = (
    ("liveroom_online_viewers", "Users who entered, have not left and are not silent.", "gauge"),
    ("liveroom_peak_online_viewers", "PCU: peak online viewers in the session.", "gauge"),
    ("liveroom_entries_per_minute", "Enter events in the last minute of event time.", "gauge"),
    (
        "liveroom_room_shards",
        "Shards the room is split over by viewer (1: not split); from the merging worker.",
        "gauge",
    ),
    *((f"{name}_total", doc, "counter") for _, name, doc in ROOM_COUNTERS),
    *((f"liveroom_{name}", WINDOWED_HELP[name], "gauge") for name in WINDOWED_GAUGES),
    (
        "liveroom_window_change_ratio",
        "This 10-minute window's value over the previous 10 minutes' (README).",
        "gauge",
    ),
    (
        "liveroom_peer_percentile",
        "Rank among live rooms of the same audience band, 0-1 (README).",
        "gauge",
    ),
)
ROOM_FAMILY_NAMES = tuple(name for name, _, _ in ROOM_FAMILIES)
# Per product, for each room's top products by session GMV: off unless
# LIVEROOM_PRODUCT_SERIES_PER_ROOM says how many (each costs 4 series of the budget).
PRODUCT_FAMILIES = (
    ("liveroom_product_cart_adds_total", "Add-to-cart events of the product in the session."),
    ("liveroom_product_orders_total", "Paid orders of the product in the session."),
    ("liveroom_product_gmv_yuan_total", "GMV of the product in the session, yuan."),
    (
        "liveroom_product_cart_to_order_ratio",
        "Distinct buyers / distinct carters of the product in the session.",
    ),
)
PRODUCT_FIELDS = ("cart_adds", "orders", "gmv_yuan", "cart_to_order_ratio")
# One worker's /metrics stays under this many series by default (SPEC: under 50,000).
DEFAULT_SERIES_BUDGET = 45_000


class EventLagHistogram(Collector):
    """`liveroom_event_lag_seconds` with a bulk observe (one call per batch, not per event)."""

    def __init__(self, buckets: Iterable[float] = LAG_BUCKETS) -> None:
        self.bounds = list(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe_event_times(self, now_ms: int, event_ts_ms: Iterable[int]) -> None:
        """Observe now - ts for each event time (ms), without a float or a Python step
        per event: the times sorted (in C; a fold's are nearly in order), then one
        bisection per bucket bound. A loop over the bounds per event was 3 % of the
        worker's CPU at saturation, where every event's lag crosses most bounds."""
        times = sorted(event_ts_ms)
        if not times:
            return
        counts = self.counts
        below = 0  # events with lag above the bounds handled so far: ts < now - bound
        for i, bound in enumerate(reversed(self.bounds)):  # the largest bound first
            within = bisect_left(times, now_ms - int(bound * 1000))  # lag > bound
            counts[len(self.bounds) - i] += within - below
            below = within
        counts[0] += len(times) - below
        self.total += (now_ms * len(times) - sum(times)) / 1000.0

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
            "Duration of the last state checkpoint (capture + write).",
            registry=registry,
        )
        self.checkpoint_capture_seconds = Gauge(
            "liveroom_checkpoint_capture_seconds",
            "Time the last checkpoint held the event loop to capture what changed.",
            registry=registry,
        )
        self.broker_up = Gauge(
            "liveroom_broker_up",
            "1 while the Kafka broker answers this worker's metadata probe (every 2 s), else 0.",
            registry=registry,
        )
        self.broker_up.set(1)
        self.restore_seconds = Gauge(
            "liveroom_state_restore_seconds",
            "Time the last assignment took to restore its room partitions from the state "
            "log (read and rebuilt, all partitions at once); the worker is not ready then.",
            registry=registry,
        )
        self.rooms_without_base = Counter(
            "liveroom_rooms_restored_without_base",
            "Rooms a partition restore rebuilt from checkpoint deltas without their base "
            "(a broken state-log chain): totals exact, distinct counts short.",
            registry=registry,
        )
        self.sentiment_model = Gauge(
            "liveroom_sentiment_model_info",
            "The comment-sentiment model in use (1): its file name and a short sha256 "
            "(shipped: the model in the package).",
            ["model", "sha256"],
            registry=registry,
        )
        self.input_lost = Counter(
            "liveroom_input_records_lost",
            "Input records that no longer existed at the worker's position (retention "
            "deleted them first); a topic created again is logged.",
            ["topic"],
            registry=registry,
        )
        self.passed_over = Counter(
            "liveroom_offsets_passed_over",
            "Offsets the worker moved past with no record: transaction markers or "
            "compaction on input topics; on room-events, records the rooms never folded "
            "(a bug, or retention shorter than a restore's replay).",
            ["topic"],
            registry=registry,
        )
        self.checkpoint_bytes = Counter(
            "liveroom_checkpoint_written_bytes",
            "Bytes of checkpoints written to the state log.",
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


class DeliveryPendingCollector(Collector):
    """`liveroom_alert_delivery_pending{receiver}`: alert transitions waiting for a
    receiver that has not taken them yet (streams.alerts.pending)."""

    def __init__(self, pending: Callable[[], dict[str, int]]) -> None:
        self.pending = pending

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "liveroom_alert_delivery_pending",
            "Alert transitions waiting for a receiver (Alertmanager, webhook) to take them.",
            labels=["receiver"],
        )
        for receiver, count in self.pending().items():
            family.add_metric([receiver], count)
        yield family


def _activity(snap: dict[str, Any]) -> float:
    w = snap["windows"]["5m"]
    return w["views"] + w["comments"] + w["cart_adds"] + w["orders"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float) -> str:
    return floatToGoString(float(value))


class RoomExposition:
    """The per-room families as Prometheus text for the busiest rooms that fit.

    Rooms are taken busiest first (events in the last 5 minutes) until `max_rooms` or
    until the next room's series would take the exposition over `series_budget`; the
    rest are counted in `liveroom_rooms_unexported` (they stay in the room-metrics topic
    and the live page). `families` chooses which per-room families are exported.

    prometheus_client's collectors format every sample on every scrape (~10 µs each:
    5,000 rooms x 45 samples would block the worker for seconds). A room changes at
    most once a second, so its lines are rendered once per snapshot and reused; a
    scrape joins strings. The text is the exposition format prometheus_client writes
    (HELP and TYPE per family, the same names and values), and `promtool check
    metrics` passes on it (tests/integration/test_exposition.py).
    """

    def __init__(
        self,
        snapshots: SnapshotSource,
        max_rooms: int,
        firing_alerts: AlertSource = lambda: (),
        series_budget: int = DEFAULT_SERIES_BUDGET,
        families: Iterable[str] | None = None,
        product_series: int = 0,
    ) -> None:
        self.snapshots = snapshots
        self.product_series = product_series
        self.max_rooms = max_rooms
        self.firing_alerts = firing_alerts
        self.series_budget = series_budget
        chosen = set(ROOM_FAMILY_NAMES if families is None else families)
        unknown = chosen - set(ROOM_FAMILY_NAMES)
        if unknown:
            raise ValueError(f"unknown room families: {', '.join(sorted(unknown))}")
        self._chosen = [i for i, name in enumerate(ROOM_FAMILY_NAMES) if name in chosen]
        self._families = [
            f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"
            for i, (name, doc, kind) in enumerate(ROOM_FAMILIES)
            if i in self._chosen
        ]
        if product_series:
            self._families += [
                f"# HELP {name} {doc} Top {product_series} products by GMV per room.\n"
                f"# TYPE {name} {'counter' if name.endswith('_total') else 'gauge'}\n"
                for name, doc in PRODUCT_FAMILIES
            ]
        # room -> (snapshot, its lines of the chosen families, how many series they hold)
        self._cache: dict[str, tuple[dict[str, Any], list[str], int]] = {}
        self.exported_series = 0  # room series in the last render

    @staticmethod
    def _room_lines(snap: dict[str, Any]) -> list[str]:
        """One string per family (in ROOM_FAMILIES order) with this room's samples."""
        room = f'room_id="{_label(snap["room_id"])}"'
        lines = [
            f"liveroom_online_viewers{{{room}}} {_value(snap['online_viewers'])}\n",
            f"liveroom_peak_online_viewers{{{room}}} {_value(snap['peak_online_viewers'])}\n",
            f"liveroom_entries_per_minute{{{room}}} {_value(snap['entries_per_minute'])}\n",
            f"liveroom_room_shards{{{room}}} {_value(snap.get('shards', 1))}\n",
        ]
        lines += [
            f"{name}_total{{{room}}} {_value(snap[field])}\n" for field, name, _ in ROOM_COUNTERS
        ]
        windows = snap["windows"]
        for name in WINDOWED_GAUGES:
            lines.append(
                "".join(
                    f'liveroom_{name}{{{room},window="{window}"}} {_value(value)}\n'
                    for window in WINDOWS
                    if (value := windows[window][name]) is not None
                )
            )
        for family, values, metrics in (
            ("liveroom_window_change_ratio", snap.get("change", {}), CHANGE_METRICS),
            ("liveroom_peer_percentile", snap.get("peers", {}), PEER_METRICS),
        ):
            lines.append(
                "".join(
                    f'{family}{{{room},metric="{metric}"}} {_value(values[metric])}\n'
                    for metric in metrics
                    if metric in values
                )
            )
        return lines

    def _product_lines(self, snap: dict[str, Any]) -> list[str]:
        """One string per PRODUCT_FAMILIES family: the room's top products by GMV."""
        room = f'room_id="{_label(snap["room_id"])}"'
        top = snap.get("products", {}).get("session", [])[: self.product_series]
        return [
            "".join(
                f'{name}{{{room},product_id="{_label(row["product_id"])}"}} {_value(row[field])}\n'
                for row in top
                if row[field] is not None
            )
            for (name, _), field in zip(PRODUCT_FAMILIES, PRODUCT_FIELDS, strict=True)
        ]

    def _rendered(self, snap: dict[str, Any]) -> tuple[dict[str, Any], list[str], int]:
        cached = self._cache.get(snap["room_id"])
        if cached is None or cached[0] is not snap:
            every = self._room_lines(snap)
            lines = [every[i] for i in self._chosen]
            if self.product_series:
                lines += self._product_lines(snap)
            cached = (snap, lines, sum(line.count("\n") for line in lines))
        return cached

    @staticmethod
    def _counts(live: int, unexported: int) -> str:
        return (
            "# HELP liveroom_live_rooms Rooms with state on this worker.\n"
            "# TYPE liveroom_live_rooms gauge\n"
            f"liveroom_live_rooms {_value(live)}\n"
            "# HELP liveroom_rooms_unexported Live rooms left out of the per-room families "
            "by LIVEROOM_MAX_ROOMS or the series budget.\n"
            "# TYPE liveroom_rooms_unexported gauge\n"
            f"liveroom_rooms_unexported {_value(max(unexported, 0))}\n"
        )

    def summary(self) -> str:
        """Only how many rooms there are (no per-room families)."""
        live = sum(1 for _ in self.snapshots())
        return self._counts(live, live - self.max_rooms)

    def render(self, other_series: int = 0) -> str:
        """The rooms' part of /metrics; `other_series` are already spent (health)."""
        rooms = list(self.snapshots())
        rooms.sort(key=_activity, reverse=True)
        firing = collections.Counter(self.firing_alerts())
        budget = self.series_budget - other_series - 2 - len(firing)
        columns: list[list[str]] = [[] for _ in self._families]
        fresh: dict[str, tuple[dict[str, Any], list[str], int]] = {}
        used = 0
        for snap in rooms[: self.max_rooms]:
            cached = self._rendered(snap)
            if used + cached[2] > budget:
                break  # busiest first: the rest stay out
            used += cached[2]
            fresh[snap["room_id"]] = cached
            for column, line in zip(columns, cached[1], strict=True):
                column.append(line)
        self._cache = fresh  # rooms gone from the exposition leave the cache too
        self.exported_series = used
        out = [self._counts(len(rooms), len(rooms) - len(fresh))]
        for header, column in zip(self._families, columns, strict=True):
            out.append(header)
            out.extend(column)
        # Two alerts of one kind in one room (spikes of entries and of comments) share
        # a label set: the value counts them.
        out.append(
            "# HELP liveroom_alerts_firing Alerts currently firing.\n"
            "# TYPE liveroom_alerts_firing gauge\n"
        )
        for (room_id, kind, severity), count in firing.items():
            out.append(
                f'liveroom_alerts_firing{{room_id="{_label(room_id)}",kind="{_label(kind)}",'
                f'severity="{_label(severity)}"}} {_value(count)}\n'
            )
        return "".join(out)


class Exposition:
    """Everything /metrics serves: the registry (health, process, consumer lag) and the
    rooms."""

    def __init__(self, registry: CollectorRegistry, rooms: RoomExposition) -> None:
        self.registry = registry
        self.rooms = rooms

    def render(self, rooms: bool = True) -> bytes:
        health = generate_latest(self.registry)
        if not rooms:
            return health + self.rooms.summary().encode()
        spent = sum(1 for line in health.splitlines() if line and not line.startswith(b"#"))
        return health + self.rooms.render(spent).encode()


def build_registry(
    snapshots: SnapshotSource,
    max_rooms: int,
    firing_alerts: AlertSource = lambda: (),
    lags: LagSource = lambda: (),
    series_budget: int = DEFAULT_SERIES_BUDGET,
    families: Iterable[str] | None = None,
    delivery_pending: Callable[[], dict[str, int]] = dict,
    product_series: int = 0,
) -> tuple[Exposition, HealthMetrics]:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # RSS and CPU for the processor dashboard
    registry.register(ConsumerLagCollector(lags))
    registry.register(DeliveryPendingCollector(delivery_pending))
    rooms = RoomExposition(
        snapshots, max_rooms, firing_alerts, series_budget, families, product_series
    )
    return Exposition(registry, rooms), HealthMetrics(registry)
