"""Per-room state: cumulative session totals, sliding event-time windows, presence.

Plain Python with an explicit clock: `apply` takes compact events (see
`streams.events`) and never looks at Kafka, wall time or Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.events import CART, COMMENT, ORDER, VIEW
from streams.rooms.distinct import DistinctCount
from streams.rooms.windows import LastSeen, SecondSums
from streams.sentiment.scorer import NEUTRAL_BAND

WINDOW_HORIZON_S = 300  # the longest sliding window (5 min)

# Columns of the per-second sums.
(S_VIEWS, S_COMMENTS, S_CARTS, S_ORDERS, S_GMV, S_REFUNDS, S_NEGATIVE, S_SCORED, S_SCORE_SUM) = (
    range(9)
)
SUM_COLUMNS = 9

# What `apply` did with an event.
APPLIED, LATE, DUPLICATE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RoomSettings:
    allowed_lateness_ms: int = 5_000
    session_timeout_s: int = 600
    # A repeated event_id within this much event time of the room's watermark is a
    # duplicate. Re-sends (client retries, our ingest after a crash) come within seconds
    # of event time; the memory it costs grows with events/s x horizon.
    dedup_horizon_s: int = 60


class RoomState:
    """Everything one live room needs to answer SPEC.md's metric definitions."""

    def __init__(self, room_id: str, settings: RoomSettings) -> None:
        self.room_id = room_id
        self.settings = settings
        self.watermark_ms = 0  # highest event time seen in the room
        self.applied_offset = -1  # source offset this state is known to include
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
        # Session distinct users: exact up to 10,000, then a sketch (SPEC: within 2 %).
        self.viewers = DistinctCount()
        self.commenters = DistinctCount()
        self.carters = DistinctCount()
        self.buyers = DistinctCount()
        # Sliding windows: sums per second, and distinct users by last-seen second.
        self.sums = SecondSums(SUM_COLUMNS, WINDOW_HORIZON_S)
        self.recent_viewers = LastSeen(WINDOW_HORIZON_S)
        self.recent_commenters = LastSeen(WINDOW_HORIZON_S)
        self.recent_carters = LastSeen(WINDOW_HORIZON_S)
        self.recent_buyers = LastSeen(WINDOW_HORIZON_S)
        # Online viewers: entered, not left, and active within the session timeout.
        self.present = LastSeen(settings.session_timeout_s)
        # Leaves of the last few seconds, with their event time: an `enter` that arrives
        # after its own `leave` (out of order across partitions) must not bring the user
        # back online.
        self.recent_leaves = LastSeen(settings.allowed_lateness_ms // 1000 + 2)
        self.left_at_ms: dict[str, int] = {}
        self.seen_event_ids = LastSeen(settings.dedup_horizon_s)
        self._trackers = (
            self.recent_viewers,
            self.recent_commenters,
            self.recent_carters,
            self.recent_buyers,
            self.present,
            self.seen_event_ids,
            self.recent_leaves,
        )

    @property
    def online(self) -> int:
        return len(self.present)

    def _advance(self, ts: int) -> None:
        old_second = self.watermark_ms // 1000
        self.watermark_ms = ts
        second = ts // 1000
        if second != old_second:
            self.sums.expire(second)
            for tracker in self._trackers:
                tracker.expire(second)

    def apply(self, event: tuple | list, sentiment: float | None = None) -> int:
        """Fold one compact event into the room; return APPLIED, LATE or DUPLICATE.

        `sentiment` is the comment's score in [-1, 1] when a scorer is configured; a
        comment is negative when its score is in the negative class (below the neutral
        band), as `streams.sentiment.classify` says.
        """
        kind, event_id, user, ts = event[0], event[1], event[2], event[3]
        second = ts // 1000
        if event_id in self.seen_event_ids:
            return DUPLICATE
        if ts > self.watermark_ms:
            self._advance(ts)
        self.seen_event_ids.touch(event_id, second)
        in_window = ts >= self.watermark_ms - self.settings.allowed_lateness_ms
        row = self.sums.row(second) if in_window else None

        if kind == VIEW:
            if event[5]:
                self.views += 1
                self.viewers.add(user)
                if not (user in self.recent_leaves and self.left_at_ms.get(user, -1) >= ts):
                    self.present.touch(user, second)
                if len(self.present) > self.peak_online:
                    self.peak_online = len(self.present)
                if row is not None:
                    row[S_VIEWS] += 1
                    self.recent_viewers.touch(user, second)
            else:
                self.present.remove(user)
                self.recent_leaves.touch(user, second)
                self.left_at_ms[user] = max(ts, self.left_at_ms.get(user, -1))
                if len(self.left_at_ms) > 2 * len(self.recent_leaves) + 1000:
                    self.left_at_ms = {
                        u: t for u, t in self.left_at_ms.items() if u in self.recent_leaves
                    }
        else:
            if user in self.present:  # any activity keeps a viewer online
                self.present.touch(user, second)
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
                if row is not None:
                    row[S_CARTS] += 1
                    self.recent_carters.touch(user, second)
            elif kind == ORDER:
                amount = event[8]
                if event[9]:
                    self.orders += 1
                    self.gmv += amount
                    self.buyers.add(user)
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

    # -- checkpoints -------------------------------------------------------------------

    _SCALARS = (
        "watermark_ms",
        "applied_offset",
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
    )
    _SETS = ("viewers", "commenters", "carters", "buyers")
    _INDEXES = (
        "recent_viewers",
        "recent_commenters",
        "recent_carters",
        "recent_buyers",
        "present",
        "seen_event_ids",
        "recent_leaves",
    )

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name) for name in self._SCALARS}
        for name in self._SETS:
            state[name] = getattr(self, name).to_state()
        for name in self._INDEXES:
            state[name] = getattr(self, name).to_state()
        state["sums"] = self.sums.to_state()
        state["left_at_ms"] = self.left_at_ms
        return state

    @classmethod
    def from_state(cls, room_id: str, settings: RoomSettings, state: dict[str, Any]) -> RoomState:
        room = cls(room_id, settings)
        for name in cls._SCALARS:
            setattr(room, name, state[name])
        for name in cls._SETS:
            setattr(room, name, DistinctCount.from_state(state[name]))
        for name in cls._INDEXES:
            getattr(room, name).load_state(state[name])
        room.sums.load_state(state["sums"])
        room.left_at_ms = dict(state["left_at_ms"])
        return room
