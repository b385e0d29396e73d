"""`liveroom demo --alerting` as a new user runs it: Debian's Prometheus and
Alertmanager with deploy/'s configuration beside the embedded broker and the worker;
the biggest room's stream breaks, and its ViewerDrop shows in Alertmanager (Debian's
build has no web UI: Chromium opens Alertmanager's alert list, and amtool asks it) and
pages the on-call receiver; Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.broker import free_port

from .conftest import wait_until
from .test_live_page import ARTIFACTS, CHROMIUM_FLAGS

pytestmark = pytest.mark.integration


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_the_on_call_path_in_one_command(tmp_path: Path):
    for name in ("prometheus", "prometheus-alertmanager", "amtool", "chromium"):
        if shutil.which(name) is None:
            pytest.fail(f"{name} is missing: `make system-deps` installs it")
    from playwright.sync_api import sync_playwright

    log_path = tmp_path / "demo.log"
    env = {**os.environ, "LIVEROOM_METRICS_PORT": str(free_port()), "COLUMNS": "250"}
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "streams", "demo", "--alerting", "--break-after", "25"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        url = wait_until(
            lambda: re.search(r"Alertmanager on (http://127\.0\.0\.1:\d+)", log_path.read_text()),
            60,
            "the demo to start Alertmanager",
        ).group(1)
        helpers = children_of(demo.pid)

        def viewer_drop() -> dict | None:
            with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
                alerts = json.loads(response.read())
            return next((a for a in alerts if a["labels"]["alertname"] == "ViewerDrop"), None)

        alert = wait_until(viewer_drop, 120, "a ViewerDrop in Alertmanager")
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["room_id"]
        # Debian's Alertmanager ships no web UI (its page says to use amtool): the
        # browser reads Alertmanager's own alert list, and amtool asks it as on-call would.
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{url}/api/v2/alerts")
            wait_until(lambda: "ViewerDrop" in page.content(), 30, "the alert in the browser")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "alertmanager-viewer-drop.png"))
            browser.close()
        query = subprocess.run(
            ["amtool", f"--alertmanager.url={url}", "alert", "query", "alertname=ViewerDrop"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "ViewerDrop" in query.stdout and alert["labels"]["room_id"] in query.stdout
        wait_until(lambda: "oncall paged: ViewerDrop" in log_path.read_text(), 60, "the page")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(60)
    assert demo.returncode == 0, log_path.read_text()[-2000:]
    time.sleep(1)
    alive = [pid for pid in helpers if Path(f"/proc/{pid}").exists()]
    assert not alive, f"still running after Ctrl-C: {alive}"
    assert "Traceback" not in log_path.read_text()
