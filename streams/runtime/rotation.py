"""Rotating the embedded broker's topics, so that a demo can run for days (issue 39).

The embedded broker (Tansu, memory storage) keeps every record: it has no retention and
DeleteRecords drops the connection, but a deleted topic's memory is given back (300 MB
written, 16 MB after the delete, three times over: docs/measurements.md). So the demo,
which owns the producer, the broker and the worker, moves everything to a new
*generation* of topics now and then, and deletes the old one:

1. the simulator pauses; the worker drains its input and stops (SIGTERM: its final
   checkpoints are written, its offsets committed);
2. `drained` checks that every input and room-events record was folded into a
   checkpoint (the group's committed offsets are at the ends of the logs); if not, the
   old generation stays and the worker starts again on it;
3. `carry_state` restores each room partition from the old state log and writes it into
   the new one as one epoch of bases, with its input positions reset (the new topics
   start at offset 0), and copies the alerts still firing into the new alerts topic, so
   the new worker's ledger resolves them rather than sending them again;
4. the old generation's topics are deleted, the worker starts on the new names, and the
   simulator writes to them.

Nothing folded is lost or counted twice: the state moves whole, through the same
restore and checkpoint code a restart uses. Figures pause for the worker's restart.
Outside producers cannot be rotated: with them the worker only warns
(streams.runtime.broker_memory).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.alerts.ledger import AlertLedger
from streams.alerts.rules import AlertRules
from streams.config import Settings, topic_fields
from streams.rooms.room import RoomSettings
from streams.runtime.checkpoint import Checkpointer
from streams.runtime.restore import restore_partition, sent_alerts
from streams.state.log import LogReader
from streams.state.writer import EpochWriter

NO_EVICTION_S = 10**9  # carrying moves every room, idle or not


def generation(settings: Settings, number: int, base: Settings | None = None) -> Settings:
    """`settings` with every topic of generation `number`: the base names, then
    `.g<number>` (generation 0 is the base names themselves)."""
    base = base or settings
    suffix = f".g{number}" if number else ""
    return settings.with_overrides(**{n: getattr(base, n) + suffix for n in topic_fields()})


def drained(
    ends: Mapping[tuple[str, int], int], committed: Mapping[tuple[str, int], int | None]
) -> list[str]:
    """What was left unfolded: each partition whose committed offset is short of its end
    (an empty list when everything was folded and checkpointed)."""
    return [
        f"{topic}[{partition}]: committed {committed.get((topic, partition))}, end {end}"
        for (topic, partition), end in sorted(ends.items())
        if end > 0 and (committed.get((topic, partition)) or 0) < end
    ]


@dataclass
class Carried:
    rooms: int = 0
    firing_alerts: int = 0
    seconds: float = 0.0


async def carry_state(
    old_log: LogReader,
    new_log: Any,  # a LogReader that can also append (KafkaLog, MemoryLog)
    old: Settings,
    new: Settings,
    room_settings: RoomSettings,
    rules: AlertRules | None,
    now: float,
) -> Carried:
    """Every room partition of generation `old` written into generation `new`'s state
    log as bases, with input positions reset, and the firing alerts copied."""
    started = time.perf_counter()
    out = Carried()
    for p in range(old.partitions):
        restored = await restore_partition(
            old_log, old.topic_room_state, p, room_settings, rules, now
        )
        part = restored.part
        # The new generation's room-events and inputs start at offset 0.
        part.applied_offset = -1
        part.sources = {}
        for room in part.rooms.values():
            room.base_pos = None  # written as a base into the new log
        writer = EpochWriter(new_log, new.topic_room_state, p, f"carried-{p}", None)
        # Every room is a base already: no rebasing on top (budget 0).
        checkpointer = Checkpointer(writer, part, restored.alerts, 0.0, 0)
        await checkpointer.write(checkpointer.capture(now, NO_EVICTION_S))
        out.rooms += len(part.rooms)
        ledger = AlertLedger()
        ledger.load(await sent_alerts(old_log, old.topic_alerts, p))
        firing = ledger.firing()
        if firing:
            await new_log.append(
                new.topic_alerts,
                p,
                [(r["room_id"].encode(), orjson.dumps(r)) for r in firing],
            )
        out.firing_alerts += len(firing)
    out.seconds = time.perf_counter() - started
    return out
