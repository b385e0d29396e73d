"""A split room's shards merged into one room (issue 38).

Each shard of a split room (streams.rooms.shards) folds its own viewers' events into a
plain `RoomState` and, once a second, sums it up in a *partial*: absolute figures, so a
partial applied twice, or an older one after a newer, changes nothing. Shards' users
are disjoint, so everything adds up: session totals, distinct users (exact below
10,000 a room since each shard is exact below that; each shard's sketch within 2 %
above, so their sum too), online viewers, per-minute marks, and window sums and
window distinct counts evaluated at one watermark.

The room's watermark is the highest of its shards'. A shard sends its windows ending
at its own watermark and at each of the next `LEAD_S` seconds, so the merger evaluates
every shard's windows at the room's watermark: exact while no shard is more than
`LEAD_S` seconds of event time behind the leading one (a shard further behind counts
with its windows `LEAD_S` seconds ahead of its own watermark).

PCU is the peak, over settled seconds, of the shards' online counts at the end of the
same second (streams.rooms.presence samples per second for this): merged up to the
last second every shard has settled.
"""

from __future__ import annotations

from typing import Any

from streams.rooms.metrics import WINDOW_SECONDS, WindowFigures, funnel, window_funnel
from streams.rooms.products import product_list, step_counts
from streams.rooms.room import RoomState
from streams.rooms.trend import MinuteMarks

LEAD_S = 10
ROWS_SENT_S = 20  # seconds of per-second sums in a partial (for the alert detectors)
SAMPLES_OVERLAP_S = 120  # samples sent again: a merger restored from its checkpoint gets back
# those it had not merged yet (shards settle ~the lateness behind; checkpoints are seconds apart)
TOTALS = (
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
    "spend",
)
DISTINCT = ("viewers", "commenters", "carters", "buyers")
RECENT = ("recent_viewers", "recent_commenters", "recent_carters", "recent_buyers")


def shard_partial(
    state: RoomState, shard: int, shards: int, offset: int, since: int = 0
) -> dict[str, Any]:
    """What shard `shard` of `shards` tells the merger: absolute, idempotent. `offset`
    orders a shard's partials (its partition's applied room-events offset); the online
    samples after second `since` go with it (the caller sends each at least once)."""
    watermark_s = state.watermark_ms // 1000
    windows = {}
    for length in WINDOW_SECONDS.values():
        first = watermark_s - length + 1
        spans = [(length, first + lead) for lead in range(LEAD_S + 1)]
        windows[str(length)] = {
            "first": first,
            "sums": state.sums.window_sums(spans),
            "spend": [row[0] for row in state.spend_sums.window_sums(spans)],
            "counts": [[getattr(state, name).count_since(f) for name in RECENT] for _, f in spans],
        }
    samples = [sample for sample in state.presence.samples or () if sample[0] > since]
    return {
        "room_id": state.room_id,
        "shard": shard,
        "shards": shards,
        "offset": offset,
        "watermark_ms": state.watermark_ms,
        "totals": [getattr(state, name) for name in TOTALS],
        "distinct": [len(getattr(state, name)) for name in DISTINCT],
        "online": state.online,
        "settled_peak": state.peak_online,
        "samples": samples,
        "sampled_through": state.presence.sampled_through,
        "windows": windows,
        "marks": state.minute_marks.rows(),
        # The last seconds' rows for the room's alert detectors, and the last second no
        # event within the lateness can still change.
        "rows": [
            [second, list(row)]
            for second in range(watermark_s - ROWS_SENT_S + 1, watermark_s + 1)
            if (row := state.sums.get(second)) is not None
        ],
        "rows_final": (state.watermark_ms - state.settings.allowed_lateness_ms) // 1000 - 1,
        "products": state.products.partial(),
        "products_per_room": state.settings.products_per_room,
    }


