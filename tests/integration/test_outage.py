"""The broker hangs (SIGSTOP) for 30 s while traffic keeps being produced, then comes
back (SIGCONT): the worker stays up, /readyz reports the outage, processing resumes by
itself, totals end exact, and alerts raised before the outage are not sent again."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from streams.broker import EmbeddedBroker

from .conftest import Stack, total, wait_until
from .test_restart import generate, oracle, room_totals

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("LIVEROOM_TEST_OUTAGE_SECONDS", "30"))


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_broker_hang_is_survived_exactly(tmp_path):
    with EmbeddedBroker(log_path=str(tmp_path / "broker.log")) as broker:
        stack = Stack(broker, tmp_path)
        try:
            run(stack, broker)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)  # never leave it stopped
            stack.close()


def run(stack: Stack, broker: EmbeddedBroker) -> None:
    records = generate(seed=21, batches=900, now=int(time.time() * 1000))
    # A keyword wave in one room before the outage: its alert must not be re-sent after.
    wave_room = "room-00"
    now = int(time.time() * 1000)
    wave = [
        {
            "event_id": f"kw{i}",
            "room_id": wave_room,
            "user_id": f"k{i}",
            "ts": now,
            "text": "骗子 假货 要退款",
        }
        for i in range(20)
    ]
    records.insert(0, ("comments", wave))
    expected = oracle(records)
    worker = stack.worker()
    worker.wait_ready()
    assert broker.process is not None
    half = len(records) // 2

    def produce(part: list) -> None:
        for i, (kind, events) in enumerate(part):
            stack.produce(kind, events, key=events[0]["room_id"].encode())
            if i % 30 == 29:
                time.sleep(0.1)
        stack.flush()

    produce(records[:half])
    wait_until(lambda: total(worker.scrape(), "liveroom_alerts_total") >= 1, 60, "an alert before")
    before = Counter((a["alert_id"], a["status"]) for a in stack.read_all("alerts"))

    # The broker hangs while the second half is being produced (librdkafka buffers it).
    os.kill(broker.process.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    producer = threading.Thread(
        target=lambda: [
            stack.produce(kind, events, key=events[0]["room_id"].encode())
            for kind, events in records[half:]
        ]
    )
    producer.start()
    wait_until(
        lambda: (r := readyz(worker.port))[0] == 503 and "broker unreachable" in r[1] and r,
        20,
        "/readyz reporting the outage",
    )
    while time.monotonic() - stopped_at < OUTAGE_S:
        assert worker.process is not None and worker.process.poll() is None, "worker died"
        time.sleep(1)
    os.kill(broker.process.pid, signal.SIGCONT)
    producer.join()
    stack.flush()

    wait_until(lambda: readyz(worker.port)[0] == 200, 90, "/readyz ready again")

    def converged():
        got = {room: room_totals(worker.scrape(), room) for room in expected}
        done = sum(g["views"] for g in got.values()) >= sum(r["views"] for r in expected.values())
        return got if done else None

    wait_until(converged, 120, "all events processed after the outage")
    time.sleep(2)
    samples = worker.scrape()
    for room, want in expected.items():
        got = room_totals(samples, room)
        assert {k: got[k] for k in ("views", "comments", "carts", "orders", "uv")} == {
            k: want[k] for k in ("views", "comments", "carts", "orders", "uv")
        }, room
        assert got["gmv"] == pytest.approx(want["gmv"]), room
    assert samples[("liveroom_broker_up", ())] == 1
    # Nothing sent before the outage was sent again (a resolution may follow, once).
    after = Counter((a["alert_id"], a["status"]) for a in stack.read_all("alerts"))
    assert all(n == 1 for n in after.values()), after
    assert set(before) <= set(after)
