"""An Alertmanager that accepts connections and never answers, then recovers, beside a
real worker: rooms are folded and published all along, the alert waits
(liveroom_alert_delivery_pending), and once the receiver answers it gets the alert,
once."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import Stack, room_value, wait_until

pytestmark = pytest.mark.integration


class Receiver:
    """A local HTTP server that hangs every request until `recover()`."""

    def __init__(self) -> None:
        self.recovered = threading.Event()
        self.alerts: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not outer.recovered.is_set():
                    # Hung: the worker gives up on this request (its timeout); it is
                    # never taken, as with a receiver that hangs.
                    outer.recovered.wait(600)
                    return
                outer.alerts.extend(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.recovered.set()
        self.server.shutdown()


def pending(samples: dict) -> float:
    return samples.get(("liveroom_alert_delivery_pending", (("receiver", "alertmanager"),)), -1)


def test_a_hung_alertmanager_holds_up_nothing_and_gets_the_alert_once_it_answers(stack: Stack):
    receiver = Receiver()
    try:
        worker = stack.worker(
            LIVEROOM_ALERTMANAGER_URL=receiver.url,
            LIVEROOM_ALERT_DELIVERY_TIMEOUT_SECONDS="1",
            LIVEROOM_ALERT_DELIVERY_RETRIES="1",
            LIVEROOM_ALERTMANAGER_RESEND_SECONDS="3600",
        )
        worker.wait_ready()
        now = int(time.time() * 1000)
        room = "room-fraud"
        views = [
            {"event_id": f"v{i}", "room_id": room, "user_id": f"u{i}", "ts": now + i}
            for i in range(40)
        ]
        stack.produce("views", views)
        stack.produce(
            "comments",
            [
                {
                    "event_id": f"c{i}",
                    "room_id": room,
                    "user_id": f"w{i}",
                    "ts": now + 100 + i,
                    "text": "骗子 假货 要投诉",
                }
                for i in range(8)
            ],
        )
        stack.flush()
        wait_until(
            lambda: pending(worker.scrape()) >= 1, 60, "the KeywordHit waits for Alertmanager"
        )
        # Rooms go on meanwhile: more events are folded and published.
        stack.produce(
            "views",
            [
                {"event_id": f"v2-{i}", "room_id": room, "user_id": f"x{i}", "ts": now + 200 + i}
                for i in range(60)
            ],
        )
        stack.flush()
        wait_until(
            lambda: room_value(worker.scrape(), "liveroom_views_total", room) == 100,
            30,
            "events folded while the receiver hangs",
        )
        assert pending(worker.scrape()) >= 1 and not receiver.alerts
        wait_until(
            lambda: "alert delivery to alertmanager failing" in worker.log_path.read_text(),
            30,
            "the outage logged",
        )
        receiver.recovered.set()
        wait_until(lambda: pending(worker.scrape()) == 0, 60, "the alert delivered")
        time.sleep(2)
        keyword = [a for a in receiver.alerts if a["labels"]["alertname"] == "KeywordHit"]
        series = sorted(a["labels"]["series"] for a in keyword)
        # 骗子 假货 投诉: three lists, three alerts, each posted once after the outage
        assert series == ["counterfeit", "fraud", "regulator"], receiver.alerts
        assert {a["labels"]["room_id"] for a in keyword} == {room}
        log = worker.log_path.read_text(errors="replace")
        assert "alert delivery to alertmanager failing" in log
        assert "alert delivery to alertmanager recovered" in log
    finally:
        receiver.close()
