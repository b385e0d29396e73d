"""The ingest stage's pure part: input records -> room-events records by partition, and
dead letters.

The record key of an input record is never trusted: each valid event is routed by its
own `room_id`. A room-events record holds groups `[source id, source offset, events]`,
one per input record, so the rooms stage can skip the groups it already folded when
this stage re-sends them after a crash (streams.rooms.partition). A group is never
split across records: the events of one input record (at most 1 MiB of JSON) always
fit one room-events record.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.events import F_ROOM, Reject, decode_record
from streams.kafka import RECORD_LIMIT_BYTES, RoomPartitions
from streams.rooms.partition import source_id

# A dead letter keeps at most this much of the rejected bytes (base64 adds a third)...
DEADLETTER_MAX_BYTES = 256 * 1024
# ...and repeats them as JSON text only up to this size (escaping can grow text 6x).
DEADLETTER_MAX_TEXT_BYTES = 64 * 1024


@dataclass(slots=True)
class Routed:
    """What one fetch of input records becomes."""

    records: dict[int, list[bytes]] = field(default_factory=dict)  # partition -> values
    deadletters: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # key, value
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)  # (topic, reason) -> n
    events: int = 0


def route(
    fetched: Iterable[tuple[str, int, int, list[Any]]],
    partition_of: RoomPartitions,
    now_ms: int,
) -> Routed:
    """Route whole fetches: (topic, kind, partition, records with .offset/.key/.value).

    `partition_of` maps a room id to its room-events partition (a `RoomPartitions`)."""
    out = Routed()
    groups: dict[int, list[list[Any]]] = {}
    rejected = out.rejected
    for topic, kind, partition, records in fetched:
        source = source_id(kind, partition)
        for record in records:
            events, rejects = decode_record(record.value, kind, now_ms)
            if events:
                out.events += len(events)
                if len(events) == 1:
                    p = partition_of[events[0][F_ROOM]]
                    if p < 0:  # a split room: by viewer
                        p = partition_of.of_event(events[0])
                    groups.setdefault(p, []).append([source, record.offset, events])
                else:
                    by_partition: dict[int, list[tuple]] = {}
                    for event in events:
                        p = partition_of[event[F_ROOM]]
                        if p < 0:
                            p = partition_of.of_event(event)
                        by_partition.setdefault(p, []).append(event)
                    for p, chunk in by_partition.items():
                        groups.setdefault(p, []).append([source, record.offset, chunk])
            for reject in rejects:
                key = (topic, reject.reason)
                rejected[key] = rejected.get(key, 0) + 1
                out.deadletters.append(
                    (record.key, deadletter_record(topic, partition, record.offset, reject, now_ms))
                )
    out.records = {p: encode_groups(g) for p, g in groups.items()}
    return out


def encode_groups(groups: list[list[Any]], limit: int = RECORD_LIMIT_BYTES) -> list[bytes]:
    """JSON arrays of whole groups, each record at most ~`limit` bytes."""
    out: list[bytes] = []
    pending = [groups]
    while pending:
        part = pending.pop()
        data = orjson.dumps(part)
        if len(data) > limit and len(part) > 1:
            half = len(part) // 2
            pending += [part[half:], part[:half]]
        else:
            out.append(data)
    return out


def deadletter_record(
    source_topic: str, partition: int, offset: int, reject: Reject, rejected_at_ms: int
) -> bytes:
    """The dead letter of one reject, always below Kafka's default 1 MB record limit.

    `value_base64` holds the original bytes (their first DEADLETTER_MAX_BYTES when
    `truncated`); `value` repeats them as text when they are short, valid UTF-8."""
    kept = reject.raw[:DEADLETTER_MAX_BYTES]
    text: str | None = None
    if len(kept) <= DEADLETTER_MAX_TEXT_BYTES:
        try:
            text = kept.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return orjson.dumps(
        {
            "source_topic": source_topic,
            "partition": partition,
            "offset": offset,
            "index": reject.index,
            "reason": reject.reason,
            "detail": reject.detail,
            "value": text,
            "value_base64": base64.b64encode(kept).decode(),
            "value_bytes": len(reject.raw),
            "truncated": len(kept) < len(reject.raw),
            "rejected_at_ms": rejected_at_ms,
        }
    )
