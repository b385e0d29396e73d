"""A worker SIGKILLed mid-stream and restarted ends with exact totals: nothing lost,
nothing counted twice. The oracle is computed here from the produced events."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import pytest

from .conftest import (
    PARTITIONS,
    Stack,
    WorkerProcess,
    room_value,
    rooms_in,
    total,
    wait_until,
)

pytestmark = pytest.mark.integration

ROOMS = [f"room-{i:02d}" for i in range(24)]


def generate(seed: int, batches: int, now: int) -> list[tuple[str, list[dict]]]:
    """(kind, events) records: arrays of 100 mostly, some single events, some re-sent."""
    rng = random.Random(seed)
    records: list[tuple[str, list[dict]]] = []
    n = 0
    for b in range(batches):
        kind = rng.choices(["views", "comments", "carts", "orders"], [6, 2, 1, 1])[0]
        size = 100 if b % 10 else 1
        events = []
        for _ in range(size):
            n += 1
            room = ROOMS[min(int(rng.paretovariate(1.2)) - 1, len(ROOMS) - 1)]
            e = {
                "event_id": f"e{n}",
                "room_id": room,
                "user_id": f"u{rng.randrange(3000)}",
                "ts": now + rng.randrange(2000),
            }
            if kind == "comments":
                e["text"] = "好看"
            elif kind == "carts":
                e["product_id"] = "p1"
            elif kind == "orders":
                e |= {"order_id": f"o{n}", "product_id": "p1", "amount": rng.randrange(1, 500) / 2}
            events.append(e)
        records.append((kind, events))
        if b % 25 == 7:
            records.append((kind, events[: 1 + size // 2]))  # an upstream retry: duplicates
    return records


def oracle(records: list[tuple[str, list[dict]]]) -> dict[str, dict[str, float]]:
    seen: set[str] = set()
    rooms: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    viewers: dict[str, set] = defaultdict(set)
    buyers: dict[str, set] = defaultdict(set)
    for kind, events in records:
        for e in events:
            if e["event_id"] in seen:
                continue
            seen.add(e["event_id"])
            r = rooms[e["room_id"]]
            r[kind] += 1
            if kind == "views":
                viewers[e["room_id"]].add(e["user_id"])
            if kind == "orders":
                r["gmv"] += e["amount"]
                buyers[e["room_id"]].add(e["user_id"])
    for room, r in rooms.items():
        r["uv"] = len(viewers[room])
        r["buyers"] = len(buyers[room])
    return rooms


def produce_paced(
    stack: Stack, records: list[tuple[str, list[dict]]], key: bytes
) -> threading.Thread:
    """The records produced in a background thread, 30 at a time with a pause between:
    traffic that keeps flowing while workers are killed, joined and stopped."""

    def produce() -> None:
        for i, (kind, events) in enumerate(records):
            stack.produce(kind, events, key=key)
            if i % 30 == 29:
                time.sleep(0.2)
        stack.flush()

    thread = threading.Thread(target=produce)
    thread.start()
    return thread


def room_totals(samples: dict, room: str) -> dict[str, float]:
    return {
        "views": room_value(samples, "liveroom_views_total", room) or 0,
        "comments": room_value(samples, "liveroom_comments_total", room) or 0,
        "carts": room_value(samples, "liveroom_cart_adds_total", room) or 0,
        "orders": room_value(samples, "liveroom_orders_total", room) or 0,
        "gmv": room_value(samples, "liveroom_gmv_yuan_total", room) or 0,
        "uv": room_value(samples, "liveroom_unique_viewers", room, window="session") or 0,
        "buyers": room_value(samples, "liveroom_buyers", room, window="session") or 0,
    }


FIELDS = ("views", "comments", "carts", "orders", "uv", "buyers")


def assert_exact(got: dict[str, dict[str, float]], expected: dict[str, dict[str, float]]) -> None:
    for room, want in expected.items():
        for name in FIELDS:
            assert got[room][name] == want[name], (room, name, got[room][name], want[name])
        assert got[room]["gmv"] == pytest.approx(want["gmv"]), (room, "gmv")


def totals_of(worker: WorkerProcess, rooms: Iterable[str]) -> Callable[[], dict]:
    """A reader of every room's totals, from one scrape of `worker` per read."""

    def read() -> dict[str, dict[str, float]]:
        samples = worker.scrape()
        return {room: room_totals(samples, room) for room in rooms}

    return read


def wait_exact(
    read: Callable[[], dict[str, dict[str, float]]],
    expected: dict[str, dict[str, float]],
    timeout: float,
    what: str,
) -> None:
    """Waits until every room's every total matches the oracle, then checks again 2 s
    later, when anything counted twice would show. Waiting on one kind only is a race:
    each input topic's partition may sit on another worker, so views can be complete
    while orders are still being routed."""

    def exact() -> bool:
        assert_exact(read(), expected)  # the last mismatch is the timeout's message
        return True

    wait_until(exact, timeout, what)
    time.sleep(2)
    assert_exact(read(), expected)


def passed_over_room_events(stack: Stack, samples: dict) -> float:
    """What `liveroom_offsets_passed_over_total` says of room-events (exported from 0)."""
    return samples[("liveroom_offsets_passed_over_total", (("topic", stack.topic("room_events")),))]


