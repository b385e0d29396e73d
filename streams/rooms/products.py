"""A room's product list (商品链接): per product_id, cart adds, distinct carters,
orders, distinct buyers, GMV, the cart-to-order ratio and the minute it was first seen,
over the session and the last 5 minutes (issue 42).

Plain Python, fed by the fold for each cart add and order it applied (never a
duplicate). Bounded: at most `cap` products a room (LIVEROOM_PRODUCTS_PER_ROOM x 10,
at least 200); a product past the cap counts in `other` only (totals, no distinct
users). The last 5 minutes are the 5 whole minutes of event time up to the
watermark's, kept per minute (also the sparkline of orders per minute). Shards of a
split room hold disjoint users, so the merge adds products up.

Distinct carters and buyers: two room-wide flat tables of (product, user) pairs, one
for carts and one for orders, each product counting the pairs it added. Two tables a
room, not two a product: at 5,000 rooms and ~22,000 products with carts, a product's own
two tables (objects, a minimum size, change lists) cost ~1.5 kB before their first user.
A product is exact up to EXACT_LIMIT users of a kind; past it, its new users go into a
HyperLogLog of its own (within 2 %, SPEC), so a room's pairs stay bounded at EXACT_LIMIT
a product and kind.

Each product also counts its cart adds and orders per STEP_MS of event time, in a ring
of the last RING_STEPS steps: what ProductCheckoutStalled judges
(streams.alerts.product_watch), once a step is past the allowed lateness.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.rooms.distinct import EXACT_LIMIT, DistinctCount
from streams.rooms.figures import Figures
from streams.rooms.flat import MODE_SET, FlatMap, packed

RECENT_MINUTES = 5
KEPT_MINUTES = 10  # the sparkline's
M_CARTS, M_ORDERS, M_GMV = range(3)
STEP_MS = 10_000  # the step of the product alert (streams.alerts.product_watch)
# Steps kept: the one being judged (a lateness behind the watermark), the open one, and
# spares for a split room's shards running apart.
RING_STEPS = 4
R_CARTS, R_ORDERS = 1, 2  # a ring slot: [step, carts, orders]


def step_counts(ring: Sequence[float], step: int, first: int = 0) -> tuple[int, int]:
    """(cart adds, orders) of `step` in a product's ring, which starts at `first` of
    `ring` ((0, 0) if it has none)."""
    at = first + (step % RING_STEPS) * 3
    if ring[at] != step:
        return 0, 0
    return int(ring[at + R_CARTS]), int(ring[at + R_ORDERS])


# A product is one array of doubles (whole numbers are exact in them below 2**53): its
# totals, its ring of steps, and its minutes, KEPT_MINUTES slots of [minute, carts,
# orders, GMV] at minute % KEPT_MINUTES. A dict of lists took ~1 kB a product, and an
# object with its ints, floats, a list and two arrays ~860 bytes, where this takes
# ~590: the `memory` scenario's 5,000 rooms list ~30,000 products.
P_CARTS, P_ORDERS, P_GMV, P_FIRST_SEEN, P_NEWEST_MINUTE, P_USERS = range(6)  # users: 2
RING_AT = P_USERS + 2
MINUTES_AT = RING_AT + 3 * RING_STEPS
SLOT = 4
NEW_PRODUCT = array(
    "d",
    [0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0]
    + [-1.0, 0.0, 0.0] * RING_STEPS
    + [-1.0, 0.0, 0.0, 0.0] * KEPT_MINUTES,
)
CARTERS, BUYERS = 0, 1  # Product.users and .sketches


def _whole(at: int) -> property:
    """A count field of the product's array, read as an int."""
    return property(
        lambda self: int(self.data[at]),
        lambda self, value: self.data.__setitem__(at, value),
    )


