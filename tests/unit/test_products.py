"""A room's product list: per product cart adds, distinct carters, orders, buyers,
GMV, cart-to-order and first seen, over the session and the last 5 minutes; bounded;
through checkpoints; in the snapshot, by the C fold and by Python alike."""

from __future__ import annotations

import sys

import orjson

from streams.events import CART, ORDER
from streams.rooms.distinct import EXACT_LIMIT, DistinctCount
from streams.rooms.metrics import snapshot
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.products import STEP_MS, Products, product_list
from streams.rooms.room import RoomSettings, RoomState
from streams.state.records import bytes_as_base64

from .helpers import T0, group

MIN = 60_000


def cart(user, product, ts, eid):
    return [CART, eid, user, ts, "r", product, 1]


def order(user, product, amount, ts, eid, paid=True):
    return [ORDER, eid, user, ts, "r", f"o-{eid}", product, 1, amount, paid]


def events():
    out = []
    for i in range(30):  # p1 sells all along; p2 gets carts, then orders stop
        out.append(cart(f"u{i}", "p1", T0 + i * 20_000, f"c1-{i}"))
        out.append(order(f"u{i}", "p1", 10.0, T0 + i * 20_000 + 5, f"o1-{i}"))
        out.append(cart(f"v{i % 7}", "p2", T0 + i * 20_000 + 9, f"c2-{i}"))
        if i < 10:
            out.append(order(f"v{i % 7}", "p2", 99.0, T0 + i * 20_000 + 11, f"o2-{i}"))
    out.insert(3, order("u0", "p1", 10.0, T0 + 5, "o1-0"))  # a client's retry: counted once
    out.append(order("w", "p3", 1.0, T0 + 7, "o3", paid=False))  # a refund: not a product sale
    return out


def test_the_product_list_from_the_fold_in_c_and_in_python():
    rooms = [RoomState("r", RoomSettings(products_per_room=5)) for _ in range(2)]
    for e in events():
        rooms[0].apply(list(e))
        rooms[1].apply_python(list(e))
    lists = [snapshot(room)["products"] for room in rooms]
    assert lists[0] == lists[1]
    session = {p["product_id"]: p for p in lists[0]["session"]}
    assert set(session) == {"p1", "p2"}
    p1, p2 = session["p1"], session["p2"]
    assert (p1["cart_adds"], p1["carters"], p1["orders"], p1["buyers"]) == (30, 30, 30, 30)
    assert p1["gmv_yuan"] == 300.0 and p1["cart_to_order_ratio"] == 1.0
    assert (p2["cart_adds"], p2["carters"], p2["orders"], p2["buyers"]) == (30, 7, 10, 7)
    assert p2["first_seen_minute"] == (T0 + 9) // MIN
    recent = {p["product_id"]: p for p in lists[0]["5m"]}
    assert recent["p2"]["orders_5m"] == 0 and recent["p2"]["cart_adds_5m"] > 0  # stalled
    assert recent["p1"]["orders_5m"] > 0 and len(session["p1"]["orders_per_minute"]) == 10
    counts = [recent["p1"]["orders_5m"], recent["p1"]["cart_adds_5m"]]
    assert all(type(n) is int for n in counts + list(session["p1"]["orders_per_minute"]))  # not 3.0


def test_the_list_restores_from_checkpoints_exactly():
    room = RoomState("r", RoomSettings())
    evs = events()
    for e in evs[:50]:
        room.apply(list(e))
    base = orjson.loads(orjson.dumps(room.capture_base(), default=bytes_as_base64))
    for e in evs[50:]:
        room.apply(list(e))
    delta = orjson.loads(orjson.dumps(room.capture_delta(), default=bytes_as_base64))
    restored = RoomState("r", RoomSettings())
    restored.load(base)
    restored.load(delta)
    assert snapshot(restored)["products"] == snapshot(room)["products"]


def test_memory_is_bounded_however_many_products_a_room_lists():
    products = Products(cap=200)
    for i in range(5_000):
        products.cart(
            f"p{i}",
            f"u{i}",
            T0 + i,
        )
        products.order(f"p{i}", f"u{i}", T0 + i, 2.0)
    assert len(products.items) == 200
    assert products.other == [4_800, 4_800, 9_600.0]
    top = product_list([products.partial()], T0 + 5_000, 20)
    assert len(top["session"]) == 20


