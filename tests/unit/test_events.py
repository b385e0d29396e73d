import orjson
import pytest

from streams.events import CART, COMMENT, ORDER, VIEW, decode_record

NOW = 1_763_000_000_000


def ev(**fields):
    base = {"event_id": "e1", "room_id": "room-1", "user_id": "u1", "ts": NOW}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def one(obj, kind=VIEW):
    return decode_record(orjson.dumps(obj), kind, NOW)


def test_single_view_defaults_to_enter():
    events, rejects = one(ev())
    assert rejects == []
    assert events == [(VIEW, "e1", "u1", NOW, "room-1", True)]


def test_leave_and_type_matching_topic():
    events, _ = one(ev(type="view", action="leave"))
    assert events == [(VIEW, "e1", "u1", NOW, "room-1", False)]


def test_array_keeps_good_neighbours_of_a_bad_element():
    record = [ev(event_id="a"), ev(event_id="b", ts="soon"), ev(event_id="c")]
    events, rejects = one(record)
    assert [e[1] for e in events] == ["a", "c"]
    assert len(rejects) == 1
    assert rejects[0].reason == "wrong_type"
    assert rejects[0].index == 1
    assert orjson.loads(rejects[0].raw)["event_id"] == "b"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not utf8", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"42", "not_an_object"),
        (b"[]", "not_an_object"),
        (b"x" * (1024 * 1024 + 1), "too_large"),
    ],
)
def test_undecodable_records(raw, reason):
    events, rejects = decode_record(raw, VIEW, NOW)
    assert events == []
    assert [r.reason for r in rejects] == [reason]
    assert rejects[0].raw == raw


@pytest.mark.parametrize(
    ("fields", "kind", "reason", "names"),
    [
        ({"event_id": None}, VIEW, "missing_field", "event_id"),
        ({"user_id": 7}, VIEW, "wrong_type", "user_id"),
        ({"room_id": "bad room!"}, VIEW, "out_of_range", "room_id"),
        ({"room_id": "r" * 129}, VIEW, "out_of_range", "room_id"),
        ({"event_id": ""}, VIEW, "out_of_range", "event_id"),
        ({"ts": 1.5}, VIEW, "wrong_type", "ts"),
        ({"ts": True}, VIEW, "wrong_type", "ts"),
        ({"ts": NOW + 25 * 3600 * 1000}, VIEW, "ts_out_of_range", "24 h"),
        ({"type": "order"}, VIEW, "type_mismatch", "order"),
        ({"type": "like"}, VIEW, "unknown_type", "type"),
        ({"action": "dance"}, VIEW, "out_of_range", "action"),
        ({}, COMMENT, "missing_field", "text"),
        ({"text": "x" * 2001}, COMMENT, "out_of_range", "text"),
        ({"quantity": 0, "product_id": "p"}, CART, "out_of_range", "quantity"),
        ({}, CART, "missing_field", "product_id"),
        ({"order_id": "o", "product_id": "p", "amount": -1}, ORDER, "out_of_range", "amount"),
        ({"order_id": "o", "product_id": "p", "amount": "9"}, ORDER, "wrong_type", "amount"),
        ({"order_id": "o", "product_id": "p"}, ORDER, "missing_field", "amount"),
        (
            {"order_id": "o", "product_id": "p", "amount": 1, "status": "x"},
            ORDER,
            "out_of_range",
            "status",
        ),
    ],
)
def test_invalid_fields_are_rejected_with_a_named_reason(fields, kind, reason, names):
    events, rejects = one(ev(**fields), kind)
    assert events == []
    assert rejects[0].reason == reason
    assert names in rejects[0].detail


def test_comment_cart_order_layouts():
    assert one(ev(text="好评 👍"), COMMENT)[0] == [(COMMENT, "e1", "u1", NOW, "room-1", "好评 👍")]
    assert one(ev(product_id="p9", quantity=3), CART)[0] == [
        (CART, "e1", "u1", NOW, "room-1", "p9", 3)
    ]
    order = ev(order_id="o1", product_id="p9", amount=199.5, status="refunded")
    assert one(order, ORDER)[0] == [(ORDER, "e1", "u1", NOW, "room-1", "o1", "p9", 1, 199.5, False)]


def test_text_of_exactly_2000_characters_is_valid():
    events, rejects = one(ev(text="长" * 2000), COMMENT)
    assert rejects == [] and len(events) == 1
