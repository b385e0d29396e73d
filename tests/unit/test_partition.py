import orjson

from streams.checkpoints import marker_keys
from streams.kafka import partition_for
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.room import RoomSettings

from .helpers import T0, enter, order

NOW = 1000.0


def fresh():
    return RoomPartition(0, RoomSettings())


def checkpoint_all(part, now=NOW):
    """{room: state} of what a checkpoint writes, and the marker it returns."""
    written = {}
    marker = part.checkpoint(
        now, lambda room, state: written.update({room: orjson.loads(orjson.dumps(state))})
    )
    return written, marker


def test_a_replayed_record_is_skipped_whole():
    part, outcome = fresh(), Outcome()
    part.apply(0, [enter("a"), enter("b")], NOW, outcome)
    part.apply(0, [enter("a"), enter("b")], NOW, outcome)
    assert part.rooms["r"].views == 2
    assert outcome.skipped_replays == 1 and outcome.applied[0] == 2


def test_duplicates_and_late_are_counted_by_kind():
    part, outcome = fresh(), Outcome()
    part.apply(0, [enter("a", event_id="x"), enter("a", event_id="x")], NOW, outcome)
    part.apply(1, [order("a", 5.0, ts=T0 + 10_000), order("b", 5.0, ts=T0)], NOW, outcome)
    assert outcome.duplicates == [1, 0, 0, 0]
    assert outcome.applied == [1, 0, 0, 2]
    assert outcome.late == [0, 0, 0, 1]


def test_restore_then_replay_is_exact_whatever_the_checkpoint_age():
    """Room r1 was checkpointed at offset 3, r2 only at the marker (1): replaying
    from the marker must not count r1's records twice nor lose r2's."""
    records = [
        (0, [enter("a", room="r1"), enter("a", room="r2")]),
        (1, [enter("b", room="r1")]),
        (2, [enter("c", room="r1"), enter("c", room="r2")]),
        (3, [enter("d", room="r1")]),
        (4, [enter("e", room="r1"), enter("e", room="r2")]),
    ]
    reference = fresh()
    for offset, events in records:
        reference.apply(offset, events, NOW, Outcome())

    live = fresh()
    for offset, events in records[:2]:
        live.apply(offset, events, NOW, Outcome())
    at_marker, _ = checkpoint_all(live)  # both rooms at offset 1
    for offset, events in records[2:4]:
        live.apply(offset, events, NOW, Outcome())
    newer, _ = checkpoint_all(live, NOW + 10)  # r1 and r2 at offset 3
    # Crash: the marker for offset 3 was never written, r2's newer state was lost.
    states = {"r2": at_marker["r2"], "r1": newer["r1"]}
    restored = fresh()
    restored.restore(1, states.items(), NOW)
    for offset, events in records[2:]:
        restored.apply(offset, events, NOW, Outcome())
    for room in ("r1", "r2"):
        assert restored.rooms[room].views == reference.rooms[room].views
        assert restored.rooms[room].viewers == reference.rooms[room].viewers
    assert restored.rooms["r1"].views == 5 and restored.rooms["r2"].views == 3


def test_snapshots_at_most_once_per_room_per_second():
    part = fresh()
    part.apply(0, [enter("a")], NOW, Outcome())
    assert [s["views_total"] for s in part.due_snapshots(NOW)] == [1]
    part.apply(1, [enter("b")], NOW + 0.5, Outcome())
    assert part.due_snapshots(NOW + 0.5) == []
    assert [s["views_total"] for s in part.due_snapshots(NOW + 1.0)] == [2]
    assert part.due_snapshots(NOW + 5.0) == []  # nothing changed
    assert part.latest["r"]["views_total"] == 2


def test_idle_rooms_are_evicted_after_the_ttl():
    part = fresh()
    part.apply(0, [enter("a", room="old")], NOW, Outcome())
    part.apply(1, [enter("a", room="new")], NOW + 500, Outcome())
    part.due_snapshots(NOW + 500)
    assert part.evict_idle(NOW + 600, ttl=600) == ["old"]
    assert set(part.rooms) == {"new"} and set(part.latest) == {"new"}
    assert list(checkpoint_all(part, NOW + 600)[0]) == ["new"]


def test_marker_keys_land_on_their_partition():
    keys = marker_keys(8)
    assert sorted(keys) == list(range(8))
    for p, key in keys.items():
        assert partition_for(key, 8) == p


def test_partitioner_matches_kafka_murmur2():
    # Values from the Java client's DefaultPartitioner (murmur2, positive, mod n).
    assert partition_for("", 1000) == 681
    assert partition_for("a", 1000) == 524


def test_costly_rooms_are_checkpointed_less_often_and_hold_the_marker_back():
    part = fresh()
    part.apply(0, [enter("a", room="big"), enter("a", room="small")], NOW, Outcome())
    elapsed = [0.0]
    written: list[str] = []

    def write(room: str, state: dict) -> None:  # big costs 0.5 s to write, small 1 ms
        written.append(room)
        elapsed[0] += 0.5 if room == "big" else 0.001

    def checkpoint(now: float) -> int:
        written.clear()
        return part.checkpoint(now, write, clock=lambda: elapsed[0])

    assert checkpoint(NOW) == 0 and sorted(written) == ["big", "small"]
    part.apply(1, [enter("b", room="big"), enter("b", room="small")], NOW + 1, Outcome())
    # big is due again only 20 x 0.5 s = 10 s after its last write: the marker stays at
    # its stamp (0), so a restart replays record 1 for it; small is written now.
    assert checkpoint(NOW + 1) == 0 and written == ["small"]
    assert checkpoint(NOW + 10) == 1 and written == ["big"]
