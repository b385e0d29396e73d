"""The JSON the live rooms page reads, built from the same room snapshots as /metrics
and the room-metrics topic (so the three never disagree), plus what a page needs that
a snapshot does not hold: a 5-minute trail per room and each room's alert history.

Nothing here carries a user id or comment text: snapshots hold counts only, and alert
samples are keyword hits with ids already removed (streams.alerts).
"""

from __future__ import annotations

import collections
from array import array
from collections.abc import Iterable
from typing import Any

TRAIL_STEP_S = 10  # one sparkline point per 10 s...
TRAIL_POINTS = 30  # ...over the last 5 minutes
HISTORY_PER_ROOM = 20
SORTS = ("gmv_per_minute", "online_viewers", "roi", "alerts")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# The alert fields the page shows; descriptions and urls stay in the alert record.
ALERT_FIELDS = (
    "alert_id",
    "kind",
    "key",  # which series, keyword list or product (a product id is not a user's)
    "severity",
    "status",
    "starts_at_ms",
    "ends_at_ms",
    "summary",
    "value",
    "threshold",
    "samples",
)


class Trail:
    """A room's sparkline: its last TRAIL_POINTS points [t_ms, online viewers, GMV in the
    last minute], oldest first, in two arrays. As a deque of 3-item lists a point was ~160
    bytes of objects: 28.6 MB at 5,000 rooms (tracemalloc), where these take ~1 kB a room."""

    __slots__ = ("gmv", "ints")

    def __init__(self) -> None:
        self.ints = array("q")  # t_ms, online viewers; t_ms, online viewers; ...
        self.gmv = array("d")

    def put(self, step_ms: int, online: int, gmv: float) -> None:
        """The point of `step_ms`: a new one, or the latest again (the latest wins)."""
        ints, amounts = self.ints, self.gmv
        if ints and ints[-2] == step_ms:
            ints[-1], amounts[-1] = online, gmv
            return
        if len(amounts) == TRAIL_POINTS:
            del ints[:2], amounts[:1]
        ints.extend((step_ms, online))
        amounts.append(gmv)

    def points(self) -> list[list[Any]]:
        ints = self.ints
        return [[ints[2 * i], ints[2 * i + 1], gmv] for i, gmv in enumerate(self.gmv)]


def _alert(record: dict[str, Any]) -> dict[str, Any]:
    return {field: record.get(field) for field in ALERT_FIELDS}


