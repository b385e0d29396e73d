from streams.kafka import RoomPartitions, partition_for
from streams.rooms.partition import Outcome, RoomPartition, source_id
from streams.rooms.room import RoomSettings

from .helpers import T0, enter, group, order

NOW = 1000.0


def fresh():
    return RoomPartition(0, RoomSettings())


def test_a_replayed_record_is_skipped_whole():
    part, outcome = fresh(), Outcome()
    part.apply(0, [group(10, [enter("a"), enter("b")])], NOW, outcome)
    part.apply(0, [group(10, [enter("a"), enter("b")])], NOW, outcome)
    assert part.rooms["r"].state.views == 2
    assert outcome.skipped_replays == 1 and outcome.applied[0] == 2


def test_groups_the_ingest_stage_sends_again_are_skipped_by_source_offset():
    """After an ingest crash the same input records come again in new room-events
    records: the groups at or below what was folded per input partition are skipped,
    whatever their event_ids or event times."""
    part, outcome = fresh(), Outcome()
    a, b = source_id(0, 3), source_id(1, 3)
    part.apply(0, [group(5, [enter("u1")], a), group(7, [enter("u2")], b)], NOW, outcome)
    part.apply(1, [group(6, [enter("u3")], a)], NOW, outcome)
    # the ingest stage crashed before committing: offsets 5-6 of a and 7 of b come again,
    # re-encoded (new event ids would not matter), with something new behind them
    again = [group(5, [enter("u1", event_id="x1")], a), group(6, [enter("u3", event_id="x3")], a)]
    part.apply(
        2,
        [*again, group(7, [enter("u2", event_id="x2")], b), group(8, [enter("u4")], b)],
        NOW,
        outcome,
    )
    assert part.rooms["r"].state.views == 4
    assert outcome.skipped_replays == 3
    assert part.sources == {a: 6, b: 8}


def test_duplicates_and_late_are_counted_by_kind():
    part, outcome = fresh(), Outcome()
    part.apply(0, [group(0, [enter("a", event_id="x"), enter("a", event_id="x")])], NOW, outcome)
    part.apply(
        1, [group(1, [order("a", 5.0, ts=T0 + 10_000), order("b", 5.0, ts=T0)])], NOW, outcome
    )
    assert outcome.duplicates == [1, 0, 0, 0, 0]  # by kind: view ... order, spend
    assert outcome.applied == [1, 0, 0, 2, 0]
    assert outcome.late == [0, 0, 0, 1, 0]
    assert len(outcome.event_ts) == 3


def test_snapshots_at_most_once_per_room_per_second():
    part = fresh()
    part.apply(0, [group(0, [enter("a")])], NOW, Outcome())
    assert [s["views_total"] for s in part.due_snapshots(NOW)] == [1]
    part.apply(1, [group(1, [enter("b")])], NOW + 0.5, Outcome())
    assert part.due_snapshots(NOW + 0.5) == []
    assert [s["views_total"] for s in part.due_snapshots(NOW + 1.0)] == [2]
    assert part.due_snapshots(NOW + 5.0) == []  # nothing changed
    assert [s["views_total"] for s in part.latest(horizon=0.0)] == [2]


def test_a_quiet_room_waits_for_its_snapshot_and_a_busy_one_does_not():
    part = fresh()
    part.apply(0, [group(0, [enter("a", room="quiet"), enter("a", room="busy")])], NOW, Outcome())
    # The first snapshot of a room goes out at once, however quiet.
    first = part.due_snapshots(NOW, quiet_interval=5.0)
    assert sorted(s["room_id"] for s in first) == ["busy", "quiet"]
    busy = [enter(f"u{i}", room="busy", event_id=f"b{i}") for i in range(5)]
    part.apply(1, [group(1, [enter("b", room="quiet"), *busy])], NOW + 1, Outcome())
    # 5 new events make a room busy: due after a second; 1 new event waits.
    assert [s["room_id"] for s in part.due_snapshots(NOW + 1.0, quiet_interval=5.0)] == ["busy"]
    assert part.due_snapshots(NOW + 4.9, quiet_interval=5.0) == []
    late = part.due_snapshots(NOW + 5.0, quiet_interval=5.0)
    assert [(s["room_id"], s["views_total"]) for s in late] == [("quiet", 2)]
    assert part.due_snapshots(NOW + 20.0, quiet_interval=5.0) == []  # nothing changed


def test_idle_rooms_are_evicted_after_the_ttl():
    part = fresh()
    part.apply(0, [group(0, [enter("a", room="old")])], NOW, Outcome())
    part.apply(1, [group(1, [enter("a", room="new")])], NOW + 500, Outcome())
    part.rooms["old"].base_pos = 0  # it was checkpointed: the eviction must be too
    assert part.evict_idle(NOW + 600, ttl=600) == ["old"]
    assert set(part.rooms) == {"new"}
    assert part.dropped == ["old"]


def test_partitioner_matches_kafka_murmur2():
    # Values from the Java client's DefaultPartitioner (murmur2, positive, mod n).
    assert partition_for("", 1000) == 681
    assert partition_for("a", 1000) == 524


def test_room_partitions_remember_murmur2_and_stay_bounded(monkeypatch):
    monkeypatch.setattr(RoomPartitions, "MAX_ROOMS", 3)
    partitions = RoomPartitions(1000)
    assert partitions[""] == 681 and partitions["a"] == 524
    assert partitions["b"] == partition_for("b", 1000)
    assert len(partitions) == 3
    assert partitions["c"] == partition_for("c", 1000)  # a fourth room starts the memory over
    assert dict(partitions) == {"c": partition_for("c", 1000)}
