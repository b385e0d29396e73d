"""Compact-event builders for the pure-core tests (layouts in streams.events)."""

from streams.events import CART, COMMENT, ORDER, VIEW

T0 = 1_763_000_000_000  # ms, a whole second
_seq = iter(range(10**9))


def _id(event_id):
    return event_id if event_id is not None else f"auto-{next(_seq)}"


def enter(user, ts=T0, room="r", event_id=None):
    return (VIEW, _id(event_id), user, ts, room, True)


def leave(user, ts=T0, room="r", event_id=None):
    return (VIEW, _id(event_id), user, ts, room, False)


def comment(user, text="hi", ts=T0, room="r", event_id=None):
    return (COMMENT, _id(event_id), user, ts, room, text)


def cart(user, ts=T0, room="r", quantity=1, event_id=None):
    return (CART, _id(event_id), user, ts, room, "p1", quantity)


def order(user, amount, ts=T0, room="r", paid=True, event_id=None):
    return (ORDER, _id(event_id), user, ts, room, f"o-{user}", "p1", 1, amount, paid)
