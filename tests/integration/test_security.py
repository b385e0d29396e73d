"""/metrics and the live page behind a token, scraped by a real Prometheus with it;
secrets never reach the worker's log or its endpoints."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
import uuid

import pytest

from .conftest import running_prometheus, wait_until
from .test_prometheus_live import query

pytestmark = pytest.mark.integration


def get(port: int, path: str, authorization: str | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def test_the_token_guards_metrics_and_the_page_and_no_secret_leaks(stack, tmp_path):
    token = f"tok-{uuid.uuid4().hex}"
    password = f"sasl-{uuid.uuid4().hex}"  # set but unused (PLAINTEXT): must not show
    worker = stack.worker(LIVEROOM_METRICS_TOKEN=token, LIVEROOM_KAFKA_SASL_PASSWORD=password)
    worker.wait_ready()
    stack.produce(
        "views",
        {
            "event_id": "s1",
            "room_id": "secure-room",
            "user_id": "u1",
            "ts": int(time.time() * 1000),
        },
    )
    stack.flush()
    port = worker.port
    for path in ("/metrics", "/", "/rooms/secure-room", "/api/rooms", "/api/rooms/secure-room"):
        status, _, headers = get(port, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Basic")  # a browser asks for it
        assert get(port, path, "Bearer not-the-token")[0] == 401
    assert get(port, "/healthz")[0] == 200  # probes stay open
    assert get(port, "/readyz")[0] == 200
    basic = "Basic " + base64.b64encode(f"ops:{token}".encode()).decode()
    wait_until(
        lambda: b"secure-room" in get(port, "/api/rooms", basic)[1], 20, "the room, with basic auth"
    )
    status, body, _ = get(port, "/metrics", f"Bearer {token}")
    assert status == 200 and b'room_id="secure-room"' in body

    # A real Prometheus scrapes it with the token from a file, as deploy/ shows.
    token_file = tmp_path / "liveroom-token"
    token_file.write_text(token)
    scrape_with_token = (
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: liveroom\n"
        f"    authorization: {{type: Bearer, credentials_file: '{token_file}'}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    with running_prometheus(tmp_path, scrape_with_token) as prom_port:
        wait_until(
            lambda: query(prom_port, 'liveroom_views_total{room_id="secure-room"}')["data"][
                "result"
            ],
            60,
            "Prometheus scraping with the token",
            interval=1.0,
        )

    everything = b"".join(
        get(port, path, f"Bearer {token}")[1]
        for path in ("/metrics", "/api/rooms", "/api/rooms/secure-room", "/readyz")
    )
    worker.stop()
    log = worker.log_path.read_bytes()
    for secret in (token, password):
        assert secret.encode() not in everything
        assert secret.encode() not in log
