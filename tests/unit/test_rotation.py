"""Rotating the embedded broker's topics (streams.runtime.rotation): a partition carried
to a new generation restores to the same rooms, ready for inputs that start at 0; the
alerts still firing go along; what was left unfolded is named."""

from __future__ import annotations

import asyncio

import orjson

from streams.broker import all_topics
from streams.config import Settings
from streams.runtime.restore import restore_partition, sent_alerts
from streams.runtime.rotation import carry_state, drained, generation
from streams.state.log import MemoryLog

from .test_checkpoint_restore import NOW, SETTINGS, TOPIC, fingerprint, make_records, run

OLD = generation(Settings(partitions=1).with_overrides(topic_room_state=TOPIC), 0)
NEW = generation(OLD, 3, base=OLD)


def alert(alert_id: str, status: str, room: str = "r1") -> tuple[bytes, bytes]:
    record = {
        "alert_id": alert_id,
        "room_id": room,
        "kind": "ViewerDrop",
        "key": "",
        "status": status,
        "starts_at": "t",
        "starts_at_ms": 1,
    }
    return room.encode(), orjson.dumps(record)


def test_generations_name_every_topic_and_the_first_keeps_the_names():
    base = Settings()
    assert all_topics(generation(base, 0)) == all_topics(base)
    second = generation(base, 2)
    assert second.topic_views == "liveroom.views.g2"
    assert second.topic_room_state == "liveroom.room-state.g2"
    assert set(all_topics(second)).isdisjoint(all_topics(base))


def test_a_carried_partition_restores_the_same_rooms_with_its_inputs_at_zero():
    records = make_records()
    log = MemoryLog()
    live, _ = asyncio.run(run(records, log, None))
    log.partitions[(OLD.topic_alerts, 0)] = []
    asyncio.run(
        log.append(
            OLD.topic_alerts,
            0,
            [alert("a1", "firing"), alert("a1", "resolved"), alert("a2", "firing", room="r2")],
        )
    )
    new_log = MemoryLog()
    carried = asyncio.run(carry_state(log, new_log, OLD, NEW, SETTINGS, None, NOW))
    assert carried.rooms == len(live.rooms) > 0 and carried.firing_alerts == 1
    again = asyncio.run(restore_partition(new_log, NEW.topic_room_state, 0, SETTINGS, None, NOW))
    expected = fingerprint(live)
    got = fingerprint(again.part)
    assert got["rooms"] == expected["rooms"]  # every room whole: totals, users, presence
    assert (got["offset"], got["sources"]) == (-1, {})  # room-events and inputs start at 0
    # Only what still fires goes along: the new worker's ledger resolves it, once.
    copied = asyncio.run(sent_alerts(new_log, NEW.topic_alerts, 0))
    assert [(r["alert_id"], r["status"]) for r in copied] == [("a2", "firing")]
    # Carried again (a second rotation), still the same rooms.
    third = generation(NEW, 4, base=OLD)
    asyncio.run(carry_state(new_log, new_log, NEW, third, SETTINGS, None, NOW))
    once_more = asyncio.run(
        restore_partition(new_log, third.topic_room_state, 0, SETTINGS, None, NOW)
    )
    assert fingerprint(once_more.part)["rooms"] == expected["rooms"]


def test_what_was_left_unfolded_is_named():
    ends = {("v", 0): 10, ("v", 1): 0, ("room-events", 0): 7}
    assert drained(ends, {("v", 0): 10, ("room-events", 0): 7}) == []
    assert drained(ends, {("v", 0): 9, ("room-events", 0): None}) == [
        "room-events[0]: committed None, end 7",
        "v[0]: committed 9, end 10",
    ]
