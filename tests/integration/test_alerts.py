"""Alerts end to end: a real broker, a real worker, traffic in accelerated event time,
alert records read back from the alerts topic, posts received over real HTTP, and a
real Alertmanager (Debian's) asked over its API."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.broker import free_port
from streams.kafka import partition_for

from .conftest import PARTITIONS, require_tool, total, wait_until

pytestmark = pytest.mark.integration

S = 1000
SECOND_WALL_S = 0.04  # one second of event time per 40 ms of wall time
# Detectors judge a second once it is past the allowed lateness; at 25x speed the
# default 5 s is 0.2 s of wall time, less than the skew between input topics.
FAST_TIME = {"LIVEROOM_ALLOWED_LATENESS_SECONDS": "30"}


def same_partition(room: str, n: int = 1) -> list[str]:
    """Other room ids routed to the partition of `room` (they keep its event time going)."""
    target = partition_for(room, PARTITIONS)
    found = []
    i = 0
    while len(found) < n:
        name = f"{room}-mate-{i}"
        if partition_for(name, PARTITIONS) == target:
            found.append(name)
        i += 1
    return found


def second_of_traffic(
    rng: random.Random,
    room: str,
    t: int,
    ts: int,
    *,
    entries: int = 15,
    comments: int = 8,
    negative: float = 0.08,
    carts: int = 2,
    orders: float = 0.6,
    keyword: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    def e(kind: str, i: int, user: str, **fields: Any) -> dict[str, Any]:
        return {
            "event_id": f"{room}-{kind}-{t}-{i}",
            "room_id": room,
            "user_id": user,
            "ts": ts + rng.randrange(S),
            **fields,
        }

    out: dict[str, list[dict[str, Any]]] = {"views": [], "comments": [], "carts": [], "orders": []}
    for i in range(entries):
        out["views"].append(e("v", i, f"{room}-u{t}-{i}"))
    for i in range(comments):
        text = (
            rng.choice(("质量太差了", "太难看了 😡", "差评"))
            if rng.random() < negative
            else rng.choice(("主播好", "yyds", "几号链接?", "好看", "已拍"))
        )
        out["comments"].append(e("c", i, f"{room}-u{t}-{i}", text=text))
    if keyword:
        out["comments"].append(e("k", 0, f"secret-user-{t}", text=keyword))
    for i in range(carts):
        out["carts"].append(e("k", i, f"{room}-u{t}-{i}", product_id="p1"))
    if rng.random() < orders:
        out["orders"].append(
            e("o", 0, f"{room}-u{t}-0", order_id=f"{room}-{t}", product_id="p1", amount=99.0)
        )
    return out


def play(stack, seconds: int, start_ms: int, shape) -> None:
    """Produce `seconds` of event time at ~25x speed; `shape(t)` -> {room: overrides|None}."""
    rng = random.Random(11)
    for t in range(seconds):
        batch: dict[str, list] = {"views": [], "comments": [], "carts": [], "orders": []}
        for room, overrides in shape(t).items():
            if overrides is None:
                continue  # the room is silent this second
            for kind, events in second_of_traffic(
                rng, room, t, start_ms + t * S, **overrides
            ).items():
                batch[kind].extend(events)
        for kind, events in batch.items():
            if events:
                stack.produce(kind, events)
        stack.flush() if t % 25 == 0 else None
        time.sleep(SECOND_WALL_S)
    stack.flush()


def alerts_of(stack, until_ms: int) -> list[dict[str, Any]]:
    return [a for a in stack.read_all("alerts") if a["starts_at_ms"] <= until_ms]


def test_negative_wave_and_keyword_wave_fire_once_and_a_normal_room_stays_quiet(stack):
    worker = stack.worker(**FAST_TIME)
    worker.wait_ready()
    seconds = 420
    start = int(time.time() * 1000) - (seconds + 30) * S
    angry, calm, kw = "room-angry", "room-calm", "room-kw"

    def shape(t: int) -> dict[str, Any]:
        return {
            angry: {"negative": 0.75 if 300 <= t < 340 else 0.08},
            calm: {},
            kw: {"keyword": "收到的是假货 要投诉 12315" if 200 <= t < 210 else None},
        }

    play(stack, seconds, start, shape)
    end = start + seconds * S

    def resolved_surge():
        found = alerts_of(stack, end)
        done = [
            a for a in found if a["kind"] == "NegativeCommentSurge" and a["status"] == "resolved"
        ]
        return found if done else None

    found = wait_until(resolved_surge, 60, "the negative surge to resolve")
    surges = [a for a in found if a["kind"] == "NegativeCommentSurge"]
    assert [(a["room_id"], a["status"]) for a in surges] == [(angry, "firing"), (angry, "resolved")]
    delay_s = (surges[0]["starts_at_ms"] - (start + 300 * S)) / 1000
    assert 0 < delay_s <= 10, delay_s
    assert surges[1]["alert_id"] == surges[0]["alert_id"]
    hits = [a for a in found if a["kind"] == "KeywordHit"]
    assert {(a["room_id"], a["key"], a["status"]) for a in hits} >= {
        (kw, "counterfeit", "firing"),
        (kw, "regulator", "firing"),
    }
    assert all(a["room_id"] == kw for a in hits)
    regulator = next(a for a in hits if a["key"] == "regulator")
    assert regulator["severity"] == "critical"
    assert regulator["samples"] and all("12315" in s for s in regulator["samples"])
    assert "secret-user" not in json.dumps(found, ensure_ascii=False)
    assert not [a for a in found if a["room_id"] == calm], [
        ((a["starts_at_ms"] - start) / 1000, a["status"], a["summary"])
        for a in found
        if a["room_id"] == calm
    ]

    samples = worker.scrape()
    assert total(samples, "liveroom_alerts_total") >= 3
    ratio = samples.get(("liveroom_negative_comment_ratio", (("room_id", calm), ("window", "5m"))))
    assert ratio is not None and 0.0 < ratio < 0.3


class Receiver:
    """A real HTTP server that records what is posted to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Alertmanager:
    def __init__(self, tmp_path: Path) -> None:
        binary = require_tool("prometheus-alertmanager")
        config = tmp_path / "alertmanager.yml"
        config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._ready, 30, "Alertmanager to start")

    def _ready(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).status == 200
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def test_viewer_drop_pages_through_alertmanager_and_the_webhook_then_resolves(stack, tmp_path):
    receiver = Receiver()
    alertmanager = Alertmanager(tmp_path)
    try:
        worker = stack.worker(
            LIVEROOM_ALERTMANAGER_URL=alertmanager.url,
            LIVEROOM_ALERT_WEBHOOK_URL=f"{receiver.url}/robot",
            LIVEROOM_ALERTMANAGER_RESEND_SECONDS="2",
            **FAST_TIME,
        )
        worker.wait_ready()
        seconds = 400
        start = int(time.time() * 1000) - (seconds + 30) * S
        big = "room-big"
        (mate,) = same_partition(big)
        cut = range(250, 340)
        firing_seen: list[dict] = []

        def shape(t: int) -> dict[str, Any]:
            if t == 330 and not firing_seen:
                # While the cut lasts, Alertmanager shows the page.
                firing_seen.extend(
                    a for a in alertmanager.alerts() if a["labels"].get("alertname") == "ViewerDrop"
                )
            return {big: None if t in cut else {"entries": 40}, mate: {"entries": 5}}

        play(stack, seconds, start, shape)
        end = start + seconds * S

        def resolved():
            found = alerts_of(stack, end)
            drops = [a for a in found if a["kind"] == "ViewerDrop"]
            return drops if any(a["status"] == "resolved" for a in drops) else None

        drops = wait_until(resolved, 60, "the viewer drop to resolve")
        assert [(a["room_id"], a["status"]) for a in drops] == [(big, "firing"), (big, "resolved")]
        delay_s = (drops[0]["starts_at_ms"] - (start + cut.start * S)) / 1000
        assert 0 < delay_s <= 10, delay_s
        assert drops[0]["severity"] == "critical"

        # The page reached Alertmanager with the labels and annotations on-call needs.
        assert len(firing_seen) == 1, firing_seen
        page = firing_seen[0]
        assert page["labels"] == {"alertname": "ViewerDrop", "severity": "critical", "room_id": big}
        assert set(page["annotations"]) == {
            "summary",
            "description",
            "runbook_url",
            "dashboard_url",
        }
        assert page["status"]["state"] == "active"
        # ...and is ended there after the resolve.
        wait_until(
            lambda: not [a for a in alertmanager.alerts() if a["labels"]["room_id"] == big],
            30,
            "Alertmanager to drop the resolved alert",
        )

        # The webhook got each transition once, as the SPEC alert record.
        def hooked():
            got = [
                body
                for path, body in receiver.posts
                if path == "/robot" and body["kind"] == "ViewerDrop"
            ]
            return got if len(got) >= 2 else None

        hooks = wait_until(hooked, 30, "the webhook posts")
        assert [(h["status"], h["alert_id"]) for h in hooks] == [
            ("firing", drops[0]["alert_id"]),
            ("resolved", drops[0]["alert_id"]),
        ]
        samples = worker.scrape()
        sent = samples.get(
            ("liveroom_alert_deliveries_total", (("outcome", "sent"), ("target", "alertmanager")))
        )
        assert sent is not None and sent >= 2
    finally:
        receiver.close()
        alertmanager.close()
