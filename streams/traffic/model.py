"""A traffic model of live rooms: Zipf popularity, a session shape, a shopping funnel.

Deterministic for a seed. Used by `liveroom demo` (and the load test): it yields
batches of SPEC.md events per input kind, for one simulated second at a time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

VIEWS, COMMENTS, CARTS, ORDERS = "views", "comments", "carts", "orders"

COMMENTS_POSITIVE = (
    "主播好美!",
    "yyds",
    "绝绝子",
    "买了买了",
    "真香",
    "已下单",
    "好便宜啊",
    "闭眼入",
    "love it 😍",
    "great price 👍",
    "🔥🔥🔥",
    "回购第三次了",
    "质量很好",
    "So good!",
)
COMMENTS_NEUTRAL = (
    "几号链接?",
    "包邮吗",
    "主播好",
    "有没有小码",
    "什么时候发货",
    "how much?",
    "来了来了",
    "能讲讲成分吗",
    "3号链接",
    "是正品吗",
    "hello from Shanghai",
)
COMMENTS_NEGATIVE = (
    "假货!",
    "骗子",
    "要退款",
    "质量太差了",
    "一直不发货",
    "用了过敏",
    "智商税",
    "避雷",
    "客服不理人",
    "翻车了",
    "割韭菜",
    "terrible quality 😡",
    "scam!!",
    "💩",
)
PREFIXES = ("", "", "", "主播", "这个", "真的", "家人们", "哈哈 ", "omg ")
SUFFIXES = ("", "", "", "!", "!!!", "～", "😂", "👍", "🔥🔥", "😡", "。", "?", "啊啊啊啊啊")


def comment_text(rng: random.Random, negative_share: float) -> str:
    """A live-room comment: a phrase of the wanted tone, sometimes decorated."""
    roll = rng.random()
    pool = (
        COMMENTS_NEGATIVE
        if roll < negative_share
        else COMMENTS_NEUTRAL
        if roll < negative_share + 0.35
        else COMMENTS_POSITIVE
    )
    text = rng.choice(pool)
    if rng.random() < 0.3:
        text = rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)
    return text


PRICES = (9.9, 19.9, 29.9, 39.0, 59.0, 69.9, 99.0, 129.0, 199.0, 299.0, 499.0, 999.0)


@dataclass
class Funnel:
    """Per-second behaviour of one online viewer."""

    enter_rate: float = 0.02  # new entries per online viewer per second (churn)
    comment_rate: float = 0.02
    cart_rate: float = 0.004
    order_rate: float = 1.0  # scales how fast carted users go on to pay
    refund_share: float = 0.03
    negative_share: float = 0.1


@dataclass
class Room:
    room_id: str
    peak_viewers: int
    online: list[str] = field(default_factory=list)
    carted: list[str] = field(default_factory=list)
    next_user: int = 0


class TrafficModel:
    """Rooms with Zipf-distributed peak audiences, ramping up over `ramp_s` seconds."""

    def __init__(
        self,
        rooms: int = 30,
        total_viewers: int = 20_000,
        seed: int = 1,
        zipf_s: float = 1.1,
        ramp_s: float = 30.0,
        funnel: Funnel | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.funnel = funnel or Funnel()
        self.ramp_s = ramp_s
        weights = [1.0 / (rank**zipf_s) for rank in range(1, rooms + 1)]
        scale = total_viewers / sum(weights)
        self.rooms = [
            Room(f"room-{rank:03d}", max(5, int(w * scale)))
            for rank, w in enumerate(weights, start=1)
        ]
        self._event_seq = 0

    def _event_id(self) -> str:
        self._event_seq += 1
        return f"sim-{self._event_seq}"

    def _count(self, mean: float) -> int:
        """A Poisson-ish draw, cheap for large means."""
        if mean <= 0:
            return 0
        if mean > 30:
            return max(0, int(self.rng.gauss(mean, math.sqrt(mean)) + 0.5))
        k, p, limit = 0, 1.0, math.exp(-mean)
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def second(self, t: float, ts_ms: int) -> dict[str, list[dict]]:
        """Events of every room for the simulated second `t` since the session start."""
        out: dict[str, list[dict]] = {VIEWS: [], COMMENTS: [], CARTS: [], ORDERS: []}
        shape = min(1.0, (t + 1) / self.ramp_s)
        for room in self.rooms:
            self._room_second(room, shape, ts_ms, out)
        return out

    def _room_second(self, room: Room, shape: float, ts_ms: int, out: dict[str, list]) -> None:
        rng, f = self.rng, self.funnel
        target = room.peak_viewers * shape
        base = {"room_id": room.room_id}

        def event(**fields: object) -> dict:
            return {
                "event_id": self._event_id(),
                **base,
                "ts": ts_ms + rng.randrange(1000),
                **fields,
            }

        # Entries top the room up towards its target; churn makes some leave.
        joins = self._count(max(0.0, target - len(room.online)) * 0.2 + target * f.enter_rate)
        for _ in range(joins):
            room.next_user += 1
            user = f"{room.room_id}-u{room.next_user}"
            room.online.append(user)
            out[VIEWS].append(event(type="view", user_id=user, action="enter"))
        for _ in range(min(len(room.online), self._count(len(room.online) * f.enter_rate))):
            user = room.online.pop(rng.randrange(len(room.online)))
            out[VIEWS].append(event(type="view", user_id=user, action="leave"))
        if not room.online:
            return
        for _ in range(self._count(len(room.online) * f.comment_rate)):
            text = comment_text(rng, f.negative_share)
            out[COMMENTS].append(event(type="comment", user_id=rng.choice(room.online), text=text))
        for _ in range(self._count(len(room.online) * f.cart_rate)):
            user = rng.choice(room.online)
            room.carted.append(user)
            out[CARTS].append(
                event(
                    type="cart",
                    user_id=user,
                    product_id=f"p{rng.randrange(12)}",
                    quantity=1 + (rng.random() < 0.1),
                )
            )
        for _ in range(min(len(room.carted), self._count(len(room.carted) * f.order_rate * 0.2))):
            user = room.carted.pop(rng.randrange(len(room.carted)))
            quantity = 1 + (rng.random() < 0.1)
            refunded = rng.random() < f.refund_share
            out[ORDERS].append(
                event(
                    type="order",
                    user_id=user,
                    order_id=f"o{self._event_seq}",
                    product_id=f"p{rng.randrange(12)}",
                    quantity=quantity,
                    amount=round(rng.choice(PRICES) * quantity, 2),
                    status="refunded" if refunded else "paid",
                )
            )
        if len(room.carted) > 1000:
            del room.carted[:500]

    def run(self, start_ms: int, seconds: int) -> Iterator[tuple[int, dict[str, list[dict]]]]:
        for t in range(seconds):
            ts = start_ms + t * 1000
            yield ts, self.second(t, ts)
