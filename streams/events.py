"""Decode and validate input records into compact events.

A record is one JSON event or a JSON array of events. Valid events become compact
tuples (positional, cheap to build, compare and re-encode); every invalid record or
array element becomes a `Reject` with a reason code from the bounded set `REASONS`
(used as a Prometheus label) plus a free-text detail (dead-letter only).

Compact event layouts, by kind (field 0):
    VIEW    (0, event_id, user_id, ts_ms, room_id, is_enter)
    COMMENT (1, event_id, user_id, ts_ms, room_id, text)
    CART    (2, event_id, user_id, ts_ms, room_id, product_id, quantity)
    ORDER   (3, event_id, user_id, ts_ms, room_id, order_id, product_id, quantity,
             amount, is_paid)
    SPEND   (4, event_id, user_id or "", ts_ms, room_id, channel, amount)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from streams._validate import LIMITS, valid_events

VIEW, COMMENT, CART, ORDER, SPEND = 0, 1, 2, 3, 4
KIND_NAMES = ("view", "comment", "cart", "order", "spend")
KIND_BY_NAME = {name: kind for kind, name in enumerate(KIND_NAMES)}

# Field positions shared by every compact event...
F_KIND, F_EVENT_ID, F_USER, F_TS, F_ROOM = 0, 1, 2, 3, 4
# ...and those of each kind (read events by these names, never by bare numbers).
F_VIEW_ENTER = 5
F_COMMENT_TEXT = 5
F_CART_PRODUCT, F_CART_QUANTITY = 5, 6
F_ORDER_ID, F_ORDER_PRODUCT, F_ORDER_QUANTITY, F_ORDER_AMOUNT, F_ORDER_PAID = 5, 6, 7, 8, 9
F_SPEND_CHANNEL, F_SPEND_AMOUNT = 5, 6

MAX_RECORD_BYTES = 1024 * 1024
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 2000
MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000

# The C fast path (streams/_validate.c) must check the same limits as `validate`.
if LIMITS != (MAX_ID_CHARS, MAX_TEXT_CHARS, MAX_CLOCK_SKEW_MS):  # pragma: no cover
    raise ImportError(f"streams._validate was built with other limits: {LIMITS}")

REASONS = (
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "unknown_type",
    "type_mismatch",
    "ts_out_of_range",
)

_ROOM_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_KNOWN_ROOMS: set[str] = set()  # room ids already checked; bounded below
_KNOWN_ROOMS_MAX = 200_000


@dataclass(slots=True)
class Reject:
    reason: str  # one of REASONS
    detail: str  # human-readable, names the field
    raw: bytes  # the original record, or the offending array element re-encoded
    index: int | None = None  # position in the array, None for a single-event record


class Invalid(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _id(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise Invalid("missing_field", f"{name} is missing")
    if type(value) is not str:
        raise Invalid("wrong_type", f"{name} must be a string")
    if not 0 < len(value) <= MAX_ID_CHARS:
        raise Invalid("out_of_range", f"{name} must be 1-{MAX_ID_CHARS} characters")
    return value


def _positive_int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name, 1)
    if type(value) is not int:
        raise Invalid("wrong_type", f"{name} must be an integer")
    if value < 1:
        raise Invalid("out_of_range", f"{name} must be >= 1")
    return value


def _amount(obj: dict[str, Any]) -> float:
    amount = obj.get("amount")
    if amount is None:
        raise Invalid("missing_field", "amount is missing")
    if type(amount) not in (int, float):
        raise Invalid("wrong_type", "amount must be a number")
    if not (amount >= 0 and math.isfinite(amount)):
        raise Invalid("out_of_range", "amount must be a finite number >= 0")
    return amount


def validate(obj: Any, kind: int, now_ms: int) -> tuple:
    """Validate one decoded JSON value as an event of `kind`; return its compact tuple."""
    if type(obj) is not dict:
        raise Invalid("not_an_object", "event must be a JSON object")
    event_type = obj.get("type")
    if event_type is not None and event_type != KIND_NAMES[kind]:
        if type(event_type) is not str:  # a list or object would not even hash
            raise Invalid("wrong_type", "type must be a string")
        if event_type in KIND_BY_NAME:
            raise Invalid("type_mismatch", f"type {event_type!r} on the {KIND_NAMES[kind]} topic")
        raise Invalid("unknown_type", "type must be one of view, comment, cart, order, spend")
    event_id = _id(obj, "event_id")
    room_id = _id(obj, "room_id")
    if room_id not in _KNOWN_ROOMS:
        if _ROOM_ID.fullmatch(room_id) is None:
            raise Invalid("out_of_range", "room_id may only hold [A-Za-z0-9_.:-]")
        if len(_KNOWN_ROOMS) >= _KNOWN_ROOMS_MAX:
            _KNOWN_ROOMS.clear()
        _KNOWN_ROOMS.add(room_id)
    # user_id is optional for spend (SPEC): an ad platform's spend has no viewer.
    user_id = "" if kind == SPEND and obj.get("user_id") is None else _id(obj, "user_id")
    ts = obj.get("ts")
    if ts is None:
        raise Invalid("missing_field", "ts is missing")
    if type(ts) is not int:
        raise Invalid("wrong_type", "ts must be an integer (epoch milliseconds)")
    if abs(ts - now_ms) > MAX_CLOCK_SKEW_MS:
        raise Invalid("ts_out_of_range", "ts is more than 24 h away from the processor clock")

    if kind == VIEW:
        action = obj.get("action", "enter")
        if action == "enter":
            return (VIEW, event_id, user_id, ts, room_id, True)
        if action == "leave":
            return (VIEW, event_id, user_id, ts, room_id, False)
        raise Invalid("out_of_range", "action must be 'enter' or 'leave'")
    if kind == COMMENT:
        text = obj.get("text")
        if text is None:
            raise Invalid("missing_field", "text is missing")
        if type(text) is not str:
            raise Invalid("wrong_type", "text must be a string")
        if len(text) > MAX_TEXT_CHARS:
            raise Invalid("out_of_range", f"text is longer than {MAX_TEXT_CHARS} characters")
        return (COMMENT, event_id, user_id, ts, room_id, text)
    if kind == CART:
        product_id = _id(obj, "product_id")
        return (CART, event_id, user_id, ts, room_id, product_id, _positive_int(obj, "quantity"))
    if kind == SPEND:
        return (SPEND, event_id, user_id, ts, room_id, _id(obj, "channel"), _amount(obj))
    # ORDER
    order_id = _id(obj, "order_id")
    product_id = _id(obj, "product_id")
    quantity = _positive_int(obj, "quantity")
    amount = _amount(obj)
    status = obj.get("status", "paid")
    if status == "paid":
        paid = True
    elif status == "refunded":
        paid = False
    else:
        raise Invalid("out_of_range", "status must be 'paid' or 'refunded'")
    return (ORDER, event_id, user_id, ts, room_id, order_id, product_id, quantity, amount, paid)


def decode_record(value: bytes | None, kind: int, now_ms: int) -> tuple[list[tuple], list[Reject]]:
    """Decode one record of the `kind` topic into (valid events, rejects).

    A bad element of an array rejects only that element; its neighbours stay valid.
    """
    if value is None:
        return [], [Reject("invalid_json", "record has no value", b"")]
    if len(value) > MAX_RECORD_BYTES:
        return [], [Reject("too_large", f"record is {len(value)} bytes, over 1 MiB", value)]
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return [], [Reject("invalid_utf8", "record is not valid UTF-8", value)]
        return [], [Reject("invalid_json", f"not JSON: {exc}", value)]

    # Almost every record is wholly valid: C builds its tuples, the very ones `validate`
    # builds. Anything else (a bad or unusual event anywhere in it) comes back None and
    # takes the path below, which gives each reject its reason.
    fast = valid_events(doc, kind, now_ms) if kind != SPEND else None  # spend: rare, Python
    if fast is not None:
        return fast, []
    events: list[tuple] = []
    rejects: list[Reject] = []
    if type(doc) is list:
        if not doc:
            rejects.append(Reject("not_an_object", "empty array", value))
        for index, item in enumerate(doc):
            try:
                events.append(validate(item, kind, now_ms))
            except Invalid as bad:
                rejects.append(Reject(bad.reason, bad.detail, orjson.dumps(item), index))
    else:
        try:
            events.append(validate(doc, kind, now_ms))
        except Invalid as bad:
            rejects.append(Reject(bad.reason, bad.detail, value))
    return events, rejects
