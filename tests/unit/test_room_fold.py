"""The room fold in C (`streams/rooms/_fold.c`) against its reference in Python
(`RoomState.apply_python`): the same results and the same state, every slot, ring and
table entry, and the same checkpoint deltas, on streams that take every path."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.rooms import _fold
from streams.rooms.distinct import EXACT_LIMIT
from streams.rooms.room import DUPLICATE, RoomSettings, RoomState
from streams.state.records import bytes_as_base64

from .helpers import T0, cart, comment, enter, everything, in_key_order, leave, order

S = 1000


def stream(rng: random.Random, events: int, users: int, per_second: float, disorder_s: float):
    """A room's events: all kinds, repeats of earlier ids, late and early arrivals
    (disorder), leaves before their enters, idle gaps of minutes, amounts of both types."""
    ts, sent = T0, []
    for n in range(events):
        ts += int(rng.expovariate(per_second) * S)
        if rng.random() < 0.002:
            ts += rng.randrange(30, 400) * S  # an idle gap: windows and presence expire
        at = max(T0, ts - int(rng.random() * disorder_s * S))
        user = f"u{rng.randrange(users)}"
        if sent and rng.random() < 0.03:
            sent.append(rng.choice(sent))  # a client's retry: the same event again
            continue
        roll = rng.random()
        if roll < 0.45:
            event = enter(user, ts=at, event_id=f"e{n}")
        elif roll < 0.6:
            event = leave(user, ts=at, event_id=f"e{n}")
        elif roll < 0.8:
            event = comment(user, ts=at, event_id=f"e{n}")
        elif roll < 0.9:
            event = cart(user, ts=at, event_id=f"e{n}")
        else:
            amount = rng.choice((19.9, 100, 0.01, 3))
            event = order(user, amount, ts=at, paid=rng.random() < 0.8, event_id=f"e{n}")
        sent.append(event)
    return sent


def sentiment_for(rng: random.Random, event) -> float | None:
    if event[0] != comment("u")[0] or rng.random() < 0.2:
        return None
    return rng.choice((-0.9, -0.2, -0.19999, 0.0, 0.35, 1.0))


def fold_both(events, seed: int = 1, as_lists: bool = True, rooms=None):
    """Fold `events` into a room by C and a room by Python; compare as they go."""
    c_room, py_room = rooms or (RoomState("r", RoomSettings()), RoomState("r", RoomSettings()))
    rng = random.Random(seed)
    for i, event in enumerate(events):
        event = list(event) if as_lists else event  # decoded records are lists
        sentiment = sentiment_for(rng, event)
        assert c_room.apply(event, sentiment) == py_room.apply_python(event, sentiment), i
        if i % 997 == 0:
            assert everything(c_room) == everything(py_room), i
            assert in_key_order(c_room.capture_delta()) == in_key_order(py_room.capture_delta()), i
    assert everything(c_room) == everything(py_room)
    return c_room, py_room


@pytest.mark.parametrize("seed", range(6))
def test_c_folds_a_mixed_disordered_stream_into_the_state_python_does(seed):
    rng = random.Random(seed)
    events = stream(rng, 6_000, users=300, per_second=rng.choice((0.5, 5, 60)), disorder_s=12)
    c_room, py_room = fold_both(events, seed)
    assert c_room.views > 0 and c_room.online >= 0 and c_room.refunds > 0
    assert in_key_order(c_room.capture_base()) == in_key_order(py_room.capture_base())


def test_c_and_python_agree_when_rings_outgrow_a_byte_and_sets_become_sketches():
    # 1,000 new viewers a second for 14 s: every ring past 255 a second (then 65,535 is
    # not reached), the distinct viewers past the exact limit into a sketch.
    events = [
        enter(f"v{s}-{i}", ts=T0 + s * S + i, event_id=f"e{s}-{i}")
        for s in range(14)
        for i in range(1_000)
    ]
    events += [comment(f"v3-{i}", ts=T0 + 14 * S + i) for i in range(400)]
    c_room, _ = fold_both(events)
    assert not c_room.viewers.is_exact and len(c_room.viewers) > EXACT_LIMIT
    assert c_room.seen_event_ids._counts.typecode == "H"
    assert c_room.recent_viewers._live.typecode == "H"


def test_c_and_python_agree_after_a_restore_and_on_tuples():
    rng = random.Random(9)
    events = stream(rng, 4_000, users=200, per_second=20, disorder_s=8)
    first, _ = fold_both(events[:2_000], as_lists=False)
    base = orjson.loads(orjson.dumps(first.capture_base(), default=bytes_as_base64))
    restored = []
    for _ in range(2):
        room = RoomState("r", RoomSettings())
        room.load(base)  # not settled: its indexes stay stale until an event touches them
        restored.append(room)
    # The first folds into a stale index take Python's path (its recount).
    assert restored[0].recent_viewers._stale
    c_room, _ = fold_both(events[2_000:], rooms=tuple(restored))
    assert c_room.apply(list(events[0])) == DUPLICATE or events[0][3] < c_room.watermark_ms - 60 * S


def test_c_and_python_agree_on_ids_that_expired_but_are_not_yet_swept():
    """The dedup index drops expired ids lazily (a sixteenth of it at a time): a retry
    past 10 minutes finds its id still held, expired, and counts as new; one within them
    is a duplicate. Every second's id of the first 100 s is retried at 700-720 s."""
    events = [
        enter(f"u{s}", ts=T0 + s * S + i, event_id=f"e{s}-{i}")
        for s in range(721)
        for i in range(5)
    ]
    retries = [enter("u", ts=T0 + (700 + s) * S + 999, event_id=f"e{s * 5}-1") for s in range(21)]
    c_room, py_room = fold_both(sorted(events + retries, key=lambda e: e[3]))
    ids = c_room.seen_event_ids
    assert ids._expired and ids._cutoff == 720 + T0 // S - 600  # some expired ids still held
    held = [s for s in range(121) if s % 5 and ids.first_seen.get(f"e{s}-1") is not None]
    assert held  # expired (at or before second 120), not yet swept
    retry = [list(enter("u", ts=T0 + 721 * S, event_id=f"e{s}-1")) for s in (held[0], 125)]
    assert [c_room.apply(e) for e in retry] == [py_room.apply_python(e) for e in retry]
    assert py_room.apply_python(list(enter("u", ts=T0 + 721 * S, event_id="e125-2"))) == DUPLICATE
    assert c_room.views == py_room.views == 721 * 5 + 21 + 1  # every retry past 10 minutes counted


