"""Writing a partition's checkpoints as epochs (format in streams.state.records)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from streams.state.log import LogWriter
from streams.state.records import (
    CHUNK_BYTES,
    PAYLOAD_BYTES,
    Epoch,
    bytes_as_base64,
    chunk,
    commit_key,
    payload_key,
)

SLICE_S = 0.005  # serialise for at most this long before letting the event loop run


class EpochWriter:
    """One writer's epochs for one partition: payloads of pieces, then the commit."""

    def __init__(
        self,
        log: LogWriter,
        topic: str,
        partition: int,
        writer: str,
        parent: Epoch | None,
        chunk_bytes: int = CHUNK_BYTES,
        payload_bytes: int = PAYLOAD_BYTES,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.log = log
        self.topic = topic
        self.partition = partition
        self.writer = writer
        self.parent = parent  # the last committed epoch this writer's state descends from
        self.epoch = 0
        self.chunk_bytes = chunk_bytes
        self.payload_bytes = min(payload_bytes, chunk_bytes * 4)
        self.clock = clock
        self.bytes_written = 0

    async def write(
        self,
        pieces: Sequence[dict[str, Any]],
        meta: dict[str, Any],
        restore_from: Callable[[list[int]], int],
        split: Callable[[dict[str, Any]], Iterable[dict[str, Any]]] | None = None,
        bases: Sequence[str] = (),
    ) -> int:
        """Write one epoch; return the offset of its commit record.

        `restore_from(piece_offsets)` is called once the payloads are durable, with the
        log offset of the record holding each piece: it returns the offset a restore of
        this epoch must read from, or -1 for "from this commit" (nothing before it is
        needed). Raises if the log fails; the epoch then never counts (the caller must
        write what it held again, as bases). `split` cuts a piece into smaller ones,
        written in order (a piece's offset is that of its first part). `bases` names the
        rooms this epoch holds a whole state of (their earlier pieces are superseded)."""
        self.epoch += 1
        epoch = self.epoch
        payloads, piece_payload = await self._pack(pieces, split)
        records: list[tuple[bytes, bytes]] = []
        first_record: list[int] = []  # payload -> index of its first record
        for seq, data in enumerate(payloads):
            parts = chunk(data, self.chunk_bytes)
            first_record.append(len(records))
            records.extend(
                (payload_key(self.writer, epoch, seq, i, len(parts)), part)
                for i, part in enumerate(parts)
            )
        offsets = await self.log.append(self.topic, self.partition, records) if records else []
        self.bytes_written += sum(len(v) for _, v in records)
        piece_offsets = [offsets[first_record[p]] for p in piece_payload]
        commit = {"meta": meta, "parent": self.parent, "restore_from": restore_from(piece_offsets)}
        if bases:
            commit["bases"] = list(bases)
        (commit_offset,) = await self.log.append(
            self.topic, self.partition, [(commit_key(self.writer, epoch), orjson.dumps(commit))]
        )
        self.parent = (self.writer, epoch)
        return commit_offset

    async def _pack(
        self,
        pieces: Sequence[dict[str, Any]],
        split: Callable[[dict[str, Any]], Iterable[dict[str, Any]]] | None,
    ) -> tuple[list[bytes], list[int]]:
        """Pieces packed into JSON-array payloads, serialised in slices of SLICE_S."""
        payloads: list[bytes] = []
        piece_payload: list[int] = []
        parts: list[bytes] = []
        size = 0
        started = self.clock()
        for piece in pieces:
            for n, cut in enumerate(split(piece) if split is not None else (piece,)):
                data = orjson.dumps(cut, default=bytes_as_base64)
                if parts and size + len(data) > self.payload_bytes:
                    payloads.append(b"[" + b",".join(parts) + b"]")
                    parts, size = [], 0
                parts.append(data)
                size += len(data) + 1
                if n == 0:
                    piece_payload.append(len(payloads))
                if self.clock() - started > SLICE_S:
                    await asyncio.sleep(0)
                    started = self.clock()
        if parts:
            payloads.append(b"[" + b",".join(parts) + b"]")
        return payloads, piece_payload
