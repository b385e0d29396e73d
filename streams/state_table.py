"""Room checkpoints in the changelogged table, split to fit Kafka's message limit.

A big room's state is megabytes (a 200k-viewer room checkpoints to ~10 MB) while
Kafka refuses records over `message.max.bytes` (1 MB by default). A state over the
chunk size (LIVEROOM_CHECKPOINT_CHUNK_BYTES) is written as chunks under keys of its
own generation, then a small manifest under the room's key naming them, and only
then are the previous
generation's chunks deleted: a crash at any point leaves the last complete manifest
pointing at intact chunks. Chunk keys are chosen to hash to the room's partition, so
a room and its chunks move between workers together.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson

from streams.kafka import partition_for

CHUNK_BYTES = 900_000  # default; below Kafka's default message.max.bytes (1 MB)
CHUNK_SEPARATOR = "#"  # never in a room_id ([A-Za-z0-9_.:-]); partition markers use it too
MANIFEST = "__chunks__"


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else key


class RoomStateTable:
    def __init__(
        self, table: MutableMapping[Any, Any], partitions: int, chunk_bytes: int = 0
    ) -> None:
        self.table = table
        self.partitions = partitions
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._chunks: dict[str, list[str]] = {}  # room -> chunk keys of its current manifest
        self._generation: dict[str, int] = {}
        self.writes = 0  # room checkpoints written

    def chunk_key(self, room_id: str, generation: int, index: int) -> str:
        """`room#generation.index.salt` with the first salt that lands on the room's partition."""
        target = partition_for(room_id, self.partitions)
        salt = 0
        while True:
            key = f"{room_id}{CHUNK_SEPARATOR}{generation}.{index}.{salt}"
            if partition_for(key, self.partitions) == target:
                return key
            salt += 1

    def write(self, room_id: str, state: dict[str, Any]) -> None:
        self.writes += 1
        data = orjson.dumps(state)
        previous = self._chunks.pop(room_id, [])
        size = self.chunk_bytes
        if len(data) <= size:
            self.table[room_id] = data
        else:
            generation = self._generation.get(room_id, 0) + 1
            self._generation[room_id] = generation
            keys = []
            for index, start in enumerate(range(0, len(data), size)):
                key = self.chunk_key(room_id, generation, index)
                self.table[key] = data[start : start + size]
                keys.append(key)
            self.table[room_id] = orjson.dumps({MANIFEST: keys})
            self._chunks[room_id] = keys
        for key in previous:  # only once the new manifest is written
            self.table.pop(key, None)

    def delete(self, room_id: str) -> None:
        self.table.pop(room_id, None)
        for key in self._chunks.pop(room_id, []):
            self.table.pop(key, None)
        self._generation.pop(room_id, None)

    def read_partition(self, partition: int) -> list[tuple[str, dict[str, Any]]]:
        """Every room checkpoint of `partition` (skips markers and loose chunks)."""
        out = []
        for key, value in list(self.table.items()):
            room_id = _text(key)
            if value is None or CHUNK_SEPARATOR in room_id:  # markers and chunks hold a "#"
                continue
            if partition_for(room_id, self.partitions) != partition:
                continue
            state = orjson.loads(value)
            keys = state.get(MANIFEST) if isinstance(state, dict) else None
            if keys is not None:
                state = orjson.loads(b"".join(self.table[k] for k in keys))
                self._chunks[room_id] = keys
                self._generation[room_id] = int(keys[0].split(CHUNK_SEPARATOR)[1].split(".")[0])
            out.append((room_id, state))
        return out
