"""One room's alerting: its detectors, fed the room's per-second series, and the
firing → resolved lifecycle of each alert (room, kind, key).

Plain Python, driven by event time: `close(second, ...)` is called once per
finished second of the room (the worker closes seconds by the watermark of the
whole partition, or by the clock when the input is silent, so a room that goes
quiet is still judged).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from streams.alerts.product_watch import STEP_S, ProductWatch
from streams.alerts.records import firing_record, resolved_record
from streams.anomaly import (
    ConditionalDrop,
    CountThreshold,
    LevelDrop,
    RateDrop,
    RateSpike,
    RatioSurge,
)
from streams.anomaly.detectors import Detector

Record = dict[str, Any]
RECOVERY_S = 60  # after a ViewerDrop, spikes stay quiet this long
PRODUCT_SLOT = "ProductCheckoutStalled/"  # `active` slots of product alerts: kind/product_id


def _rate(x: float) -> str:
    return f"{x:.1f}/s" if x < 100 else f"{x:,.0f}/s"


class RoomWatch:
    """Detectors of one room and its firing alerts."""

    # Slots: a watch's attribute dict was ~350 bytes, 5,000 rooms 1.7 MB.
    __slots__ = (
        "active",
        "activity",
        "comment_spike",
        "conversion",
        "entry_spike",
        "keyword_lists",
        "keyword_pending",
        "keyword_samples",
        "last_closed",
        "online",
        "products",
        "room_id",
        "rules",
        "stall",
        "surge",
    )

    def __init__(self, room_id: str, rules: dict[str, Any]) -> None:
        self.room_id = room_id
        self.rules = rules
        self.activity = RateDrop(**rules["viewer_drop"]["activity"])
        self.online = LevelDrop(**rules["viewer_drop"]["online"])
        self.entry_spike = RateSpike(**rules["traffic_spike"]["entries"])
        self.comment_spike = RateSpike(**rules["traffic_spike"]["comments"])
        self.stall = ConditionalDrop(**rules["checkout_stalled"]["detector"])
        self.conversion = ConditionalDrop(**rules["conversion_drop"]["detector"])
        self.surge = RatioSurge(**rules["negative_comment_surge"]["detector"])
        self.products = ProductWatch(rules["product_checkout_stalled"])
        self.keyword_lists: dict[str, CountThreshold] = {}
        self.keyword_pending: dict[str, int] = {}
        self.keyword_samples: dict[str, deque[str]] = {}
        self.last_closed = -1  # last second fed to the detectors
        self.active: dict[str, Record] = {}  # "kind/key" -> its firing record

    def _keyword_detector(self) -> CountThreshold:
        """A detector for a watch-list the room's comments named (made when first named:
        most rooms name few of the lists)."""
        kw = self.rules["keyword_hit"]
        keys = ("window", "min_hits", "min_share", "clear_after", "cooldown")
        return CountThreshold(**{k: kw[k] for k in keys})

    # -- input -------------------------------------------------------------------------

    def note_keywords(self, lists: tuple[str, ...], text: str) -> None:
        """A comment that names phrases of these watch-lists (counted at the next close)."""
        keep = self.rules["keyword_hit"]["samples"]
        for name in lists:
            self.keyword_pending[name] = self.keyword_pending.get(name, 0) + 1
            samples = self.keyword_samples.get(name)
            if samples is None:
                samples = self.keyword_samples[name] = deque(maxlen=keep)
            samples.append(text[:200])

    def close(
        self,
        second: int,
        entries: float,
        comments: float,
        carts: float,
        orders: float,
        scored: float,
        negative: float,
        online: float,
        announced: bool = False,
    ) -> list[Record]:
        """Feed the finished `second`; return the alert transitions it caused."""
        self.last_closed = second
        out: list[Record] = []
        at_ms = (second + 1) * 1000
        if announced:
            self.entry_spike.suppress(self.entry_spike.steps + 1)
            self.comment_spike.suppress(self.comment_spike.steps + 1)
        # `_follow` has work only where an alert fires or did (`active`): most rooms, most
        # seconds, none, and the calls are skipped.
        follow, active = self._follow, self.active
        self.activity.step(entries + comments + carts + orders)
        self.online.step(online)
        dropped = self.activity.firing or self.online.firing
        if dropped or active:
            follow(out, "ViewerDrop", "", at_ms, dropped, self._viewer_drop_text, "viewer_drop")
        broken = "ViewerDrop/" in active
        if broken:
            # Spikes learn nothing from a broken stream, and the audience coming back
            # after it is a recovery, not a spike.
            for spike in (self.entry_spike, self.comment_spike):
                spike.suppress(spike.steps + RECOVERY_S)
        else:
            self.entry_spike.step(entries)
            self.comment_spike.step(comments)
        if active or self.entry_spike.firing or self.comment_spike.firing:
            for key, spike in (("entries", self.entry_spike), ("comments", self.comment_spike)):
                text, section = self._spike_text, "traffic_spike"
                follow(out, "TrafficSpike", key, at_ms, spike.firing, text, section, key, spike)
        # A room whose stream broke also stops buying: the ViewerDrop says it all, so
        # checkout and conversion alerts do not start while it fires.
        self.stall.step(carts, orders)
        stalled = self.stall.firing and not broken
        if stalled or active:
            follow(out, "CheckoutStalled", "", at_ms, stalled, self._stall_text, "checkout_stalled")
        self.conversion.step(entries, orders)
        collapsed = self.conversion.firing and not broken
        if collapsed or active:
            text, section = self._conversion_text, "conversion_drop"
            follow(out, "ConversionDrop", "", at_ms, collapsed, text, section)
        self.surge.step(scored, negative)
        surging = self.surge.firing
        if surging or active:
            text, section = self._surge_text, "negative_comment_surge"
            follow(out, "NegativeCommentSurge", "", at_ms, surging, text, section)
        self._close_keywords(out, at_ms, comments)
        return out

    def close_products(self, step: int, rows: dict[str, tuple[float, float]]) -> list[Record]:
        """Feed the finished product step `step` (STEP_S seconds of event time): each
        product's (cart adds, orders) in it. Returns the alert transitions it caused.
        While the whole room is down (ViewerDrop) or cannot pay (CheckoutStalled), that
        alert says it all: no product alert starts."""
        active = self.active
        alerting = {
            slot.removeprefix(PRODUCT_SLOT) for slot in active if slot.startswith(PRODUCT_SLOT)
        }
        stalled = self.products.step(rows, alerting)
        if "ViewerDrop/" in active or "CheckoutStalled/" in active:
            stalled = set()
        out: list[Record] = []
        at_ms = (step + 1) * STEP_S * 1000
        kind, text, section = (
            "ProductCheckoutStalled",
            self._product_text,
            "product_checkout_stalled",
        )
        for product_id in sorted(stalled | alerting):
            firing = product_id in stalled
            self._follow(out, kind, product_id, at_ms, firing, text, section, product_id)
        return out

    def close_all(self, at_ms: int, why: str) -> list[Record]:
        """Resolve everything still firing (the room went idle and is forgotten)."""
        out = [resolved_record(record, at_ms, why) for record in self.active.values()]
        self.active.clear()
        return out

    # -- lifecycle ---------------------------------------------------------------------

    def _follow(
        self,
        out: list[Record],
        kind: str,
        key: str,
        at_ms: int,
        firing: bool,
        text,
        section: str,
        *text_args: Any,
    ) -> None:
        """Start or resolve the alert of `kind`/`key` (`close` calls it only where it fires
        or something does). `text(*text_args)` makes its words, called only when it
        starts (nothing is built for the rooms where nothing fires)."""
        slot = f"{kind}/{key}"
        record = self.active.get(slot)
        if firing and record is None:
            summary, description, value, threshold, baseline, samples = text(*text_args)
            severity = self.rules[section]["severity"]
            record = firing_record(
                room_id=self.room_id,
                kind=kind,
                key=key,
                severity=severity,
                starts_at_ms=at_ms,
                summary=summary,
                description=description,
                value=value,
                threshold=threshold,
                baseline=baseline,
                samples=samples,
                rules=self.rules,
            )
            if kind == "ProductCheckoutStalled":
                record["product_id"] = key
            self.active[slot] = record
            out.append(record)
        elif not firing and record is not None:
            del self.active[slot]
            out.append(resolved_record(record, at_ms, "back to normal."))

    def _close_keywords(self, out: list[Record], at_ms: int, comments: float) -> None:
        if not self.keyword_pending and not self.keyword_lists:
            return  # no watch-list named in this room lately
        kw = self.rules["keyword_hit"]
        for name in self.keyword_pending:  # in the order first named (a set's would vary)
            if name not in self.keyword_lists:
                self.keyword_lists[name] = self._keyword_detector()
        for name, detector in list(self.keyword_lists.items()):
            detector.step(self.keyword_pending.pop(name, 0), comments)
            slot = f"KeywordHit/{name}"
            record = self.active.get(slot)
            if detector.firing and record is None:
                severity = kw["severity"].get(name, kw["severity"]["default"])
                hits = int(detector.value)
                record = firing_record(
                    room_id=self.room_id,
                    kind="KeywordHit",
                    key=name,
                    severity=severity,
                    starts_at_ms=at_ms,
                    summary=f"{self.room_id}: {hits} comments about {name} in the last minute",
                    description=(
                        f"{hits} comments in {kw['window']} s named phrases of the '{name}' "
                        f"watch-list (threshold {detector.threshold:.0f}: at least "
                        f"{kw['min_hits']} and {kw['min_share']:.0%} of the room's comments). "
                        "See the samples."
                    ),
                    value=hits,
                    threshold=detector.threshold,
                    baseline=0.0,
                    samples=list(self.keyword_samples.get(name, ())),
                    rules=self.rules,
                )
                self.active[slot] = record
                out.append(record)
            elif not detector.firing and record is not None:
                del self.active[slot]
                out.append(resolved_record(record, at_ms, "the phrases stopped."))
            elif detector.value == 0 and detector.steps > detector.cooldown_until + 600:
                # Idle list: forget it (memory stays bounded by the lists in use).
                del self.keyword_lists[name]
                self.keyword_samples.pop(name, None)

    # -- alert text --------------------------------------------------------------------

    def _viewer_drop_text(self):
        if self.online.firing:
            d = self.online
            return (
                f"{self.room_id}: online viewers fell to {d.value:,.0f} from {d.baseline:,.0f}",
                f"Online viewers fell below {d.threshold:,.0f} ({d.value / d.baseline:.0%} of "
                "the usual level). The stream may have broken or been cut.",
                d.value,
                d.threshold,
                d.baseline,
                [],
            )
        d = self.activity
        return (
            f"{self.room_id}: activity fell to {_rate(d.value)} from {_rate(d.baseline)}",
            f"Entries, comments, carts and orders fell to {d.value / d.baseline:.0%} of the "
            "room's usual rate and stayed there. The stream may have broken or been cut.",
            d.value,
            d.threshold,
            d.baseline,
            [],
        )

    def _spike_text(self, series: str, d: RateSpike):
        return (
            f"{self.room_id}: {series} at {_rate(d.value)}, {d.value / max(d.baseline, 0.01):.0f}x "
            "the usual rate",
            f"{series.capitalize()} rose to {_rate(d.value)} against a usual "
            f"{_rate(d.baseline)}: a bot flood or a viral moment. Announced events "
            "(flash sales) do not raise this alert.",
            d.value,
            d.threshold,
            d.baseline,
            [],
        )

    def _stall_text(self):
        d = self.stall
        return (
            f"{self.room_id}: carts keep coming but orders stopped",
            f"Orders in the last 10 s: {d.value:.0f}. At this room's own rate of "
            f"{d.baseline:.2f} orders per cart, that is far below what the recent carts "
            "predict. Checkout or payment may be broken.",
            d.value,
            d.threshold,
            d.baseline,
            [],
        )

    def _product_text(self, product_id: str):
        q, carts_per_step, silent = self.products.figures(product_id)
        minutes = silent * STEP_S / 60
        return (
            f"{self.room_id}: product {product_id} gets carts but no orders for {minutes:.0f} min",
            f"Product {product_id} had no order for {silent * STEP_S} s while it kept getting "
            f"about {carts_per_step * 60 / STEP_S:.1f} cart adds a minute; it usually turns "
            f"{q:.0%} of its carts into orders. The rest of the room sells. Check the "
            "product link: its price, stock and SKU.",
            0.0,
            q * 0.5,
            q,
            [],
        )

    def _conversion_text(self):
        d = self.conversion
        return (
            f"{self.room_id}: conversion collapsed while traffic holds",
            f"Orders per entry fell well below this room's own {d.baseline:.2%} while "
            "entries held. Check the price, the product link and stock.",
            d.value,
            d.threshold,
            d.baseline,
            [],
        )

    def _surge_text(self):
        d = self.surge
        return (
            f"{self.room_id}: {d.value:.0%} of comments negative in the last minute",
            f"Negative comments rose to {d.value:.0%} of scored comments in the last minute, "
            f"against this room's usual {d.baseline:.0%}.",
            d.value,
            d.threshold,
            d.baseline,
            [],
        )

    # -- checkpoints -------------------------------------------------------------------

    _DETECTORS = (
        "activity",
        "online",
        "entry_spike",
        "comment_spike",
        "stall",
        "conversion",
        "surge",
    )

    def to_state(self) -> dict[str, Any]:
        return {
            "last_closed": self.last_closed,
            "active": self.active,
            "detectors": {name: getattr(self, name).to_state() for name in self._DETECTORS},
            "keywords": {name: d.to_state() for name, d in self.keyword_lists.items()},
            "products": self.products.to_state(),
            "samples": {name: list(s) for name, s in self.keyword_samples.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.last_closed = state["last_closed"]
        self.active = state["active"]
        for name, saved in state["detectors"].items():
            detector: Detector = getattr(self, name)
            detector.load_state(saved)
        for name, saved in state["keywords"].items():
            self.keyword_lists[name] = self._keyword_detector()
            self.keyword_lists[name].load_state(saved)
        keep = self.rules["keyword_hit"]["samples"]
        self.keyword_samples = {n: deque(s, maxlen=keep) for n, s in state["samples"].items()}
        self.products.load_state(state.get("products", {}))  # absent before 2026-12-07
