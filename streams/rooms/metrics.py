"""The funnel formulas of SPEC.md, applied to a room's session totals and windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.rooms.figures import Figures
from streams.rooms.room import (
    S_CARTS,
    S_COMMENTS,
    S_GMV,
    S_NEGATIVE,
    S_ORDERS,
    S_REFUNDS,
    S_SCORE_SUM,
    S_SCORED,
    S_VIEWS,
    RoomState,
)

WINDOWS = ("1m", "5m", "session")
WINDOW_SECONDS = {"1m": 60, "5m": 300}

# Gauges that carry a `window` label, in exposition order.
WINDOWED_GAUGES = (
    "unique_viewers",
    "buyers",
    "interaction_ratio",
    "cart_ratio",
    "conversion_ratio",
    "cart_to_order_ratio",
    "gpm_yuan",
    "uv_value_yuan",
    "average_order_value_yuan",
    "negative_comment_ratio",
    "comment_sentiment_score",
    "roi",
)


def _ratio(numerator: float, denominator: float) -> float | None:
    """A share in 0-1; None (not exported) when the denominator is 0.

    Users can act without an `enter` we saw (a lost view event), so a distinct-user
    share is capped at 1 rather than exported as an impossible ratio.
    """
    if not denominator:
        return None
    return min(numerator / denominator, 1.0)


def _per(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    if not denominator:
        return None
    return numerator / denominator * scale


@dataclass(slots=True)
class WindowFigures(Figures):
    """A window's figures, as the snapshot's `windows` holds them (README: the
    room-metrics topic)."""

    views: int
    comments: int
    cart_adds: int
    orders: int
    gmv_yuan: float
    refunds_yuan: float
    unique_viewers: int
    commenters: int
    cart_users: int
    buyers: int
    interaction_ratio: float | None
    cart_ratio: float | None
    conversion_ratio: float | None
    cart_to_order_ratio: float | None
    gpm_yuan: float | None
    uv_value_yuan: float | None
    average_order_value_yuan: float | None
    negative_comment_ratio: float | None
    comment_sentiment_score: float | None
    spend_yuan: float
    roi: float | None  # 投产比: not a 0-1 share; absent while nothing was spent (SPEC)
    net_roi: float | None  # refunds taken off (README)


def funnel(
    *,
    views: int,
    unique_viewers: int,
    commenters: int,
    carters: int,
    buyers: int,
    orders: int,
    gmv: float,
    comments: int,
    cart_adds: int,
    refunds_yuan: float,
    negative: int,
    scored: int,
    score_sum: float = 0.0,
    spend: float = 0.0,
) -> WindowFigures:
    """Every windowed metric from the raw counts of one window."""
    return WindowFigures(
        views,
        comments,
        cart_adds,
        orders,
        gmv,
        refunds_yuan,
        unique_viewers,
        commenters,
        carters,
        buyers,
        _ratio(commenters, unique_viewers),
        _ratio(carters, unique_viewers),
        _ratio(buyers, unique_viewers),
        _ratio(buyers, carters),
        _per(gmv, views, 1000.0),
        _per(gmv, unique_viewers),
        _per(gmv, buyers),
        _ratio(negative, scored),
        _per(score_sum, scored),
        spend,
        _per(gmv, spend),
        _per(gmv - refunds_yuan, spend),
    )


def window_funnel(sums: Sequence[float], users: Sequence[int], spend: float) -> WindowFigures:
    """A window's funnel from its summed per-second row (the S_ columns) and its distinct
    viewers, commenters, carters and buyers (also how a split room's merge builds it)."""
    return funnel(
        views=int(sums[S_VIEWS]),
        unique_viewers=users[0],
        commenters=users[1],
        carters=users[2],
        buyers=users[3],
        orders=int(sums[S_ORDERS]),
        gmv=sums[S_GMV],
        comments=int(sums[S_COMMENTS]),
        cart_adds=int(sums[S_CARTS]),
        refunds_yuan=sums[S_REFUNDS],
        negative=int(sums[S_NEGATIVE]),
        scored=int(sums[S_SCORED]),
        score_sum=sums[S_SCORE_SUM],
        spend=spend,
    )


def snapshot(room: RoomState) -> dict[str, Any]:
    """The room's metric snapshot: what goes to `liveroom.room-metrics` and /metrics."""
    windows: dict[str, WindowFigures] = {}
    watermark_s = room.watermark_ms // 1000
    spans = [(length, watermark_s - length + 1) for length in WINDOW_SECONDS.values()]
    all_sums = room.sums.window_sums(spans)  # the two share their unsettled rows
    all_spend = room.spend_sums.window_sums(spans)
    for name, (length, first), sums, spent in zip(
        WINDOW_SECONDS, spans, all_sums, all_spend, strict=True
    ):
        users = [
            count.window_count(length, first)
            for count in (
                room.recent_viewers,
                room.recent_commenters,
                room.recent_carters,
                room.recent_buyers,
            )
        ]
        windows[name] = window_funnel(sums, users, spent[0])
    windows["session"] = funnel(
        views=room.views,
        unique_viewers=len(room.viewers),
        commenters=len(room.commenters),
        carters=len(room.carters),
        buyers=len(room.buyers),
        orders=room.orders,
        gmv=room.gmv,
        comments=room.comments,
        cart_adds=room.cart_adds,
        refunds_yuan=room.refund_amount,
        negative=room.negative_comments,
        scored=room.scored_comments,
        score_sum=room.score_sum,
        spend=room.spend,
    )
    return {
        "room_id": room.room_id,
        "watermark_ms": room.watermark_ms,
        "online_viewers": room.online,
        "peak_online_viewers": room.pcu,
        "entries_per_minute": windows["1m"]["views"],
        "views_total": room.views,
        "comments_total": room.comments,
        "cart_adds_total": room.cart_adds,
        "orders_total": room.orders,
        "refunds_total": room.refunds,
        "gmv_yuan_total": room.gmv,
        "refunds_yuan_total": room.refund_amount,
        "spend_yuan_total": room.spend,
        "windows": windows,
        "change": room.minute_marks.change(watermark_s // 60),
        **(
            {"products": room.products.listing(room.watermark_ms, room.settings.products_per_room)}
            if room.products.items
            else {}
        ),
    }
