"""Input partitions read evenly in time: what the pacer hands out, holds and pauses."""

from __future__ import annotations

from dataclasses import dataclass

from streams.runtime.pacing import InputPacer

VIEWS, ORDERS = ("liveroom.views", 0), ("liveroom.orders", 0)


@dataclass(frozen=True)
class Record:
    offset: int
    timestamp: int


def log(first_ts: int, step_ms: int, count: int, first_offset: int = 0) -> list[Record]:
    return [Record(first_offset + i, first_ts + i * step_ms) for i in range(count)]


def never_reading(tp: tuple[str, int]) -> bool:
    return False


def test_records_within_the_slack_of_the_furthest_behind_are_due_and_the_rest_wait():
    pacer = InputPacer(slack_ms=1_000)
    pacer.add(VIEWS, log(10_000, 100, 30), now=0.0)  # 10.0-12.9 s
    pacer.add(ORDERS, log(10_500, 2_000, 5), now=0.0)  # 10.5, 12.5, ... 18.5 s
    due = pacer.take(0.0, never_reading)
    assert [r.timestamp for r in due[VIEWS]] == list(range(10_000, 11_001, 100))
    assert [r.timestamp for r in due[ORDERS]] == [10_500]
    assert pacer.backlogged() == {VIEWS, ORDERS}  # paused until drained
    due = pacer.take(0.0, never_reading)  # the views' head (11.1 s) is now the floor
    assert due[VIEWS][0].timestamp == 11_100 and due[VIEWS][-1].timestamp == 12_100
    assert ORDERS not in due  # 12.5 s is beyond 11.1 + 1 s
    due = pacer.take(0.0, never_reading)  # views 12.2-12.9 s, orders' 12.5 s within
    assert [r.timestamp for r in due[ORDERS]] == [12_500] and VIEWS not in pacer.queued


def test_an_empty_partition_being_read_holds_the_others_back_for_a_while():
    pacer = InputPacer(slack_ms=1_000, hold_s=1.0, hold_takes=4)
    pacer.add(VIEWS, log(10_000, 100, 10), now=0.0)  # 10.0-10.9 s
    pacer.add(ORDERS, log(10_000, 5_000, 3), now=0.0)  # 10, 15, 20 s
    pacer.take(0.0, never_reading)
    assert VIEWS not in pacer.queued  # drained: its next fetch is on the way

    def views_reading(tp: tuple[str, int]) -> bool:
        return tp == VIEWS

    assert pacer.take(0.5, views_reading) == {}  # views at 10.9 s hold the orders at 15 s
    # Not read at all (nothing left in its log): it holds nobody.
    assert [r.timestamp for r in pacer.take(0.5, never_reading)[ORDERS]] == [15_000]
    # Reading, but nothing delivered for longer than hold_s and hold_takes: it holds
    # nobody either (a Kafka log whose end is a transaction marker never reaches lag 0).
    assert pacer.take(1.6, views_reading) == {}  # 1.6 s, but the 4th take: a busy loop
    assert [r.timestamp for r in pacer.take(1.7, views_reading)[ORDERS]] == [20_000]


def test_the_furthest_behind_head_is_always_due_even_out_of_order():
    pacer = InputPacer(slack_ms=0)
    # Two producers with skewed clocks in one partition: not sorted by timestamp.
    pacer.add(VIEWS, [Record(0, 5_000), Record(1, 9_000), Record(2, 1_000)], now=0.0)
    taken = []
    while pacer.queued:
        due = pacer.take(0.0, never_reading)
        assert due, "no progress"
        taken += due[VIEWS]
    assert [r.offset for r in taken] == [0, 1, 2]  # a prefix each time: offsets in order


def test_records_queued_already_are_not_queued_twice_and_forget_drops_them():
    pacer = InputPacer(slack_ms=0)
    pacer.add(VIEWS, log(0, 10, 5), now=0.0)
    pacer.add(VIEWS, log(30, 10, 5, first_offset=3), now=0.1)  # offsets 3-7
    assert [r.offset for r in pacer.queued[VIEWS]] == list(range(8))
    pacer.forget([VIEWS])
    assert pacer.backlogged() == set() and pacer.take(0.2, never_reading) == {}


def test_paced_routing_keeps_a_thin_partition_within_the_slack_of_a_busy_one():
    """The reason for the pacer: fetches of equal size, 100 records each, from a busy
    partition (a record every 10 ms) and a thin one (every 1 s). Routed as fetched, the
    thin one runs 99 s ahead; paced, the event time routed never runs more than the
    slack ahead of what comes after it."""
    slack = 2_500
    pacer = InputPacer(slack_ms=slack)
    logs = {VIEWS: log(0, 10, 20_000), ORDERS: log(0, 1_000, 200)}
    read = dict.fromkeys(logs, 0)
    routed: list[int] = []
    now = 0.0
    while any(read[tp] < len(records) for tp, records in logs.items()) or pacer.queued:
        for tp, records in logs.items():  # a fetch of every partition not paused
            if tp not in pacer.backlogged() and read[tp] < len(records):
                pacer.add(tp, records[read[tp] : read[tp] + 100], now)
                read[tp] += 100

        def reading(tp: tuple[str, int]) -> bool:
            return read[tp] < len(logs[tp])

        for records in pacer.take(now, reading).values():
            routed += [r.timestamp for r in records]
        now += 0.01
    assert len(routed) == 20_200
    ahead = 0  # how far the highest time routed so far is beyond each later record
    highest = 0
    for ts in routed:
        ahead = max(ahead, highest - ts)
        highest = max(highest, ts)
    assert ahead <= slack
