"""Writing a partition's checkpoints as epochs (format in streams.state.records)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
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
APPEND_BYTES = 4 * 1024 * 1024  # records handed to the log at a time (then their acks)


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
        pieces: Sequence[dict[str, Any]] | list[dict[str, Any] | None],
        meta: dict[str, Any],
        restore_from: Callable[[list[int]], int],
        split: Callable[[dict[str, Any]], Iterable[dict[str, Any]]] | None = None,
        bases: Sequence[str] = (),
        consume: bool = False,
    ) -> int:
        """Write one epoch; return the offset of its commit record.

        `restore_from(piece_offsets)` is called once the payloads are durable, with the
        log offset of the record holding each piece: it returns the offset a restore of
        this epoch must read from, or -1 for "from this commit" (nothing before it is
        needed). Raises if the log fails; the epoch then never counts (the caller must
        write what it held again, as bases). `split` cuts a piece into smaller ones,
        written in order (a piece's offset is that of its first part). `bases` names the
        rooms this epoch holds a whole state of (their earlier pieces are superseded).

        Payloads go to the log as they are packed, APPEND_BYTES at a time, and with
        `consume` each piece of the list is let go (None) once packed: a rolling rebase
        of a big room held its tables, their JSON, the joined payloads, their chunks and
        the producer's copy all at once (a 100 MB peak of the `memory` load test's
        worker). Only the commit, written last, makes the epoch count."""
        self.epoch += 1
        epoch = self.epoch
        piece_offsets: list[int] = []
        records: list[tuple[bytes, bytes]] = []
        waiting: list[int] = []  # pieces whose first part is in `records`: their record
        held = seq = 0  # held: the bytes of `records`

        async def flush() -> None:
            nonlocal held
            offsets = await self.log.append(self.topic, self.partition, records)
            self.bytes_written += held
            piece_offsets.extend(offsets[i] for i in waiting)
            records.clear()
            waiting.clear()
            held = 0

        async for payload, starting in self._payloads(pieces, split, consume):
            parts = chunk(payload, self.chunk_bytes)
            waiting.extend([len(records)] * starting)
            records.extend(
                (payload_key(self.writer, epoch, seq, i, len(parts)), part)
                for i, part in enumerate(parts)
            )
            held += len(payload)
            seq += 1
            if held >= APPEND_BYTES:
                await flush()
        if records:
            await flush()
        commit = {"meta": meta, "parent": self.parent, "restore_from": restore_from(piece_offsets)}
        if bases:
            commit["bases"] = list(bases)
        (commit_offset,) = await self.log.append(
            self.topic, self.partition, [(commit_key(self.writer, epoch), orjson.dumps(commit))]
        )
        self.parent = (self.writer, epoch)
        return commit_offset

    async def _payloads(
        self,
        pieces: Sequence[dict[str, Any]] | list[dict[str, Any] | None],
        split: Callable[[dict[str, Any]], Iterable[dict[str, Any]]] | None,
        consume: bool,
    ) -> AsyncIterator[tuple[bytes, int]]:
        """Pieces packed into JSON-array payloads, serialised in slices of SLICE_S: each
        payload with the number of pieces whose first part it holds."""
        parts: list[bytes] = []
        size = starting = 0
        started = self.clock()
        for index in range(len(pieces)):
            piece = pieces[index]
            assert piece is not None, "a piece written twice"
            if consume:
                pieces[index] = None  # type: ignore[index]
            for n, cut in enumerate(split(piece) if split is not None else (piece,)):
                data = orjson.dumps(cut, default=bytes_as_base64)
                if parts and size + len(data) > self.payload_bytes:
                    yield b"[" + b",".join(parts) + b"]", starting
                    parts, size, starting = [], 0, 0
                parts.append(data)
                size += len(data) + 1
                if n == 0:
                    starting += 1
                if self.clock() - started > SLICE_S:
                    await asyncio.sleep(0)
                    started = self.clock()
            del piece
        if parts:
            yield b"[" + b",".join(parts) + b"]", starting