class MergedRoom:
    """The merger's view of one split room: the latest partial of each shard, and the
    room's PCU merged from their per-second samples."""

    __slots__ = (
        "merged_through",
        "partials",
        "peak",
        "room_id",
        "rows",
        "samples",
        "shards",
        "through",
    )

    def __init__(self, room_id: str, shards: int) -> None:
        self.room_id = room_id
        self.shards = shards
        self.partials: dict[int, dict[str, Any]] = {}
        self.samples: dict[int, dict[int, int]] = {}  # shard -> second -> online at its end
        self.through: dict[int, int] = {}  # shard -> the last second it has sampled
        self.rows: dict[int, dict[int, list[float]]] = {}  # shard -> second -> sums row
        self.merged_through = 0  # the last second in the peak
        self.peak = 0

    def take(self, partial: dict[str, Any]) -> bool:
        """Keep a shard's partial unless an equal or newer one is held; whether kept."""
        shard = partial["shard"]
        held = self.partials.get(shard)
        if held is not None and held["offset"] >= partial["offset"]:
            return False
        self.shards = partial["shards"]
        self.partials[shard] = partial
        self.samples.setdefault(shard, {}).update(
            (second, online) for second, online in partial["samples"]
        )
        self.through[shard] = max(self.through.get(shard, 0), partial["sampled_through"])
        rows = self.rows.setdefault(shard, {})
        rows.update((second, row) for second, row in partial["rows"])
        for second in [s for s in rows if s < partial["rows_final"] - 2 * ROWS_SENT_S]:
            del rows[second]
        self._merge_peak()
        return True

    def _merge_peak(self) -> None:
        """Add the seconds every shard has settled to the peak."""
        if len(self.samples) < self.shards or not all(self.samples.values()):
            return
        upto = min(self.through.values())
        start = max(self.merged_through + 1, min(min(s) for s in self.samples.values()))
        for second in range(start, upto + 1):
            total = sum(_at(by_second, second) for by_second in self.samples.values())
            self.peak = max(self.peak, total)
        self.merged_through = max(self.merged_through, upto)
        for by_second in self.samples.values():  # keep the last at or before the merge
            # sorted: samples sent again are inserted again, out of second order
            older = sorted(s for s in by_second if s < self.merged_through)
            for s in older[:-1]:
                del by_second[s]

    def rows_final(self) -> int:
        """The last second every shard has final rows for (-1: not every shard yet)."""
        if len(self.partials) < self.shards:
            return -1
        return min(p["rows_final"] for p in self.partials.values())

    def row(self, second: int) -> list[float] | None:
        """The room's per-second sums row: the shards' added up (None: no event)."""
        rows = [r for by_second in self.rows.values() if (r := by_second.get(second))]
        if not rows:
            return None
        return [sum(column) for column in zip(*rows, strict=True)]

    def product_step(self, step: int) -> dict[str, tuple[int, int]]:
        """Each product's (cart adds, orders) in product step `step`, the shards' added
        up (from each one's latest partial: its ring holds the last few steps)."""
        out: dict[str, tuple[int, int]] = {}
        for partial in self.partials.values():
            for pid, product in partial.get("products", {}).items():
                carts, orders = step_counts(product["ring"], step)
                if carts or orders:
                    have = out.get(pid, (0, 0))
                    out[pid] = (have[0] + carts, have[1] + orders)
        return out

    @property
    def online(self) -> int:
        return sum(p["online"] for p in self.partials.values())

    def snapshot(self) -> dict[str, Any] | None:
        """The room's snapshot from its shards' partials (None before any)."""
        parts = list(self.partials.values())
        if not parts:
            return None
        watermark_ms = max(p["watermark_ms"] for p in parts)
        watermark_s = watermark_ms // 1000
        totals = [sum(p["totals"][i] for p in parts) for i in range(len(TOTALS))]
        t = dict(zip(TOTALS, totals, strict=True))
        distinct = [sum(p["distinct"][i] for p in parts) for i in range(len(DISTINCT))]
        windows: dict[str, WindowFigures] = {}
        for name, length in WINDOW_SECONDS.items():
            sums = [0.0] * 9
            counts = [0] * len(RECENT)
            spend = 0.0
            first = watermark_s - length + 1
            for p in parts:
                w = p["windows"][str(length)]
                lead = min(max(first - w["first"], 0), LEAD_S)
                spend += w["spend"][lead]
                for i, v in enumerate(w["sums"][lead]):
                    sums[i] += v
                for i, v in enumerate(w["counts"][lead]):
                    counts[i] += v
            windows[name] = window_funnel(sums, counts, spend)
        windows["session"] = funnel(
            views=t["views"],
            unique_viewers=distinct[0],
            commenters=distinct[1],
            carters=distinct[2],
            buyers=distinct[3],
            orders=t["orders"],
            gmv=t["gmv"],
            comments=t["comments"],
            cart_adds=t["cart_adds"],
            refunds_yuan=t["refund_amount"],
            negative=t["negative_comments"],
            scored=t["scored_comments"],
            score_sum=t["score_sum"],
            spend=t["spend"],
        )
        online = sum(p["online"] for p in parts)
        return {
            "room_id": self.room_id,
            "watermark_ms": watermark_ms,
            "online_viewers": online,
            "peak_online_viewers": max(self.peak, online),
            "entries_per_minute": windows["1m"]["views"],
            "views_total": t["views"],
            "comments_total": t["comments"],
            "cart_adds_total": t["cart_adds"],
            "orders_total": t["orders"],
            "refunds_total": t["refunds"],
            "gmv_yuan_total": t["gmv"],
            "refunds_yuan_total": t["refund_amount"],
            "spend_yuan_total": t["spend"],
            "windows": windows,
            "change": _summed_marks(parts).change(watermark_s // 60),
            "shards": self.shards,
            **(
                {
                    "products": product_list(
                        [p["products"] for p in parts],
                        watermark_ms,
                        parts[0].get("products_per_room", 20),
                    )
                }
                if any(p.get("products") for p in parts)
                else {}
            ),
        }


def _at(by_second: dict[int, int], second: int) -> int:
    """A shard's online count at the end of `second`: its last sample at or before it
    (a second left out repeats the one before; none yet: 0)."""
    best, value = None, 0
    for s, v in by_second.items():
        if s <= second and (best is None or s > best):
            best, value = s, v
    return value


def _summed_marks(parts: list[dict[str, Any]]) -> MinuteMarks:
    """The shards' minute marks added up: a shard without a mark for a minute before
    its first had nothing yet; after its last, the room has not reached it everywhere."""
    summed = MinuteMarks()
    per_shard = [{minute: totals for minute, totals in p["marks"]} for p in parts if p["marks"]]
    if not per_shard:
        return summed
    last = min(max(marks) for marks in per_shard)
    minutes = sorted({m for marks in per_shard for m in marks if m <= last})
    for minute in minutes:
        rows = [marks.get(minute) for marks in per_shard]
        if any(
            row is None and minute > min(marks) for row, marks in zip(rows, per_shard, strict=True)
        ):
            continue
        width = len(next(row for row in rows if row is not None))
        summed.put(minute, [sum(row[i] for row in rows if row is not None) for i in range(width)])
    return summed
