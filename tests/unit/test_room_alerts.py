"""Room alerts in a partition: detectors driven by event time, one record per transition,
nothing sent twice across a checkpoint-and-replay restart."""

from __future__ import annotations

import asyncio
import random

from streams.alerts.ledger import AlertLedger
from streams.alerts.rules import AlertRules, RulesError
from streams.alerts.watch import RoomWatch
from streams.rooms.partition import Outcome
from streams.rooms.room import RoomSettings
from streams.runtime.checkpoint import Checkpointer
from streams.runtime.restore import restore_partition
from streams.sentiment import score
from streams.state.log import MemoryLog
from streams.state.writer import EpochWriter

from .helpers import T0, Alerted, cart, comment, enter, leave, order

S = 1000
RULES = AlertRules.load()


def room_second(
    rng,
    t,
    room="r",
    entries=20,
    comments=5,
    negative=0.1,
    carts=2,
    orders=0.6,
    texts=("主播好", "yyds"),
    angry=("质量太差了", "太难看了 😡"),
):
    """One second of a live room as compact events."""
    ts = T0 + t * S
    out = []
    for i in range(rng.randint(entries - 3, entries + 3)):
        user = f"v{t}-{i}"
        out.append(enter(user, ts=ts + rng.randrange(S), room=room))
    for i in range(rng.randint(max(0, comments - 2), comments + 2)):
        text = rng.choice(angry if rng.random() < negative else texts)
        out.append(comment(f"c{t}-{i}", text=text, ts=ts + rng.randrange(S), room=room))
    for i in range(carts):
        out.append(cart(f"k{t}-{i}", ts=ts + rng.randrange(S), room=room))
    if rng.random() < orders:
        out.append(order(f"k{t}-0", 99.0, ts=ts + rng.randrange(S), room=room))
    return out


