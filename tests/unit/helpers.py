"""Compact-event builders for the pure-core tests (layouts in streams.events)."""

from array import array
from types import MemberDescriptorType

from streams.events import CART, COMMENT, ORDER, VIEW
from streams.rooms.flat import ENTRY_BYTES, FlatMap, sorted_entries

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


def cart(user, ts=T0, room="r", quantity=1, event_id=None, product="p1"):
    return (CART, _id(event_id), user, ts, room, product, quantity)


def order(user, amount, ts=T0, room="r", paid=True, event_id=None, product="p1"):
    return (ORDER, _id(event_id), user, ts, room, f"o-{user}", product, 1, amount, paid)


def group(offset, events, source=0):
    """A room-events record's group: the events of one input record."""
    return [source, offset, list(events)]


class Alerted:
    """A room partition with its alerting, composed as the worker composes them; every
    record applied is followed by closing the seconds it left behind."""

    def __init__(self, rules, settings=None):
        from streams.alerts.partition import PartitionAlerts
        from streams.rooms.partition import RoomPartition
        from streams.rooms.room import RoomSettings

        settings = settings or RoomSettings()
        self.alerts = PartitionAlerts(0, rules, settings.allowed_lateness_ms)
        self.part = RoomPartition(0, settings, self.alerts)

    @property
    def ledger(self):
        return self.alerts.ledger

    def apply(self, offset, events, now, outcome, score=None):
        self.part.apply(offset, [group(offset, events)], now, outcome, score)
        self.alerts.advance(now, self.part)

    def advance_watches(self, now):
        self.alerts.advance(now, self.part)

    def take_alerts(self):
        return self.alerts.take()

    def evict_idle(self, now, ttl):
        self.alerts.forget(self.part.evict_idle(now, ttl))


def everything(obj):
    """An object's whole state, nested objects and arrays included (not only what
    `to_state` or a checkpoint chooses to save); a flat table as its entries in key
    order with its value width, bias and size."""
    if isinstance(obj, FlatMap):
        return (sorted(obj.items()), obj.value_bytes, obj.bias, obj.nbytes)
    if isinstance(obj, array):
        return (obj.typecode, obj.tolist())
    if callable(obj):  # a helper an object made itself, or a type it casts with
        return getattr(obj, "__qualname__", repr(obj))
    if isinstance(obj, list | tuple):
        return [everything(item) for item in obj]
    if isinstance(obj, dict):
        return {key: everything(value) for key, value in obj.items()}
    names = getattr(obj, "__dict__", None) or {
        name: getattr(obj, name)
        for cls in type(obj).__mro__
        # Slots, and the unboxed fields of a C base (streams.anomaly.fields): both are
        # member descriptors of their class.
        for name, attr in vars(cls).items()
        if isinstance(attr, MemberDescriptorType) and hasattr(obj, name)
    }
    if not names:
        return obj
    return {name: everything(value) for name, value in sorted(dict(names).items())}


# Packed fields that are not a table's entries: their order is their meaning.
ORDERED_BYTES = frozenset({"pending", "registers"})


def in_key_order(piece, name=""):
    """A checkpoint piece with each table's packed entries in key order: tables of the
    same entries order their slots by their own salts (`_flat.c`, home_of)."""
    if isinstance(piece, dict):
        return {key: in_key_order(value, key) for key, value in piece.items()}
    if isinstance(piece, list | tuple):
        return [in_key_order(item, name) for item in piece]
    if isinstance(piece, bytes | bytearray) and name not in ORDERED_BYTES:
        assert len(piece) % ENTRY_BYTES == 0, name
        return sorted_entries(piece)
    return piece