class Product:
    __slots__ = ("data", "sketches")

    cart_adds = _whole(P_CARTS)
    orders = _whole(P_ORDERS)
    first_seen_ms = _whole(P_FIRST_SEEN)
    newest_minute = _whole(P_NEWEST_MINUTE)

    def __init__(self, first_seen_ms: int) -> None:
        self.data = array("d", NEW_PRODUCT)
        self.data[P_FIRST_SEEN] = first_seen_ms
        # Distinct carters and buyers held exactly (their pairs are in the room's tables)
        # are counted in the array; the sketches of those past EXACT_LIMIT are made when
        # first needed.
        self.sketches: list[DistinctCount | None] | None = None

    @property
    def gmv(self) -> float:
        return self.data[P_GMV]

    @gmv.setter
    def gmv(self, value: float) -> None:
        self.data[P_GMV] = value

    @property
    def users(self) -> list[int]:
        """The carters and buyers held exactly (a copy)."""
        return [int(self.data[P_USERS]), int(self.data[P_USERS + 1])]

    @users.setter
    def users(self, counts: Sequence[int]) -> None:
        self.data[P_USERS], self.data[P_USERS + 1] = counts

    @property
    def ring(self) -> list[int]:
        """The ring of steps, [step, carts, orders] a slot (a copy)."""
        return [int(v) for v in self.data[RING_AT:MINUTES_AT]]

    @ring.setter
    def ring(self, slots: Sequence[int]) -> None:
        self.data[RING_AT:MINUTES_AT] = array("d", slots)

    @property
    def carters(self) -> int:
        return self._distinct(CARTERS)

    @property
    def buyers(self) -> int:
        return self._distinct(BUYERS)

    def _distinct(self, which: int) -> int:
        sketch = self.sketch(which)
        return int(self.data[P_USERS + which]) + (len(sketch) if sketch is not None else 0)

    def sketch(self, which: int) -> DistinctCount | None:
        """The sketch of the carters or buyers (`which`) past EXACT_LIMIT, if any."""
        return self.sketches[which] if self.sketches is not None else None

    def start_sketch(self, which: int) -> DistinctCount:
        """The sketch of `which`, made empty if there is none yet."""
        if self.sketches is None:
            self.sketches = [None, None]
        sketch = self.sketches[which]
        if sketch is None:
            sketch = self.sketches[which] = DistinctCount.sketch()
        return sketch

    def step_counts(self, step: int) -> tuple[int, int]:
        return step_counts(self.data, step, RING_AT)

    def _count_step(self, ts_ms: int, column: int) -> None:
        step = ts_ms // STEP_MS
        data = self.data
        at = RING_AT + (step % RING_STEPS) * 3
        held = data[at]
        if held != step:
            if held > step:
                return  # older than the ring: past the lateness, judged already
            data[at], data[at + R_CARTS], data[at + R_ORDERS] = step, 0.0, 0.0
        data[at + column] += 1

    def _minute(self, ts_ms: int) -> int:
        """The array index of the minute's carts (-1: older than the minutes kept)."""
        minute = ts_ms // 60_000
        data = self.data
        newest = data[P_NEWEST_MINUTE]
        if minute <= newest - KEPT_MINUTES:
            return -1
        if minute > newest:
            data[P_NEWEST_MINUTE] = minute
        at = MINUTES_AT + (minute % KEPT_MINUTES) * SLOT
        if data[at] != minute:  # an older minute's slot (a newer one is excluded above)
            data[at : at + SLOT] = array("d", (minute, 0.0, 0.0, 0.0))
        return at + 1

    def minute_rows(self) -> dict[int, list[float]]:
        """minute -> [carts, orders, GMV] for the minutes kept."""
        data = self.data
        oldest = data[P_NEWEST_MINUTE] - KEPT_MINUTES
        return {
            int(data[at]): data[at + 1 : at + SLOT].tolist()
            for at in range(MINUTES_AT, len(data), SLOT)
            if data[at] > oldest and data[at] >= 0
        }

    def load_minutes(self, rows: list[list[Any]]) -> None:
        data = self.data
        data[MINUTES_AT:] = NEW_PRODUCT[MINUTES_AT:]
        data[P_NEWEST_MINUTE] = -1
        for minute, row in sorted(rows):
            at = self._minute(minute * 60_000)
            if at >= 0:
                data[at : at + 3] = array("d", row)


