"""The shape of a live session over time, and the incidents injected into it.

One model for the simulator (`liveroom demo`), the load test and the anomaly
evaluation: a ramp-up, a plateau with product-launch bursts, announced flash sales,
an end-of-session decay, and labelled incidents (a stream cut, checkout broken, a bot
flood, a conversion collapse, a negative wave, one product's link broken). `factors(t)`
says how much of each series a room produces at second `t` of its session, relative to
its plateau; `product_mix(t)` how its carts spread over its product links (商品链接):
Zipf popularity over the products listed at the start, and a new, hot product listed at
each launch.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

STREAM_CUT = "stream_cut"
CHECKOUT_BROKEN = "checkout_broken"
BOT_FLOOD = "bot_flood"
CONVERSION_COLLAPSE = "conversion_collapse"
NEGATIVE_WAVE = "negative_wave"
PRODUCT_LINK_BROKEN = "product_link_broken"  # one product's carts go on, its orders stop
INCIDENT_KINDS = (
    STREAM_CUT,
    CHECKOUT_BROKEN,
    BOT_FLOOD,
    CONVERSION_COLLAPSE,
    NEGATIVE_WAVE,
    PRODUCT_LINK_BROKEN,
)

# The alert that must catch each incident, and others it may also (rightly) raise.
EXPECTED_ALERT = {
    STREAM_CUT: "ViewerDrop",
    CHECKOUT_BROKEN: "CheckoutStalled",
    BOT_FLOOD: "TrafficSpike",
    CONVERSION_COLLAPSE: "ConversionDrop",
    NEGATIVE_WAVE: "NegativeCommentSurge",
    PRODUCT_LINK_BROKEN: "ProductCheckoutStalled",
}
ALSO_EXPLAINED = {
    # No orders is also no conversion, and no orders of any product.
    CHECKOUT_BROKEN: {"ConversionDrop", "ProductCheckoutStalled"},
    CONVERSION_COLLAPSE: {"CheckoutStalled", "ProductCheckoutStalled"},
    PRODUCT_LINK_BROKEN: {"CheckoutStalled", "ConversionDrop"},  # a room of one hot product
    BOT_FLOOD: {"NegativeCommentSurge", "KeywordHit"},
}


BASE_PRODUCTS = 8
PRODUCT_ZIPF_S = 1.0  # product k of the start (0-based) sells 1 / (k + 1) of the first
LAUNCHED_WEIGHT = 1.5  # a product listed at a launch sells 1.5x the start's best


@dataclass(frozen=True, slots=True)
class ProductMix:
    """Which products are listed at one second, how carts spread over them, and which
    of them cannot be paid for (a broken link)."""

    weights: tuple[float, ...]  # per product number, 0 while not yet listed
    broken: frozenset[int]

    def shares(self) -> list[float]:
        total = sum(self.weights)
        return [w / total for w in self.weights]


@dataclass(frozen=True)
class Incident:
    kind: str
    start_s: float
    end_s: float
    product: int = -1  # the product whose link broke (PRODUCT_LINK_BROKEN)

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


@dataclass(frozen=True, slots=True)
class Factors:
    """Multipliers of a room's plateau rates at one second (and its negative share)."""

    entries: float
    comments: float
    carts: float
    orders: float
    negative_share: float
    announced: bool


