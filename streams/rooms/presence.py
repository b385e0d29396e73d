"""Online viewers (在线人数) and PCU, decided by event time only (SPEC "online viewers").

A user's latest word decides: presence (an `enter`, a comment, a cart add, an order) or
a `leave`, ordered by event time with a `leave` winning a tie. Keeping the latest word
is a max under that order, so it does not depend on the order words arrive in: the
current figure (`online`) is exact whatever order topics or shards deliver. `at[user]`
is the latest word's ms, negative for a leave.

PCU is a peak over time, and a peak taken as words arrive would depend on their order.
So every word is also kept, packed, in `pending` until it is older than the room's
watermark less the allowed lateness (no word within the lateness can still arrive
before it), then applied in event-time order to the *settled view*: the room as it was
at that moment. The online count at the end of each settled second is a sample; PCU is
the highest sample, or the current figure if higher (`peak_of`). Samples per second,
not per event, so a split room's shards (whose users are disjoint) add up to the
room's: streams.rooms.merge.

The settled view is `at` except for the users in `before`, which holds their settled
word (or ABSENT_WORD: none yet): the users with words still pending, and for a few
seconds those `at` forgot (its expiry runs on the watermark, the view's on the settled
time). Those are a few seconds of a room's users, where a second table of every user
took as much memory as `at` (36 MB at 5,000 rooms and 2M viewers).
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
ABSENT_WORD = _flat.ABSENT_WORD  # in `before`: the settled view has no word for the user
SAMPLES_KEPT = 600  # change points: ~10 minutes of a busy room


def is_later(value: int, prev: int) -> bool:
    """Whether word `value` replaces `prev`: later in event time, a leave winning a tie."""
    if prev >= 0:
        return value > prev if value >= 0 else -value >= prev
    return abs(value) > -prev


class Presence:
    __slots__ = (
        "_legacy_settled",
        "_loaded",
        "_oldest",
        "at",
        "before",
        "horizon_s",
        "online",
        "pending",
        "sampled_through",
        "samples",
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
        # The settled view's users whose word differs from `at` (see the module).
        self.before = FlatMap()
        self.settled_online = 0
        self.settled_second = 0  # the settled time's second (its expiry has run)
        self.settled_oldest: int | None = None  # the oldest second of a word in `before`
        self.settled_loaded = False
        self._loaded = False  # state loaded, not yet repaired (`after_restore`)
        self._legacy_settled: FlatMap | None = None  # a whole settled table, as once written
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
        self.before.add(user, ABSENT_WORD if prev is None else prev)  # its settled word
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
        # The settled view keeps them until the settled time forgets them too; not after
        # a load: the log still holds users forgotten before the capture (after_restore).
        into = None if self._loaded else self.before
        removed, went_offline, least = self.at.drop_upto(last_ms - 1, True, into)
        if removed and into is not None:  # none is older than `at`'s oldest was
            held = self.settled_oldest
            self.settled_oldest = self._oldest if held is None else min(held, self._oldest)
        self.online -= went_offline
        self._oldest = None if least is None else least // 1000

    def settle(self, upto_ms: int, peak: int) -> int:
        """Apply the pending words before `upto_ms` in event-time order; the new peak."""
        (self.settled_online, self.settled_second, self.settled_oldest, peak, rest, samples) = (
            _flat.settle(
                self.at,
                self.before,
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
        self._loaded = True

    def settled_piece(self, base: bool) -> dict[str, Any]:
        """The settled view: its scalars, `before` (whole or changes), the words still
        pending (always whole: a few seconds' worth)."""
        return {
            "scalars": [self.settled_online, self.settled_second, self.settled_oldest],
            "before": self.before.snapshot() if base else self.before.take_changes(),
            "pending": bytes(self.pending),
        }

    def load_settled(self, piece: dict[str, Any]) -> None:
        if "scalars" in piece:
            self.settled_online, self.settled_second, self.settled_oldest = piece["scalars"]
            self.pending = bytearray(packed(piece.get("pending", b"")))
        if "before" in piece:
            self.before.load(packed(piece["before"]), MODE_SET)
        if "at" in piece:  # written before `before`: the whole settled table
            if self._legacy_settled is None:
                self._legacy_settled = FlatMap(bias_slack=BIAS_SLACK_MS)
            self._legacy_settled.load(packed(piece["at"]), MODE_SET)
        self.settled_loaded = True
        self._loaded = True

    def after_restore(self) -> None:
        """After a load, and `expire` at the restored watermark: `before` made exact.

        A delta carries no removal, so the log may still hold users `before` has let go
        since its base, and users the settled view forgot. A user without pending words
        whom `at` holds is settled as `at` says; a settled word a session timeout older
        than the settled time is none. The settled online count is counted again from the
        view."""
        self._loaded = False
        if not self.settled_loaded:  # state written before the settled timeline existed:
            self.settled_online, self.settled_oldest = self.online, None  # it starts as `at`
            self.settled_loaded = True
            return
        at, before = self.at, self.before
        legacy, self._legacy_settled = self._legacy_settled, None
        if legacy is not None:  # the whole table as once written: keep where it differs
            for key, value in legacy.items():
                if at.get(key) != value:
                    before.set(key, value)
            for key, _ in at.items():
                if key not in legacy:
                    before.add(key, ABSENT_WORD)
        pending = {key for key, _ in WORD.iter_unpack(self.pending)}
        forgotten_ms = (self.settled_second - self.horizon_s + 1) * 1000 - 1
        online = at.count_nonneg()
        for key, value in before.items():
            word = None if value == ABSENT_WORD or abs(value) <= forgotten_ms else value
            latest = at.get(key)
            if key not in pending and (latest is not None or word is None):
                before.discard(key)  # the view is `at` (or nothing)
                continue
            if word is None and latest is not None:
                before.set(key, ABSENT_WORD)
            elif word is None:
                before.discard(key)
                continue
            online += (word is not None and word >= 0) - (latest is not None and latest >= 0)
        self.settled_online = online  # (the oldest second as captured still bounds what is kept)


def settle_python(
    at: FlatMap,
    before: FlatMap,
    words: bytes | bytearray,
    upto_ms: int,
    horizon_s: int,
    online: int,
    second: int,
    oldest: int | None,
    peak: int,
) -> tuple[int, int, int | None, int, bytes, list[int]]:
    """`_flat.settle` in Python, step for step: the reference the tests hold C to.

    Words before `upto_ms` are applied in event-time order to the settled view (`at`
    where `before` does not hold the user: see the module). `second` is the open second
    (0: none yet): its expiry has run and its words are being applied. As the settled
    time leaves a second, the online count at its end is a sample; entering the next
    second forgets users a session timeout old (as `Presence.expire` does on the
    watermark; only `before` can hold them). The peak is the highest sample. Returns the
    settled online count, open second and oldest second (of a word in `before`), the
    peak, the words kept, and the samples taken as a flat list [second, online, ...] (a
    second left out is the one before it again: the view was empty)."""
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
        last_ms = (cutoff + 1) * 1000 - 1
        least = None
        for key, value in before.items():
            if value == ABSENT_WORD:
                continue
            if abs(value) > last_ms:
                least = abs(value) if least is None else min(least, abs(value))
                continue
            online -= value >= 0
            if key in at:
                before.set(key, ABSENT_WORD)
            else:
                before.discard(key)
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
            if not len(at) and not len(before) and second < target:  # nothing left
                samples.extend((second, 0))
                second = target

    i = 0
    while i < len(now):
        ms = now[i][0]
        if ms // 1000 > second:
            close_through(ms // 1000)
        while i < len(now) and now[i][0] == ms:
            _, key, value = now[i]
            i += 1
            if key == 0:  # no user hashes to 0 (a torn buffer)
                continue
            held = before.get(key)
            latest = at.get(key)
            prev = held if held is not None else latest if latest is not None else ABSENT_WORD
            had = prev != ABSENT_WORD
            if had and not is_later(value, prev):
                continue
            online += (value >= 0) - (had and prev >= 0)
            if latest == value:  # the view caught up with `at`
                before.discard(key)
                continue
            before.set(key, value)
            if oldest is None or ms // 1000 < oldest:
                oldest = ms // 1000
    if upto_ms // 1000 > second:
        close_through(upto_ms // 1000)
    return online, second, oldest, peak, bytes(rest), samples
