"""Reading a partition's last committed state back from the state log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.state.log import LogReader
from streams.state.records import Epoch, Key, parse_key

TAIL_STEPS = (1, 16, 256, 4096)  # records scanned back from the end for the last commit


@dataclass
class Restored:
    meta: dict[str, Any] | None = None  # the last commit's meta (None: nothing committed)
    epoch: Epoch | None = None  # that commit's epoch: the parent of the next writer
    commit_offset: int = -1
    read_from: int = 0
    records_read: int = 0
    pieces: int = 0
    superseded: int = 0  # pieces skipped: their room has a base in a later epoch
    epochs: list[Epoch] = field(default_factory=list)  # the chain applied, oldest first


async def last_commit(
    log: LogReader, topic: str, partition: int, end: int
) -> tuple[int, Key, dict[str, Any]] | None:
    """(offset, key, value) of the last commit record before `end`: scanned back in
    growing steps from the end (normally the very last record), then from the start."""
    high = end
    for step in (*TAIL_STEPS, end):
        low = max(0, end - step)
        found = await _last_commit_in(log, topic, partition, low, high)
        if found is not None or low == 0:
            return found
        high = low
    return None


async def _last_commit_in(
    log: LogReader, topic: str, partition: int, low: int, high: int
) -> tuple[int, Key, dict[str, Any]] | None:
    found = None
    async for batch in log.read(topic, partition, low, high):
        for record in batch:
            key = parse_key(record.key)
            if key is not None and key.kind == "c" and record.value is not None:
                found = (record.offset, key, record.value)
    return None if found is None else (found[0], found[1], orjson.loads(found[2]))


async def restore(
    log: LogReader,
    topic: str,
    partition: int,
    apply: Callable[[int, list[dict[str, Any]]], None],
) -> Restored:
    """Apply the pieces of the last committed chain, in log order.

    `apply(offset, pieces)` gets the pieces of each payload with the offset of the
    record that starts it (a room's base position)."""
    end = await log.end_offset(topic, partition)
    out = Restored()
    if end == 0:
        return out
    found = await last_commit(log, topic, partition, end)
    if found is None:
        return out
    commit_offset, commit_key, commit = found
    start = int(commit["restore_from"])
    if start < 0:  # nothing before the commit is needed
        start = commit_offset
    # Every commit of an epoch id, in log order: a writer that adopted the partition
    # again under an old name (before writer names were per adoption) reused its ids.
    commits: dict[Epoch, list[tuple[int, dict[str, Any]]]] = {}
    payloads: list[tuple[int, Key, bytes]] = []  # chunks, in log order
    async for batch in log.read(topic, partition, start, commit_offset + 1):
        out.records_read += len(batch)
        for record in batch:
            key = parse_key(record.key)
            if key is None or record.value is None:
                continue
            if key.kind == "c":
                commits.setdefault(key.epoch_id, []).append(
                    (record.offset, orjson.loads(record.value))
                )
            else:
                payloads.append((record.offset, key, record.value))
    chain = _chain(commits, commit_key.epoch_id, commit_offset)
    out.epochs = [epoch for epoch, _ in reversed(chain)]
    position = {member: i for i, member in enumerate(reversed(chain))}  # log order
    latest_base = _latest_bases(commits, position)
    pending: dict[tuple[str, int, int], tuple[int, list[bytes]]] = {}
    for offset, key, value in payloads:
        epoch_at = position.get((key.epoch_id, _committed_by(commits, key.epoch_id, offset)))
        if epoch_at is None:
            continue
        slot = (key.writer, key.epoch, key.seq)
        first, parts = pending.setdefault(slot, (offset, []))
        parts.append(value)
        if key.chunk == key.chunks - 1:
            del pending[slot]
            pieces = orjson.loads(b"".join(parts))
            out.pieces += len(pieces)
            if latest_base:
                kept = [p for p in pieces if latest_base.get(p.get("room"), -1) <= epoch_at]
                out.superseded += len(pieces) - len(kept)
                pieces = kept
            apply(first, pieces)
    out.meta = commit["meta"]
    out.epoch = commit_key.epoch_id
    out.commit_offset = commit_offset
    out.read_from = start
    return out


def _chain(
    commits: dict[Epoch, list[tuple[int, dict[str, Any]]]], last: Epoch, last_offset: int
) -> list[tuple[Epoch, int]]:
    """The commits from `last` back through their parents, newest first, as (epoch, commit
    offset): a parent is the last commit of its id before its child's."""
    chain = [(last, last_offset)]
    value = commits[last][-1][1]
    while value["parent"] is not None:
        parent: Epoch = tuple(value["parent"])  # type: ignore[assignment]
        child_offset = chain[-1][1]
        earlier = [(o, v) for o, v in commits.get(parent, ()) if o < child_offset]
        if not earlier:
            break  # before `restore_from`: nothing of it is needed
        offset, value = earlier[-1]
        chain.append((parent, offset))
    return chain


def _latest_bases(
    commits: dict[Epoch, list[tuple[int, dict[str, Any]]]], position: dict[tuple[Epoch, int], int]
) -> dict[str, int]:
    """Room -> position in the chain of the last epoch that wrote its whole state
    (`position` is in log order, so a later base overwrites an earlier one)."""
    latest: dict[str, int] = {}
    for (epoch, commit_offset), at in position.items():
        for offset, value in commits[epoch]:
            if offset == commit_offset:
                latest.update(dict.fromkeys(value.get("bases", ()), at))
    return latest


def _committed_by(
    commits: dict[Epoch, list[tuple[int, dict[str, Any]]]], epoch: Epoch, offset: int
) -> int:
    """The offset of the commit a payload at `offset` belongs to: the first of its epoch
    id after it (-1: never committed)."""
    for commit_offset, _ in commits.get(epoch, ()):
        if commit_offset > offset:
            return commit_offset
    return -1