def test_the_list_is_built_at_most_every_10_s_of_event_time():
    products = Products()
    products.cart("p1", "u1", T0)
    first = products.listing(T0, 20)
    products.order("p1", "u1", T0 + 1_000, 5.0)
    assert products.listing(T0 + 9_999, 20) is first  # reused
    later = products.listing(T0 + 10_000, 20)
    assert later is not first and later["session"][0]["orders"] == 1


def test_a_list_that_leaves_sales_out_is_built_again_when_event_time_stands_still():
    """A replay after a restart, or a room's last events arriving late: the watermark
    does not move, and the list must still take them in. The room stays due for a
    snapshot until it does."""
    products = Products()
    products.cart("p1", "u1", T0)
    first = products.listing(T0, 20)
    assert not products.stale
    products.cart("p1", "u2", T0 - 3_000)  # late: the watermark stays at T0
    assert products.stale
    assert products.listing(T0, 20)["session"][0]["cart_adds"] == 2
    assert not products.stale
    # A busy room whose event time moves keeps reusing its list for up to 10 listings.
    for second in range(1, 10):
        products.cart("p1", f"v{second}", T0 + second * 1_000)
        assert products.listing(T0 + second * 1_000, 20)["session"][0]["cart_adds"] == 2
    products.cart("p1", "w", T0 + 9_500)
    assert products.listing(T0 + 9_600, 20)["session"][0]["cart_adds"] == 12  # the 10th
    assert first is not products.listed


def test_a_room_whose_list_is_stale_stays_due_for_a_snapshot():
    """Its last sales came with the event time moving (the list reused them), then the
    room went quiet: its next snapshot, with nothing new folded, still comes, and takes
    them in."""
    part = RoomPartition(0, RoomSettings())
    part.apply(0, [group(0, [cart("u1", "p1", T0, "k1")])], 10.0, Outcome())
    assert len(part.due_snapshots(10.0)) == 1
    part.apply(1, [group(1, [cart("u2", "p1", T0 + 1_000, "k2")])], 10.5, Outcome())
    (reused,) = part.due_snapshots(16.0, quiet_interval=5.0)
    assert reused["products"]["session"][0]["cart_adds"] == 1  # the list was reused
    (fresh,) = part.due_snapshots(22.0, quiet_interval=5.0)  # nothing folded since
    assert fresh["products"]["session"][0]["cart_adds"] == 2
    assert part.due_snapshots(28.0, quiet_interval=5.0) == []  # nothing left out


def test_a_user_counts_once_a_product_and_in_every_product_they_cart():
    """Distinct users are (product, user) pairs in two room-wide tables."""
    products = Products()
    for ts in (T0, T0 + 1, T0 + 2):
        products.cart("p1", "u1", ts)
    products.cart("p2", "u1", T0)
    products.cart("p1", "u2", T0)
    products.order("p1", "u1", T0 + 3, 5.0)
    products.order("p1", "u1", T0 + 4, 5.0)
    partial = products.partial()
    assert (partial["p1"]["carters"], partial["p1"]["buyers"]) == (2, 1)
    assert (partial["p2"]["carters"], partial["p2"]["buyers"]) == (1, 0)
    assert (len(products.carted), len(products.bought)) == (3, 1)


def test_a_product_past_the_exact_limit_is_a_sketch_within_2_percent_and_restores():
    products = Products()
    users = 3 * EXACT_LIMIT // 2
    for i in range(users):
        products.cart("p1", f"u{i}", T0 + i)
        products.cart("p1", f"u{i // 2}", T0 + i)  # again: counted once
    base = orjson.loads(orjson.dumps(products.capture(base=True), default=bytes_as_base64))
    for i in range(users, 2 * users):
        products.cart("p1", f"u{i}", T0 + i)
    delta = orjson.loads(orjson.dumps(products.capture(base=False), default=bytes_as_base64))
    assert products.items["p1"].users[0] == EXACT_LIMIT  # the pairs stop there
    assert len(products.carted) == EXACT_LIMIT
    assert abs(products.items["p1"].carters - 2 * users) <= 0.02 * 2 * users
    restored = Products()
    restored.load(base)
    restored.load(delta)
    assert restored.partial() == products.partial()
    counted = products.items["p1"].carters
    for i in range(EXACT_LIMIT):  # the exact ones: not again in the sketch
        products.cart("p1", f"u{i}", T0)
    assert products.items["p1"].carters == counted


