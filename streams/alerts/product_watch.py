"""A room's product links under watch, for ProductCheckoutStalled (issue 42).

When one product's link breaks (a wrong price, stock at zero, a dead SKU) while the
others sell, the room's orders fall by that product's share only: CheckoutStalled and
ConversionDrop stay quiet. So each product a room sells is judged on its own series.

Fed one step of STEP_S seconds of event time at a time, with each product's cart adds
and orders in it. Per product, a ConditionalDrop learns the product's own orders per
cart and asks whether its orders stopped while its carts keep coming. The alert fires
when that evidence holds and the product has had no order for `quiet_s` (the "for a
configurable time" of the rule); it resolves when the detector sees orders back.

Steps of 10 s, not seconds: a product sells a few times a minute where a room sells a
few times a second, so finer steps add cost (20 products x 5,000 rooms) and no speed.
At most `max_products` products of a room are watched, and only those whose carts, at
the room's orders per cart, promise at least half the orders a step its detector needs
to judge (`min_success_rate`): a detector is ~0.4 kB, and most products of most rooms
sell too little to be judged. A product that sells more than the weakest watched one
(and is not firing) takes its place when the room is full.
"""

from __future__ import annotations

import math
from typing import Any

from streams.anomaly import ConditionalDrop
from streams.anomaly.stats import Ewma
from streams.rooms.products import STEP_MS

STEP_S = STEP_MS // 1000  # the fold counts each product per step (streams.rooms.products)
ROOM_HALF_LIFE_STEPS = 30.0  # the room's orders per cart, over ~5 minutes
PRIOR_STEPS = 3  # a new product starts as if it had sold like the room for 30 s
CANDIDATE_DECAY = 0.5 ** (1 / 6)  # a product's carts before it is watched, over ~1 minute


class ProductWatch:
    """The watched products of one room, their detectors and silences."""

    __slots__ = (
        "admit_at",
        "candidates",
        "detector_args",
        "detectors",
        "max_products",
        "quiet_steps",
        "room_carts",
        "room_orders",
        "silent",
        "steps",
    )

    def __init__(self, section: dict[str, Any]) -> None:
        self.detector_args = section["detector"]
        self.quiet_steps = math.ceil(section["quiet_s"] / STEP_S)
        self.max_products = section["max_products"]
        self.detectors: dict[str, ConditionalDrop] = {}
        self.silent: dict[str, int] = {}  # steps since the product's last order
        # The room's orders per cart: what a product just listed is first expected to do
        # (a link broken at its launch has no history of its own).
        self.room_carts = Ewma(ROOM_HALF_LIFE_STEPS)
        self.room_orders = Ewma(ROOM_HALF_LIFE_STEPS)
        # Products not watched yet: [their carts, decayed per step, the step last seen].
        self.candidates: dict[str, list[float]] = {}
        self.admit_at = 0.5 * self.detector_args.get("min_success_rate", 0.02)
        self.steps = 0

    def step(self, rows: dict[str, tuple[float, float]], alerting: set[str]) -> set[str]:
        """Feed one step: `rows` maps product_id to (cart adds, orders) in it (products
        with neither may be absent). `alerting`: products whose alert fires now. Returns
        the products whose alert should fire after this step."""
        detectors = self.detectors
        self.steps += 1
        total_carts = total_orders = 0.0
        for product_id, (carts, orders) in rows.items():
            total_carts += carts
            total_orders += orders
            if product_id not in detectors and carts > 0 and self._promising(product_id, carts):
                self._admit(product_id, carts)
        self.room_carts.update(total_carts)
        self.room_orders.update(total_orders)
        out = set()
        for product_id, detector in detectors.items():
            carts, orders = rows.get(product_id, (0.0, 0.0))
            detector.step(carts, orders)
            silent = self.silent[product_id] = 0 if orders else self.silent[product_id] + 1
            if detector.firing and (product_id in alerting or silent >= self.quiet_steps):
                out.add(product_id)
        return out

    def _promising(self, product_id: str, carts: float) -> bool:
        """Whether the product's recent carts, at the room's orders per cart, promise
        enough orders a step to be judged."""
        candidates = self.candidates
        held = candidates.get(product_id)
        if held is None:
            if len(candidates) >= 2 * self.max_products:  # bounded: the quietest go
                for quiet in sorted(candidates, key=lambda p: candidates[p][0])[
                    : len(candidates) // 2
                ]:
                    del candidates[quiet]
            held = candidates[product_id] = [0.0, self.steps]
        held[0] = held[0] * CANDIDATE_DECAY ** (self.steps - held[1]) + carts
        held[1] = self.steps
        q = self.room_orders.mean / self.room_carts.mean if self.room_carts.mean > 0 else 0.0
        if held[0] * (1 - CANDIDATE_DECAY) * q < self.admit_at:
            return False
        del candidates[product_id]
        return True

    def _admit(self, product_id: str, carts: float) -> None:
        detectors = self.detectors
        if len(detectors) >= self.max_products:
            weakest = min(
                (p for p, d in detectors.items() if not d.firing),
                key=lambda p: (detectors[p].exposure_mean, p),
                default=None,
            )
            if weakest is None or detectors[weakest].exposure_mean >= carts:
                return
            del detectors[weakest], self.silent[weakest]
        detector = detectors[product_id] = ConditionalDrop(**self.detector_args)
        self.silent[product_id] = 0
        if self.room_carts.mean > 0:  # PRIOR_STEPS steps of the room's orders per cart
            for _ in range(PRIOR_STEPS):
                detector.prime(carts, carts * self.room_orders.mean / self.room_carts.mean)

    def figures(self, product_id: str) -> tuple[float, float, int]:
        """(usual orders per cart, recent carts per step, steps without an order)."""
        d = self.detectors[product_id]
        return d.baseline, d.recent_exposure_mean, self.silent[product_id]

    # -- checkpoints -----------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "room": [self.room_carts.to_state(), self.room_orders.to_state()],
            "products": {p: [d.to_state(), self.silent[p]] for p, d in self.detectors.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.detectors, self.silent = {}, {}
        if "room" in state:
            self.room_carts.load_state(state["room"][0])
            self.room_orders.load_state(state["room"][1])
        for product_id, (saved, silent) in state.get("products", {}).items():
            detector = self.detectors[product_id] = ConditionalDrop(**self.detector_args)
            detector.load_state(saved)
            self.silent[product_id] = silent
