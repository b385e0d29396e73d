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
    commits: dict[Epoch, dict[str, Any]] = {}
    payloads: list[tuple[int, Key, bytes]] = []  # chunks, in log order
    async for batch in log.read(topic, partition, start, commit_offset + 1):
        out.records_read += len(batch)
        for record in batch:
            key = parse_key(record.key)
            if key is None or record.value is None:
                continue
            if key.kind == "c":
                commits[key.epoch_id] = orjson.loads(record.value)
            else:
                payloads.append((record.offset, key, record.value))
    chain: set[Epoch] = set()
    cursor: Epoch | None = commit_key.epoch_id
    while cursor is not None and cursor in commits and cursor not in chain:
        chain.add(cursor)
        out.epochs.append(cursor)
        parent = commits[cursor]["parent"]
        cursor = tuple(parent) if parent is not None else None  # type: ignore[assignment]
    out.epochs.reverse()
    pending: dict[tuple[str, int, int], tuple[int, list[bytes]]] = {}
    for offset, key, value in payloads:
        if key.epoch_id not in chain:
            continue
        slot = (key.writer, key.epoch, key.seq)
        first, parts = pending.setdefault(slot, (offset, []))
        parts.append(value)
        if key.chunk == key.chunks - 1:
            del pending[slot]
            pieces = orjson.loads(b"".join(parts))
            out.pieces += len(pieces)
            apply(first, pieces)
    out.meta = commit["meta"]
    out.epoch = commit_key.epoch_id
    out.commit_offset = commit_offset
    out.read_from = start
    return out