def test_sigkill_mid_stream_then_restart_is_exact(stack):
    records = generate(seed=7, batches=1200, now=int(time.time() * 1000))
    expected = oracle(records)
    expected_events = sum(
        sum(v for k, v in r.items() if k in ("views", "comments", "carts", "orders"))
        for r in expected.values()
    )

    # Small checkpoint chunks: the busiest rooms' checkpoints are split, so the restart
    # also proves chunked state reads back exactly.
    chunked = {
        "LIVEROOM_CHECKPOINT_CHUNK_BYTES": "50000",
        "LIVEROOM_CHECKPOINT_INTERVAL_SECONDS": "1",  # several epochs before the kill
    }
    worker = stack.worker(**chunked)
    worker.wait_ready()

    def produce() -> None:  # paced so the kill lands mid-stream
        for i, (kind, events) in enumerate(records):
            stack.produce(
                kind, events[0] if len(events) == 1 else events, key=events[0]["room_id"].encode()
            )
            if i % 50 == 49:
                time.sleep(0.15)
        stack.flush()

    producer = threading.Thread(target=produce)
    producer.start()
    processed_at_kill = wait_until(
        lambda: (
            (n := total(worker.scrape(), "liveroom_events_processed_total")) > 0.3 * expected_events
            and n
        ),
        60,
        "a third of the events processed",
    )
    worker.kill()
    assert processed_at_kill < expected_events, "the kill must land mid-stream"
    producer.join()

    restarted = stack.worker(**chunked)
    restarted.wait_ready()

    wait_exact(
        totals_of(restarted, expected),
        expected,
        90,
        "restarted worker caught up",
    )
    assert passed_over_room_events(stack, restarted.scrape()) == 0
    # The restart resumed from checkpoints (the state log), not from a full replay of
    # room-events.
    markers = [
        int(m)
        for m in re.findall(r"restored: \d+ rooms, offset (-?\d+)", restarted.log_path.read_text())
    ]
    assert len(markers) == 4 and max(markers) >= 0, markers


def test_two_workers_share_partitions_and_add_up_exactly(stack):
    records = generate(seed=3, batches=300, now=int(time.time() * 1000))
    expected = oracle(records)
    first = stack.worker()
    first.wait_ready()
    second = stack.worker()
    second.wait_ready()
    for kind, events in records:
        stack.produce(kind, events, key=b"any")
    stack.flush()

    split: dict[str, set[str]] = {}

    def both() -> dict[str, dict[str, float]]:
        a, b = first.scrape(), second.scrape()
        split["a"], split["b"] = rooms_in(a), rooms_in(b)
        return {room: room_totals(a if room in split["a"] else b, room) for room in expected}

    wait_exact(both, expected, 90, "both workers done")
    assert split["a"] and split["b"], "both workers own some rooms"
    assert not split["a"] & split["b"], "a room lives on one worker only"


def test_workers_joining_and_leaving_mid_stream_keep_totals_exact(stack):
    """A second and a third worker join while records flow, the third leaves (SIGTERM)
    and the second is SIGKILLed: the first ends with exact totals for every room."""
    records = generate(seed=11, batches=900, now=int(time.time() * 1000))
    expected = oracle(records)
    often = {"LIVEROOM_CHECKPOINT_INTERVAL_SECONDS": "1"}
    first = stack.worker(**often)
    first.wait_ready()

    producer = produce_paced(stack, records, b"untrusted")
    time.sleep(2)
    second = stack.worker(**often)
    second.wait_ready()
    time.sleep(2)
    third = stack.worker(**often)
    third.wait_ready()
    wait_until(lambda: rooms_in(third.scrape()), 30, "the third worker owns rooms")
    time.sleep(1)
    third.stop()  # leaves the group: final checkpoint, commit
    time.sleep(1)
    second.kill()
    producer.join()

    wait_exact(
        totals_of(first, expected),
        expected,
        120,
        "the first worker took every partition back and caught up",
    )
    # every restore on the way found each room's base in the chain it followed, and
    # no worker moved past a room-events record without folding it
    samples = first.scrape()
    assert samples[("liveroom_rooms_restored_without_base_total", ())] == 0
    assert passed_over_room_events(stack, samples) == 0


def test_sigterm_under_load_checkpoints_commits_and_exits_within_10_s(stack):
    """SIGTERM while records flow: the worker finishes the batch in hand, writes a final
    checkpoint, commits and exits within 10 s; its restart resumes exactly where that
    checkpoint ends (its committed room-events offsets are the checkpoints' next
    records, so nothing the checkpoint holds is read again) and ends exact."""
    records = generate(seed=5, batches=1500, now=int(time.time() * 1000))
    expected = oracle(records)
    expected_events = sum(
        sum(v for k, v in r.items() if k in ("views", "comments", "carts", "orders"))
        for r in expected.values()
    )
    worker = stack.worker()
    worker.wait_ready()

    def produce() -> None:
        for i, (kind, events) in enumerate(records):
            stack.produce(kind, events, key=events[0]["room_id"].encode())
            if i % 50 == 49:
                time.sleep(0.1)
        stack.flush()

    producer = threading.Thread(target=produce)
    producer.start()
    wait_until(
        lambda: total(worker.scrape(), "liveroom_events_processed_total") > 0.3 * expected_events,
        60,
        "a third of the events processed",
    )
    assert worker.process is not None
    started = time.monotonic()
    worker.stop()  # SIGTERM
    took = time.monotonic() - started
    producer.join()
    assert worker.process.returncode == 0
    assert took < 10, f"took {took:.1f} s to stop"
    assert "final checkpoints written and offsets committed" in worker.log_path.read_text()

    room_events = stack.topic("room_events")
    committed = stack.committed([(room_events, p) for p in range(PARTITIONS)])
    restarted = stack.worker()
    restarted.wait_ready()
    restored = {
        int(p): int(offset)
        for p, offset in re.findall(
            r"partition (\d+) restored: \d+ rooms, offset (-?\d+)", restarted.log_path.read_text()
        )
    }
    for p in range(PARTITIONS):
        assert committed[(room_events, p)] == restored[p] + 1, (p, committed, restored)

    wait_exact(
        totals_of(restarted, expected),
        expected,
        90,
        "restarted worker caught up",
    )
