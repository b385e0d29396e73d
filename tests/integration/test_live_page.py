"""The live rooms page in a real browser (Debian's chromium, driven by Playwright)
against a real worker and broker: what it shows matches /metrics, changes as events
arrive, and shows a fired alert. Screenshots of both pages go to test-artifacts/."""

from __future__ import annotations

import itertools
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from .conftest import room_value, wait_until

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ROOMS = [f"page-room-{i}" for i in range(6)]  # one audience band: peers are ranked
ALERTED = ROOMS[1]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_ids = itertools.count()


def event(kind: str, room: str, user: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"page-{next(_ids)}",
        "room_id": room,
        "user_id": user,
        "ts": int(time.time() * 1000),
        "type": kind,
        **fields,
    }


def enters(stack, room: str, users: range) -> None:
    stack.produce("views", [event("view", room, f"user-{room}-{u}") for u in users], room.encode())


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return orjson.loads(response.read())


def shown(page, room: str, field: str) -> float | None:
    """The exact value behind a figure on the overview (its data-value)."""
    cell = page.locator(f'tr[data-room="{room}"] [data-field="{field}"]')
    if cell.count() == 0:
        return None
    value = cell.first.get_attribute("data-value")
    return float(value) if value else None


def test_live_page_matches_metrics_changes_and_shows_alerts(stack):
    if shutil.which("chromium") is None:
        pytest.fail("chromium is missing: `make system-deps` installs it")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    worker = stack.worker()
    worker.wait_ready()
    for n, room in enumerate(ROOMS):
        enters(stack, room, range(10 + 5 * n))
        stack.produce(
            "orders",
            [
                event(
                    "order",
                    room,
                    f"user-{room}-{u}",
                    order_id=f"o-{room}-{u}",
                    product_id="p1",
                    amount=99.5,
                )
                for u in range(n + 1)
            ],
            room.encode(),
        )
    stack.flush()
    port = worker.port
    room = ROOMS[3]

    def metrics_settled() -> dict:
        got = worker.scrape()
        views = [room_value(got, "liveroom_views_total", r) for r in ROOMS]
        return got if views == [10 + 5 * n for n in range(len(ROOMS))] else {}

    metrics = wait_until(metrics_settled, 30, "every room's views in /metrics")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector(f'tr[data-room="{room}"]', timeout=10_000)

        # The same figures as /metrics, within one refresh (1 s).
        pairs = {
            "online_viewers": room_value(metrics, "liveroom_online_viewers", room),
            "gmv_yuan_total": room_value(metrics, "liveroom_gmv_yuan_total", room),
            "conversion_ratio": room_value(metrics, "liveroom_conversion_ratio", room, window="5m"),
            "entries_per_minute": room_value(metrics, "liveroom_entries_per_minute", room),
        }
        assert pairs == {
            "online_viewers": 25,
            "gmv_yuan_total": 4 * 99.5,
            "conversion_ratio": 4 / 25,
            "entries_per_minute": 25,
        }
        for field, expected in pairs.items():
            wait_until(
                lambda f=field, e=expected: shown(page, room, f) == pytest.approx(e),
                3,
                f"{field} on the page = /metrics",
            )
        # Rooms are ranked by GMV per minute: the room with the most orders first.
        first = page.locator("tbody tr").first.get_attribute("data-room")
        assert first == ROOMS[-1]

        # More viewers arrive: the page follows without a reload.
        enters(stack, room, range(25, 40))
        stack.flush()
        wait_until(
            lambda: room_value(worker.scrape(), "liveroom_online_viewers", room) == 40,
            15,
            "40 online in /metrics",
        )
        wait_until(lambda: shown(page, room, "online_viewers") == 40, 3, "40 online on the page")

        # A wave of fraud comments fires a KeywordHit; the page shows it in the room's row.
        stack.produce(
            "comments",
            [event("comment", ALERTED, f"user-w{i}", text="骗子 假货 要投诉") for i in range(8)],
            ALERTED.encode(),
        )
        # The room spends on ads: its ROI card shows GMV / spend.
        stack.produce("spend", [event("spend", ALERTED, "ads", channel="qianchuan", amount=50.0)])
        stack.flush()
        badge = f'tr[data-room="{ALERTED}"] [data-kind="KeywordHit"]'
        page.wait_for_selector(badge, timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "live-overview.png"))

        # The room page: the same figures, peers ranked, the alert in its history.
        page.goto(f"http://127.0.0.1:{port}/rooms/{ALERTED}")
        page.wait_for_selector('[data-field="online_viewers"]', timeout=10_000)
        online = room_value(worker.scrape(), "liveroom_online_viewers", ALERTED)
        tile = page.locator('.tile [data-field="online_viewers"]').get_attribute("data-value")
        # 15 viewers, and the 8 commenters: a comment is presence (SPEC), their enter lost
        assert float(tile) == online == 23
        assert page.locator('[data-field="peers.conversion_ratio"]').get_attribute("data-value")
        assert "KeywordHit" in page.locator("section", has_text="alert history").inner_text()
        assert "骗子 假货 要投诉" in page.content()  # the keyword sample, without its user
        page.wait_for_selector('[data-field="roi"][data-value="3.98"]', timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "live-room.png"), full_page=True)

        # Both pages fit a phone, a laptop and a wide screen: no sideways scrolling.
        for width, height in ((390, 844), (1280, 800), (1920, 1080)):
            page.set_viewport_size({"width": width, "height": height})
            for path in ("/", f"/rooms/{ALERTED}"):
                page.goto(f"http://127.0.0.1:{port}{path}")
                page.wait_for_selector('[data-field="online_viewers"]', timeout=10_000)
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                name = "overview" if path == "/" else "room"
                page.screenshot(path=str(ARTIFACTS / f"live-{name}-{width}.png"), full_page=True)
                assert overflow <= 0, f"{path} at {width} px scrolls sideways by {overflow} px"
        browser.close()

    # No user id reaches the page's JSON.
    overview = get_json(port, "/api/rooms")
    detail = get_json(port, f"/api/rooms/{ALERTED}")
    for body in (overview, detail):
        assert b"user-" not in orjson.dumps(body)
    # A firing alert says which list (or product: the page marks it in its table).
    keyword_lists = {a["key"] for a in detail["alerts_firing"] if a["kind"] == "KeywordHit"}
    assert keyword_lists and keyword_lists <= {"fraud", "counterfeit", "regulator"}
    assert overview["rooms_total"] == len(ROOMS)
    assert overview["rooms"][0]["room_id"] == ROOMS[-1]
    # Conversion 2/15 after rooms 0 and 3 (1/10, 4/40), before 3/20, 5/30, 6/35: 2 of 0-5.
    assert detail["room"]["peers"]["conversion_ratio"] == pytest.approx(2 / 5)
    with pytest.raises(urllib.error.HTTPError) as missing:
        get_json(port, "/api/rooms/no-such-room")
    assert missing.value.code == 404
