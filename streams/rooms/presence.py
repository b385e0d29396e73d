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

from typing import Any

from streams.rooms.flat import MODE_SET, FlatMap, packed

# Times are held less the first one's, less this (2**30 ms, ~12 days): 4 bytes each while
# within ~12 days either side of it (a room that lives longer holds 8).
BIAS_SLACK_MS = 1 << 30


class Presence:
    __slots__ = ("_oldest", "at", "horizon_s", "online")

    def __init__(self, horizon_s: int) -> None:
        self.horizon_s = horizon_s
        self.at = FlatMap(bias_slack=BIAS_SLACK_MS)  # user -> latest word's ms, < 0: a leave
        self._oldest: int | None = None  # no entry's second is older than this
        self.online = 0

    def __len__(self) -> int:
        return self.online

    def __contains__(self, user: str) -> bool:
        value = self.at.get(user)
        return value is not None and value >= 0

    def _set(self, user: str, value: int, prev: int | None) -> None:
        self.at.set(user, value)
        self.online += (value >= 0) - (prev is not None and prev >= 0)
        second = abs(value) // 1000
        if self._oldest is None or second < self._oldest:
            self._oldest = second

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
        """Forget users whose latest word is a session timeout old (one pass in C, only
        when the oldest word held is that old)."""
        cutoff = watermark_s - self.horizon_s
        if self._oldest is None or self._oldest > cutoff:
            return
        last_ms = (cutoff + 1) * 1000  # words before this are a session timeout old
        _, went_offline, least = self.at.drop_upto(last_ms - 1, True)
        self.online -= went_offline
        self._oldest = None if least is None else least // 1000

    # -- checkpoints -------------------------------------------------------------------

    def take_changes(self) -> bytes:
        """Packed entries set since the last call, with their values now."""
        return self.at.take_changes()

    def snapshot(self) -> bytes:
        return self.at.snapshot()

    def load(self, entries: Any) -> None:
        """Set entries from a base or a delta (absolute values, applied in order)."""
        self.at.load(packed(entries), MODE_SET)
        self.online = self.at.count_nonneg()
        self._oldest = 0  # the next expiry finds the oldest
