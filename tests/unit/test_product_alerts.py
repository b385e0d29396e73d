"""ProductCheckoutStalled: one product's link breaks while the rest of the room sells.

The per-product steps come from the fold (streams.rooms.products' ring), or from a split
room's shards merged; the watch judges each product on its own orders per cart."""

from __future__ import annotations

import random

from streams.alerts.product_watch import STEP_S, ProductWatch
from streams.alerts.rules import AlertRules
from streams.rooms.merge import MergedRoom
from streams.rooms.partition import Outcome
from streams.rooms.products import RING_STEPS, Products
from streams.sentiment import score

from .helpers import T0, Alerted, cart, enter, order

S = 1000
RULES = AlertRules.load()
SECTION = RULES.for_room("r")["product_checkout_stalled"]


def shop_second(rng: random.Random, t: int, broken: set[str]) -> list:
    """A second of a room selling two products: ~2 carts/s each, ~0.6 orders/s each
    (none for a product in `broken`), and a steady audience."""
    ts = T0 + t * S
    out = [enter(f"v{t}-{i}", ts=ts + rng.randrange(S)) for i in range(20)]
    for product in ("p1", "p2"):
        for i in range(rng.randint(1, 3)):
            out.append(cart(f"{product}-{t}-{i}", ts=ts + rng.randrange(S), product=product))
        if product not in broken and rng.random() < 0.6:
            buyer = f"{product}-{t}-0"
            out.append(order(buyer, 99.0, ts=ts + rng.randrange(S), product=product))
    return out


def test_a_broken_product_link_pages_with_its_product_and_resolves_when_it_sells() -> None:
    part = Alerted(RULES)
    rng = random.Random(5)
    sent = []
    for t in range(900):
        broken = {"p2"} if 500 <= t < 740 else set()
        part.apply(t, shop_second(rng, t, broken), now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
    kinds = {(a["kind"], a["key"], a["status"]) for a in sent}
    assert kinds == {
        ("ProductCheckoutStalled", "p2", "firing"),
        ("ProductCheckoutStalled", "p2", "resolved"),
    }, kinds  # nothing for p1, and the room as a whole is not stalled
    firing, resolved = [a for a in sent if a["kind"] == "ProductCheckoutStalled"]
    assert firing["product_id"] == "p2" and firing["severity"] == "critical"
    # No order for quiet_s (60 s), then the evidence: within ~90 s of the break.
    assert T0 + 560 * S <= firing["starts_at_ms"] <= T0 + 600 * S
    assert T0 + 740 * S < resolved["ends_at_ms"] <= T0 + 790 * S
    assert "p2" in firing["summary"] and firing["runbook_url"].endswith("#productcheckoutstalled")
    assert 0.2 < firing["baseline"] < 0.4  # p2's own orders per cart, ~0.6 / 2


def test_a_product_that_sells_slowly_but_steadily_never_pages() -> None:
    """A product with a few orders a minute has long gaps between them by chance."""
    watch = ProductWatch(SECTION)
    rng = random.Random(9)
    fired = []
    for _ in range(2000):  # 5.5 hours of 10 s steps
        carts = sum(rng.random() < 0.15 for _ in range(STEP_S))
        orders = sum(rng.random() < 0.045 for _ in range(STEP_S))
        fired += sorted(watch.step({"slow": (carts, orders)}, set()))
    assert fired == []


def test_the_watch_keeps_the_products_that_sell_and_restores_from_its_state() -> None:
    watch = ProductWatch({**SECTION, "max_products": 2})
    for _ in range(30):
        watch.step({"a": (10, 3), "b": (5, 1), "c": (1, 0)}, set())
    assert set(watch.detectors) == {"a", "b"}  # c sells less than either: not admitted
    for _ in range(30):
        watch.step({"a": (10, 3), "c": (20, 6)}, set())
    assert set(watch.detectors) == {"a", "c"}  # c outsold b, which stopped: c replaces it
    again = ProductWatch({**SECTION, "max_products": 2})
    again.load_state(watch.to_state())
    assert again.to_state() == watch.to_state()
    assert again.figures("c") == watch.figures("c")


def test_the_fold_counts_each_product_per_step_and_ignores_what_left_the_ring() -> None:
    products = Products()
    step = T0 // (STEP_S * S)
    at = step * STEP_S * S
    for i in range(3):
        products.cart("p1", f"u{i}", at + i)
    products.order("p1", "u0", at + 5_000, 10.0)
    products.cart("p2", "u9", at + STEP_S * S)  # the next step
    assert products.step_rows(step) == {"p1": (3, 1)}
    assert products.step_rows(step + 1) == {"p2": (1, 0)}
    # RING_STEPS later the step's slot holds another step: an event of the first step
    # arriving now is past any lateness, judged already, and not counted in the ring.
    products.cart("p1", "late", at + RING_STEPS * STEP_S * S)
    products.cart("p1", "later", at)
    assert products.step_rows(step) == {}
    assert products.items["p1"].cart_adds == 5  # the product list still counts both


def test_a_split_room_sums_its_shards_steps() -> None:
    step = T0 // (STEP_S * S)
    shards = []
    for shard in range(2):
        products = Products()
        for i in range(shard + 1):
            products.cart("p1", f"s{shard}-{i}", step * STEP_S * S + i)
        products.order("p1", f"s{shard}-0", step * STEP_S * S + 50, 5.0)
        shards.append({"shard": shard, "shards": 2, "offset": 1, "products": products.partial()})
    merged = MergedRoom("r", 2)
    merged.partials = {p["shard"]: p for p in shards}
    assert merged.product_step(step) == {"p1": (3, 2)}
    assert merged.product_step(step + 1) == {}


def test_only_products_that_sell_enough_to_be_judged_get_a_detector() -> None:
    """A detector is ~1.2 kB: a room's long tail of products that sell a few times an
    hour gets none, and those waiting to be watched stay bounded."""
    watch = ProductWatch(SECTION)
    for step in range(60):
        rows = {"hot": (10, 3)}  # ~0.3 orders per cart: 3 orders a step
        rows |= {f"tail-{step}-{k}": (1, 0) for k in range(5)}  # one cart each, once
        watch.step(rows, set())
    assert set(watch.detectors) == {"hot"}
    assert len(watch.candidates) <= 2 * SECTION["max_products"]
    # A product broken at its launch (carts, never an order) is watched all the same:
    # its carts at the room's orders per cart promise enough.
    for _ in range(3):
        watch.step({"hot": (10, 3), "launched": (8, 0)}, set())
    assert "launched" in watch.detectors
