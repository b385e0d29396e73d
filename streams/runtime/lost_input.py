"""Input that no longer exists at the worker's position (issue 39).

The consumer runs with no automatic offset reset, so a position outside an input
partition's log is an error the worker decides on, instead of a silent jump:
- below the log's first offset: retention deleted records before they were read. They
  are counted (`liveroom_input_records_lost_total{topic}`), logged, and reading resumes
  at the first record that exists;
- past the log's end: the topic was deleted and created again, and its offsets start
  over. Reading resumes at its start. Every room partition is first told to forget the
  source's last folded offset (a *source reset* record on room-events, ahead of any
  new record of that source), or the new records, at offsets it has already passed,
  would be skipped as replays. Nothing already folded is folded again: the old
  records are gone, and room totals only grow.
A topic created again and refilled past the worker's old position before the worker
looks cannot be told apart from the old one (the protocol this client speaks carries no
topic id): README says so.
"""

from __future__ import annotations

from dataclasses import dataclass

NEW, RETENTION, RECREATED, INSIDE = "new", "retention", "recreated", "inside"


@dataclass(frozen=True)
class OutOfRange:
    kind: str  # NEW (no position yet), RETENTION, RECREATED, or INSIDE (a stale error)
    resume_at: int
    lost: int  # records that no longer existed at the position (retention)


def out_of_range(position: int, first: int, end: int) -> OutOfRange:
    """What a fetch at `position` answered OffsetOutOfRange means, given the partition's
    first offset and log end now. `position` < 0: the group has no offset yet."""
    if position < 0:
        return OutOfRange(NEW, first, 0)
    if position < first:
        return OutOfRange(RETENTION, first, first - position)
    if position > end:
        return OutOfRange(RECREATED, first, 0)
    return OutOfRange(INSIDE, position, 0)  # the log moved back into range: read again