class LiveView:
    def __init__(self) -> None:
        self._trails: dict[str, Trail] = {}
        self._history: dict[str, collections.deque[dict[str, Any]]] = {}

    # -- fed by the worker -----------------------------------------------------------------

    def observe(self, snap: dict[str, Any], now: float) -> None:
        """A room's new snapshot: extend its trail (one point per 10 s, the latest wins)."""
        trail = self._trails.get(snap["room_id"])
        if trail is None:
            trail = self._trails[snap["room_id"]] = Trail()
        step = int(now) // TRAIL_STEP_S * TRAIL_STEP_S * 1000
        trail.put(step, snap["online_viewers"], snap["windows"]["1m"]["gmv_yuan"])

    def alert(self, record: dict[str, Any]) -> None:
        """An alert record as sent (firing or resolved): the room's history, newest first."""
        history = self._history.get(record["room_id"])
        if history is None:
            history = self._history[record["room_id"]] = collections.deque(maxlen=HISTORY_PER_ROOM)
        history.appendleft(_alert(record))

    def keep_only(self, live: Iterable[str]) -> None:
        """Drop trails and histories of rooms no longer live here."""
        keep = set(live)
        for store in (self._trails, self._history):
            for room_id in [r for r in store if r not in keep]:
                del store[room_id]

    # -- read by the page ------------------------------------------------------------------

    def _trail(self, room_id: str) -> list[list[Any]]:
        trail = self._trails.get(room_id)
        return [] if trail is None else trail.points()

    def overview(
        self,
        snapshots: list[dict[str, Any]],
        firing: list[dict[str, Any]],
        health: dict[str, Any],
        now: float,
        sort: str = SORTS[0],
        limit: int = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """`GET /api/rooms`: the top `limit` rooms by `sort`, one row each, and health."""
        alerts_by_room: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for record in firing:
            alerts_by_room[record["room_id"]].append(_firing(record, now))
        key = {
            "gmv_per_minute": lambda s: s["windows"]["1m"]["gmv_yuan"],
            "online_viewers": lambda s: s["online_viewers"],
            # rooms without spend (no ROI) after every room with one
            "roi": lambda s: (
                s["windows"]["session"].get("roi") is not None,
                s["windows"]["session"].get("roi") or 0.0,
            ),
            "alerts": lambda s: (len(alerts_by_room.get(s["room_id"], ())), s["online_viewers"]),
        }[sort if sort in SORTS else SORTS[0]]
        top = sorted(snapshots, key=key, reverse=True)[: max(1, min(limit, MAX_LIMIT))]
        return {
            "generated_at_ms": int(now * 1000),
            "sort": sort if sort in SORTS else SORTS[0],
            "rooms_total": len(snapshots),
            "alerts_firing": len(firing),
            "health": health,
            "rooms": [self._row(s, alerts_by_room.get(s["room_id"], [])) for s in top],
        }

    def _row(self, snap: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
        w1, w5 = snap["windows"]["1m"], snap["windows"]["5m"]
        return {
            "room_id": snap["room_id"],
            "watermark_ms": snap["watermark_ms"],
            "online_viewers": snap["online_viewers"],
            "entries_per_minute": snap["entries_per_minute"],
            "interaction_ratio": w5["interaction_ratio"],
            "cart_ratio": w5["cart_ratio"],
            "conversion_ratio": w5["conversion_ratio"],
            "gmv_yuan_total": snap["gmv_yuan_total"],
            "gmv_per_minute": w1["gmv_yuan"],
            "gpm_yuan": w5["gpm_yuan"],
            "negative_comment_ratio": w5["negative_comment_ratio"],
            "spend_yuan_total": snap.get("spend_yuan_total", 0.0),
            "roi": snap["windows"]["session"].get("roi"),
            "band": snap.get("band"),
            "peers": snap.get("peers", {}),
            "change": snap.get("change", {}),
            "alerts": alerts,
            "trail": self._trail(snap["room_id"]),
        }

    def room(
        self,
        snap: dict[str, Any],
        firing: list[dict[str, Any]],
        health: dict[str, Any],
        now: float,
    ) -> dict[str, Any]:
        """`GET /api/rooms/<room_id>`: the whole snapshot, the last minute's funnel, the
        trail, firing alerts and the alert history."""
        w1 = snap["windows"]["1m"]
        return {
            "generated_at_ms": int(now * 1000),
            "room": snap,
            "funnel_1m": {
                "events": {
                    "entries": w1["views"],
                    "cart_adds": w1["cart_adds"],
                    "orders": w1["orders"],
                },
                "users": {
                    "viewers": w1["unique_viewers"],
                    "cart_users": w1["cart_users"],
                    "buyers": w1["buyers"],
                },
            },
            "trail": self._trail(snap["room_id"]),
            "alerts_firing": [_firing(r, now) for r in firing if r["room_id"] == snap["room_id"]],
            "alert_history": list(self._history.get(snap["room_id"], ())),
            "health": health,
        }


def _firing(record: dict[str, Any], now: float) -> dict[str, Any]:
    out = _alert(record)
    out["age_seconds"] = max(0.0, round(now - record["starts_at_ms"] / 1000, 1))
    return out


class RateMeter:
    """Per second over the last few seconds, from a cumulative total sampled on a timer."""

    def __init__(self, span_s: float = 5.0) -> None:
        self.span_s = span_s
        self._samples: collections.deque[tuple[float, float]] = collections.deque()

    def sample(self, total: float, now: float) -> None:
        samples = self._samples
        samples.append((now, total))
        while len(samples) > 2 and now - samples[0][0] > self.span_s:
            samples.popleft()

    @property
    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0