def test_an_event_of_an_unexpected_shape_is_folded_by_python():
    c_room, py_room = RoomState("r", RoomSettings()), RoomState("r", RoomSettings())
    for event, score in ((comment("u1"), -1), (enter("u1"), None)):  # an int score
        assert c_room.apply(event, score) == py_room.apply_python(event, score)
    assert everything(c_room) == everything(py_room)
    assert c_room.score_sum == -1 and c_room.negative_comments == 1
    with pytest.raises(IndexError):
        c_room.apply([0, "e", "u", T0])  # a view without its enter flag, as Python says


def test_a_setup_that_fails_leaves_the_fold_as_it_was():
    with pytest.raises(ValueError):
        _fold.setup((RoomState,), (), -0.2, EXACT_LIMIT, 50, None)
    with pytest.raises(AttributeError, match="first_seen"):  # RoomState has no such slot
        _fold.setup((RoomState,) * 6, tuple(range(23)), -0.2, EXACT_LIMIT, 50, None)
    room = RoomState("r", RoomSettings())
    assert room.apply(enter("u1")) == room.apply_python(enter("u2")) == 0
    assert room.views == 2


class Heard:
    """A partition observer that writes down what it hears."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def room_seen(self, room_id, ts_ms):
        self.calls.append(("room", room_id, ts_ms))

    def comment(self, room_id, ts_ms, text):
        self.calls.append(("comment", room_id, ts_ms, text))


def partitions_fold_both(groups, make_score):
    """Fold groups into a partition by C and one by Python (each with a scorer from
    `make_score`); return both and their outcomes and observers."""
    from streams.rooms.partition import Outcome, RoomPartition

    sides = []
    for python in (False, True):
        heard = Heard()
        part, outcome = RoomPartition(0, RoomSettings(), heard), Outcome()
        score = make_score()
        for events in groups:
            fold = part._fold_python if python else part._fold
            fold(events, 1_000.5, outcome, score)
        sides.append((part, outcome, heard))
    return sides


def test_c_folds_a_partitions_groups_as_python_does():
    rng = random.Random(4)
    events = []
    for room in range(12):
        room_events = stream(rng, 500, users=40, per_second=3, disorder_s=10)
        events += [[*e[:4], f"room-{room}", *e[5:]] for e in room_events]
    rng.shuffle(events)
    groups = [events[i : i + rng.randrange(1, 90)] for i in range(0, len(events), 60)]

    def make_score():  # a score per call, the same sequence on both sides
        calls = iter(range(10**9))
        return lambda text: (next(calls) % 7 - 3) / 3.0

    sides = partitions_fold_both(groups, make_score)
    (c_part, c_out, c_heard), (py_part, py_out, py_heard) = sides
    assert c_out == py_out and sum(c_out.applied) > 4_000 and sum(c_out.duplicates) > 0
    assert c_heard.calls == py_heard.calls and len(c_heard.calls) > 900
    assert c_part.watermark_ms == py_part.watermark_ms > T0
    assert everything(c_part.rooms) == everything(py_part.rooms)


def test_a_group_of_an_unexpected_shape_folds_in_python():
    from streams.rooms.partition import Outcome, RoomPartition

    part = RoomPartition(0, RoomSettings())
    odd = [list(enter("u1")), (True, "e2", "u2", T0, "r", True)]  # a bool for a kind
    assert not _fold.fold_group(part, odd, 1.0, Outcome(), None)
    part._fold(odd, 1.0, outcome := Outcome(), None)
    assert outcome.applied[0] == 1 and outcome.applied[1] == 1 and part.rooms["r"].state.views == 1
