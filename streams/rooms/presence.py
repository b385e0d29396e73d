"""Online viewers (在线人数): users who entered and have not left, and were active within
the session timeout.

The latest event of a user decides, whatever order events arrive in: an `enter` that
arrives after its own `leave` (the two travel different partitions) does not bring the
user back, and a stale `leave` older than the user's latest activity does not take
them away. So a leave is remembered as long as an entry is (the session timeout), in
the same map: `at[user]` is the event time (ms) of the user's latest word, negative
when that word was a leave.
"""

from __future__ import annotations

from sys import intern

from streams.rooms.windows import seconds_up_to


class Presence:
    __slots__ = ("_buckets", "_oldest", "at", "changed", "horizon_s", "online")

    def __init__(self, horizon_s: int) -> None:
        self.horizon_s = horizon_s
        self.at: dict[str, int] = {}
        self._buckets: dict[int, list[str]] = {}  # second of |at| -> users moved to it
        self._oldest: int | None = None
        self.online = 0
        self.changed: dict[str, int] = {}  # entries set since take_changes()

    def __len__(self) -> int:
        return self.online

    def __contains__(self, user: str) -> bool:
        value = self.at.get(user)
        return value is not None and value >= 0

    def _set(self, user: str, value: int, prev: int | None) -> None:
        self.at[user] = value
        self.online += (value >= 0) - (prev is not None and prev >= 0)
        self.changed[user] = value
        second = abs(value) // 1000
        if prev is not None and abs(prev) // 1000 == second:
            return  # already in that second's bucket
        # Buckets are lists, not searched when a user moves on (as in LastSeen): expiry
        # checks each user's latest word.
        bucket = self._buckets.get(second)
        if bucket is None:
            self._buckets[second] = [user]
            if self._oldest is None or second < self._oldest:
                self._oldest = second
        else:
            bucket.append(user)

    def enter(self, user: str, ts: int) -> None:
        prev = self.at.get(user)
        if prev is None or (ts > prev if prev >= 0 else ts > -prev):
            self._set(user, ts, prev)

    def leave(self, user: str, ts: int) -> None:
        prev = self.at.get(user)
        if prev is None or (ts >= prev if prev >= 0 else ts > -prev):
            self._set(user, -ts, prev)

    def active(self, user: str, ts: int) -> None:
        """Any activity keeps an online user online (it never brings one back)."""
        prev = self.at.get(user)
        if prev is not None and 0 <= prev < ts:
            self._set(user, ts, prev)

    def expire(self, watermark_s: int) -> None:
        """Forget users whose latest word is a session timeout old."""
        cutoff = watermark_s - self.horizon_s
        if self._oldest is None or self._oldest > cutoff:
            return
        at, buckets = self.at, self._buckets
        last_ms = (cutoff + 1) * 1000  # words before this are a session timeout old
        for second in seconds_up_to(buckets, self._oldest, cutoff):
            for user in buckets.pop(second):
                value = at.get(user)
                if value is not None and abs(value) < last_ms:  # not moved on since
                    del at[user]
                    self.online -= value >= 0
        self._oldest = cutoff + 1

    # -- checkpoints -------------------------------------------------------------------

    def take_changes(self) -> dict[str, int]:
        """Entries set since the last call, with their values then: O(1)."""
        out, self.changed = self.changed, {}
        return out

    def snapshot(self) -> dict[str, int]:
        self.changed = {}
        return self.at.copy()

    def load(self, entries: dict[str, int]) -> None:
        """Set entries from a base or a delta (absolute values, applied in order)."""
        at = self.at
        for user, value in entries.items():
            self._set(intern(user), value, at.get(user))
        self.changed = {}
