"""Online viewers and PCU by event time only (SPEC "online viewers"): the same events in
any arrival order within the allowed lateness give the same figures, and those figures
are what a from-scratch count over event time says. The settled timeline's C step is
held to its Python reference."""

from __future__ import annotations

import random
import struct

import pytest

from streams.rooms import _flat
from streams.rooms.flat import FlatMap, hash64
from streams.rooms.presence import BIAS_SLACK_MS, settle_python
from streams.rooms.room import RoomSettings, RoomState

from .helpers import T0, cart, comment, enter, leave, order

LATENESS_MS = 5_000


def fold(events, settings: RoomSettings, python: bool = False) -> RoomState:
    room = RoomState("r", settings)
    for event in events:
        (room.apply_python if python else room.apply)(list(event))
    return room


def test_the_issue_case_comments_after_leaves_in_either_order():
    """200 enter, 50 leave, 20 of those comment 0.5 s later: 170 online, PCU 200, whether
    the leaves or the comments reach the worker first."""
    enters = [enter(f"u{i}", ts=T0 + i) for i in range(200)]
    leaves = [leave(f"u{i}", ts=T0 + 2_000 + i) for i in range(50)]
    comments = [comment(f"u{i}", ts=T0 + 2_500 + i) for i in range(20)]
    tail = [enter("late-comer", ts=T0 + 60_000)]  # moves the watermark past the lateness
    for python in (False, True):
        leaves_first = fold(enters + leaves + comments + tail, RoomSettings(), python)
        comments_first = fold(enters + comments + leaves + tail, RoomSettings(), python)
        for room in (leaves_first, comments_first):
            assert room.online == 171
            assert room.pcu == 200


def test_a_leave_and_a_presence_at_the_same_millisecond_the_leave_wins():
    for events in (
        [comment("u", ts=T0), leave("u", ts=T0)],
        [leave("u", ts=T0), comment("u", ts=T0)],
    ):
        assert fold([enter("u", ts=T0 - 10), *events], RoomSettings()).online == 0


def model(events, settings: RoomSettings) -> tuple[int, int]:
    """Online now and PCU counted from scratch: for each whole second that is settled
    (it ends before the watermark less the lateness) the users whose latest word up to
    its end is a presence within the session timeout; now, the same at the watermark."""
    timeout_s = settings.session_timeout_s
    words = sorted((e[3], e[0] == enter("x")[0] and not e[5], e[2]) for e in events)
    watermark = max(ts for ts, _, _ in words)

    def online_at(t: int) -> int:
        latest: dict[str, tuple[int, bool]] = {}
        for ts, is_leave, user in words:
            if ts > t:
                break
            if user not in latest or (ts, is_leave) > latest[user]:
                latest[user] = (ts, is_leave)
        cutoff = t // 1000 - timeout_s
        return sum(not lv and ts // 1000 > cutoff for ts, lv in latest.values())

    first = words[0][0] // 1000
    last_settled = (watermark - settings.allowed_lateness_ms) // 1000 - 1
    peak = max((online_at(s * 1000 + 999) for s in range(first, last_settled + 1)), default=0)
    now = online_at(watermark)
    return now, max(peak, now)


def room_stream(rng: random.Random, n: int, users: int) -> list:
    ts, out = T0, []
    for i in range(n):
        ts += int(rng.expovariate(8) * 1000)
        if rng.random() < 0.01:
            ts += rng.randrange(20, 90) * 1000  # an idle gap: users time out
        user = f"u{rng.randrange(users)}"
        roll = rng.random()
        make = (
            enter
            if roll < 0.4
            else leave
            if roll < 0.65
            else comment
            if roll < 0.85
            else cart
            if roll < 0.93
            else None
        )
        eid = f"e{i}"
        out.append(
            order(user, 9.9, ts=ts, event_id=eid)
            if make is None
            else make(user, ts=ts, event_id=eid)
        )
        if rng.random() < 0.05:  # two words of one user at the same millisecond
            out.append(leave(user, ts=ts, event_id=f"e{i}-same"))
    return out


def arrival(rng: random.Random, events: list) -> list:
    """An arrival order within the allowed lateness: each event arrives at its time plus
    up to the lateness, so none is older than the watermark less the lateness."""
    return sorted(events, key=lambda e: e[3] + rng.random() * LATENESS_MS)


@pytest.mark.parametrize("seed", range(5))
def test_any_arrival_order_within_the_lateness_gives_the_model_figures(seed):
    rng = random.Random(seed)
    settings = RoomSettings(session_timeout_s=30)
    events = room_stream(rng, 1_500, users=60)
    want = model(events, settings)
    assert want[1] > want[0] > 0
    for trial in range(4):
        order_ = arrival(rng, events)
        room = fold(order_, settings, python=trial == 3)
        assert (room.online, room.pcu) == want, trial


def test_pcu_and_online_survive_a_restore_in_the_middle():
    rng = random.Random(7)
    settings = RoomSettings(session_timeout_s=30)
    events = arrival(rng, room_stream(rng, 1_200, users=50))
    whole = fold(events, settings)
    first = fold(events[:600], settings)
    restored = RoomState("r", settings)
    restored.load(first.capture_base())
    restored.settle()
    for event in events[600:]:
        restored.apply(list(event))
    assert (restored.online, restored.pcu) == (whole.online, whole.pcu) == model(events, settings)


def packed_words(rng: random.Random, n: int, users: int, t0: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        ts = t0 + rng.randrange(90_000)
        out += struct.pack(
            "<Qq", hash64(f"u{rng.randrange(users)}"), -ts if rng.random() < 0.3 else ts
        )
    return bytes(out)


@pytest.mark.parametrize("seed", range(4))
def test_settle_in_c_equals_its_python_reference(seed):
    rng = random.Random(seed)
    tables = [FlatMap(bias_slack=BIAS_SLACK_MS) for _ in range(2)]
    states = [(0, 0, None, 0)] * 2
    upto, samples = T0, 0
    for _ in range(30):
        words = packed_words(rng, rng.randrange(0, 400), 80, upto - 10_000)
        upto += rng.choice((1_000, 2_500, 7_000, 45_000))
        results = [
            f(table, words, upto, 20, *state)
            for f, table, state in zip((_flat.settle, settle_python), tables, states, strict=True)
        ]
        assert results[0] == results[1]
        samples += len(results[0][5])
        assert dict(tables[0].items()) == dict(tables[1].items())
        states = [r[:4] for r in results]
    assert states[0][3] > 0 and samples > 100  # peaks and samples were taken


def test_settle_rejects_a_torn_word_buffer():
    with pytest.raises(ValueError, match="16-byte"):
        _flat.settle(FlatMap(), b"\0" * 17, T0, 20, 0, 0, None, 0)