def feed(part, seconds, offset=0, **shape):
    """Feed `seconds` (t, overrides) of traffic; return the alerts taken after each second."""
    rng = random.Random(7)
    sent = []
    for t, overrides in seconds:
        events = room_second(rng, t, **{**shape, **overrides})
        part.apply(offset + t, events, now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
    return sent


def partition() -> Alerted:
    return Alerted(RULES)


def test_a_room_whose_stream_is_cut_fires_one_viewer_drop_then_resolves() -> None:
    part = partition()
    # Another room keeps the partition's event time moving while room r is silent.
    seconds = []
    for t in range(400):
        seconds.append((t, {}))
    sent = []
    rng = random.Random(1)
    for t in range(400):
        events = room_second(rng, t, room="other")
        if not 200 <= t < 260:
            events += room_second(rng, t, room="r")
        part.apply(t, events, now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
    drops = [a for a in sent if a["kind"] == "ViewerDrop"]
    assert [a["status"] for a in drops] == ["firing", "resolved"]
    firing, resolved = drops
    assert firing["room_id"] == "r" and firing["severity"] == "critical"
    assert T0 + 200 * S < firing["starts_at_ms"] <= T0 + 210 * S  # within 10 s of event time
    assert resolved["alert_id"] == firing["alert_id"]
    assert resolved["ends_at_ms"] > T0 + 260 * S
    assert firing["runbook_url"].endswith("#viewerdrop")
    assert "var-room_id=r" in firing["dashboard_url"]
    assert firing["summary"].startswith("r: activity fell")
    assert not [a for a in sent if a["room_id"] == "other"]


def test_a_silent_partition_is_judged_by_the_clock() -> None:
    part = partition()
    rng = random.Random(2)
    for t in range(300):
        part.apply(t, room_second(rng, t), now=float(t), outcome=Outcome(), score=score)
    assert part.take_alerts() == []
    for wall in range(300, 320):  # no records at all: only the tick
        part.advance_watches(now=float(wall))
    sent = part.take_alerts()
    assert [(a["kind"], a["status"]) for a in sent] == [("ViewerDrop", "firing")]


def test_a_partition_behind_its_input_is_not_judged_by_the_clock() -> None:
    """No record folded for 20 s because the worker is behind (records wait): the clock
    closes nothing, and the seconds are judged on their events once they are folded."""
    part = partition()
    rng = random.Random(2)
    for t in range(300):
        part.apply(t, room_second(rng, t), now=float(t), outcome=Outcome(), score=score)
    closed = part.alerts.closed_through
    for wall in range(300, 320):  # behind: the worker reads nothing for 20 s
        part.alerts.advance(float(wall), part.part, input_waiting=True)
    assert part.alerts.closed_through == closed
    for t in range(300, 330):  # the backlog, folded late (processing time ran ahead)
        part.apply(t, room_second(rng, t), now=float(t + 20), outcome=Outcome(), score=score)
    assert part.take_alerts() == []
    assert part.alerts.closed_through == T0 // S + 330 - 5 - 1 - 1


def test_negative_wave_fires_one_surge_and_a_normal_room_none() -> None:
    part = partition()
    rng = random.Random(3)
    sent = []
    for t in range(500):
        wave = 0.7 if 300 <= t < 360 else 0.1
        events = room_second(rng, t, room="angry", negative=wave, comments=8)
        events += room_second(rng, t, room="calm", negative=0.1, comments=8)
        part.apply(t, events, now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
    surges = [a for a in sent if a["kind"] == "NegativeCommentSurge"]
    assert [(a["room_id"], a["status"]) for a in surges] == [
        ("angry", "firing"),
        ("angry", "resolved"),
    ]
    assert T0 + 300 * S < surges[0]["starts_at_ms"] <= T0 + 310 * S
    assert surges[0]["value"] > surges[0]["baseline"]


def keyword_wave(text: str, seconds: int = 120) -> list[dict]:
    """The alerts of a room with a comment naming watch-list phrases in each of seconds
    60-65 (`text` formatted with the second), among ordinary traffic."""
    part = partition()
    rng = random.Random(4)
    sent = []
    for t in range(seconds):
        events = room_second(rng, t, room="r")
        if 60 <= t < 66:
            events.append(comment(f"secret-user-{t}", text=text.format(t=t), ts=T0 + t * S))
        part.apply(t, events, now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
    return sent


def test_keyword_wave_fires_keyword_hit_with_samples_and_no_user_ids() -> None:
    sent = keyword_wave("用了过敏了 第{t}天")
    hits = [a for a in sent if a["kind"] == "KeywordHit"]
    assert [(a["key"], a["status"]) for a in hits] == [("safety", "firing")]
    assert hits[0]["severity"] == "critical"
    assert len(hits[0]["samples"]) == 5 and all("过敏" in s for s in hits[0]["samples"])
    assert "secret-user" not in str(hits[0])


def keyword_hits_in_order() -> list[str]:
    """The KeywordHits a wave of comments naming four lists at once starts, in order."""
    sent = keyword_wave(
        "过敏 骗子 假货 要退款 第{t}天", seconds=80
    )  # safety, fraud, counterfeit, refund
    return [a["key"] for a in sent if a["kind"] == "KeywordHit"]


def test_keyword_hits_of_one_second_start_in_the_rules_order_whatever_the_hashes() -> None:
    # The lists named were a set and new lists a set difference: their order followed
    # the process's string hashes, so two runs sent the same alerts in other orders.
    import os
    import subprocess
    import sys

    assert keyword_hits_in_order() == ["counterfeit", "fraud", "refund", "safety"]
    snippet = "from tests.unit.test_room_alerts import keyword_hits_in_order as k; print(k())"
    runs = {
        subprocess.run(
            [sys.executable, "-c", snippet],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert runs == {"['counterfeit', 'fraud', 'refund', 'safety']\n"}


def test_replay_after_a_restart_sends_nothing_twice() -> None:
    """Crash after the firing was sent but before the state was checkpointed again."""
    log = MemoryLog()
    part = partition()
    checkpointer = Checkpointer(EpochWriter(log, "state", 0, "w1", None), part.part, part.alerts)
    rng = random.Random(5)
    sent = []
    records = {}
    for t in range(400):
        events = room_second(rng, t, room="other")
        if not 200 <= t < 260:
            events += room_second(rng, t, room="r")
        records[t] = events
        part.apply(t, events, now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
        if t == 150:
            asyncio.run(checkpointer.write(checkpointer.capture(float(t), room_ttl=600)))
    assert [a["status"] for a in sent if a["kind"] == "ViewerDrop"] == ["firing", "resolved"]

    # A new worker: restore the t=150 checkpoint, rebuild the ledger from the alerts
    # topic (here: what was sent), replay every record after the checkpoint.
    def restored(ledger: list) -> Alerted:
        got = asyncio.run(restore_partition(log, "state", 0, RoomSettings(), RULES, now=400.0))
        again = partition()
        again.part, again.alerts = got.part, got.alerts
        again.alerts.ledger.load(ledger)
        return again

    again = restored(sent)
    assert again.part.applied_offset == 150
    resent = []
    for t in range(151, 400):
        again.apply(t, records[t], now=float(t), outcome=Outcome(), score=score)
        resent += again.take_alerts()
    assert resent == []
    # Without the ledger the replay would indeed have called the same transitions.
    blind = restored([])
    replayed = []
    for t in range(151, 400):
        blind.apply(t, records[t], now=float(t), outcome=Outcome(), score=score)
        replayed += blind.take_alerts()
    assert [(a["alert_id"], a["status"]) for a in replayed] == [
        (a["alert_id"], a["status"]) for a in sent
    ]


def test_ledger_gives_a_resolve_the_id_of_the_firing_that_was_sent() -> None:
    ledger = AlertLedger()
    base = {"room_id": "r", "kind": "ViewerDrop", "key": ""}
    first = {**base, "alert_id": "a1", "status": "firing", "starts_at": "x", "starts_at_ms": 1}
    assert ledger.admit(first) == first
    assert ledger.admit({**first, "alert_id": "a2", "starts_at_ms": 2}) is None  # still firing
    resolved = ledger.admit({**first, "alert_id": "a2", "status": "resolved", "starts_at_ms": 2})
    assert resolved is not None and resolved["alert_id"] == "a1" and resolved["starts_at_ms"] == 1
    assert ledger.admit({**first, "alert_id": "a2", "status": "resolved"}) is None
    assert ledger.firing() == []


def test_idle_room_eviction_resolves_what_it_had_firing() -> None:
    part = partition()
    rng = random.Random(6)
    for t in range(300):
        part.apply(t, room_second(rng, t), now=float(t), outcome=Outcome(), score=score)
    for wall in range(300, 320):
        part.advance_watches(now=float(wall))
    assert [a["status"] for a in part.take_alerts()] == ["firing"]
    part.evict_idle(now=2000.0, ttl=600)
    assert [a["status"] for a in part.take_alerts()] == ["resolved"]


def test_rules_per_room_overrides_and_announced_windows(tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[keyword_hit]\nmin_hits = 7\n[rooms."vip".keyword_hit]\nmin_hits = 50\n'
        '[[announced]]\nroom_id = "vip"\nstart = 2026-11-11T00:00:00+08:00\n'
        "end = 2026-11-11T00:10:00+08:00\n",
        encoding="utf-8",
    )
    rules = AlertRules.load(str(path))
    assert rules.for_room("any")["keyword_hit"]["min_hits"] == 7
    assert rules.for_room("vip")["keyword_hit"]["min_hits"] == 50
    assert rules.for_room("vip")["keyword_hit"]["cooldown"] == 300  # default kept
    midnight = 1_794_326_400_000  # 2026-11-11T00:00:00+08:00
    assert rules.announced_at("vip", midnight + 60_000)
    assert not rules.announced_at("vip", midnight + 600_000)
    assert not rules.announced_at("any", midnight + 60_000)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[announced]]\nroom_id = "x"\nstart = 2026-11-11T00:00:00\nend = 1\n')
    try:
        AlertRules.load(str(bad))
    except RulesError as err:
        assert "time zone" in str(err)
    else:
        raise AssertionError("a naive date-time was accepted")


def test_leaves_alone_do_not_page() -> None:
    """Viewers leaving in numbers during decay is not an incident."""
    part = partition()
    rng = random.Random(8)
    sent = []
    for t in range(400):
        events = room_second(rng, t, entries=max(1, 30 - t // 15), carts=1)
        events += [leave(f"v{t - 5}-{i}", ts=T0 + t * S + 500) for i in range(10)]
        part.apply(t, events, now=float(t), outcome=Outcome(), score=score)
        sent += part.take_alerts()
    assert [a for a in sent if a["kind"] == "ViewerDrop"] == []


def test_alerts_the_broker_did_not_acknowledge_are_sent_again_first():
    from streams.alerts.partition import PartitionAlerts
    from streams.alerts.rules import AlertRules

    alerts = PartitionAlerts(0, AlertRules.load(), 5000)
    first = {
        "alert_id": "a1",
        "kind": "KeywordHit",
        "key": "fraud",
        "room_id": "r",
        "status": "firing",
    }
    alerts.outbox.append(first)
    taken = alerts.take()
    assert taken == [first]
    alerts.not_sent(taken)  # the produce timed out
    alerts.outbox.append(dict(first))  # the same transition again: the ledger drops it
    assert alerts.take() == [first]  # sent again, once
    assert alerts.take() == []


def test_a_comment_flood_fires_one_traffic_spike_with_its_words_then_resolves() -> None:
    watch = RoomWatch("r", RULES.for_room("r"))
    out = []
    for t in range(400):
        out += watch.close(t, 10, 5, 2, 1, 5, 0, 1000.0)
    assert out == []
    for t in range(400, 420):  # comments x100 for 20 s: a bot flood
        out += watch.close(t, 10, 500, 2, 1, 5, 0, 1000.0)
    for t in range(420, 700):
        out += watch.close(t, 10, 5, 2, 1, 5, 0, 1000.0)
    assert [(r["kind"], r["key"], r["status"]) for r in out] == [
        ("TrafficSpike", "comments", "firing"),
        ("TrafficSpike", "comments", "resolved"),
    ]
    assert out[0]["summary"].startswith("r: comments at ")
    assert "the usual rate" in out[0]["summary"]
