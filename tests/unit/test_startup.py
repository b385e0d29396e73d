"""Connecting until the broker answers: capped backoff, one log line per kind of
failure, the reason for /readyz, a stop that ends the wait (no broker, no Kafka)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from streams import config
from streams.runtime.startup import MAX_DELAY_S, layout_problem, until_connected


def run(failures: list[BaseException], stop_after: int | None = None):
    slept: list[float] = []
    reasons: list[str | None] = []
    calls = 0

    async def connect() -> None:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def stopping() -> bool:
        return stop_after is not None and calls >= stop_after

    done = asyncio.run(until_connected(connect, reasons.append, "kafka:9092", stopping, sleep))
    return done, slept, reasons


def test_it_retries_with_capped_backoff_until_the_broker_answers(caplog):
    caplog.set_level(logging.INFO)
    failures = [KafkaConnectionError("Unable to bootstrap")] * 9 + [ConnectionRefusedError()] * 3
    done, slept, reasons = run(list(failures))
    assert done
    assert slept[:4] == [0.5, 1.0, 2.0, 4.0] and max(slept) == MAX_DELAY_S and len(slept) == 12
    assert reasons[0] == "waiting for the broker at kafka:9092: KafkaConnectionError (attempt 1)"
    assert reasons[-1] is None  # ready
    warned = [r.message for r in caplog.records if "not reachable" in r.message]
    assert len(warned) == 2  # one line per kind of failure, not one per attempt
    assert "answered after 13 attempts" in caplog.text


def test_a_stop_ends_the_wait():
    done, slept, _ = run([KafkaConnectionError()] * 100, stop_after=3)
    assert not done and len(slept) == 3


def test_other_errors_are_not_swallowed():
    with pytest.raises(ValueError):
        run([ValueError("a bug")])


def test_a_topic_layout_no_retry_can_fix_is_named():
    settings = config.load({"LIVEROOM_PARTITIONS": "8"})
    ok = {settings.topic_room_events: 8, settings.topic_room_state: 8, settings.topic_alerts: 8}
    assert layout_problem(ok, settings) is None
    assert layout_problem({}, settings) is None  # not created yet
    bad = layout_problem({**ok, settings.topic_room_events: 4}, settings)
    assert bad and "set LIVEROOM_PARTITIONS=4" in bad
    short = layout_problem({**ok, settings.topic_alerts: 2}, settings)
    assert short and "needs at least LIVEROOM_PARTITIONS=8" in short
