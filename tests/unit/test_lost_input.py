"""What a fetch position outside an input partition's log means, and what a room
partition does with a source reset (no broker: the decision and the fold are pure)."""

from __future__ import annotations

from streams.rooms.partition import SOURCE_RESET, Outcome, RoomPartition, source_id
from streams.rooms.room import RoomSettings
from streams.runtime.lost_input import INSIDE, NEW, RECREATED, RETENTION, out_of_range

from .helpers import T0, enter, group


def test_retention_counts_what_it_deleted_and_resumes_at_the_first_record():
    seen = out_of_range(position=120, first=500, end=900)
    assert (seen.kind, seen.resume_at, seen.lost) == (RETENTION, 500, 380)


def test_a_topic_created_again_is_read_from_its_start_and_nothing_is_counted_lost():
    seen = out_of_range(position=120, first=0, end=40)
    assert (seen.kind, seen.resume_at, seen.lost) == (RECREATED, 0, 0)


def test_no_position_yet_and_a_position_back_in_range():
    assert out_of_range(-1, 7, 50).kind == NEW and out_of_range(-1, 7, 50).resume_at == 7
    assert out_of_range(20, 7, 50) == out_of_range(20, 7, 50)
    assert out_of_range(20, 7, 50).kind == INSIDE and out_of_range(20, 7, 50).resume_at == 20


def test_after_a_source_reset_the_new_topic_s_low_offsets_are_folded_not_skipped():
    part = RoomPartition(0, RoomSettings())
    src = source_id(0, 3)
    outcome = Outcome()
    part.apply(0, [group(30, [enter("u1", ts=T0)], source=src)], 1.0, outcome)
    part.apply(1, [group(2, [enter("u2", ts=T0 + 1)], source=src)], 1.0, outcome)
    assert part.rooms["r"].state.views == 1  # offset 2 <= 30: taken as a replay
    part.apply(2, [[SOURCE_RESET, 0, [src]]], 1.0, outcome)
    part.apply(3, [group(2, [enter("u3", ts=T0 + 2)], source=src)], 1.0, outcome)
    assert part.rooms["r"].state.views == 2 and part.sources[src] == 2
    part.apply(3, [[SOURCE_RESET, 0, [src]]], 1.0, outcome)  # replayed at its offset: skipped
    part.apply(4, [group(2, [enter("u3", ts=T0 + 2)], source=src)], 1.0, outcome)
    assert part.rooms["r"].state.views == 2  # the same record again: still a replay
