"""Online viewers and PCU by event time only (SPEC "online viewers"): the same events in
any arrival order within the allowed lateness give the same figures, and those figures
are what a from-scratch count over event time says. The settled timeline's C step is
held to its Python reference."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from streams.rooms import _flat
from streams.rooms import presence as presence_module
from streams.rooms.flat import FlatMap, hash64
from streams.rooms.presence import ABSENT_WORD, Presence, is_later, settle_python
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


@pytest.mark.parametrize("seed", range(6))
def test_a_restore_from_any_checkpoint_holds_the_live_settled_view(seed):
    """Bases now and then, deltas between (which carry no removal): a room restored from
    any of them has the live room's settled view, online counts and PCU."""
    rng = random.Random(seed)
    settings = RoomSettings(session_timeout_s=30)
    live, log = RoomState("r", settings), []
    for n, event in enumerate(arrival(rng, room_stream(rng, 1_500, users=60))):
        live.apply(list(event))
        if n % 50 < 49:
            continue
        log.append(live.capture_base() if n % 400 == 49 else live.capture_delta())
        restored = RoomState("r", settings)
        last_base = max(i for i, piece in enumerate(log) if piece.get("base"))
        for piece in log[last_base:]:
            restored.load(piece)
        restored.settle()
        for room in (live, restored):
            view = settled_view(room.presence)
            assert room.presence.settled_online == sum(v >= 0 for v in view.values())
        assert settled_view(restored.presence) == settled_view(live.presence), n
        assert (restored.online, restored.pcu) == (live.online, live.pcu), n


def test_state_written_with_the_whole_settled_table_still_restores():
    """Checkpoints written before `before` held the settled view as a whole table ("at"
    in the settled piece): they load, and the view comes out as the live room's."""
    rng = random.Random(3)
    settings = RoomSettings(session_timeout_s=30)
    events = arrival(rng, room_stream(rng, 1_200, users=50))
    live = fold(events[:700], settings)
    base = live.capture_base()
    whole = FlatMap()
    for key, value in settled_view(live.presence).items():
        whole.set(key, value)
    scalars, pending = base["settled"]["scalars"], base["settled"]["pending"]
    base["settled"] = {"scalars": scalars, "at": whole.snapshot(), "pending": pending}
    restored = RoomState("r", settings)
    restored.load(base)
    restored.settle()
    assert len(live.presence.before) > 0
    assert settled_view(restored.presence) == settled_view(live.presence)
    assert restored.presence.settled_online == live.presence.settled_online
    for event in events[700:]:
        for room in (live, restored):
            room.apply(list(event))
    assert (restored.online, restored.pcu) == (live.online, live.pcu) == model(events, settings)


def test_the_settled_view_gives_back_a_bursts_slots_once_it_has_caught_up():
    """5,000 viewers enter within a second: `before` holds them while their words are
    pending, then shrinks back once the settled time has passed them."""
    presence = Presence(horizon_s=600)
    empty = presence.before.nbytes
    for i in range(5_000):
        presence.word(f"u{i}", T0 + i // 5, False)
    assert len(presence.before) == 5_000
    held = presence.before.nbytes
    presence.settle(T0 + 2_000, 0)
    assert len(presence.before) == 0 and presence.settled_online == 5_000
    assert presence.before.nbytes < held // 50 and presence.before.nbytes <= 4 * empty


def run_presence(seed: int) -> list:
    """A presence fed words out of order within the lateness, its watermark moving by
    steps short and long (users time out), settled after each: what it holds after each
    step. Its settled view is checked against the words themselves as it goes."""
    rng = random.Random(seed)
    presence = Presence(horizon_s=20)
    users = [f"u{i}" for i in range(80)]
    words: list[tuple[int, int]] = []  # (key, signed ms)
    out, peak, upto = [], 0, T0
    for _ in range(40):
        watermark = upto + LATENESS_MS
        for _ in range(rng.randrange(0, 150)):
            user, ts = rng.choice(users), rng.randrange(upto, watermark + 3_000)
            leave_ = rng.random() < 0.3
            presence.word(user, ts, leave_)
            words.append((hash64(user), -ts if leave_ else ts))
        upto += rng.choice((1_000, 2_500, 7_000, 45_000))
        presence.expire((upto + LATENESS_MS) // 1000)
        peak = presence.settle(upto, peak)
        view = settled_view(presence)
        assert view == settled_model(words, upto, presence.settled_second - 20)
        assert presence.settled_online == sum(v >= 0 for v in view.values())
        assert len(presence.before) < len(presence.at) + 80  # only the few that differ
        out.append(
            (presence.online, presence.settled_online, peak, sorted(presence.before.items()))
        )
    return out


def settled_view(presence: Presence) -> dict[int, int]:
    """The settled word of every user the view holds."""
    view = dict(presence.at.items())
    for key, value in presence.before.items():
        if value == ABSENT_WORD:
            view.pop(key, None)
        else:
            view[key] = value
    return view


def settled_model(words: list[tuple[int, int]], upto: int, forgotten_s: int) -> dict[int, int]:
    """Each user's latest word before `upto`, unless a session timeout old."""
    latest: dict[int, int] = {}
    for key, value in words:
        if abs(value) < upto and (key not in latest or is_later(value, latest[key])):
            latest[key] = value
    return {k: v for k, v in latest.items() if abs(v) // 1000 > forgotten_s}


@pytest.mark.parametrize("seed", range(4))
def test_settle_in_c_equals_its_python_reference(seed, monkeypatch):
    in_c = run_presence(seed)
    monkeypatch.setattr(presence_module, "_flat", SimpleNamespace(settle=settle_python))
    assert run_presence(seed) == in_c
    assert in_c[-1][2] > 0  # a peak was taken
    assert any(before for *_, before in in_c)  # and users were held apart


def test_settle_rejects_a_torn_word_buffer():
    with pytest.raises(ValueError, match="16-byte"):
        _flat.settle(FlatMap(), FlatMap(), b"\0" * 17, T0, 20, 0, 0, None, 0)
