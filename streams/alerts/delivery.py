"""Delivery of alert transitions to people: Alertmanager's v2 API and a JSON webhook.

Both are optional and run as a background task fed by a bounded queue, so a slow or
dead receiver never holds up the stream: a post times out, is retried with backoff,
and when the queue is full the oldest transition is dropped and counted.
Alertmanager is re-posted every firing alert each `resend_s` (it expires alerts whose
`endsAt` passes) and told `endsAt` on resolve.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import orjson

from streams.alerts.records import FIRING, iso

log = logging.getLogger(__name__)

Record = dict[str, Any]
QUEUE_LIMIT = 10_000
RESEND_LIFETIMES = 4  # a firing alert's endsAt is this many resend periods ahead


def alertmanager_alert(record: Record, now_ms: int, resend_s: float) -> dict[str, Any]:
    """One alert of the `POST /api/v2/alerts` body."""
    labels = {
        "alertname": record["kind"],
        "severity": record["severity"],
        "room_id": record["room_id"],
    }
    if record["key"]:
        labels["series"] = record["key"]
    ends_ms = (
        now_ms + int(RESEND_LIFETIMES * resend_s * 1000)
        if record["status"] == FIRING
        else record["ends_at_ms"]
    )
    return {
        "labels": labels,
        "annotations": {
            "summary": record["summary"],
            "description": record["description"],
            "runbook_url": record["runbook_url"],
            "dashboard_url": record["dashboard_url"],
        },
        "startsAt": record["starts_at"],
        "endsAt": iso(ends_ms),
        "generatorURL": record["dashboard_url"],
    }


Outcome = Callable[[str, str], None]  # (target, "sent" | "failed" | "dropped")


class AlertDelivery:
    def __init__(
        self,
        *,
        alertmanager_url: str = "",
        webhook_url: str = "",
        timeout_s: float = 5.0,
        retries: int = 3,
        resend_s: float = 60.0,
        outcome: Outcome = lambda target, result: None,
    ) -> None:
        self.alertmanager_url = alertmanager_url.rstrip("/")
        self.webhook_url = webhook_url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retries = retries
        self.resend_s = resend_s
        self.outcome = outcome
        self.queue: asyncio.Queue[Record] | None = None
        self._firing: Callable[[], Iterable[Record]] = lambda: ()
        self._last_resend = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.alertmanager_url or self.webhook_url)

    def follow_firing(self, firing: Callable[[], Iterable[Record]]) -> None:
        """Where the alerts this worker has firing come from (for Alertmanager re-posts)."""
        self._firing = firing

    def submit(self, record: Record) -> None:
        """Queue a transition; never blocks."""
        if not self.enabled:
            return
        if self.queue is None:
            self.queue = asyncio.Queue()
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.queue.get_nowait()
            self.outcome("queue", "dropped")
        self.queue.put_nowait(record)

    async def run(self) -> None:
        """The background task: deliver queued transitions, re-post what is firing."""
        if not self.enabled:
            return
        if self.queue is None:
            self.queue = asyncio.Queue()
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            while True:
                try:
                    record = await asyncio.wait_for(
                        self.queue.get(), timeout=min(1.0, self.resend_s)
                    )
                except TimeoutError:
                    record = None
                if record is not None:
                    await self._deliver(session, record)
                if self.alertmanager_url and time.monotonic() - self._last_resend >= self.resend_s:
                    self._last_resend = time.monotonic()
                    firing = list(self._firing())
                    if firing:
                        await self._post_alertmanager(session, firing)

    async def _deliver(self, session: aiohttp.ClientSession, record: Record) -> None:
        if self.alertmanager_url:
            await self._post_alertmanager(session, [record])
        if self.webhook_url:
            await self._post(session, "webhook", self.webhook_url, orjson.dumps(record))

    async def _post_alertmanager(
        self, session: aiohttp.ClientSession, records: list[Record]
    ) -> None:
        now_ms = int(time.time() * 1000)
        body = orjson.dumps([alertmanager_alert(r, now_ms, self.resend_s) for r in records])
        await self._post(session, "alertmanager", f"{self.alertmanager_url}/api/v2/alerts", body)

    async def _post(
        self, session: aiohttp.ClientSession, target: str, url: str, body: bytes
    ) -> bool:
        delay = 0.5
        for attempt in range(1, self.retries + 2):
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    if response.status < 300:
                        self.outcome(target, "sent")
                        return True
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as err:
                problem = f"{type(err).__name__}: {err}"
            if attempt <= self.retries:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("alert delivery to %s failed after %d attempts: %s", target, attempt, problem)
        self.outcome(target, "failed")
        return False
