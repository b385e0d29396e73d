"""A traffic model of live rooms: Zipf popularity, a session shape, a shopping funnel,
and the products a room sells (Zipf popularity, one listed at each launch; a product
whose link is broken gets carts and no orders).

Deterministic for a seed. Used by `liveroom demo`, the load test and the benchmarks:
it yields batches of SPEC.md events per input kind, one simulated second at a time,
with optional imperfections (duplicates, late and malformed events).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from streams.traffic.session import Factors, ProductMix, SessionShape

VIEWS, COMMENTS, CARTS, ORDERS, SPEND = "views", "comments", "carts", "orders", "spend"
KINDS = (VIEWS, COMMENTS, CARTS, ORDERS, SPEND)  # in the order of the input topics
AD_CHANNELS = ("qianchuan", "zhitongche", "feed")
SPEND_EVERY_S = 10  # a room's ad platforms report spend about this often
SPEND_PER_VIEWER_S = 0.004  # yuan a viewer-second of traffic costs (ROI ~2-5 here)

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
# Everyday complaints: none names a phrase of the default alert watch-lists
# (streams/alerts/default_rules.toml), so a room's usual grumbling is not a KeywordHit.
COMMENTS_NEGATIVE = (
    "质量太差了",
    "客服不理人",
    "翻车了",
    "智商税",
    "避雷",
    "太贵了",
    "太失望了",
    "色差好大",
    "做工太差",
    "后悔买了",
    "又卡了",
    "terrible quality 😡",
    "so disappointed",
    "💩",
)
# Complaints that name a watch-list phrase (fraud, counterfeit, refund, safety): in real
# rooms a small part of the complaints, RISK_SHARE of them here, spread over four lists;
# a KeywordHit needs one list at 3 % of a room's comments, which takes a real wave.
COMMENTS_RISK = (
    "假货!",
    "骗子",
    "要退款",
    "一直不发货",
    "用了过敏",
    "割韭菜",
    "scam!!",
)
RISK_SHARE = 0.05
PREFIXES = ("", "", "", "主播", "这个", "真的", "家人们", "哈哈 ", "omg ")
SUFFIXES = ("", "", "", "!", "!!!", "～", "😂", "👍", "🔥🔥", "😡", "。", "?", "啊啊啊啊啊")


JOINERS = ("，", " ", "！", "", "。")
# Live-room comments (弹幕) are mostly 5-20 characters with a tail to ~60: a log-normal
# length with median 11 (7 % under 5, 14 % over 20, 1 % over 40), capped at 60.
LENGTH_MEDIAN, LENGTH_SIGMA, LENGTH_MAX = 11, 0.55, 60


def comment_text(rng: random.Random, negative_share: float) -> str:
    """A live-room comment: phrases of the wanted tone (with neutral chatter mixed in)
    joined up to a realistic length, sometimes decorated."""
    roll = rng.random()
    pool = (
        COMMENTS_NEGATIVE
        if roll < negative_share
        else COMMENTS_NEUTRAL
        if roll < negative_share + 0.35
        else COMMENTS_POSITIVE
    )
    target = min(LENGTH_MAX, round(rng.lognormvariate(math.log(LENGTH_MEDIAN), LENGTH_SIGMA)))
    if pool is COMMENTS_NEGATIVE and rng.random() < RISK_SHARE:
        text = rng.choice(COMMENTS_RISK)
    else:
        text = rng.choice(pool)
    for _ in range(20):  # phrases until the length is reached
        if len(text) >= target - 2:
            break
        more = rng.choice(pool if rng.random() < 0.6 else COMMENTS_NEUTRAL)
        if more not in text:  # people add a thought, not the same one again
            text = text + rng.choice(JOINERS) + more
    if rng.random() < 0.3:
        text = rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)
    return text[:LENGTH_MAX]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (normal approximation above a mean of 30: cheap for big rooms)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, int(rng.gauss(mean, math.sqrt(mean)) + 0.5))
    k, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def order_price(rng: random.Random) -> float:
    """A live-commerce price: log-normal around ~¥79 (most items ¥19-¥299, a tail of
    big-ticket ones), ending in .9 or .0 as shops price them."""
    price = math.exp(rng.gauss(math.log(79.0), 0.9))
    price = min(max(price, 1.0), 9_999.0)
    return float(int(price)) + (0.9 if rng.random() < 0.6 else 0.0)


# A room without a session shape sells 12 products of Zipf popularity from the start.
DEFAULT_MIX = ProductMix(tuple(1.0 / (k + 1) for k in range(12)), frozenset())


@dataclass
class Funnel:
    """Per-second behaviour of one online viewer."""

    enter_rate: float = 0.02  # new entries per online viewer per second (churn)
    comment_rate: float = 0.02
    cart_rate: float = 0.004
    order_rate: float = 1.0  # scales how fast carted users go on to pay
    refund_share: float = 0.03
    negative_share: float = 0.1

    def events_per_viewer(self) -> float:
        """Events per online viewer per second at the plateau: enter + leave churn,
        comments, carts, and the orders that follow most carts."""
        return 2 * self.enter_rate + self.comment_rate + self.cart_rate * 1.9


@dataclass
class Imperfections:
    """What real input has that a clean simulation lacks (shares of all events)."""

    duplicate_share: float = 0.0  # sent twice with the same event_id (client retries)
    late_share: float = 0.0  # event time 10-30 s in the past (beyond the allowed lateness)
    malformed_share: float = 0.0  # a required field missing: rejected to the dead letters


@dataclass
class Room:
    room_id: str
    peak_viewers: int
    session: SessionShape | None = None
    online: list[str] = field(default_factory=list)
    carted: list[tuple[str, int]] = field(default_factory=list)  # (user, product number)
    next_user: int = 0


class TrafficModel:
    """Rooms with Zipf-distributed peak audiences following a session shape.

    Without explicit `sessions`, a room ramps up over `ramp_s` seconds and stays (the
    demo). With them, each room follows its SessionShape: launches, announced flash
    sales, decay and labelled incidents.
    """

    def __init__(
        self,
        rooms: int = 30,
        total_viewers: int = 20_000,
        seed: int = 1,
        zipf_s: float = 1.1,
        ramp_s: float = 30.0,
        funnel: Funnel | None = None,
        imperfections: Imperfections | None = None,
        sessions: dict[int, SessionShape] | None = None,
        only: Callable[[int], bool] | None = None,
        warm_start: bool = False,
        top_share: float | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.funnel = funnel or Funnel()
        self.imperfections = imperfections or Imperfections()
        self.ramp_s = ramp_s
        weights = [1.0 / (rank**zipf_s) for rank in range(1, rooms + 1)]
        if top_share is not None and rooms > 1:  # a head room's share, the rest by Zipf
            rest = sum(weights[1:])
            weights = [top_share] + [w / rest * (1 - top_share) for w in weights[1:]]
        scale = total_viewers / sum(weights)
        self.rooms = [
            Room(f"room-{rank:0{max(3, len(str(rooms)))}d}", max(5, int(w * scale)))
            for rank, w in enumerate(weights, start=1)
        ]
        for index, room in enumerate(self.rooms):
            room.session = (sessions or {}).get(index)
        if only is not None:  # one producer process's share of the rooms
            self.rooms = [r for i, r in enumerate(self.rooms) if only(i)]
        if warm_start:
            # The audience is already in the room when the run starts (a load test
            # measures the plateau, not the crowd arriving); the worker meets them as
            # they comment, buy and leave, and counts the new ones entering.
            for room in self.rooms:
                audience = room.session.audience(0) if room.session else 1.0
                room.next_user = int(room.peak_viewers * audience)
                room.online = [f"{room.room_id}-u{n}" for n in range(1, room.next_user + 1)]
        self._event_seq = 0
        self._prefix = f"sim{seed}-"
        self.injected = {"duplicates": 0, "late": 0, "malformed": 0}

    @staticmethod
    def viewers_for_rate(rate: float, funnel: Funnel | None = None) -> int:
        """Total plateau audience that produces about `rate` events per second."""
        return max(1, int(rate / (funnel or Funnel()).events_per_viewer()))

    def _event_id(self) -> str:
        self._event_seq += 1
        return f"{self._prefix}{self._event_seq}"

    def _count(self, mean: float) -> int:
        return poisson(self.rng, mean)

    def second(self, t: float, ts_ms: int) -> dict[str, list[dict]]:
        """Events of every room for the simulated second `t` since the session start."""
        out: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        ramp = min(1.0, (t + 1) / self.ramp_s) if self.ramp_s else 1.0
        for room in self.rooms:
            if room.session is None:
                factors = Factors(ramp, ramp, ramp, ramp, self.funnel.negative_share, False)
                audience = ramp
                mix = DEFAULT_MIX
            else:
                factors = room.session.factors(t)
                audience = room.session.audience(t)
                mix = room.session.product_mix(t)
            self._room_second(room, audience, factors, mix, ts_ms, out)
        if any(vars(self.imperfections).values()):
            self._imperfect(out, ts_ms)
        return out

    def _room_second(
        self,
        room: Room,
        audience: float,
        f: Factors,
        mix: ProductMix,
        ts_ms: int,
        out: dict[str, list],
    ) -> None:
        rng, funnel = self.rng, self.funnel
        if audience <= 0 or f.entries + f.comments + f.carts + f.orders == 0:
            return  # the session is over, or the stream is cut: nothing arrives
        target = room.peak_viewers * audience
        # How far launches, sales and incidents push each series beyond the audience.
        more_entries, more_comments = f.entries / audience, f.comments / audience
        more_carts, more_orders = f.carts / audience, f.orders / audience
        base = {"room_id": room.room_id}

        def event(**fields: object) -> dict:
            return {
                "event_id": self._event_id(),
                **base,
                "ts": ts_ms + rng.randrange(1000),
                **fields,
            }

        # Entries top the room up towards its target; churn makes some leave.
        joins = self._count(
            (max(0.0, target - len(room.online)) * 0.2 + target * funnel.enter_rate) * more_entries
        )
        for _ in range(joins):
            room.next_user += 1
            user = f"{room.room_id}-u{room.next_user}"
            room.online.append(user)
            out[VIEWS].append(event(type="view", user_id=user, action="enter"))
        for _ in range(min(len(room.online), self._count(len(room.online) * funnel.enter_rate))):
            user = room.online.pop(rng.randrange(len(room.online)))
            out[VIEWS].append(event(type="view", user_id=user, action="leave"))
        if not room.online:
            return
        for _ in range(self._count(len(room.online) * funnel.comment_rate * more_comments)):
            text = comment_text(rng, f.negative_share)
            out[COMMENTS].append(event(type="comment", user_id=rng.choice(room.online), text=text))
        carts = self._count(len(room.online) * funnel.cart_rate * more_carts)
        products = rng.choices(range(len(mix.weights)), mix.weights, k=carts) if carts else ()
        for product in products:
            user = rng.choice(room.online)
            room.carted.append((user, product))
            out[CARTS].append(
                event(
                    type="cart",
                    user_id=user,
                    product_id=f"p{product}",
                    quantity=1 + (rng.random() < 0.1),
                )
            )
        paying = (
            len(room.carted)
            * funnel.order_rate
            * 0.2
            * min(more_orders / max(more_carts, 1e-9), 1.0)
        )
        for _ in range(min(len(room.carted), self._count(paying))):
            user, product = room.carted.pop(rng.randrange(len(room.carted)))
            if product in mix.broken:
                continue  # the link is broken: the viewer cannot pay, and gives up
            quantity = 1 + (rng.random() < 0.1)
            refunded = rng.random() < funnel.refund_share
            out[ORDERS].append(
                event(
                    type="order",
                    user_id=user,
                    order_id=f"o{self._event_seq}",
                    product_id=f"p{product}",
                    quantity=quantity,
                    amount=round(order_price(rng) * quantity, 2),
                    status="refunded" if refunded else "paid",
                )
            )
        if len(room.carted) > 1000:
            del room.carted[:500]
        # Ad spend on the room's traffic, reported every ~10 s per channel (no viewer).
        if rng.random() < 1 / SPEND_EVERY_S:
            out[SPEND].append(
                event(
                    type="spend",
                    channel=rng.choice(AD_CHANNELS),
                    amount=round(target * SPEND_PER_VIEWER_S * SPEND_EVERY_S, 2),
                )
            )

    def _imperfect(self, out: dict[str, list[dict]], ts_ms: int) -> None:
        """Duplicate, delay and break a few events, as real gateways do."""
        rng, imp = self.rng, self.imperfections
        for events in out.values():
            n = len(events)
            for _ in range(self._count(n * imp.duplicate_share)):
                events.append(dict(events[rng.randrange(n)]))
                self.injected["duplicates"] += 1
            for _ in range(self._count(n * imp.late_share)):
                victim = events[rng.randrange(n)]
                if victim.get("late"):
                    continue  # drawn twice: one late event, counted once
                victim["ts"] = ts_ms - rng.randrange(10_000, 30_000)
                victim["late"] = True  # the generator keeps this ts when it stamps send times
                self.injected["late"] += 1
            for _ in range(self._count(n * imp.malformed_share)):
                original = events[rng.randrange(n)]
                required = "channel" if original.get("type") == "spend" else "user_id"
                broken = {k: v for k, v in original.items() if k not in (required, "late")}
                broken["event_id"] = self._event_id()
                events.append(broken)
                self.injected["malformed"] += 1

    def run(self, start_ms: int, seconds: int) -> Iterator[tuple[int, dict[str, list[dict]]]]:
        for t in range(seconds):
            ts = start_ms + t * 1000
            yield ts, self.second(t, ts)
