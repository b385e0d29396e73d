"""Alert delivery over real HTTP on loopback: Alertmanager's v2 body, the webhook,
retries, timeouts, and a stream that is never held up."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from streams.alerts.delivery import AlertDelivery, alertmanager_alert
from streams.alerts.records import firing_record, resolved_record
from streams.alerts.rules import AlertRules

RULES = AlertRules.load().for_room("room-1")


def record(kind="ViewerDrop", key=""):
    return firing_record(
        room_id="room-1",
        kind=kind,
        key=key,
        severity="critical",
        starts_at_ms=1_700_000_000_000,
        summary="room-1: activity fell",
        description="It fell.",
        value=0.0,
        threshold=6.0,
        baseline=10.0,
        samples=[],
        rules=RULES,
    )


def test_alertmanager_body_has_the_labels_and_annotations_on_call_needs() -> None:
    firing = alertmanager_alert(record(), now_ms=1_700_000_060_000, resend_s=60)
    assert firing["labels"] == {
        "alertname": "ViewerDrop",
        "severity": "critical",
        "room_id": "room-1",
    }
    assert set(firing["annotations"]) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert firing["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert firing["endsAt"] == "2023-11-14T22:18:20.000Z"  # 4 resend periods ahead
    ended = alertmanager_alert(resolved_record(record(), 1_700_000_090_000, "ok"), 0, 60)
    assert ended["endsAt"] == "2023-11-14T22:14:50.000Z"
    spike = alertmanager_alert(record("TrafficSpike", "comments"), 0, 60)
    assert spike["labels"]["series"] == "comments"


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_posts_retry_until_the_receiver_answers_and_count_outcomes() -> None:
    got: list[tuple[str, object]] = []
    failures = {"left": 2}

    async def handler(request: web.Request) -> web.Response:
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=503)
        got.append((request.path, await request.json()))
        return web.Response(status=200)

    runner, url = await serve(handler)
    outcomes: list[tuple[str, str]] = []
    delivery = AlertDelivery(
        alertmanager_url=url,
        webhook_url=f"{url}/hook",
        retries=3,
        resend_s=3600,
        outcome=lambda target, result: outcomes.append((target, result)),
    )
    task = asyncio.create_task(delivery.run())
    try:
        delivery.submit(record())
        for _ in range(100):
            # Both received, and both answers seen by the sender (the outcome is counted
            # after the response: waiting on the receiver alone raced it under load).
            if len(got) >= 2 and sum(result == "sent" for _, result in outcomes) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await runner.cleanup()
    paths = [p for p, _ in got]
    assert sorted(paths) == ["/api/v2/alerts", "/hook"]
    am = next(body for path, body in got if path == "/api/v2/alerts")
    hook = next(body for path, body in got if path == "/hook")
    assert am[0]["labels"]["alertname"] == "ViewerDrop"
    assert hook["alert_id"] == record()["alert_id"]
    assert sorted(o for o in outcomes if o[1] == "sent") == [
        ("alertmanager", "sent"),
        ("webhook", "sent"),
    ]
    assert sum(result == "failed" for _, result in outcomes) == 2  # the two 503s


async def test_a_dead_receiver_never_blocks_submit_and_failures_are_counted() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(status=200)

    runner, url = await serve(handler)
    outcomes: list[tuple[str, str]] = []
    delivery = AlertDelivery(
        webhook_url=url,
        timeout_s=0.2,
        retries=1,
        outcome=lambda target, result: outcomes.append((target, result)),
    )
    task = asyncio.create_task(delivery.run())
    try:
        started = time.perf_counter()
        for _ in range(1000):
            delivery.submit(record())
        assert time.perf_counter() - started < 0.5  # submit only queues
        for _ in range(100):
            if outcomes:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await runner.cleanup()
    assert outcomes[0] == ("webhook", "failed")


async def test_firing_alerts_are_reposted_to_alertmanager() -> None:
    bodies: list[object] = []

    async def handler(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response(status=200)

    runner, url = await serve(handler)
    delivery = AlertDelivery(alertmanager_url=url, resend_s=0.2)
    delivery.follow_firing(lambda: [record()])
    task = asyncio.create_task(delivery.run())
    try:
        await asyncio.sleep(1.5)
    finally:
        task.cancel()
        await runner.cleanup()
    assert len(bodies) >= 2
    assert all(b[0]["labels"]["room_id"] == "room-1" for b in bodies)  # type: ignore[index]


def test_nothing_configured_means_nothing_queued() -> None:
    delivery = AlertDelivery()
    delivery.submit(record())
    assert not delivery.enabled and delivery.pending() == {}


async def test_a_receiver_that_hangs_then_recovers_gets_every_alert_once() -> None:
    """Alertmanager accepts and never answers, then recovers: nothing is lost, an alert
    that fired and resolved meanwhile is posted once, in its latest state; the webhook,
    which answers all along, is not held up by it and gets every transition."""
    state = {"hang": True}
    released = asyncio.Event()  # the hung requests end with the test
    am_bodies: list[list] = []
    hooks: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/hook":
            hooks.append(await request.json())
            return web.Response(status=200)
        if state["hang"]:
            await released.wait()
            return web.Response(status=503)
        am_bodies.append(await request.json())
        return web.Response(status=200)

    runner, url = await serve(handler)
    delivery = AlertDelivery(
        alertmanager_url=url, webhook_url=f"{url}/hook", timeout_s=0.2, resend_s=3600
    )
    task = asyncio.create_task(delivery.run())
    try:
        fired = record()
        delivery.submit(fired)
        delivery.submit(record("TrafficSpike", "comments"))
        delivery.submit(resolved_record(fired, 1_700_000_090_000, "ok"))
        await asyncio.sleep(1.0)
        assert delivery.pending() == {"alertmanager": 2, "webhook": 0}
        assert len(hooks) == 3 and not am_bodies  # the webhook went on meanwhile
        state["hang"] = False
        for _ in range(200):
            if not delivery.pending()["alertmanager"]:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        released.set()
        await runner.cleanup()
    posted = [alert for body in am_bodies for alert in body]
    assert len(posted) == 2  # one per alert: no duplicates
    viewer_drop = next(a for a in posted if a["labels"]["alertname"] == "ViewerDrop")
    assert viewer_drop["endsAt"] == "2023-11-14T22:14:50.000Z"  # its latest state: resolved


async def test_a_receiver_answering_500_keeps_transitions_until_it_recovers() -> None:
    state = {"fail": True}
    got: list[dict] = []

    async def handler(request: web.Request) -> web.Response:
        if state["fail"]:
            return web.Response(status=500)
        got.append(await request.json())
        return web.Response(status=200)

    runner, url = await serve(handler)
    outcomes: list[tuple[str, str]] = []
    delivery = AlertDelivery(
        webhook_url=url, retries=1, outcome=lambda t, r: outcomes.append((t, r)), limit=3
    )
    task = asyncio.create_task(delivery.run())
    try:
        firing = [record(key=f"k{i}") for i in range(3)]
        delivery.submit(resolved_record(firing[0], 1_700_000_090_000, "ok"))
        for r in firing[1:]:
            delivery.submit(r)
        delivery.submit(record(key="k9"))  # over the limit: the resolved one goes first
        await asyncio.sleep(0.8)
        assert delivery.pending() == {"webhook": 3}
        state["fail"] = False
        for _ in range(200):
            if not delivery.pending()["webhook"]:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await runner.cleanup()
    assert [g["key"] for g in got] == ["k1", "k2", "k9"]
    assert ("webhook", "dropped") in outcomes and ("webhook", "failed") in outcomes
