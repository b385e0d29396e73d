"""Property tests of decoding and validation (Hypothesis): any bytes give valid events
or rejects with a reason from the bounded set, never an exception; in an array, every
good element is kept and every bad one is rejected at its own index."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from streams._validate import valid_events

from streams.events import KIND_NAMES, REASONS, Invalid, decode_record, validate
from streams.kafka import RoomPartitions
from streams.runtime.ingest import route

NOW = 1_763_000_000_000
KINDS = range(len(KIND_NAMES))
C_KINDS = range(4)  # the C fast path's kinds; spend (4) is validated in Python only
ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
room_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)
timestamps = st.integers(NOW - 3_600_000, NOW + 3_600_000)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what JSON numbers decode to here
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def valid_event(draw: st.DrawFn, kind: int) -> dict:
    event = {
        "event_id": draw(ids),
        "room_id": draw(room_ids),
        "user_id": draw(ids),
        "ts": draw(timestamps),
    }
    if draw(st.booleans()):
        event["type"] = KIND_NAMES[kind]
    if kind == 0:
        event["action"] = draw(st.sampled_from(["enter", "leave"]))
    elif kind == 1:
        event["text"] = draw(st.text(max_size=60))
    elif kind == 2:
        event |= {"product_id": draw(ids), "quantity": draw(st.integers(1, 50))}
    elif kind == 4:
        event |= {"channel": draw(ids), "amount": draw(st.floats(0, 1e6))}
        if draw(st.booleans()):
            del event["user_id"]  # optional for spend
    else:
        event |= {
            "order_id": draw(ids),
            "product_id": draw(ids),
            "amount": draw(st.floats(0, 1e6)),
            "status": draw(st.sampled_from(["paid", "refunded"])),
        }
    return event


@st.composite
def broken_event(draw: st.DrawFn, kind: int) -> dict | object:
    """A valid event with one thing wrong, or not an object at all."""
    event = draw(valid_event(kind))
    field = draw(st.sampled_from([*event, "type", "not-an-object"]))
    match draw(st.sampled_from(["drop", "wrong_type", "bad_value"])):
        case _ if field == "not-an-object":
            numbers = st.integers(-(2**63), 2**63 - 1)
            return draw(st.lists(numbers, max_size=2) | st.text() | numbers)
        case "drop" if field in ("event_id", "room_id", "ts") or (field == "user_id" and kind != 4):
            del event[field]
        case "wrong_type":
            event[field] = [1, 2]
        case _:
            event[field] = {
                "ts": 0,  # more than 24 h from the clock
                "room_id": "room with spaces",
                "type": "gift",
                "quantity": 0,
                "amount": -1,
                "status": "lost",
                "action": "dance",
                "event_id": "",
                "user_id": "x" * 129,
            }.get(field, [1, 2])
    return event


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(KINDS))
def test_any_bytes_give_events_or_bounded_rejects(value: bytes, kind: int) -> None:
    events, rejects = decode_record(value, kind, NOW)
    assert {r.reason for r in rejects} <= set(REASONS)
    assert events or rejects


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(KINDS))
def test_any_json_value_gives_events_or_bounded_rejects(doc: object, kind: int) -> None:
    events, rejects = decode_record(orjson.dumps(doc), kind, NOW)
    assert {r.reason for r in rejects} <= set(REASONS)
    if isinstance(doc, list) and doc:
        assert len(events) + len(rejects) == len(doc)
        assert all(r.index is not None for r in rejects)
    else:
        assert len(events) + len(rejects) == 1


@st.composite
def mixed_array(draw: st.DrawFn) -> tuple[int, list, list[bool]]:
    kind = draw(st.sampled_from(KINDS))
    good = draw(st.lists(st.booleans(), min_size=1, max_size=12))
    items = [draw(valid_event(kind)) if ok else draw(broken_event(kind)) for ok in good]
    return kind, items, good


@settings(max_examples=300, deadline=None)
@given(mixed_array())
def test_good_neighbours_of_bad_elements_are_kept(case: tuple[int, list, list[bool]]) -> None:
    kind, items, good = case
    events, rejects = decode_record(orjson.dumps(items), kind, NOW)
    rejected_at = {r.index for r in rejects}
    assert {r.reason for r in rejects} <= set(REASONS)
    # Every element is either kept or rejected at its index; a good one is never rejected.
    assert len(events) + len(rejects) == len(items)
    assert not {i for i, ok in enumerate(good) if ok} & rejected_at
    kept_ids = [e[1] for e in events]
    assert (
        kept_ids[: good.count(True)]
        == [item["event_id"] for item, ok in zip(items, good, strict=True) if ok][: len(kept_ids)]
    )
    for r in rejects:
        assert orjson.loads(r.raw) == items[r.index]  # the offending element, as it came


@dataclass
class Record:
    offset: int
    key: bytes | None
    value: bytes | None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200) | st.none(), max_size=8), st.sampled_from(KINDS))
def test_route_accounts_for_every_record(values: list[bytes | None], kind: int) -> None:
    records = [Record(i, None, v) for i, v in enumerate(values)]
    routed = route([(KIND_NAMES[kind], kind, 0, records)], RoomPartitions(4), NOW)
    assert sum(routed.rejected.values()) == len(routed.deadletters)
    assert {reason for _, reason in routed.rejected} <= set(REASONS)
    assert routed.events + len(routed.deadletters) >= len(values)  # nothing vanishes


# -- the C fast path (streams/_validate.c) against the Python rules --------------------

TRICKY_VALUES = [
    *(None, True, False, 0, 1, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 1.5, -0.0, 1e308),
    *(float("nan"), float("inf"), "", "é", "x" * 128, "x" * 129, "enter", "leave", "paid"),
    *("refunded", "view", "comment", "cart", "order", "r-1.a:b_c", "r 1", "ｒ", [], {}),
    *(NOW, NOW + 86_400_000, NOW + 86_400_001, NOW - 86_400_000, NOW - 86_400_001),
]
TRICKY = st.sampled_from(TRICKY_VALUES)
FIELDS = ("event_id", "room_id", "user_id", "ts", "type", "action", "text", "product_id")
FIELDS += ("quantity", "order_id", "amount", "status")


@st.composite
def tweaked_event(draw: st.DrawFn, kind: int) -> dict:
    """A valid event with a few fields set to edge values (or added, or removed)."""
    event = draw(valid_event(kind))
    names = [*event, "type", "action", "quantity", "status", "text", "amount"]
    for name in draw(st.lists(st.sampled_from(names), max_size=3)):
        if draw(st.booleans()):
            event[name] = draw(TRICKY)
        else:
            event.pop(name, None)
    return event


def python_rules(doc: object, kind: int) -> list[tuple] | None:
    """The tuples `validate` gives when every event of `doc` is valid, else None."""
    items = doc if type(doc) is list else [doc]
    try:
        return [validate(item, kind, NOW) for item in items] if items else None
    except Invalid:
        return None


def beyond_64_bits(doc: object) -> bool:
    items = doc if type(doc) is list else [doc]
    return any(
        type(v) is int and not -(2**63) <= v < 2**63
        for item in items
        if type(item) is dict
        for v in item.values()
    )


@settings(max_examples=600, deadline=None)  # the edge values: the exhaustive test below
@given(st.data(), st.sampled_from(C_KINDS))
def test_the_c_fast_path_accepts_only_what_validate_accepts(data: st.DataObject, kind: int):
    one = valid_event(kind) | broken_event(kind) | tweaked_event(kind)
    doc = data.draw(one | st.lists(one, max_size=5) | json_values)
    assert_fast_path_agrees(doc, kind)


def assert_fast_path_agrees(doc: object, kind: int) -> None:
    fast, expected = valid_events(doc, kind, NOW), python_rules(doc, kind)
    if fast is not None:
        assert fast == expected, doc
        assert [[type(v) for v in e] for e in fast] == [[type(v) for v in e] for e in expected]
    elif expected is not None:
        assert beyond_64_bits(doc), doc


def test_the_c_fast_path_agrees_on_every_field_set_to_every_edge_value() -> None:
    """Exhaustive over one field at a time: each edge value in each field, and each field
    missing, on a valid event of each kind."""
    bases = {
        0: {"action": "enter"},
        1: {"text": "好"},
        2: {"product_id": "p", "quantity": 2},
        3: {"order_id": "o", "product_id": "p", "quantity": 1, "amount": 9.5},
    }
    cases = 0
    for kind, extra in bases.items():
        base = {"event_id": "e", "room_id": "r", "user_id": "u", "ts": NOW, **extra}
        assert valid_events(base, kind, NOW) is not None
        for name in FIELDS:
            assert_fast_path_agrees({k: v for k, v in base.items() if k != name}, kind)
            for value in TRICKY_VALUES:
                assert_fast_path_agrees({**base, name: value}, kind)
                cases += 1
    assert cases == 4 * len(FIELDS) * len(TRICKY_VALUES)


def test_the_c_fast_path_keeps_every_record_shape_decode_record_had() -> None:
    """Through decode_record: the fast path gives what the Python path gives."""
    event = {"event_id": "e", "room_id": "r", "user_id": "u", "ts": NOW}
    assert decode_record(orjson.dumps(event), 0, NOW) == ([(0, "e", "u", NOW, "r", True)], [])
    both = [event, {**event, "event_id": "f", "action": "leave"}]
    assert decode_record(orjson.dumps(both), 0, NOW)[0] == [
        (0, "e", "u", NOW, "r", True),
        (0, "f", "u", NOW, "r", False),
    ]
    assert valid_events([], 0, NOW) is None and valid_events(5, 0, NOW) is None
    assert valid_events([event, None], 0, NOW) is None  # one bad element: Python decides
