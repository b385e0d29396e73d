"""The offset cursor: what a fetch still holds to process, and the offsets it passes
over with no record."""

from __future__ import annotations

from dataclasses import dataclass

from streams.runtime.cursor import OffsetCursor

TP = ("liveroom.room-events", 0)


@dataclass(frozen=True)
class Record:
    offset: int


def at(*offsets: int) -> list[Record]:
    return [Record(o) for o in offsets]


def test_records_below_the_cursor_are_dropped_and_the_rest_kept():
    cursor = OffsetCursor()
    cursor.start(TP, 5)
    assert cursor.admit(TP, at(3, 4, 5, 6)) == at(5, 6)
    assert cursor.admit(TP, at(7, 8)) == at(7, 8)
    assert cursor.admit(("other", 0), at(1)) == ()  # not ours


def test_offsets_passed_over_before_and_between_the_records():
    cursor = OffsetCursor()
    cursor.start(TP, 5)
    assert cursor.passed_over(TP, at(5, 6, 7)) == 0
    assert cursor.passed_over(TP, at(8, 9)) == 3  # 5, 6, 7 never came
    assert cursor.passed_over(TP, at(5, 7, 10)) == 3  # 6, 8, 9
    cursor.advance(TP, at(5, 6, 7))
    assert cursor.passed_over(TP, at(8)) == 0
    assert cursor.passed_over(TP, []) == 0


def test_nothing_is_passed_over_before_the_first_record_of_an_uncommitted_partition():
    cursor = OffsetCursor()
    cursor.start(TP, -1)  # no committed offset: the log's start is wherever it is
    assert cursor.passed_over(TP, at(40, 41)) == 0
    cursor.advance(TP, at(40, 41))
    assert cursor.passed_over(TP, at(44)) == 2


def test_a_gap_in_room_events_is_read_again_before_it_counts():
    cursor = OffsetCursor()
    tp = ("room-events", 3)
    cursor.start(tp, 10)
    assert cursor.first_sight_of_gap(tp)  # a fetch began at 11: read from 10 again
    assert not cursor.first_sight_of_gap(tp)  # the second fetch too: it is real
    cursor.next[tp] = 20
    assert cursor.first_sight_of_gap(tp)  # a new position: read again first
