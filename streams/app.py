"""The Faust app: worker lifecycle, timers and the web endpoints. Wiring only.

Faust's own Kafka consumer and tables are switched off (see streams.runtime.worker
for why the stages consume with aiokafka directly); Faust runs the process: signals,
logging, the aiohttp web server and the app's timers and services.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from streams.config import Settings


class WebAndTimersOnly(BootStrategy):
    """Start the web server, sensors, timers and services; no Faust consumer, producer
    or tables (the stages own their Kafka clients)."""

    enable_kafka = False


class OurPagesOnly(AiohttpWeb):
    """Faust's aiohttp server without its built-in blueprints: its index would take `/`
    (the live rooms page), and /router and /table describe Faust tables we do not use."""

    default_blueprints = ()
    production_blueprints = ()
    debug_blueprints = ()
    optional_blueprints = ()


class LiveroomApp(faust.App):
    BootStrategy = WebAndTimersOnly

    def _new_web(self) -> AiohttpWeb:
        return OurPagesOnly(self)


def create_app(settings: Settings) -> faust.App:
    datadir = settings.data_dir or tempfile.mkdtemp(prefix="liveroom-")
    return LiveroomApp(
        settings.app_id,
        datadir=os.path.join(datadir, "faust"),
        web_port=settings.metrics_port,
        web_bind=settings.metrics_host,
        web_transport="tcp://",
    )


Handler = Callable[..., Awaitable[Any]]


def authorized(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, or Basic auth with <token> as the password (what a
    browser can send to the live page). Compared in constant time."""
    if not token:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.encode(), token.encode())


def guarded(token: str) -> Callable[[Handler], Handler]:
    """Wrap a page handler: 401 with a Basic challenge unless the request carries the
    token. /healthz and /readyz stay open for the orchestrator's probes."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def page(web: Any, request: Any, **params: Any) -> Any:
            if not authorized(request.headers.get("Authorization"), token):
                return web.text(
                    "authorization required\n",
                    status=401,
                    headers={"WWW-Authenticate": 'Basic realm="liveroom", charset="UTF-8"'},
                )
            return await handler(web, request, **params)

        return page

    return wrap


def add_web_pages(
    app: faust.App, exposition: Any, readiness: Callable[[], str | None], token: str = ""
) -> None:
    """/metrics for Prometheus, /healthz for liveness, /readyz for readiness."""

    @app.page("/metrics")
    @guarded(token)
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp takes the charset separately; this is prometheus_client's CONTENT_TYPE_LATEST.
        # `?rooms=0` leaves the per-room families out: for a probe that wants only the
        # processor's health every second (the load test), not thousands of rooms.
        rooms = request.query.get("rooms") != "0"
        return web.bytes(exposition.render(rooms), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.text("ok\n")

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        problem = readiness()
        if problem is not None:
            return web.text(f"{problem}\n", status=503)
        return web.text("ready\n")
