"""Event-time building blocks: second-granular sliding sums and last-seen indexes.

Both keep state per whole second of event time and expire whole seconds once the
watermark has moved past their horizon, so every update is O(1) and memory is
proportional to what is inside the horizon, not to the event rate.

Both also remember what changed since the last `take_changes()`: an incremental
checkpoint writes those entries only (values are absolute, so applying a change twice
is harmless), and `changes_since_base()`-free restores rebuild the rest from a base.
Expiry is not a change: it follows from the watermark, which a restore re-applies.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, MutableSequence, Sequence
from functools import cache
from operator import add, itemgetter, sub
from typing import Any

from streams.rooms.flat import MODE_MAX, FlatMap, packed

NO_FIRST = -(1 << 63)  # a kept window's first second before the watermark first moves
# The dedup index sweeps its expired ids when they are this share of it (1/16).
SWEEP_SHARE = 16
RENEWED = 2  # FlatMap.renew: an expired id held again

# Tables of epoch seconds hold them less a bias (`_flat.c`): 2 bytes a value while the
# values held span less than this (~4.5 h; the windows hold minutes).
SECONDS_BIAS_SLACK = 1 << 14


class LastSeen:
    """Distinct keys by the second they were last seen, for a bounded horizon.

    Answers "how many distinct keys were seen in the last N seconds" exactly (at
    one-second granularity) and "was this key seen within the horizon".

    A key's latest second is in a flat table (`last`, 12 bytes and a bit a slot, ids
    hashed: see streams.rooms.flat); `_live` counts the keys whose latest second each
    second is, in a ring of machine integers over the horizon (301 bytes for 5 minutes
    until a second holds more than 255 keys, where a dict of seconds took ~10-20 kB), so
    a window's count is a sum of counts and expiry knows when a second still holds keys
    (then one pass over the table in C drops them).

    Seconds touched are at most the watermark last expired to, and within the horizon
    of it (the room touches in-window events only, after moving the watermark).
    """

    __slots__ = ("_live", "_oldest", "_span", "_stale", "_windows", "horizon", "last")

    def __init__(self, horizon_s: int, windows: tuple[int, ...] = ()) -> None:
        self.horizon = horizon_s
        self.last = FlatMap(bias_slack=SECONDS_BIAS_SLACK)
        self._live = _ring(horizon_s)  # second % len -> keys whose latest second it is
        self._span = len(self._live)
        self._oldest: int | None = None  # the ring's first second: no key is older
        self._stale = False  # loaded since `_live` was counted
        # Trailing windows kept counted as keys move and the watermark advances, so a
        # snapshot reads a count instead of summing seconds: [length, first second (NO_FIRST
        # until the watermark first moves), count] each, in one array (as lists and their
        # ints they took ~280 bytes a window: 5.6 MB at 5,000 rooms). `_fold.c` adds to it.
        self._windows = array("q", [v for length in windows for v in (length, NO_FIRST, 0)])

    def __len__(self) -> int:
        return len(self.last)

    @property
    def table_bytes(self) -> int:
        return self.last.nbytes

    @property
    def ring_bytes(self) -> int:
        return self._live.itemsize * len(self._live)

    def __contains__(self, key: str) -> bool:
        return key in self.last

    def touch(self, key: str, second: int) -> None:
        """Record `key` as seen at `second` (never moves a key back in time)."""
        if self._stale:
            self._recount()
        prev = self.last.raise_to(key, second)
        live, span, windows = self._live, self._span, self._windows
        if prev is not None:
            if prev >= second:
                return
            live[prev % span] -= 1
        for w in range(0, len(windows), 3):
            first = windows[w + 1]
            if first != NO_FIRST and second >= first and (prev is None or prev < first):
                windows[w + 2] += 1
        try:
            live[second % span] += 1
        except OverflowError:  # a second holds more keys than the ring's type
            self._live = _widened_plus_one(live, second % span)
        if self._oldest is None or second < self._oldest:
            self._oldest = second

    def _recount(self) -> None:
        self._live, self._oldest = _ring_of(self.last, self.horizon)
        self._stale = False
        windows = self._windows
        for w in range(0, len(windows), 3):  # recounted when the watermark next moves
            windows[w + 1], windows[w + 2] = NO_FIRST, 0

    def count_since(self, first_second: int) -> int:
        """Distinct keys last seen at or after `first_second`."""
        if self._stale:
            self._recount()
        return _ring_sum(self._live, self._oldest, first_second, None)

    def window_count(self, length: int, first_second: int) -> int:
        """`count_since(first_second)`, O(1) for a kept window the watermark has moved to."""
        windows = self._windows
        for w in range(0, len(windows), 3):
            if windows[w] == length and windows[w + 1] == first_second and not self._stale:
                return windows[w + 2]
        return self.count_since(first_second)

    def expire(self, watermark_s: int) -> None:
        """Forget keys last seen at or before `watermark_s - horizon`, and move the kept
        windows to end at `watermark_s` (before the seconds they leave are dropped)."""
        if self._stale:
            self._recount()
        windows = self._windows
        if not self.last:  # no key held (most rooms' buyers): the ring is all zeros
            for w in range(0, len(windows), 3):
                new_first, first = watermark_s - windows[w] + 1, windows[w + 1]
                windows[w + 1] = new_first if first == NO_FIRST else max(new_first, first)
                windows[w + 2] = 0
            self._oldest = None
            return
        live, oldest, span = self._live, self._oldest, self._span
        for w in range(0, len(windows), 3):
            first = windows[w + 1]
            new_first = watermark_s - windows[w] + 1
            if first == NO_FIRST:
                windows[w + 2] = _ring_sum(live, oldest, new_first, None)
            elif new_first == first + 1:  # the usual step: one second left the window
                if oldest is not None and oldest <= first < oldest + span:
                    windows[w + 2] -= live[first % span]
            elif new_first > first:
                windows[w + 2] -= _ring_sum(live, oldest, first, new_first)  # left it
            windows[w + 1] = new_first if first == NO_FIRST else max(new_first, first)
        cutoff = watermark_s - self.horizon
        if oldest is None or oldest > cutoff:
            return
        if _ring_drain(live, oldest, cutoff):
            self.last.drop_upto(cutoff)
        self._oldest = cutoff + 1

    def take_changes(self) -> bytes:
        """Packed (key, second) of every key touched since the last call (the delta).
        (A key expired since it was touched is not in it: a restore expires it too.)"""
        return self.last.take_changes()

    def snapshot(self) -> bytes:
        """Packed (key, second) of every key (a base); resets the changes."""
        return self.last.snapshot()

    def load(self, entries: Any) -> None:
        """Apply the entries of a base or a delta (max semantics)."""
        self.last.load(packed(entries), MODE_MAX)
        self._stale = True


class RecentIds:
    """Event ids seen within a horizon of event time, to drop repeats (client retries).

    `LastSeen` with less per id, for the busiest index a room has (every event's id):
    an id never moves (a repeat is dropped, not touched again), so it needs no kept
    windows, only its first second in the flat table and a ring of counts per second.

    Unlike `LastSeen`, an id is touched before the room moves its watermark, and a late
    event's id at any age: an id ahead of the ring moves it (the watermark follows), an
    id too old for it is counted apart and dropped at the next expiry.

    Expiry is lazy: ids at or before the last expiry's cutoff stay in the table, counted
    in `_expired`, and a lookup that finds one takes it as absent (`FlatMap.renew`). The
    table is swept when they are a sixteenth of it: with SPEC's 10 minutes a busy room
    holds 600,000 ids, and sweeping them every second cost ~3 ms a room-second (0.15 ms
    lazily, `python -m loadtest.dedup_expiry`). An id at or before that cutoff (a very
    late event) sweeps first, so an id is taken as expired exactly when an eager sweep
    at each expiry would have dropped it.
    """

    __slots__ = (
        "_counts",
        "_cutoff",
        "_expired",
        "_older",
        "_oldest",
        "_span",
        "_stale",
        "first_seen",
        "horizon",
    )

    def __init__(self, horizon_s: int) -> None:
        self.horizon = horizon_s
        self.first_seen = FlatMap(bias_slack=SECONDS_BIAS_SLACK)
        self._counts = _ring(horizon_s)  # second % len -> ids first seen then
        self._span = len(self._counts)
        self._oldest: int | None = None  # the ring's first second
        self._older = 0  # ids held at seconds before the ring (expired at the next move)
        self._stale = False  # loaded since `_counts` was counted
        self._cutoff: int | None = None  # the last expiry's: ids at or before it are gone
        self._expired = 0  # ids at or before `_cutoff` still in the table

    def __len__(self) -> int:
        return len(self.first_seen) - self._expired

    @property
    def table_bytes(self) -> int:
        return self.first_seen.nbytes

    @property
    def ring_bytes(self) -> int:
        return self._counts.itemsize * len(self._counts)

    def __contains__(self, key: str) -> bool:
        second = self.first_seen.get(key)
        if second is None:
            return False
        return not self._expired or second > (self._cutoff or 0)

    def touch(self, key: str, second: int) -> bool:
        """Remember `key` as first seen at `second`; False if it is already held (it
        stays put)."""
        if self._stale:
            self._recount()
        expired = self._expired
        if expired and second <= (self._cutoff or 0):
            self._sweep()  # a very late id: no lookup may take an id it adds as expired
            expired = 0
        if expired:
            fresh = self.first_seen.renew(key, second, self._cutoff)
            if not fresh:
                return False
            if fresh == RENEWED:
                self._expired -= 1
        elif not self.first_seen.add(key, second):
            return False
        oldest, span = self._oldest, self._span
        if oldest is not None and oldest <= second < oldest + span:  # almost always
            try:
                self._counts[second % span] += 1
            except OverflowError:  # more ids in a second than the ring's type holds
                self._counts = _widened_plus_one(self._counts, second % span)
        else:
            self._place(second)
        return True

    def _place(self, second: int) -> None:
        """Count an id at a second outside the ring's span."""
        counts, oldest, span = self._counts, self._oldest, self._span
        if oldest is None:
            self._oldest = second
        elif second >= oldest:  # ahead: the room's watermark moves there next
            self.expire(second)  # the ring now starts within a horizon of `second`
        else:
            newest = next(
                (s for s in range(oldest + span - 1, oldest - 1, -1) if counts[s % span]), oldest
            )
            if newest - second >= span:
                self._older += 1  # older than the ring can place: gone at the next expiry
                return
            self._oldest = second
        try:
            self._counts[second % span] += 1
        except OverflowError:
            self._counts = _widened_plus_one(self._counts, second % span)

    def _recount(self) -> None:
        self._counts, self._oldest = _ring_of(self.first_seen, self.horizon)
        self._older = 0
        self._stale = False

    def _sweep(self) -> None:
        """Drop the expired ids still held (one pass in C)."""
        if self._expired:
            self.first_seen.drop_upto(self._cutoff)
            self._expired = 0

    def expire(self, watermark_s: int) -> None:
        """Forget ids first seen at or before `watermark_s - horizon`."""
        if self._stale:
            self._recount()
        cutoff = watermark_s - self.horizon
        oldest = self._oldest
        if (oldest is None or oldest > cutoff) and not self._older:
            return
        held = self._older + (0 if oldest is None else _ring_drain(self._counts, oldest, cutoff))
        self._older = 0
        if oldest is not None:
            self._oldest = max(oldest, cutoff + 1)
        if held:
            self._cutoff = cutoff
            self._expired += held
            if self._expired * SWEEP_SHARE >= len(self.first_seen):
                self._sweep()

    def take_changes(self) -> bytes:
        return self.first_seen.take_changes()

    def snapshot(self) -> bytes:
        """Packed (id, second) of every id held (a base); resets the changes."""
        self._sweep()  # a base carries no expired ids
        return self.first_seen.snapshot()

    def load(self, entries: Any) -> None:
        """Apply a base or a delta: the later second wins (an expired id seen again is
        held anew at its new second)."""
        self._sweep()
        self.first_seen.load(packed(entries), MODE_MAX)
        self._stale = True


# -- rings of per-second counts: second s in slot s % len, for a span of len seconds --
#
# One byte a second until a second counts more than 255 (then 2 bytes, then 4): most
# rooms' seconds hold a few keys, and 5,000 rooms hold four 5-minute rings each.

_WIDER = {"B": "H", "H": "i"}
_WIDER_FEN = {"B": "H", "H": "i", "i": "q"}
_WIDER_SIGNED = {"h": "i", "i": "q"}
SCORE_SCALE = 10_000  # a settled sum of sentiment scores, in units of 1e-4 (`_ScorePlane`)
# A double of yuan x 100 this close to a whole number (relative) is that many fen: sums of
# whole fen in doubles miss by a few units in the last place (0.1 + 0.2).
WHOLE_FEN_TOLERANCE = 1e-9


def _ring(horizon_s: int) -> array[int]:
    """Zero counts for `horizon_s + 1` consecutive seconds (1 byte each to start)."""
    return array("B", bytes(horizon_s + 1))


def _widened_plus_one(ring: array[int], slot: int) -> array[int]:
    """The ring in the next wider type, with one more at `slot` (the count that outgrew
    the type: its increment raised OverflowError and changed nothing)."""
    wider = array(_WIDER[ring.typecode], ring)
    wider[slot] += 1
    return wider


def _narrowest(ring: array[int]) -> array[int]:
    """The ring in the narrowest type its counts fit."""
    for typecode in ("B", "H"):
        try:
            return array(typecode, ring)
        except OverflowError:
            continue
    return ring


def _ring_of(table: FlatMap, horizon_s: int) -> tuple[array[int], int | None]:
    """The ring of a loaded table's values, and its first second. Keys a horizon older
    than the newest are dropped first: the watermark is at least the newest, so its
    next expiry would drop them, and the ring could not place them."""
    span = table.value_range()
    if span is None:
        return _ring(horizon_s), None
    oldest, newest = span
    if oldest <= newest - horizon_s:
        _, _, oldest = table.drop_upto(newest - horizon_s)
    ring = array("i", bytes(4 * (horizon_s + 1)))  # as count_into takes it
    table.count_into(ring)
    return _narrowest(ring), oldest


def _ring_sum(ring: array[int], oldest: int | None, first: int, end: int | None) -> int:
    """Counts of the seconds in [first, end) (end None: to the ring's end)."""
    if oldest is None:
        return 0
    size = len(ring)
    first, end = max(first, oldest), oldest + size if end is None else min(end, oldest + size)
    if end - first >= size:
        return sum(ring)
    if first >= end:
        return 0
    a, b = first % size, end % size
    return sum(ring[a:b]) if a < b else sum(ring[a:]) + sum(ring[:b])


def _ring_drain(ring: array[int], oldest: int, cutoff: int) -> int:
    """Zero the seconds [oldest, cutoff]; the keys they held."""
    size = len(ring)
    held = 0
    for second in range(oldest, min(cutoff + 1, oldest + size)):
        i = second % size
        if ring[i]:
            held += ring[i]
            ring[i] = 0
    return held


@cache
def _columns_and_pick(
    columns: tuple[int, ...],
) -> tuple[tuple[int, ...], Callable[[Sequence[float]], Sequence[float]]]:
    """The columns, and what picks a row's values of them (a tuple, or a one-value
    slice), one pair shared by every plane of those columns: a closure and a tuple a
    plane were 4.6 MB over 5,000 rooms' 20,000 planes."""
    first = columns[0]
    pick = itemgetter(*columns) if len(columns) > 1 else itemgetter(slice(first, first + 1))
    return columns, pick


class _Plane:
    """Some columns of the ring of settled rows, in one array of one machine type."""

    __slots__ = ("cast", "columns", "data", "pick", "scale", "typecode", "width")

    def __init__(self, typecode: str, columns: tuple[int, ...]) -> None:
        self.columns, self.pick = _columns_and_pick(columns)
        self.typecode = typecode
        self.width = len(columns)
        self.cast: type = float if typecode == "d" else int
        self.scale = 1  # held values are the row's values times this (fen: 100)
        self.data = array(typecode)

    def add(self, at: int, values: Sequence[float]) -> Sequence[float]:
        """Add one row's values to those at `at`; the values held now, in the row's units."""
        total = tuple(map(add, self.data[at : at + self.width], values))
        self.store(at, total)
        return total

    def load_rows(self, rows: list[tuple[int, Sequence[float]]]) -> None:
        """Write whole rows, (slot, row) each, over what their slots hold."""
        width, pick = self.width, self.pick
        for slot, row in rows:
            self.store(slot * width, pick(row))

    def store(self, at: int, values: Sequence[float]) -> None:
        """Write one row's values at `at`: counts written as doubles (2.0, by the ring
        before the count planes) made whole, a count past the plane's type widening it."""
        end = at + self.width
        try:
            self.data[at:end] = array(self.typecode, values)
        except (TypeError, OverflowError):
            whole = [self.cast(v) for v in values]
            while True:
                try:
                    self.data[at:end] = array(self.typecode, whole)
                    return
                except OverflowError:
                    self.widen()

    def zeros(self, rows: int) -> array[Any]:
        return array(self.typecode, bytes(self.data.itemsize * self.width * rows))

    def widen(self) -> None:
        """Counts past the type (a room-second of more than 255 views, then 65,535): the
        next wider one, 16 then 32 bits."""
        self.typecode = _WIDER[self.typecode]
        self.data = array(self.typecode, self.data)


class _OneColumnPlane(_Plane):
    """A plane of one column held scaled (`store` converts): a restore writes only the
    rows that change something."""

    __slots__ = ()

    def load_rows(self, rows: list[tuple[int, Sequence[float]]]) -> None:
        column = self.columns[0]
        for slot, row in rows:
            value = row[column]
            if value or self.data[slot]:  # a zero onto a zero (most refunds) writes nothing
                self.store(slot, (value,))


class _MoneyPlane(_OneColumnPlane):
    """One column of yuan (GMV, refunds, spend), held as whole fen in the narrowest
    integer type they fit: most room-seconds have no refund and many no order, and a
    double took 8 bytes a second for each (~36 MB at 5,000 rooms). Sums of whole fen
    are exact, where doubles drift in the last place. An amount that is not whole fen
    (a price of 0.001 yuan) turns the column into doubles of yuan for good: never
    rounded away."""

    __slots__ = ()

    def __init__(self, column: int) -> None:
        super().__init__("B", (column,))
        self.scale = 100

    def add(self, at: int, values: Sequence[float]) -> Sequence[float]:
        yuan = values[0]
        if yuan:  # most room-seconds have no refund, and many no order: nothing to write
            self.store(at, (self.data[at] / self.scale + yuan,))
        return (self.data[at] / self.scale,)

    def store(self, at: int, values: Sequence[float]) -> None:
        if self.scale == 1:
            self.data[at] = values[0]
            return
        yuan = values[0]
        fen = round(yuan * 100) if math.isfinite(yuan) else None
        if fen is None or abs(yuan * 100 - fen) > WHOLE_FEN_TOLERANCE * max(1.0, abs(fen)):
            self.to_yuan()
            self.data[at] = yuan
            return
        while True:
            try:
                self.data[at] = fen
                return
            except OverflowError:
                self.widen()
                if self.scale == 1:  # past 64 bits of fen: doubles
                    self.data[at] = yuan
                    return

    def widen(self) -> None:
        if self.typecode == "q":
            self.to_yuan()
        else:
            self.typecode = _WIDER_FEN[self.typecode]
            self.data = array(self.typecode, self.data)

    def to_yuan(self) -> None:
        self.data = array("d", [v / 100 for v in self.data])
        self.typecode, self.cast, self.scale = "d", float, 1


class _ScorePlane(_OneColumnPlane):
    """One column of summed sentiment scores, settled: each frozen contribution rounded
    to SCORE_SCALE units (1e-4) in the narrowest signed integer type the sums fit. As
    doubles, the column was the ring's widest (8 bytes a second, 12 MB at 5,000 rooms);
    a room-second's sum moves by at most half a unit, the hot rows and the session total
    not at all. Widened to 32 and then 64 bits by a second that needs it."""

    __slots__ = ()

    def __init__(self, column: int) -> None:
        super().__init__("h", (column,))
        self.scale = SCORE_SCALE

    def add(self, at: int, values: Sequence[float]) -> Sequence[float]:
        score = values[0]
        if score and math.isfinite(score):  # a model's NaN must not stop the fold
            self._put(at, self.data[at] + round(score * SCORE_SCALE))
        return (self.data[at] / SCORE_SCALE,)

    def store(self, at: int, values: Sequence[float]) -> None:
        score = values[0]
        self._put(at, round(score * SCORE_SCALE) if math.isfinite(score) else 0)

    def _put(self, at: int, units: int) -> None:
        while True:
            try:
                self.data[at] = units
                return
            except OverflowError:
                self.widen()

    def widen(self) -> None:
        self.typecode = _WIDER_SIGNED[self.typecode]
        self.data = array(self.typecode, self.data)


class SecondSums:
    """Per-second sums of a fixed set of counters, summed over any trailing window.

    A row is *hot* while events can still add to it (not older than the allowed
    lateness: `settled_before` in `advance`): a Python list the fold adds to in place,
    which CPython does fastest. Once settled it is frozen into a ring, second s at row
    s % rows, in planes of one machine type each: the `count_columns` (whole numbers)
    as 8-bit counts, widened to 16 then 32 bits by the first room-second that needs it,
    each of the `money_columns` (yuan) as whole fen the same way (`_MoneyPlane`), each
    of the `score_columns` in signed units of 1e-4 from 16 bits (`_ScorePlane`), the
    rest as doubles (6 counts, 2 sums of yuan and a sum of scores take ~13 bytes a
    second, where doubles took 72 and a list in a dict ~210). The ring starts at 8 rows
    and doubles as the span of settled seconds grows, up to the horizon, so an idle room
    costs little; rows outside the seconds held are zero.

    Kept windows are summed incrementally: a settled row is added to a window's total
    once, and subtracted once when the window leaves it; a window's sum is that total
    plus the few hot rows. A window's totals are an array of doubles (a list and its
    float objects took ~210 bytes more a window: 2 MB at 5,000 rooms).
    """

    __slots__ = (
        "_hot",
        "_in_order",
        "_newest",
        "_oldest",
        "_planes",
        "_rows",
        "_settled",
        "_watermark",
        "_windows",
        "changed",
        "horizon",
        "width",
    )

    def __init__(
        self,
        width: int,
        horizon_s: int,
        windows: tuple[int, ...] = (),
        count_columns: tuple[int, ...] = (),
        money_columns: tuple[int, ...] = (),
        score_columns: tuple[int, ...] = (),
    ) -> None:
        self.width = width
        self.horizon = horizon_s
        self._hot: dict[int, list[float]] = {}  # second -> row, for seconds not settled
        self._settled: int | None = None  # seconds before this are settled (in the ring)
        typed = (*count_columns, *money_columns, *score_columns)
        amounts = tuple(i for i in range(width) if i not in typed)
        planes = [_Plane("B", tuple(count_columns))] if count_columns else []
        planes += [_MoneyPlane(i) for i in money_columns]
        planes += [_ScorePlane(i) for i in score_columns]
        self._planes = (*planes, _Plane("d", amounts)) if amounts else tuple(planes)
        # A row from its planes' values laid end to end (None: already in column order).
        laid = [i for plane in self._planes for i in plane.columns]
        in_order = None if laid == list(range(width)) else map(laid.index, range(width))
        self._in_order = None if in_order is None else itemgetter(*in_order)
        self._rows = 0  # the ring's rows; each plane holds _rows x its width
        self._oldest: int | None = None  # the settled seconds held: [_oldest, _newest]
        self._newest = 0
        self.changed: set[int] = set()  # seconds written since the last take_changes()
        self._watermark: int | None = None
        # [length, first second, settled up to (exclusive), totals of rows first..settled-1]
        self._windows: list[list[Any]] = [[length, None, None, None] for length in windows]

    @property
    def ring_bytes(self) -> int:
        """Memory of the ring of settled rows."""
        return sum(p.data.itemsize * len(p.data) for p in self._planes)

    def row(self, second: int) -> list[float]:
        """The row of an unsettled `second`, to add to (marked changed)."""
        self.changed.add(second)
        row = self._hot.get(second)
        if row is None:
            row = self._hot[second] = [0] * self.width
        return row

    def get(self, second: int) -> Sequence[float] | None:
        """The sums of one second, None if nothing is held for it."""
        row = self._hot.get(second)
        if row is not None:
            return row
        slot = self._at(second)
        if slot < 0:
            return None
        return self._row_at(slot, [(p.data, p.width, p.scale) for p in self._planes])

    def _row_at(self, slot: int, planes: list[tuple[Sequence[float], int, int]]) -> list[float]:
        """The ring's row at `slot`, in column order, from its planes' (data, width,
        scale)."""
        values: list[float] = []
        for data, width, scale in planes:
            held = data[slot * width : (slot + 1) * width]
            values += held if scale == 1 else [v / scale for v in held]
        in_order = self._in_order
        return values if in_order is None else list(in_order(values))

    def sum_since(self, first_second: int) -> list[float]:
        total = [0.0] * self.width
        self._add_rows(total, first_second, first_second + (1 << 62), 1)
        return total

    def window_sum(self, length: int, first_second: int) -> list[float]:
        """`sum_since(first_second)`, from the kept window's total when it is there."""
        return self.window_sums(((length, first_second),))[0]

    def window_sums(self, spans: Sequence[tuple[int, int]]) -> list[list[float]]:
        """`window_sum` of each (length, first second). The kept windows share their
        settled second, so the rows after it (the hot ones) are summed once for all."""
        out = []
        watermark = self._watermark
        tail: list[float] | None = None
        tail_from = None
        for length, first_second in spans:
            for window_length, first, settled, totals in self._windows:
                if window_length == length and first == first_second and watermark is not None:
                    if tail is None or tail_from != settled:
                        tail, tail_from = [0.0] * len(totals), settled
                        self._add_rows(tail, settled, watermark + 1, 1)
                    out.append(list(map(add, totals, tail)))  # both `width` long
                    break
            else:
                out.append(self.sum_since(first_second))
        return out

    def _add_rows(
        self,
        totals: MutableSequence[float],
        first: int,
        end: int,
        sign: int,
        hot: bool = True,
    ) -> None:
        """Add (sign 1) or subtract (-1) the rows of the seconds [first, end). `hot=False`:
        the span is settled and no hot row is in it (as in `advance`, once it has frozen
        every row before the settled second), so the hot rows are not looked through."""
        if hot:
            combine = add if sign > 0 else sub  # a row at a time in C: the same sums
            for second, row in self._hot.items():
                if first <= second < end:
                    totals[:] = array("d", map(combine, totals, row))
        oldest = self._oldest
        if oldest is None:
            return
        first, end = max(first, oldest), min(end, self._newest + 1)
        rows = self._rows
        if end - first > 4:  # a long span (a restore, a jump): column sums in C
            a, b = first % rows, end % rows
            spans = [(a, b)] if a < b else [(a, rows), (0, b)]
            for plane in self._planes:
                data, width, scale = plane.data, plane.width, plane.scale
                for k, i in enumerate(plane.columns):
                    column = sum(sum(data[x * width + k : y * width : width]) for x, y in spans)
                    totals[i] += sign * (column if scale == 1 else column / scale)
            return
        for plane in self._planes:
            data, width, columns, scale = plane.data, plane.width, plane.columns, plane.scale
            for second in range(first, end):
                at = (second % rows) * width
                for k, v in enumerate(data[at : at + width]):
                    if v:
                        totals[columns[k]] += sign * (v if scale == 1 else v / scale)

    def advance(self, watermark_s: int, settled_before: int) -> None:
        """The watermark moved to `watermark_s`; rows before `settled_before` are final:
        they are frozen into the ring. Moves the kept windows, then expires rows past the
        horizon."""
        self._watermark = watermark_s
        settled_before = min(settled_before, watermark_s + 1)
        was_settled = self._settled
        if was_settled is None or settled_before > was_settled:
            self._settled = settled_before
        hot = self._hot
        # The rows frozen now, summed in column order (None: none), and whether they all
        # were after the seconds settled before (so they are what settles in a window).
        frozen: list[float] | None = None
        frozen_after = was_settled is not None
        if hot:
            for second in [s for s in hot if s < self._settled]:
                values = self._freeze(second, hot.pop(second))
                frozen = values if frozen is None else list(map(add, frozen, values))
                frozen_after = frozen_after and second >= was_settled  # type: ignore[operator]
        for window in self._windows:
            length, first, settled, totals = window
            new_first = watermark_s - length + 1
            new_settled = max(settled_before, new_first)
            # No hot row is in the spans below: they end at or before `new_settled`, which
            # is `settled_before` (the rows before it were all frozen above) unless the
            # window is shorter than the allowed lateness, and then every span is empty
            # (`settled` was the window's first second too: nothing is ever settled in it).
            if first is None or totals is None:
                totals = array("d", bytes(8 * self.width))
                self._add_rows(totals, new_first, new_settled, 1, hot=False)
            else:  # what left the window, then what settled inside it
                self._add_rows(totals, first, min(new_first, settled), -1, hot=False)
                if new_first >= settled:
                    # nothing settled inside: no float residue
                    totals = array("d", bytes(8 * self.width))
                # The usual step: what settled inside, [settled, new_settled), is exactly
                # the rows frozen above (none: zeros), already summed.
                just_frozen = (
                    frozen_after
                    and settled == was_settled
                    and new_settled == settled_before
                    and new_first <= settled
                    and settled_before - settled <= self.horizon  # none in the scratch row
                )
                if not just_frozen:
                    self._add_rows(totals, max(settled, new_first), new_settled, 1, hot=False)
                elif frozen is not None:
                    totals = array("d", map(add, totals, frozen))
            window[1], window[2], window[3] = new_first, new_settled, totals
        self.expire(watermark_s)

    def expire(self, watermark_s: int) -> None:
        """Drop the seconds a horizon or more behind `watermark_s` (all: free the ring)."""
        cutoff = watermark_s - self.horizon
        if self._hot:
            for second in [s for s in self._hot if s <= cutoff]:
                del self._hot[second]
        self._expire_ring(cutoff)

    def _expire_ring(self, cutoff: int) -> None:
        oldest = self._oldest
        if oldest is None or oldest > cutoff:
            return
        if cutoff >= self._newest:
            for plane in self._planes:
                plane.data = array(plane.typecode)
            self._rows, self._oldest = 0, None
            return
        rows = self._rows
        for plane in self._planes:
            data, width, zeros = plane.data, plane.width, plane.zeros(1)
            for second in range(oldest, cutoff + 1):
                at = (second % rows) * width
                data[at : at + width] = zeros
        self._oldest = cutoff + 1

    def take_changes(self) -> list[list[Any]]:
        """[second, row copy] of the rows written since the last call (the delta)."""
        out = [[s, list(row)] for s in self.changed if (row := self.get(s)) is not None]
        self.changed = set()
        return out

    def snapshot(self) -> list[list[Any]]:
        """[second, row] of every second held that is not all zeros."""
        self.changed = set()
        out = [[s, list(row)] for s, row in self._hot.items()]
        if self._oldest is None:
            return out
        rows = self._rows
        planes = [(p.data.tolist(), p.width, p.scale) for p in self._planes]  # one copy
        for second in range(self._oldest, self._newest + 1):
            row = self._row_at(second % rows, planes)
            if any(row):
                out.append([second, row])
        return out

    def load(self, rows: Iterable[list[Any]], settled_before: int | None = None) -> None:
        """Set whole rows (absolute values) from a base or a delta; rows before
        `settled_before` (the watermark they were captured at, less the lateness) go
        straight into the ring."""
        if settled_before is not None and (self._settled is None or settled_before > self._settled):
            self._settled = settled_before
        settled, hot = self._settled, self._hot
        frozen = []
        for second, row in rows:
            if settled is None or second >= settled:
                hot[second] = list(row)
            else:
                hot.pop(second, None)
                frozen.append((second, row))
        if frozen:  # the ring sized for them at once, not doubled row by row
            self._slot(max(second for second, _ in frozen))
            first = min(second for second, _ in frozen)
            self._slot(first)
            if self._at(first) < 0:  # more than a horizon apart: placing one may move or
                for second, _ in frozen:  # drop the others, so all are placed first
                    self._slot(second)
        # Then written plane by plane where they are (one a horizon older than the newest
        # counts nowhere: it is not written).
        slots = [(at, row) for second, row in frozen if (at := self._at(second)) >= 0]
        for plane in self._planes:
            plane.load_rows(slots)
        self.changed = set()
        for window in self._windows:  # totalled again when the watermark next moves
            window[1] = window[2] = window[3] = None

    # -- the ring of settled rows --------------------------------------------------------

    def _freeze(self, second: int, row: list[float]) -> list[float]:
        """Add a settled row into the ring; the ring's row now, in column order (as held:
        what the windows add now is what they take away as it leaves them)."""
        slot = self._slot(second)
        laid: list[float] = []
        for plane in self._planes:  # onto zeros, or what a restore put there
            laid += plane.add(slot * plane.width, plane.pick(row))
        in_order = self._in_order
        return laid if in_order is None else list(in_order(laid))

    def _at(self, second: int) -> int:
        """The ring's row of `second`, -1 if it holds none."""
        oldest = self._oldest
        if oldest is None or not oldest <= second <= self._newest:
            return -1
        return second % self._rows

    def _slot(self, second: int) -> int:
        """The ring's row of `second`, placing it: the first second, one before the
        oldest or past the newest (growing the ring, or dropping what the horizon left
        behind); a scratch row past the ring that counts nowhere for one a horizon older
        than the newest (the next expiry would drop it anyway)."""
        if self._oldest is None:
            self._resize(_RING_FIRST_ROWS)
            self._oldest = self._newest = second
        elif second > self._newest:
            if second - self._oldest > self.horizon:
                self._expire_ring(second - self.horizon)
                return self._slot(second)
            if second - self._oldest >= self._rows:
                self._resize(second - self._oldest + 1)
            self._newest = second
        elif self._newest - second > self.horizon:
            for plane in self._planes:
                if len(plane.data) == self._rows * plane.width:
                    plane.data.extend(plane.zeros(1))
            return self._rows
        elif second < self._oldest:
            if self._newest - second >= self._rows:
                self._resize(self._newest - second + 1)
            self._oldest = second
        return second % self._rows

    def _resize(self, needed: int) -> None:
        """Make the ring hold `needed` rows (a power of two, up to the horizon), with the
        seconds it holds now moved to their new rows."""
        rows = min(1 << (max(needed, _RING_FIRST_ROWS) - 1).bit_length(), self.horizon + 1)
        old_rows = self._rows
        for plane in self._planes:
            width, old, data = plane.width, plane.data, plane.zeros(rows)
            if self._oldest is not None:
                for second in range(self._oldest, self._newest + 1):
                    a, b = (second % old_rows) * width, (second % rows) * width
                    data[b : b + width] = old[a : a + width]
            plane.data = data
        self._rows = rows


_RING_FIRST_ROWS = 8  # an idle room's ring: 8 seconds (240 bytes for 6 counts and 3 amounts)
