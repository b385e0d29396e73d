"""A worker started before its broker (Kubernetes starts pods in any order): it serves
/healthz, says on /readyz why it is not ready, retries without tracebacks, and folds
events once the broker the test starts 30 s later answers."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from streams import config
from streams.broker import EmbeddedBroker, free_port

from .conftest import PARTITIONS, WorkerProcess, room_value, wait_until

pytestmark = pytest.mark.integration


def status(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_a_worker_started_30_s_before_the_broker_waits_then_works(tmp_path: Path):
    broker_port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "LIVEROOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        "LIVEROOM_PARTITIONS": str(PARTITIONS),
        "LIVEROOM_METRICS_HOST": "127.0.0.1",
        "LIVEROOM_METRICS_PORT": str(metrics_port),
        "LIVEROOM_DATA_DIR": str(tmp_path),
        **config.namespaced(f"order{os.getpid()}"),
    }
    started = time.monotonic()
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: status(metrics_port, "/healthz")[0] == 200, 30, "/healthz answers")
        code, reason = status(metrics_port, "/readyz")
        assert code == 503 and "waiting for the broker at 127.0.0.1" in reason
        wait_until(lambda: "attempt 5" in status(metrics_port, "/readyz")[1], 40, "retries")
        time.sleep(max(0.0, 30 - (time.monotonic() - started)))
        assert worker.process is not None and worker.process.poll() is None
        with EmbeddedBroker(port=broker_port):
            worker.wait_ready(90)
            producer = Producer({"bootstrap.servers": f"127.0.0.1:{broker_port}"})
            settings = config.load(env)
            events = [
                {"event_id": f"e{i}", "room_id": "late-broker", "user_id": f"u{i}", "ts": 0}
                for i in range(50)
            ]
            now = int(time.time() * 1000)
            for e in events:
                e["ts"] = now
            producer.produce(settings.topic_views, orjson.dumps(events))
            assert producer.flush(30) == 0

            def folded() -> bool:
                views = room_value(worker.scrape(), "liveroom_views_total", "late-broker")
                assert views == 50, views
                return True

            wait_until(folded, 60, "the events folded")
            assert status(metrics_port, "/readyz")[0] == 200
            worker.stop()
    finally:
        worker.kill()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "Traceback" not in log
    warnings = [line for line in log.splitlines() if "not reachable" in line]
    assert 1 <= len(warnings) <= 3, warnings  # one line per kind of failure, not per attempt
