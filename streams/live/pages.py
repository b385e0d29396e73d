"""The live rooms page and its JSON API on the worker's web server (the metrics port).

- `GET /` and `GET /rooms/<room_id>`: one self-contained HTML page (no outside assets).
- `GET /api/rooms?sort=gmv_per_minute|online_viewers|alerts&limit=N`: the overview.
- `GET /api/rooms/<room_id>`: one room; 404 when it is not live on this worker.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from streams.app import guarded
from streams.live.view import DEFAULT_LIMIT, LiveView

PAGE = importlib.resources.files("streams.live").joinpath("page.html").read_text("utf-8")
JSON = "application/json"


@dataclass(frozen=True)
class LiveSource:
    """What the pages read from the worker (its snapshots, alerts and health)."""

    view: LiveView
    snapshots: Callable[[], list[dict[str, Any]]]
    room: Callable[[str], dict[str, Any] | None]
    firing: Callable[[], list[dict[str, Any]]]
    health: Callable[[], dict[str, Any]]
    clock: Callable[[], float]


def add_live_pages(app: faust.App, source: LiveSource, token: str = "") -> None:
    guard = guarded(token)

    @app.page("/")
    @guard
    async def overview_page(web: Any, request: Any) -> Any:
        return web.html(PAGE)

    @app.page("/rooms/{room_id}")
    @guard
    async def room_page(web: Any, request: Any, room_id: str) -> Any:
        return web.html(PAGE)

    @app.page("/api/rooms")
    @guard
    async def overview_json(web: Any, request: Any) -> Any:
        try:
            limit = int(request.query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return web.bytes(b'{"error":"limit must be an integer"}', content_type=JSON, status=400)
        body = source.view.overview(
            source.snapshots(),
            source.firing(),
            source.health(),
            source.clock(),
            sort=request.query.get("sort", "gmv_per_minute"),
            limit=limit,
        )
        return web.bytes(orjson.dumps(body), content_type=JSON)

    @app.page("/api/rooms/{room_id}")
    @guard
    async def room_json(web: Any, request: Any, room_id: str) -> Any:
        snap = source.room(room_id)
        if snap is None:
            return web.bytes(
                b'{"error":"room not live on this worker"}', content_type=JSON, status=404
            )
        body = source.view.room(snap, source.firing(), source.health(), source.clock())
        return web.bytes(orjson.dumps(body), content_type=JSON)
