"""Online viewers (在线人数) and PCU, decided by event time only (SPEC "online viewers").

A user's latest word decides: presence (an `enter`, a comment, a cart add, an order) or
a `leave`, ordered by event time with a `leave` winning a tie. Keeping the latest word
is a max under that order, so it does not depend on the order words arrive in: the
current figure (`online`) is exact whatever order topics or shards deliver. `at[user]`
is the latest word's ms, negative for a leave.

PCU is a peak over time, and a peak taken as words arrive would depend on their order.
So every word is also kept, packed, in `pending` until it is older than the room's
watermark less the allowed lateness (no word within the lateness can still arrive
before it), then applied in event-time order to a second table, `settled`: the room as
it was at that moment. The online count at the end of each settled second is a sample;
PCU is the highest sample, or the current figure if higher (`peak_of`). Samples per
second, not per event, so a split room's shards (whose users are disjoint) add up to
the room's: streams.rooms.merge.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from streams.rooms import _flat
from streams.rooms.flat import MODE_SET, FlatMap, hash64, packed

# Times are held less the first one's, less this (2**30 ms, ~12 days): 4 bytes each while
# within ~12 days either side of it (a room that lives longer holds 8).
BIAS_SLACK_MS = 1 << 30

WORD = struct.Struct("<Qq")  # a pending word: the user's key, the signed ms (a flat entry)
SAMPLES_KEPT = 600  # change points: ~10 minutes of a busy room


def is_later(value: int, prev: int) -> bool:
    """Whether word `value` replaces `prev`: later in event time, a leave winning a tie."""
    if prev >= 0:
        return value > prev if value >= 0 else -value >= prev
    return abs(value) > -prev


class Presence:
    __slots__ = (
        "_oldest",
        "at",
        "horizon_s",
        "online",
        "pending",
        "sampled_through",
        "samples",
        "settled",
        "settled_loaded",
        "settled_oldest",
        "settled_online",
        "settled_second",
    )

    def __init__(self, horizon_s: int) -> None:
        self.horizon_s = horizon_s
        self.at = FlatMap(bias_slack=BIAS_SLACK_MS)  # user -> latest word's ms, < 0: a leave
        self._oldest: int | None = None  # no entry's second is older than this
        self.online = 0
        self.pending = bytearray()  # words not yet settled, packed as flat entries
        self.settled = FlatMap(bias_slack=BIAS_SLACK_MS)  # `at` as of the settled time
        self.settled_online = 0
        self.settled_second = 0  # the settled time's second (its expiry has run)
        self.settled_oldest: int | None = None
        self.settled_loaded = False
        # (second, online at its end) where it changed, over the last settled seconds:
        # what a split room's shards send for the room's PCU (streams.rooms.merge). Not
        # checkpointed: a restored shard's replay settles and samples those seconds again.
        # A partition keeps them for the shards of split rooms only (`RoomPartition`
        # clears this for the others): ~40 kB a busy room, and 5,000 unsplit rooms held
        # ~150 MB of samples no one read (the `memory` harness). None: not kept.
        self.samples: deque[tuple[int, int]] | None = deque(maxlen=SAMPLES_KEPT)
        self.sampled_through = 0  # the last second sampled

    def __len__(self) -> int:
        return self.online

    @property
    def keep_samples(self) -> bool:
        return self.samples is not None

    @keep_samples.setter
    def keep_samples(self, keep: bool) -> None:
        if not keep:
            self.samples = None  # an empty deque is ~600 bytes, 5,000 rooms 3 MB
        elif self.samples is None:
            self.samples = deque(maxlen=SAMPLES_KEPT)

    def __contains__(self, user: str) -> bool:
        value = self.at.get(user)
        return value is not None and value >= 0

    def word(self, user: str, ts: int, leave: bool) -> None:
        """A presence event (`leave` False) or a leave at `ts`."""
        value = -ts if leave else ts
        self.pending += WORD.pack(hash64(user), value)
        prev = self.at.get(user)
        if prev is not None and not is_later(value, prev):
            return
        self.at.set(user, value)
        self.online += (value >= 0) - (prev is not None and prev >= 0)
        second = ts // 1000
        if self._oldest is None or second < self._oldest:
            self._oldest = second

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

    def settle(self, upto_ms: int, peak: int) -> int:
        """Apply the pending words before `upto_ms` in event-time order; the new peak."""
        (self.settled_online, self.settled_second, self.settled_oldest, peak, rest, samples) = (
            _flat.settle(
                self.settled,
                self.pending,
                upto_ms,
                self.horizon_s,
                self.settled_online,
                self.settled_second,
                self.settled_oldest,
                peak,
            )
        )
        self.pending = bytearray(rest)
        if samples:
            self.sampled_through = samples[-2]
            kept = self.samples
            if kept is not None:
                for second, online in zip(samples[::2], samples[1::2], strict=True):
                    if not kept or kept[-1][1] != online:  # change points: one left out repeats
                        kept.append((second, online))
        return peak

    def peak_of(self, settled_peak: int) -> int:
        """PCU: the settled peak, or now if now is higher."""
        return max(settled_peak, self.online)

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

    def settled_piece(self, base: bool) -> dict[str, Any]:
        """The settled timeline: its scalars, its table (whole or changes), the words
        still pending (always whole: a few seconds' worth)."""
        return {
            "scalars": [self.settled_online, self.settled_second, self.settled_oldest],
            "at": self.settled.snapshot() if base else self.settled.take_changes(),
            "pending": bytes(self.pending),
        }

    def load_settled(self, piece: dict[str, Any]) -> None:
        if "scalars" in piece:
            self.settled_online, self.settled_second, self.settled_oldest = piece["scalars"]
            self.pending = bytearray(packed(piece.get("pending", b"")))
        if "at" in piece:
            self.settled.load(packed(piece["at"]), MODE_SET)
        self.settled_loaded = True

    def after_restore(self) -> None:
        """State written before the settled timeline existed: start it from now."""
        if not self.settled_loaded and len(self.at):
            self.settled.load(self.at.snapshot(), MODE_SET)
            self.settled_online = self.online
            self.settled_oldest = 0
        self.settled_loaded = True


def settle_python(
    table: FlatMap,
    words: bytes | bytearray,
    upto_ms: int,
    horizon_s: int,
    online: int,
    second: int,
    oldest: int | None,
    peak: int,
) -> tuple[int, int, int | None, int, bytes, list[int]]:
    """`_flat.settle` in Python, step for step: the reference the tests hold C to.

    Words before `upto_ms` are applied in event-time order. `second` is the open second
    (0: none yet): its expiry has run and its words are being applied. As the settled
    time leaves a second, the online count at its end is a sample; entering the next
    second forgets users a session timeout old (as `Presence.expire` does on the
    watermark). The peak is the highest sample. Returns the settled online count, open
    second and oldest second, the peak, the words kept, and the samples taken as a flat
    list [second, online, ...] (a second left out is the one before it again: the table
    was empty)."""
    now: list[tuple[int, int, int]] = []
    rest = bytearray()
    for key, value in WORD.iter_unpack(words):
        if abs(value) < upto_ms:
            now.append((abs(value), key, value))
        else:
            rest += WORD.pack(key, value)
    now.sort(key=lambda w: w[0])
    samples: list[int] = []

    def expire(to_second: int) -> None:
        nonlocal online, oldest
        cutoff = to_second - horizon_s
        if oldest is None or oldest > cutoff:
            return
        _, went_offline, least = table.drop_upto((cutoff + 1) * 1000 - 1, True)
        online -= went_offline
        oldest = None if least is None else least // 1000

    def close_through(target: int) -> None:
        """Sample every second before `target` and open `target`."""
        nonlocal second, peak
        if second == 0:
            second = target
            expire(second)
            return
        while second < target:
            samples.extend((second, online))
            peak = max(peak, online)
            second += 1
            expire(second)
            if not len(table) and second < target:  # nothing left: zeros until target
                samples.extend((second, 0))
                second = target

    i = 0
    while i < len(now):
        ms = now[i][0]
        if ms // 1000 > second:
            close_through(ms // 1000)
        while i < len(now) and now[i][0] == ms:
            _, key, value = now[i]
            prev = table.get(key)
            if prev is None or is_later(value, prev):
                table.set(key, value)
                online += (value >= 0) - (prev is not None and prev >= 0)
                if oldest is None or ms // 1000 < oldest:
                    oldest = ms // 1000
            i += 1
    if upto_ms // 1000 > second:
        close_through(upto_ms // 1000)
    return online, second, oldest, peak, bytes(rest), samples
