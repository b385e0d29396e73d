"""Restoring a room partition from the state log, and its alert ledger from the alerts
topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.alerts.partition import PartitionAlerts
from streams.alerts.rules import AlertRules
from streams.rooms.partition import Room, RoomPartition
from streams.rooms.room import RoomSettings, RoomState
from streams.runtime.startup import until_connected
from streams.state.log import LogReader
from streams.state.restore import Restored, restore

SENT_ALERTS_TAIL = 20_000  # alert records read back per partition to rebuild its ledger


@dataclass
class RestoredPartition:
    part: RoomPartition
    alerts: PartitionAlerts | None
    restored: Restored
    seconds: float
    # Rooms the chain held deltas of but no base: a broken checkpoint chain (their
    # totals are exact, their distinct counts short). Empty unless something is wrong.
    without_base: list[str]


async def restore_partition(
    log: LogReader,
    state_topic: str,
    partition: int,
    settings: RoomSettings,
    rules: AlertRules | None,
    now: float,
    clock: Callable[[], float] = time.monotonic,
) -> RestoredPartition:
    """The partition as of its last committed checkpoint (empty if none)."""
    started = clock()
    alerts = (
        PartitionAlerts(partition, rules, settings.allowed_lateness_ms)
        if rules is not None
        else None
    )
    part = RoomPartition(partition, settings, alerts)
    rooms = part.rooms
    # A delta may come before its room's base (the restore reads from the oldest base,
    # and a younger room's base may be a rebase further on): only rooms still without
    # one at the end were rebuilt from deltas alone.
    without_base: set[str] = set()

    def apply(offset: int, pieces: list[dict[str, Any]]) -> None:
        for piece in pieces:
            room_id = piece["room"]
            if piece.get("drop"):
                rooms.pop(room_id, None)
                if alerts is not None:
                    alerts.watches.pop(room_id, None)
                continue
            if "watch" in piece:
                if alerts is not None:
                    alerts.load(room_id, piece["watch"])
                continue
            room = rooms.get(room_id)
            is_base = bool(piece.get("base"))
            if is_base or room is None:
                if is_base:
                    without_base.discard(room_id)
                else:
                    without_base.add(room_id)  # a delta first: its base may come later
                room = rooms[room_id] = Room(RoomState(room_id, settings), base_pos=offset)
            room.state.load(piece)

    restored = await restore(log, state_topic, partition, apply)
    without_base &= rooms.keys()  # less those dropped (evicted) since
    meta = restored.meta or {}
    part.applied_offset = meta.get("offset", -1)
    part.sources = {int(k): v for k, v in meta.get("sources", {}).items()}
    part.watermark_ms = meta.get("watermark_ms", 0)
    if alerts is not None:
        alerts.load_meta(meta.get("alerts", {}))
        for room_id in list(alerts.watches):
            if room_id not in rooms:
                del alerts.watches[room_id]
        for room_id, room in rooms.items():
            alerts.room_seen(room_id, room.state.watermark_ms)  # a watch for every room
    for room in rooms.values():
        room.state.settle()
        room.last_active = now
        room.dirty_emit = True
    return RestoredPartition(part, alerts, restored, clock() - started, sorted(without_base))


async def sent_alerts(log: LogReader, alerts_topic: str, partition: int) -> list[dict[str, Any]]:
    """The tail of this partition of the alerts topic: what was already sent."""
    end = await log.end_offset(alerts_topic, partition)
    sent: list[dict[str, Any]] = []
    async for batch in log.read(alerts_topic, partition, max(0, end - SENT_ALERTS_TAIL), end):
        sent.extend(orjson.loads(record.value) for record in batch if record.value)
    return sent


async def restore_when_answered(
    log: LogReader,
    topics: tuple[str, str],
    partition: int,
    settings: RoomSettings,
    rules: AlertRules | None,
    clock: Callable[[], float],
    waiting: Callable[[str | None], None],
    where: str,
    stopping: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RestoredPartition | None:
    """The partition restored from its state log (`topics`: state, alerts), its alert
    ledger rebuilt, once the broker answers: a broker that goes away during a restore
    (the first one of a worker started beside a Kafka still starting, say) costs a
    retry from the start with capped backoff, never a half-restored partition. None if
    the worker stops first."""
    state_topic, alerts_topic = topics
    done: list[RestoredPartition] = []

    async def attempt() -> None:
        restored = await restore_partition(log, state_topic, partition, settings, rules, clock())
        if restored.alerts is not None:
            restored.alerts.ledger.load(await sent_alerts(log, alerts_topic, partition))
        done.append(restored)

    if await until_connected(attempt, waiting, where, stopping, sleep):
        return done[0]
    return None