def test_state_written_with_a_table_per_product_keeps_its_counts():
    """Before 2026-12-07 a product held its carters and buyers in tables of its own."""
    old = DistinctCount()
    old.update(["u1", "u2", "u3"])
    piece = {
        "items": {"p1": {"s": [4, 1, 9.5, T0], "m": [], "c": old.snapshot(), "b": None}},
        "other": [0, 0, 0.0],
    }
    products = Products()
    products.load(orjson.loads(orjson.dumps(piece, default=bytes_as_base64)))
    assert (products.items["p1"].carters, products.items["p1"].buyers) == (3, 0)
    products.cart("p1", "u9", T0 + 1)
    assert products.items["p1"].carters == 4


def test_a_listed_product_is_written_as_the_object_a_dict_was():
    """The snapshot holds rows as slotted dataclasses (a third of a dict's bytes): the
    room-metrics topic and the JSON API get the same object, keys in the same order."""
    room = RoomState("r", RoomSettings())
    for e in events():
        room.apply(list(e))
    listed = orjson.loads(orjson.dumps(snapshot(room)["products"]))
    assert list(listed["session"][0]) == [
        "product_id",
        "cart_adds",
        "carters",
        "orders",
        "buyers",
        "gmv_yuan",
        "cart_to_order_ratio",
        "first_seen_minute",
        "cart_adds_5m",
        "orders_5m",
        "gmv_yuan_5m",
        "orders_per_minute",
    ]
    assert list(listed["5m"][0]) == ["product_id", "cart_adds_5m", "orders_5m", "gmv_yuan_5m"]
    row = snapshot(room)["products"]["session"][0]
    read = {name: row[name] for name in listed["session"][0]}
    assert type(read["orders_per_minute"]) is tuple  # written as the list's JSON array
    assert listed["session"][0] == {**read, "orders_per_minute": list(read["orders_per_minute"])}
    assert [(r["product_id"], r["gmv_yuan"]) for r in listed["session"]] == [
        ("p2", 990.0),
        ("p1", 300.0),
    ]


def test_a_product_is_one_array_and_checkpoints_whole_numbers_as_ints() -> None:
    """~590 bytes a product (an object with its ints, floats, a list and two arrays took
    ~860: 8 MB over the `memory` scenario's ~30,000 products); counts leave as ints."""
    products = Products()
    for i in range(5):
        products.cart("p1", f"u{i}", T0 + i * 1_000)
    products.order("p1", "u1", T0 + 70_000, 12.5)
    p1 = products.items["p1"]
    assert sys.getsizeof(p1) + sys.getsizeof(p1.data) <= 600
    assert (p1.cart_adds, p1.orders, p1.gmv, p1.users) == (5, 1, 12.5, [5, 1])
    assert p1.first_seen_ms == T0 and p1.newest_minute == (T0 + 70_000) // MIN
    saved = products.capture(base=True)["items"]["p1"]
    assert saved["s"] == [5, 1, 12.5, T0, 5, 1]
    assert all(type(v) is int for v in saved["s"][:2] + saved["s"][3:] + saved["r"])
    assert saved["m"] == [[T0 // MIN, [5.0, 0.0, 0.0]], [T0 // MIN + 1, [0.0, 1.0, 12.5]]]
    copy = Products()
    copy.load(orjson.loads(orjson.dumps(products.capture(base=True), default=bytes_as_base64)))
    assert copy.partial() == products.partial()
    step = (T0 + 70_000) // STEP_MS
    assert copy.step_rows(step) == {"p1": (0, 1)} == products.step_rows(step)
