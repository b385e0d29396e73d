"""`liveroom demo --alerting`: the on-call path of the demo, end to end.

Debian's Prometheus and Alertmanager (what `make test` installs) run with the scrape
config, rules and routes from `deploy/` (only addresses rewritten to this machine),
the worker posts room alerts to that Alertmanager, and Alertmanager's receivers (the
pager and the chat robot of `deploy/alertmanager/alertmanager.yml`) post to a small
receiver here, which prints each page. The demo's biggest room has its stream cut
`break_after` seconds in, for 90 s: a ViewerDrop fires, shows in Alertmanager's own
UI, pages, and resolves when the stream is back.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from streams.broker import die_with_parent

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CUT_LENGTH_S = 90.0
TOOLS = ("prometheus", "prometheus-alertmanager")


class AlertingError(RuntimeError):
    """A tool is missing or did not start: the message names the fix."""


def free_port(preferred: int) -> int:
    """`preferred` if it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise AlertingError("no free port on 127.0.0.1")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AlertingError(
            f"{name} is not installed: run `make demo-alerting` (it installs Debian's "
            "prometheus and prometheus-alertmanager), or apt-get install them"
        )
    return found


def prometheus_config(metrics_port: int, alertmanager_port: int) -> str:
    """deploy/prometheus/prometheus.yml with this machine's addresses and rule paths."""
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    text = text.replace('"alertmanager:9093"', f'"127.0.0.1:{alertmanager_port}"')
    text = text.replace(
        '["liveroom-worker-1:9464", "liveroom-worker-2:9464"]', f'["127.0.0.1:{metrics_port}"]'
    )
    rules = DEPLOY / "prometheus" / "rules"
    return text.replace("  - rules/", f"  - {rules}/")


def alertmanager_config(receiver_port: int) -> str:
    """deploy/alertmanager/alertmanager.yml, its robots' relay pointed at the demo."""
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    return text.replace("http://alert-relay:8080", f"http://127.0.0.1:{receiver_port}")


@dataclass
class Pages:
    """Alertmanager's notifications, as the demo's receiver got them."""

    console: Console
    received: list[dict] = field(default_factory=list)

    def heard(self, path: str, body: dict) -> None:
        self.received.append({"path": path, **body})
        receiver = path.rsplit("/", 1)[-1]
        for alert in body.get("alerts", []):
            labels = alert.get("labels", {})
            self.console.print(
                f"[bold]{escape(receiver)}[/bold] paged: {escape(labels.get('alertname', ''))} "
                f"{escape(labels.get('room_id', ''))} \\[{escape(alert.get('status', ''))}] — "
                f"{escape(alert.get('annotations', {}).get('summary', ''))}"
            )


@dataclass
class AlertingStack:
    """Prometheus, Alertmanager and the receiver of their pages, started and stopped."""

    workdir: Path
    metrics_port: int
    console: Console
    processes: list[subprocess.Popen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    alertmanager_port: int = 0
    prometheus_port: int = 0

    def start(self) -> AlertingStack:
        prometheus, alertmanager = tool(TOOLS[0]), tool(TOOLS[1])
        pages = Pages(self.console)
        self.server = _receiver(pages)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        receiver_port = self.server.server_address[1]
        self.alertmanager_port = free_port(9093)
        self.prometheus_port = free_port(9090)
        (self.workdir / "alertmanager.yml").write_text(alertmanager_config(receiver_port))
        (self.workdir / "prometheus.yml").write_text(
            prometheus_config(self.metrics_port, self.alertmanager_port)
        )
        self._spawn(
            "alertmanager",
            alertmanager,
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
            "--cluster.listen-address=",
        )
        self._spawn(
            "prometheus",
            prometheus,
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
        )
        self._wait_ready(f"{self.alertmanager_url}/-/ready", "Alertmanager")
        self._wait_ready(f"http://127.0.0.1:{self.prometheus_port}/-/ready", "Prometheus")
        return self

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def _spawn(self, name: str, *argv: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child holds it
        try:
            self.processes.append(
                subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,  # a demo killed outright takes it along
                )
            )
        finally:
            log.close()

    def _wait_ready(self, url: str, name: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise AlertingError(f"{name} did not start: see {self.workdir}/{name.lower()}.log")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.server is not None:
            self.server.shutdown()


def _receiver(pages: Pages) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with contextlib.suppress(ValueError):  # not JSON: nothing to print
                pages.heard(self.path, json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server