LIST_EVERY_MS = 10_000  # a room's list is built again at most this often (event time)
# ...or, while sales are left out of it, after this many listings, or at once when the
# room's event time stood still since the last listing: a room whose event time stands
# still (its last events late, a replay after a restart) would otherwise keep a list
# without them.
LIST_EVERY_CALLS = 10


class Products:
    __slots__ = (
        "bought",
        "calls",
        "cap",
        "carted",
        "changed",
        "items",
        "last_call_ms",
        "listed",
        "listed_at_ms",
        "other",
        "unlisted",
    )

    def __init__(self, cap: int = 200) -> None:
        self.cap = cap
        self.items: dict[str, Product] = {}
        # (product, user) pairs: who carted and who bought each product (see the module).
        self.carted = FlatMap()
        self.bought = FlatMap()
        self.other = [0, 0, 0.0]  # carts, orders, GMV of products past the cap
        self.changed: set[str] = set()
        # The last list built, and when: snapshots reuse it for LIST_EVERY_MS (building
        # it every second made a room's snapshot 5x dearer; a product list moves slower).
        self.listed: dict[str, list[Any]] | None = None
        self.listed_at_ms = -LIST_EVERY_MS
        self.unlisted = False  # sales since the list was built
        self.calls = 0  # listings since it was built
        self.last_call_ms = -1  # the watermark at the last listing

    def listing(self, watermark_ms: int, top: int) -> dict[str, list[Any]]:
        """The room's list (`product_list` of this table): built again once the event
        time moved LIST_EVERY_MS; while it leaves sales out, also after LIST_EVERY_CALLS
        listings or when the event time stood still since the last one (`stale` says a
        room needs another listing for that)."""
        self.calls += 1
        stood_still, self.last_call_ms = watermark_ms == self.last_call_ms, watermark_ms
        if (
            self.listed is None
            or watermark_ms - self.listed_at_ms >= LIST_EVERY_MS
            or (self.unlisted and (stood_still or self.calls >= LIST_EVERY_CALLS))
        ):
            self.listed = product_list([self.partial()], watermark_ms, top)
            self.listed_at_ms = watermark_ms
            self.unlisted, self.calls = False, 0
        return self.listed

    @property
    def stale(self) -> bool:
        """The last list leaves sales out: the room's snapshots must go on until it
        does not (a room that went quiet would keep it)."""
        return self.unlisted

    def _product(self, product_id: str, ts_ms: int) -> Product | None:
        product = self.items.get(product_id)
        if product is None:
            if len(self.items) >= self.cap:
                return None
            product = self.items[product_id] = Product(ts_ms)
        elif ts_ms < product.first_seen_ms:
            product.first_seen_ms = ts_ms  # an earlier event arrived late
        self.changed.add(product_id)
        self.unlisted = True
        return product

    def cart(self, product_id: str, user: str, ts_ms: int) -> None:
        product = self._product(product_id, ts_ms)
        if product is None:
            self.other[M_CARTS] += 1
            return
        product.data[P_CARTS] += 1
        _count_user(self.carted, product, CARTERS, product_id, user)
        at = product._minute(ts_ms)
        if at >= 0:
            product.data[at + M_CARTS] += 1
        product._count_step(ts_ms, R_CARTS)

    def order(self, product_id: str, user: str, ts_ms: int, amount: float) -> None:
        """A paid order (refunds are the room's, not the product list's)."""
        product = self._product(product_id, ts_ms)
        if product is None:
            self.other[M_ORDERS] += 1
            self.other[M_GMV] += amount
            return
        data = product.data
        data[P_ORDERS] += 1
        data[P_GMV] += amount
        _count_user(self.bought, product, BUYERS, product_id, user)
        at = product._minute(ts_ms)
        if at >= 0:
            data[at + M_ORDERS] += 1
            data[at + M_GMV] += amount
        product._count_step(ts_ms, R_ORDERS)

    def step_rows(self, step: int) -> dict[str, tuple[int, int]]:
        """Each product's (cart adds, orders) in `step`, for those with any."""
        out = {}
        for pid, product in self.items.items():
            counts = product.step_counts(step)
            if counts[0] or counts[1]:
                out[pid] = counts
        return out

    # -- figures -------------------------------------------------------------------------

    def partial(self) -> dict[str, Any]:
        """Every product's additive figures (JSON): what a shard sends, and what the room's
        list is built from."""
        return {
            pid: {
                "cart_adds": p.cart_adds,
                "carters": p.carters,
                "orders": p.orders,
                "buyers": p.buyers,
                "gmv": p.gmv,
                "first_seen_ms": p.first_seen_ms,
                "minutes": {str(m): row for m, row in p.minute_rows().items()},
                "ring": p.ring,
            }
            for pid, p in self.items.items()
        }

    # -- checkpoints ---------------------------------------------------------------------

    def capture(self, base: bool) -> dict[str, Any]:
        """Touched products (all of them for a base) with absolute figures, and the
        (product, user) pairs added (all of them for a base)."""
        pids = list(self.items) if base else sorted(self.changed)
        self.changed = set()
        out = {}
        for pid in pids:
            p = self.items[pid]
            entry = out[pid] = {
                "s": [p.cart_adds, p.orders, p.gmv, p.first_seen_ms, *p.users],
                "m": [[m, row] for m, row in p.minute_rows().items()],
                "r": p.ring,
            }
            if p.sketches is not None:
                entry["k"] = [_sketch_piece(sketch, base) for sketch in p.sketches]
        pairs = {
            name: table.snapshot() if base else table.take_changes()
            for name, table in (("carted", self.carted), ("bought", self.bought))
        }
        return {"items": out, "other": list(self.other), **pairs}

    def load(self, piece: dict[str, Any]) -> None:
        for pid, entry in piece.get("items", {}).items():
            p = self.items.get(pid)
            if p is None:
                p = self.items[pid] = Product(entry["s"][3])
            p.cart_adds, p.orders, p.gmv, p.first_seen_ms = entry["s"][:4]
            if len(entry["s"]) > 4:
                p.users = list(entry["s"][4:])
            else:
                _load_legacy_users(p, entry)
            p.load_minutes(entry["m"])
            if "r" in entry:  # since 2026-12-07
                p.ring = entry["r"]
            for which, change in enumerate(entry.get("k") or ()):
                if change:
                    p.start_sketch(which).load(change)
        for name, table in (("carted", self.carted), ("bought", self.bought)):
            if piece.get(name):
                table.load(packed(piece[name]), MODE_SET)
        if "other" in piece:
            self.other = list(piece["other"])


