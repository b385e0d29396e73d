"""Per-room state: cumulative session totals, sliding event-time windows, presence.

Plain Python with an explicit clock: `apply` takes compact events (see
`streams.events`) and never looks at Kafka, wall time or Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from streams.events import (
    CART,
    COMMENT,
    F_CART_PRODUCT,
    F_EVENT_ID,
    F_KIND,
    F_ORDER_AMOUNT,
    F_ORDER_PAID,
    F_ORDER_PRODUCT,
    F_SPEND_AMOUNT,
    F_TS,
    F_USER,
    F_VIEW_ENTER,
    ORDER,
    SPEND,
    VIEW,
)
from streams.rooms import _fold
from streams.rooms.distinct import EXACT_LIMIT, REST_BITS, DistinctCount
from streams.rooms.flat import ENTRY_BYTES, FlatMap, entry_count
from streams.rooms.presence import Presence
from streams.rooms.products import Products
from streams.rooms.trend import MinuteMarks
from streams.rooms.windows import LastSeen, RecentIds, SecondSums, _widened_plus_one
from streams.sentiment.scorer import NEUTRAL_BAND

WINDOW_HORIZON_S = 300  # the longest sliding window (5 min)
KEPT_WINDOWS = (60, 300)  # the snapshot's 1m and 5m, kept summed as the watermark moves

# Columns of the per-second sums.
(S_VIEWS, S_COMMENTS, S_CARTS, S_ORDERS, S_GMV, S_REFUNDS, S_NEGATIVE, S_SCORED, S_SCORE_SUM) = (
    range(9)
)
SUM_COLUMNS = 9
COUNT_COLUMNS = (S_VIEWS, S_COMMENTS, S_CARTS, S_ORDERS, S_NEGATIVE, S_SCORED)  # whole numbers
MONEY_COLUMNS = (S_GMV, S_REFUNDS)  # yuan, held as whole fen

# What `apply` did with an event.
APPLIED, LATE, DUPLICATE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RoomSettings:
    allowed_lateness_ms: int = 5_000
    session_timeout_s: int = 600
    # A repeated event_id within this much event time of the room's watermark is a
    # duplicate: SPEC's 10 minutes (a client that retries for minutes is still caught).
    # The memory it costs grows with events/s x horizon (docs/performance.md).
    dedup_horizon_s: int = 600
    # The room's product list shows this many products (LIVEROOM_PRODUCTS_PER_ROOM); it
    # tracks up to ten times as many, at least 200 (streams.rooms.products).
    products_per_room: int = 20


class RoomState:
    """Everything one live room needs to answer SPEC.md's metric definitions.

    `apply` folds an event in C (`_fold.c`); `apply_python` is the same fold, the
    reference the tests hold C to, and the path of an event of an unexpected shape.
    """

    __slots__ = (
        "_lateness_ms",
        "_trackers",
        "buyers",
        "cart_adds",
        "carters",
        "commenters",
        "comments",
        "gmv",
        "merged_peak",
        "merged_through",
        "minute_marks",
        "negative_comments",
        "orders",
        "peak_online",
        "presence",
        "products",
        "recent_buyers",
        "recent_carters",
        "recent_commenters",
        "recent_viewers",
        "refund_amount",
        "refunds",
        "room_id",
        "score_sum",
        "scored_comments",
        "seen_event_ids",
        "settings",
        "spend",
        "spend_sums",
        "sums",
        "viewers",
        "views",
        "watermark_ms",
    )

    _SCALARS = (
        "watermark_ms",
        "views",
        "comments",
        "cart_adds",
        "orders",
        "refunds",
        "gmv",
        "refund_amount",
        "negative_comments",
        "scored_comments",
        "score_sum",
        "peak_online",
        # A split room's PCU, merged by its home partition (streams.rooms.merge).
        "merged_peak",
        "merged_through",
        "spend",  # ad spend, yuan (liveroom.spend): ROI = GMV / spend
    )
    _COUNTS = ("viewers", "commenters", "carters", "buyers")
    _INDEXES = (
        "recent_viewers",
        "recent_commenters",
        "recent_carters",
        "recent_buyers",
        "seen_event_ids",
    )

    def __init__(self, room_id: str, settings: RoomSettings) -> None:
        self.room_id = room_id
        self.settings = settings
        self._lateness_ms = settings.allowed_lateness_ms  # read by the fold of every event
        self.watermark_ms = 0  # highest event time seen in the room
        # Session (cumulative) totals.
        self.views = 0
        self.comments = 0
        self.cart_adds = 0
        self.orders = 0
        self.refunds = 0
        self.gmv = 0.0
        self.refund_amount = 0.0
        self.negative_comments = 0
        self.scored_comments = 0
        self.score_sum = 0.0
        self.peak_online = 0
        self.merged_peak = 0
        self.merged_through = 0
        self.spend = 0.0
        # Session distinct users: exact up to 10,000, then a sketch (SPEC: within 2 %).
        self.viewers = DistinctCount()
        self.commenters = DistinctCount()
        self.carters = DistinctCount()
        self.buyers = DistinctCount()
        # Sliding windows: sums per second, and distinct users by last-seen second.
        self.sums = SecondSums(
            SUM_COLUMNS,
            WINDOW_HORIZON_S,
            KEPT_WINDOWS,
            COUNT_COLUMNS,
            MONEY_COLUMNS,
            (S_SCORE_SUM,),
        )
        # Spend per second, apart: a few events a minute, folded in Python, so the rows
        # every other event touches (and their checkpoints) keep their width.
        self.spend_sums = SecondSums(1, WINDOW_HORIZON_S, KEPT_WINDOWS, (), (0,))
        self.recent_viewers = LastSeen(WINDOW_HORIZON_S, KEPT_WINDOWS)
        self.recent_commenters = LastSeen(WINDOW_HORIZON_S, KEPT_WINDOWS)
        self.recent_carters = LastSeen(WINDOW_HORIZON_S, KEPT_WINDOWS)
        self.recent_buyers = LastSeen(WINDOW_HORIZON_S, KEPT_WINDOWS)
        self.presence = Presence(settings.session_timeout_s)
        self.products = Products(max(200, 10 * settings.products_per_room))
        self.seen_event_ids = RecentIds(settings.dedup_horizon_s)
        # Totals as the watermark enters each minute: the last 10 minutes vs the 10 before.
        self.minute_marks = MinuteMarks()
        self._trackers = (
            self.recent_viewers,
            self.recent_commenters,
            self.recent_carters,
            self.recent_buyers,
            self.presence,
            self.seen_event_ids,
        )

    @property
    def online(self) -> int:
        return self.presence.online

    @property
    def pcu(self) -> int:
        """Peak online viewers: the settled timeline's peak, or now if higher."""
        return self.presence.peak_of(self.peak_online)

    def _advance(self, ts: int) -> None:
        old_second = self.watermark_ms // 1000
        self.watermark_ms = ts
        second = ts // 1000
        if second != old_second:
            self.sums.advance(second, (ts - self.settings.allowed_lateness_ms) // 1000)
            self.spend_sums.advance(second, (ts - self.settings.allowed_lateness_ms) // 1000)
            for tracker in self._trackers:
                tracker.expire(second)
            self.peak_online = self.presence.settle(
                ts - self.settings.allowed_lateness_ms, self.peak_online
            )
            if second // 60 != old_second // 60:
                self.minute_marks.cross(old_second // 60, second // 60, self._totals())

    def _totals(self) -> list[float]:
        """What a minute mark holds (streams.rooms.trend.MARKED)."""
        return [self.views, self.comments, self.cart_adds, self.orders, self.gmv, self.online]

    def apply(self, event: tuple | list, sentiment: float | None = None) -> int:
        """Fold one compact event into the room; return APPLIED, LATE or DUPLICATE.

        `sentiment` is the comment's score in [-1, 1] when a scorer is configured; a
        comment is negative when its score is in the negative class (below the neutral
        band), as `streams.sentiment.classify` says.
        """
        return fold_event(self, event, sentiment)

    def apply_python(self, event: tuple | list, sentiment: float | None = None) -> int:
        """`apply` in Python, step for step as `_fold.c` does it."""
        ts = event[F_TS]
        second = ts // 1000
        # One lookup both checks and remembers the id (the watermark's expiry below
        # never reaches an id of this second).
        if not self.seen_event_ids.touch(event[F_EVENT_ID], second):
            return DUPLICATE
        user = event[F_USER]
        if ts > self.watermark_ms:
            self._advance(ts)
        in_window = ts >= self.watermark_ms - self.settings.allowed_lateness_ms
        row = self.sums.row(second) if in_window else None
        kind = event[F_KIND]
        presence = self.presence

        if kind == SPEND:  # no viewer: not presence, not a distinct user
            amount = event[F_SPEND_AMOUNT]
            self.spend += amount
            if in_window:
                self.spend_sums.row(second)[0] += amount
            return APPLIED if in_window else LATE
        if kind == VIEW:
            if event[F_VIEW_ENTER]:
                self.views += 1
                self.viewers.add(user)
                presence.word(user, ts, False)
                if row is not None:
                    row[S_VIEWS] += 1
                    self.recent_viewers.touch(user, second)
            else:
                presence.word(user, ts, True)
        else:
            presence.word(user, ts, False)
            if kind == COMMENT:
                self.comments += 1
                self.commenters.add(user)
                negative = sentiment is not None and sentiment <= -NEUTRAL_BAND
                if sentiment is not None:
                    self.scored_comments += 1
                    self.negative_comments += negative
                    self.score_sum += sentiment
                if row is not None:
                    row[S_COMMENTS] += 1
                    self.recent_commenters.touch(user, second)
                    if sentiment is not None:
                        row[S_SCORED] += 1
                        row[S_NEGATIVE] += negative
                        row[S_SCORE_SUM] += sentiment
            elif kind == CART:
                self.cart_adds += 1
                self.carters.add(user)
                self.note_product(event)
                if row is not None:
                    row[S_CARTS] += 1
                    self.recent_carters.touch(user, second)
            elif kind == ORDER:
                amount = event[F_ORDER_AMOUNT]
                if event[F_ORDER_PAID]:
                    self.orders += 1
                    self.gmv += amount
                    self.buyers.add(user)
                    self.note_product(event)
                    if row is not None:
                        row[S_ORDERS] += 1
                        row[S_GMV] += amount
                        self.recent_buyers.touch(user, second)
                else:
                    self.refunds += 1
                    self.refund_amount += amount
                    if row is not None:
                        row[S_REFUNDS] += amount
        return APPLIED if in_window else LATE

    def note_product(self, event: tuple | list) -> None:
        """A cart add or a paid order the fold applied: the product list's (the C fold
        calls this after it applied one; `apply_python` too)."""
        if event[F_KIND] == CART:
            self.products.cart(event[F_CART_PRODUCT], event[F_USER], event[F_TS])
        elif event[F_ORDER_PAID]:
            self.products.order(
                event[F_ORDER_PRODUCT], event[F_USER], event[F_TS], event[F_ORDER_AMOUNT]
            )

    # -- checkpoints: bases and deltas ---------------------------------------------------
    #
    # A delta holds what changed since the last capture, as absolute values (counters as
    # totals, rows whole, each touched key with its latest second), so applying it twice
    # or over a newer base is harmless. A base holds everything. Both are plain JSON.

    def capture_delta(self) -> dict[str, Any]:
        """What changed since the last capture; resets the change tracking. O(changes)."""
        return {
            "scalars": [getattr(self, name) for name in self._SCALARS],
            "rows": self.sums.take_changes(),
            "counts": {
                name: change
                for name in self._COUNTS
                if (change := getattr(self, name).take_changes()) is not None
            },
            "indexes": {
                name: pairs
                for name in self._INDEXES
                if (pairs := getattr(self, name).take_changes())
            },
            "presence": self.presence.take_changes(),
            "settled": self.presence.settled_piece(base=False),
            "spend_rows": self.spend_sums.take_changes(),
            **({"products": self.products.capture(base=False)} if self.products.changed else {}),
            **({"marks": marks} if (marks := self.minute_marks.take_changes()) else {}),
        }

    def capture_base(self) -> dict[str, Any]:
        """Everything (copies; resets the change tracking). O(state), in C mostly."""
        base: dict[str, Any] = {}
        for part in self.capture_base_parts():
            base.update(part)
        return base

    def capture_base_parts(self) -> Iterator[dict[str, Any]]:
        """`capture_base` in parts, one big table copy each, so a caller can let the event
        loop run between them (while nothing changes the room)."""
        yield {
            "base": True,
            "scalars": [getattr(self, name) for name in self._SCALARS],
            "rows": self.sums.snapshot(),
            "spend_rows": self.spend_sums.snapshot(),
            "counts": {name: getattr(self, name).snapshot() for name in self._COUNTS},
            "marks": self.minute_marks.snapshot(),
        }
        indexes: dict[str, Any] = {}
        for name in self._INDEXES:
            indexes[name] = getattr(self, name).snapshot()
            yield {"indexes": indexes}
        yield {"presence": self.presence.snapshot()}
        yield {"settled": self.presence.settled_piece(base=True)}
        yield {"products": self.products.capture(base=True)}

    def load(self, piece: dict[str, Any]) -> None:
        """Apply a base or a delta, or a piece of one (see streams.state.records)."""
        scalars = piece.get("scalars")
        if scalars is not None:  # state written before the merged scalars has fewer
            for name, value in zip(self._SCALARS, scalars, strict=False):
                setattr(self, name, value)
        if "rows" in piece:
            settled = (self.watermark_ms - self.settings.allowed_lateness_ms) // 1000
            self.sums.load(piece["rows"], settled)
        if "spend_rows" in piece:  # state written before spend has none
            settled = (self.watermark_ms - self.settings.allowed_lateness_ms) // 1000
            self.spend_sums.load(piece["spend_rows"], settled)
        for name, change in piece.get("counts", {}).items():
            getattr(self, name).load(change)
        for name, pairs in piece.get("indexes", {}).items():
            getattr(self, name).load(pairs)
        if "presence" in piece:
            self.presence.load(piece["presence"])
        if "settled" in piece:
            self.presence.load_settled(piece["settled"])
        if "products" in piece:
            self.products.load(piece["products"])
        if "marks" in piece:
            self.minute_marks.load(piece["marks"])

    def settle(self) -> None:
        """After a restore: expire what the restored watermark has left behind."""
        second = self.watermark_ms // 1000
        self.sums.advance(second, (self.watermark_ms - self.settings.allowed_lateness_ms) // 1000)
        self.spend_sums.advance(
            second, (self.watermark_ms - self.settings.allowed_lateness_ms) // 1000
        )
        for tracker in self._trackers:
            tracker.expire(second)
        self.presence.after_restore()
        for table in self._tables():  # loaded growing by half: as full as inserts keep them
            table.compact()

    def _tables(self) -> Iterator[FlatMap]:
        """The room's flat tables."""
        yield self.seen_event_ids.first_seen
        for index in (
            self.recent_viewers,
            self.recent_commenters,
            self.recent_carters,
            self.recent_buyers,
        ):
            yield index.last
        yield from (self.presence.at, self.presence.before)
        for name in self._COUNTS:
            exact = getattr(self, name).exact
            if exact is not None:
                yield exact
        yield from (self.products.carted, self.products.bought)


# The fold in C reads the classes' slots at their offsets and the layout from here.
_fold.setup(
    (RoomState, RecentIds, LastSeen, SecondSums, DistinctCount, Presence),
    (
        F_KIND,
        F_EVENT_ID,
        F_USER,
        F_TS,
        F_VIEW_ENTER,
        F_ORDER_AMOUNT,
        F_ORDER_PAID,
        VIEW,
        COMMENT,
        CART,
        ORDER,
        S_VIEWS,
        S_COMMENTS,
        S_CARTS,
        S_ORDERS,
        S_GMV,
        S_REFUNDS,
        S_NEGATIVE,
        S_SCORED,
        S_SCORE_SUM,
        APPLIED,
        LATE,
        DUPLICATE,
    ),
    -NEUTRAL_BAND,
    EXACT_LIMIT,
    REST_BITS,
    _widened_plus_one,
)
fold_event = _fold.apply  # RoomState.apply without its frame, for the partition's loop


def split_piece(piece: dict[str, Any], max_entries: int) -> Iterator[dict[str, Any]]:
    """A room's base or delta with its big tables cut into pieces of at most
    `max_entries` entries, made one at a time (the writer serialises each before making
    the next), so no step takes long. The first piece is the rest of the room's piece (a
    base's reset comes first); every entry is in exactly one piece."""
    room = piece["room"]
    indexes = piece.get("indexes", {})
    counts = piece.get("counts", {})
    big_indexes = [name for name, entries in indexes.items() if entry_count(entries) > max_entries]
    big_presence = entry_count(piece.get("presence", ())) > max_entries
    big_settled = entry_count(piece.get("settled", {}).get("before", ())) > max_entries
    big_counts = [n for n, c in counts.items() if entry_count(c.get("add", ())) > max_entries]
    if not (big_indexes or big_presence or big_settled or big_counts):
        yield piece
        return
    rest = dict(piece)
    if big_indexes:
        rest["indexes"] = {k: v for k, v in indexes.items() if k not in big_indexes}
    if big_presence:
        del rest["presence"]
    if big_settled:
        rest["settled"] = {**piece["settled"], "before": b""}
    if big_counts:
        rest["counts"] = {**counts, **{name: {"add": b""} for name in big_counts}}
    yield rest
    for name in big_indexes:
        for part in _parts(indexes[name], max_entries):
            yield {"room": room, "indexes": {name: part}}
    if big_presence:
        for part in _parts(piece["presence"], max_entries):
            yield {"room": room, "presence": part}
    if big_settled:
        for part in _parts(piece["settled"]["before"], max_entries):
            yield {"room": room, "settled": {"before": part}}
    for name in big_counts:
        for part in _parts(counts[name]["add"], max_entries):
            yield {"room": room, "counts": {name: {"add": part}}}


def _parts(entries: bytes, size: int) -> Iterator[bytes]:
    """Packed entries cut into runs of at most `size` entries."""
    step = size * ENTRY_BYTES
    for i in range(0, len(entries), step):
        yield entries[i : i + step]
