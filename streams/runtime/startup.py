"""Starting before the broker answers (Kubernetes starts pods in any order).

`until_connected` runs the worker's connect step until it succeeds, with capped
exponential backoff. It logs one line per kind of failure, never a traceback, and says
why the worker is not ready. A topic layout that no retry can fix
(`TopicLayoutError`) stops it instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError

from streams.config import Settings

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 15.0
# What a broker that is not (yet) there raises: the client's errors, refused or reset
# connections, and requests that time out.
UNREACHABLE = (KafkaError, OSError, asyncio.TimeoutError)


class TopicLayoutError(RuntimeError):
    """Topics that exist with a layout the worker cannot use: retrying cannot help."""


def layout_problem(counts: dict[str, int | None], settings: Settings) -> str | None:
    """What is wrong with the partition counts of the topics rooms are routed by."""
    routed = counts.get(settings.topic_room_events)
    if routed is not None and routed != settings.partitions:
        return (
            f"{settings.topic_room_events} has {routed} partitions but "
            f"LIVEROOM_PARTITIONS={settings.partitions}; rooms are routed by it, so set "
            f"LIVEROOM_PARTITIONS={routed}"
        )
    for topic in (settings.topic_room_state, settings.topic_alerts):
        found = counts.get(topic)
        if found is not None and found < settings.partitions:
            return (
                f"{topic} has {found} partitions; it needs at least "
                f"LIVEROOM_PARTITIONS={settings.partitions} (one per room partition)"
            )
    return None


async def until_connected(
    connect: Callable[[], Awaitable[None]],
    waiting: Callable[[str | None], None],
    where: str,
    stopping: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Run `connect` until it succeeds (True) or `stopping()` (False). `waiting` hears
    the reason the worker is not ready, and None once connected."""
    delay, said = FIRST_DELAY_S, set()
    attempts = 0
    while not stopping():
        attempts += 1
        try:
            await connect()
        except UNREACHABLE as exc:
            kind = type(exc).__name__
            if kind not in said:  # one line per kind of failure
                said.add(kind)
                log.warning(
                    "broker %s not reachable (%s: %s); retrying every %.0f s at most, "
                    "/readyz says why until it answers",
                    where,
                    kind,
                    str(exc) or "no detail",
                    MAX_DELAY_S,
                )
            waiting(f"waiting for the broker at {where}: {kind} (attempt {attempts})")
            await sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if attempts > 1:
            log.info("broker %s answered after %d attempts", where, attempts)
        waiting(None)
        return True
    return False
