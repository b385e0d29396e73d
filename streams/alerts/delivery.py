"""Delivery of alert transitions to people: Alertmanager's v2 API and a JSON webhook.

Both are optional. Each receiver has its own bounded line of transitions
(streams.alerts.pending) and its own background task, so a receiver that hangs or
fails holds up neither the stream nor the other receiver: a post times out, and the
transition waits and is retried with backoff (at most 30 s apart) until the receiver
takes it. Over the limit the oldest resolved transition is dropped first, and counted.
Alertmanager is re-posted every firing alert each `resend_s` (it expires alerts whose
`endsAt` passes) and told `endsAt` on resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from streams.alerts.pending import Pending, every_transition, latest_per_alert
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
    if "product_id" in record:  # a product id, not a user's: one per watched product
        labels["product_id"] = record["product_id"]
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
RETRY_MAX_S = 30.0  # a receiver that is down is tried at least this often
AM_BATCH = 64  # transitions per Alertmanager post


@dataclass
class Receiver:
    name: str  # "alertmanager" or "webhook": the `receiver` label
    pending: Pending
    batch: int
    down_since: float | None = None  # monotonic time of the first failure of an outage
    failures: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class AlertDelivery:
    """Per receiver: a bounded line of transitions and a task that posts them, oldest
    first, until the receiver takes them; never a call that waits in the stream."""

    def __init__(
        self,
        *,
        alertmanager_url: str = "",
        webhook_url: str = "",
        timeout_s: float = 5.0,
        retries: int = 3,
        resend_s: float = 60.0,
        outcome: Outcome = lambda target, result: None,
        limit: int = QUEUE_LIMIT,
    ) -> None:
        self.alertmanager_url = alertmanager_url.rstrip("/")
        self.webhook_url = webhook_url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retries = retries  # failed attempts before a receiver counts as down (logged)
        self.resend_s = resend_s
        self.outcome = outcome
        self.receivers: list[Receiver] = []
        if self.alertmanager_url:
            self.receivers.append(
                Receiver("alertmanager", Pending(limit, latest_per_alert), AM_BATCH)
            )
        if webhook_url:
            self.receivers.append(Receiver("webhook", Pending(limit, every_transition), 1))
        self._firing: Callable[[], Iterable[Record]] = lambda: ()
        self._last_resend = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.receivers)

    def pending(self) -> dict[str, int]:
        """Transitions waiting, per receiver (`liveroom_alert_delivery_pending`)."""
        return {r.name: len(r.pending) for r in self.receivers}

    def follow_firing(self, firing: Callable[[], Iterable[Record]]) -> None:
        """Where the alerts this worker has firing come from (for Alertmanager re-posts)."""
        self._firing = firing

    def submit(self, record: Record) -> None:
        """Queue a transition for every receiver; never blocks."""
        for receiver in self.receivers:
            dropped = receiver.pending.dropped
            receiver.pending.put(record)
            if receiver.pending.dropped > dropped:
                self.outcome(receiver.name, "dropped")
            receiver.wake.set()

    async def run(self) -> None:
        """The background tasks: one per receiver."""
        if not self.receivers:
            return
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            await asyncio.gather(*(self._serve(session, r) for r in self.receivers))

    async def _serve(self, session: aiohttp.ClientSession, receiver: Receiver) -> None:
        delay = 0.5
        while True:
            taken = receiver.pending.oldest(receiver.batch)
            if not taken:
                if receiver.name == "alertmanager" and await self._resend_firing(session):
                    continue
                receiver.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(receiver.wake.wait(), timeout=min(1.0, self.resend_s))
                continue
            if await self._post_batch(session, receiver, [r for _, r in taken]):
                receiver.pending.done(taken)
                delay = 0.5
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _resend_firing(self, session: aiohttp.ClientSession) -> bool:
        """Alertmanager expires alerts whose endsAt passes: re-post what is firing."""
        if time.monotonic() - self._last_resend < self.resend_s:
            return False
        self._last_resend = time.monotonic()
        firing = list(self._firing())
        if firing:
            receiver = next(r for r in self.receivers if r.name == "alertmanager")
            await self._post_batch(session, receiver, firing)
        return bool(firing)

    async def _post_batch(
        self, session: aiohttp.ClientSession, receiver: Receiver, records: list[Record]
    ) -> bool:
        if receiver.name == "alertmanager":
            now_ms = int(time.time() * 1000)
            body = orjson.dumps([alertmanager_alert(r, now_ms, self.resend_s) for r in records])
            url = f"{self.alertmanager_url}/api/v2/alerts"
        else:
            body, url = orjson.dumps(records[0]), self.webhook_url
        problem = await self._post(session, url, body)
        if problem is None:
            self.outcome(receiver.name, "sent")
            if receiver.down_since is not None:
                log.warning(
                    "alert delivery to %s recovered after %.0f s; %d transitions still waiting",
                    receiver.name,
                    time.monotonic() - receiver.down_since,
                    len(receiver.pending) - len(records),
                )
            receiver.down_since, receiver.failures = None, 0
            return True
        self.outcome(receiver.name, "failed")
        receiver.failures += 1
        if receiver.failures == self.retries + 1:  # once an outage, not every attempt
            receiver.down_since = time.monotonic()
            log.warning(
                "alert delivery to %s failing (%s); transitions wait (%d now, at most %d) "
                "and are retried every %.0f s at most",
                receiver.name,
                problem,
                len(receiver.pending),
                receiver.pending.limit,
                RETRY_MAX_S,
            )
        return False

    @staticmethod
    async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> str | None:
        """One attempt; None when the receiver took it, else what went wrong."""
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                if response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            return f"{type(err).__name__}: {err}"