@dataclass
class SessionShape:
    duration_s: float
    ramp_s: float = 240.0
    decay_s: float = 600.0
    negative_share: float = 0.08
    launches: list[tuple[float, float, float]] = field(default_factory=list)  # start, len, x
    flash_sales: list[tuple[float, float, float]] = field(default_factory=list)  # announced
    incidents: list[Incident] = field(default_factory=list)
    products: int = BASE_PRODUCTS  # listed at the start; each launch lists one more

    def audience(self, t: float) -> float:
        """Share of the plateau audience present: ramp-up, plateau, decay to ~3 %."""
        if t < 0 or t >= self.duration_s:
            return 0.0
        level = min(1.0, 0.1 + 0.9 * t / self.ramp_s) if self.ramp_s else 1.0
        left = self.duration_s - t
        if left < self.decay_s:
            level *= math.exp(-3.5 * (1 - left / self.decay_s))
        return level

    def factors(self, t: float) -> Factors:
        a = self.audience(t)
        entries = comments = carts = orders = a
        for start, length, x in self.launches:
            if start <= t < start + length:
                entries, comments, carts, orders = entries * x, comments * x, carts * x, orders * x
        announced = False
        for start, length, x in self.flash_sales:
            if start <= t < start + length:
                announced = True
                entries, carts, orders = entries * x, carts * x, orders * x
                comments *= x / 2
        negative = self.negative_share
        for incident in self.incidents:
            if not incident.covers(t):
                continue
            if incident.kind == STREAM_CUT:
                entries = comments = carts = orders = 0.0
            elif incident.kind == CHECKOUT_BROKEN:
                orders = 0.0
            elif incident.kind == BOT_FLOOD:
                comments *= 12
            elif incident.kind == CONVERSION_COLLAPSE:
                orders *= 0.15
                carts *= 0.4
            elif incident.kind == NEGATIVE_WAVE:
                negative = 0.6
        return Factors(entries, comments, carts, orders, negative, announced)

    def product_mix(self, t: float) -> ProductMix:
        """The product links at second `t`: the start's, Zipf by rank, and one listed at
        each launch that has begun (product numbers in launch order after the start's)."""
        weights = [1.0 / (k + 1) ** PRODUCT_ZIPF_S for k in range(self.products)]
        for start, _, _ in sorted(self.launches):
            weights.append(LAUNCHED_WEIGHT if start <= t else 0.0)
        broken = frozenset(
            i.product for i in self.incidents if i.kind == PRODUCT_LINK_BROKEN and i.covers(t)
        )
        return ProductMix(tuple(weights), broken)


def random_session(
    rng: random.Random,
    duration_s: float,
    *,
    incident: str | None = None,
    flash_sale: bool = False,
    incident_after_s: float = 600.0,
) -> SessionShape:
    """A plausible session: 3-5 product launches (x2-x3 for 20-40 s), maybe one announced
    flash sale (x10-x15 for a minute), maybe one incident of 2-5 minutes (a broken
    product link: 4-8)."""
    shape = SessionShape(
        duration_s=duration_s,
        ramp_s=rng.uniform(120, 360),
        decay_s=min(rng.uniform(300, 900), duration_s / 4),
        negative_share=rng.uniform(0.04, 0.15),
    )
    plateau = (shape.ramp_s, duration_s - shape.decay_s)
    # Product launches follow one another: one every few minutes, never two at once.
    for _ in range(rng.randint(3, 5)):
        start = rng.uniform(*plateau)
        if all(abs(start - other) > 60 for other, _, _ in shape.launches):
            shape.launches.append((start, rng.uniform(20, 40), rng.uniform(2, 3)))
    if incident is not None:
        start = rng.uniform(max(incident_after_s, plateau[0]), plateau[1] - 300)
        product = -1
        if incident == PRODUCT_LINK_BROKEN:  # a link that sells: one of the two best then
            weights = shape.product_mix(start).weights
            best = sorted(range(len(weights)), key=lambda k: (-weights[k], -k))[:2]
            product = best[rng.randrange(2)]
        # A broken link lasts until someone notices it: 4-8 minutes, where the room's
        # incidents last 2-5 (they show on the room's own charts).
        length = rng.uniform(240, 480) if incident == PRODUCT_LINK_BROKEN else rng.uniform(120, 300)
        shape.incidents.append(Incident(incident, start, start + length, product))
    if flash_sale:
        while True:  # an announced sale hides spikes by design: keep it off the incident
            start = rng.uniform(*plateau)
            if not any(i.start_s - 120 < start < i.end_s + 60 for i in shape.incidents):
                break
        shape.flash_sales.append((start, 60.0, rng.uniform(10, 15)))
    return shape
