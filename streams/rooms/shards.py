"""Hot rooms split over room-events partitions by viewer (issue 38).

A split room's events are spread over S shards by a hash of `user_id`, so everything
kept per user (presence, distinct counts, the event-id index: a retried event has the
same user) lives in exactly one shard, and the shards' user sets are disjoint: their
distinct counts add up. Shard k lives on room-events partition `(home + k) % P`, where
`home` is the partition the room has when it is not split: consecutive partitions,
which the group's round-robin assignment (aiokafka's default, the worker's) gives to
consecutive workers, so S shards land on S workers when there are that many. (A
stride of P/S put 4 shards on 2 of 4 workers in the `mega-room` load test.) Shard 0
stays on the home partition, whose owner merges the room (streams.rooms.merge). Every
worker must see the same shard counts: they come from LIVEROOM_ROOM_SHARDS and the
rules file's [shards] table (the setting wins for a room named in both).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from streams.rooms.flat import hash64

ROOM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def parse_room_shards(text: str) -> dict[str, int]:
    """`room_a=4,room_b=8` -> {room_a: 4, room_b: 8}; ValueError naming what is wrong."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        room_id, sep, count = item.partition("=")
        room_id = room_id.strip()
        if not sep or not ROOM_ID.match(room_id):
            raise ValueError(f"room_id=shards pairs like room_a=4,room_b=8 (got {item!r})")
        try:
            shards = int(count)
        except ValueError:
            raise ValueError(f"a whole number of shards for {room_id} (got {count!r})") from None
        if not 1 <= shards <= 256:
            raise ValueError(f"1-256 shards for {room_id} (got {shards})")
        out[room_id] = shards
    return out


class ShardMap:
    """Which rooms are split, into how many shards, and where each shard lives."""

    def __init__(self, shards: Mapping[str, int], partitions: int) -> None:
        too_many = {room: s for room, s in shards.items() if s > partitions}
        if too_many:
            room, s = next(iter(too_many.items()))
            raise ValueError(
                f"{room}={s}: at most as many shards as room-events partitions ({partitions})"
            )
        self.partitions = partitions
        self.shards = {room: s for room, s in shards.items() if s > 1}

    def __bool__(self) -> bool:
        return bool(self.shards)

    def count(self, room_id: str) -> int:
        return self.shards.get(room_id, 1)

    def shard_of_user(self, room_id: str, user_id: str) -> int:
        return hash64(user_id) % self.count(room_id)

    def partition_of_shard(self, home: int, room_id: str, shard: int) -> int:
        return (home + shard) % self.partitions

    def shard_at(self, home: int, room_id: str, partition: int) -> int | None:
        """Which shard of the room lives on `partition` (None: none does)."""
        step = (partition - home) % self.partitions
        return step if step < self.count(room_id) else None


def events_per_second(snap: Mapping[str, object]) -> float:
    """A room's rate over the last minute of event time, from its snapshot."""
    window = snap["windows"]["1m"]  # type: ignore[index]
    return sum(window[k] for k in ("views", "comments", "cart_adds", "orders")) / 60.0


def shards_needed(rate: float, threshold: float) -> int:
    """Shards that bring a room's rate under the threshold (1: none needed)."""
    return max(1, -int(-rate // threshold))
