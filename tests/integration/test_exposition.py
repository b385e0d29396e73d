"""The exposition of a live worker passes `promtool check metrics`."""

import subprocess
import time
import urllib.request

import pytest

from .conftest import require_tool, total, wait_until

pytestmark = pytest.mark.integration


def test_promtool_accepts_the_exposition(stack):
    worker = stack.worker()
    worker.wait_ready()
    now = int(time.time() * 1000)
    stack.produce(
        "views",
        [
            {"event_id": f"v{i}", "room_id": f"r{i % 3}", "user_id": f"u{i}", "ts": now}
            for i in range(30)
        ],
    )
    stack.produce("orders", b"garbage")
    stack.flush()
    wait_until(
        lambda: total(worker.scrape(), "liveroom_events_processed_total") == 30,
        30,
        "events processed",
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as r:
        exposition = r.read()
    result = subprocess.run(
        [require_tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"NaN" not in exposition
