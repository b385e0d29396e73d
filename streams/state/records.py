"""The state log's records, and why a crash at any point leaves it consistent.

Each partition of the state topic holds the checkpoints of the same partition of
room-events, written by one writer at a time as numbered epochs:

    payload records  key "p|writer|epoch|seq|chunk|chunks", value: a chunk of a JSON array
                     of pieces (a room's base or delta, or a piece of one; opaque here,
                     but for bytes, which travel as base64: `bytes_as_base64`)
    commit record    key "c|writer|epoch", value: {"meta": ..., "restore_from": offset,
                     "parent": [writer, epoch] or null, "bases": [room, ...] (optional)}

A writer is one ownership of the partition (a worker that gets the partition back
writes under a new name). An epoch counts only once its commit record is in the log,
and its payloads come before its commit. The commit names its parent epoch (the
previous epoch of the same writer, or the epoch a new writer restored from), and the
offset from which a restore must read (`restore_from`, the oldest base still needed). A
restore takes the last commit in the log, walks the parent chain (a parent is the last
commit of its id before its child, so logs of workers that reused a name still restore),
and applies the payloads of those epochs in log order, from `restore_from`. So:
- a crash before a commit leaves its payloads in the log, never applied;
- a second writer (a worker that lost the partition but has not noticed yet) writes
  epochs of its own chain, which the other chain's restore ignores;
- the log between `restore_from` and its end stays bounded because the writer
  rewrites the oldest bases a little at every epoch (see streams.runtime.checkpoint).
A piece names its room (`"room"`). A commit's `bases` lists the rooms the epoch wrote a
whole state of: a restore skips the pieces of a room from epochs before its latest
base (they would be applied, then replaced), which is about half of what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pybase64

from streams.kafka import RECORD_LIMIT_BYTES

PAYLOAD_BYTES = 512 * 1024  # pieces packed per payload, before chunking
CHUNK_BYTES = RECORD_LIMIT_BYTES

Epoch = tuple[str, int]  # (writer, epoch number)


def payload_key(writer: str, epoch: int, seq: int, chunk: int, chunks: int) -> bytes:
    return f"p|{writer}|{epoch}|{seq}|{chunk}|{chunks}".encode()


def commit_key(writer: str, epoch: int) -> bytes:
    return f"c|{writer}|{epoch}".encode()


@dataclass(frozen=True, slots=True)
class Key:
    kind: str  # "p" payload, "c" commit
    writer: str
    epoch: int
    seq: int = 0
    chunk: int = 0
    chunks: int = 1

    @property
    def epoch_id(self) -> Epoch:
        return (self.writer, self.epoch)


def parse_key(raw: bytes | None) -> Key | None:
    if not raw:
        return None
    parts = raw.decode(errors="replace").split("|")
    try:
        if parts[0] == "c" and len(parts) == 3:
            return Key("c", parts[1], int(parts[2]))
        if parts[0] == "p" and len(parts) == 6:
            return Key("p", parts[1], int(parts[2]), int(parts[3]), int(parts[4]), int(parts[5]))
    except ValueError:
        return None
    return None


def chunk(data: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def bytes_as_base64(obj: Any) -> str:
    """orjson's `default` for pieces: bytes (a room's packed table entries) as base64."""
    if isinstance(obj, bytes | bytearray):
        return pybase64.b64encode_as_string(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