def _count_user(pairs: FlatMap, product: Product, which: int, product_id: str, user: str) -> None:
    """Count `user` among the product's carters or buyers (`which`) if new to it."""
    pair = f"{product_id}\x1f{user}"
    sketch = product.sketch(which)
    if sketch is not None:  # past EXACT_LIMIT: users not among the exact ones
        if pair not in pairs:
            sketch.add(pair)
    elif pairs.add(pair):
        product.data[P_USERS + which] += 1
        if product.data[P_USERS + which] >= EXACT_LIMIT:
            product.start_sketch(which)


def _sketch_piece(sketch: DistinctCount | None, base: bool) -> Any:
    """A product's sketch for a checkpoint: all of it, or the registers raised since."""
    if sketch is None:
        return None
    return sketch.snapshot() if base else sketch.take_changes()


def _load_legacy_users(product: Product, entry: dict[str, Any]) -> None:
    """State written before the pair tables (2026-12-07) held a product's users in its own
    tables: a base all of them, a delta those added. Their counts carry on; the users
    themselves are not pairs, so one who comes back to the product counts again."""
    for which, key in ((CARTERS, "c"), (BUYERS, "b")):
        if entry.get(key):
            users = DistinctCount()
            users.load(entry[key])
            product.data[P_USERS + which] += len(users)


NO_SALES = (0, 0, 0.0)  # a minute's carts, orders, GMV when it has none


@dataclass(slots=True)
class ListedProduct(Figures):
    """A row of the session list (README: the room-metrics topic's `products`)."""

    product_id: str
    cart_adds: int
    carters: int
    orders: int
    buyers: int
    gmv_yuan: float
    cart_to_order_ratio: float | None
    first_seen_minute: int
    cart_adds_5m: int
    orders_5m: int
    gmv_yuan_5m: float
    orders_per_minute: tuple[int, ...]  # a tuple: ~60 bytes less than a list of 10 (~30,000 listed)


@dataclass(slots=True)
class RecentProduct(Figures):
    """A row of the 5-minute list: its product and its 5-minute figures only (the rest
    is in the session list or the room's totals)."""

    product_id: str
    cart_adds_5m: int
    orders_5m: int
    gmv_yuan_5m: float


def product_list(
    partials: list[dict[str, Any]], watermark_ms: int, top: int
) -> dict[str, list[Any]]:
    """The room's top products by GMV over the session and over the last 5 minutes, from
    one or more partials (a split room's shards: disjoint users, so everything adds)."""
    merged: dict[str, dict[str, Any]] = {}
    for partial in partials:
        for pid, p in partial.items():
            m = merged.get(pid)
            if m is None:
                merged[pid] = {**p, "minutes": dict(p["minutes"])}
                continue
            for key in ("cart_adds", "carters", "orders", "buyers", "gmv"):
                m[key] += p[key]
            m["first_seen_ms"] = min(m["first_seen_ms"], p["first_seen_ms"])
            for minute, row in p["minutes"].items():
                have = m["minutes"].get(minute)
                m["minutes"][minute] = (
                    row if have is None else [a + b for a, b in zip(have, row, strict=True)]
                )
    now_minute = watermark_ms // 60_000
    rows = []
    for pid, m in merged.items():
        recent = [m["minutes"].get(str(now_minute - k), NO_SALES) for k in range(RECENT_MINUTES)]
        rows.append(
            ListedProduct(
                product_id=pid,
                cart_adds=m["cart_adds"],
                carters=m["carters"],
                orders=m["orders"],
                buyers=m["buyers"],
                gmv_yuan=m["gmv"],
                cart_to_order_ratio=min(m["buyers"] / m["carters"], 1.0) if m["carters"] else None,
                first_seen_minute=m["first_seen_ms"] // 60_000,
                # Counts as ints (the minutes hold doubles): 3, not 3.0, in the JSON, and
                # small ints are shared objects where floats take 24 bytes each.
                cart_adds_5m=int(sum(r[M_CARTS] for r in recent)),
                orders_5m=int(sum(r[M_ORDERS] for r in recent)),
                gmv_yuan_5m=sum(r[M_GMV] for r in recent),
                orders_per_minute=tuple(
                    int(m["minutes"].get(str(now_minute - k), NO_SALES)[M_ORDERS])
                    for k in range(KEPT_MINUTES - 1, -1, -1)
                ),
            )
        )
    session = sorted(rows, key=lambda r: (-r.gmv_yuan, r.product_id))[:top]
    recent = sorted(rows, key=lambda r: (-r.gmv_yuan_5m, r.product_id))[:top]
    return {
        "session": session,
        "5m": [
            RecentProduct(r.product_id, r.cart_adds_5m, r.orders_5m, r.gmv_yuan_5m) for r in recent
        ],
    }
