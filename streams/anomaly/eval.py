"""Evaluation of the room alerts on simulated sessions with labelled incidents.

    python -m streams.anomaly.eval [--rooms 200] [--hours 1] [--seed 1] [--tail-rooms 200]
        [--json FILE]

Every room runs a session with the hard negatives of live commerce (ramp-up, product
launch bursts of x2-x3 that each list a new product, an announced flash sale of
x10-x15 in 30 % of rooms, the end-of-session decay, and over-dispersed Poisson noise);
6 of every 7 rooms also get one incident (a stream cut, checkout broken, a bot flood, a
conversion collapse, a negative wave, one product's link broken). Carts and orders are
drawn per product (Zipf popularity, each product's orders following its own carts).
The per-second series, and the per-product ones every 10 s, go through the same
RoomWatch the worker uses. Scored per incident: recall, and detection delay in event
time (alert start minus incident start); per alert: precision; and false alarms per
room-hour (alerts
no incident explains).

A long tail of small rooms (10-300 viewers, no incidents) that open on their
plateau's audience, which arrives in a rush in the first seconds (the traffic model's
top-up: a fifth of the missing audience a second), counts false alarms where those
seconds are all a detector knows of a room.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.alerts.product_watch import STEP_S
from streams.alerts.records import FIRING
from streams.alerts.rules import AlertRules
from streams.alerts.watch import RoomWatch
from streams.traffic.model import poisson
from streams.traffic.session import (
    ALSO_EXPLAINED,
    EXPECTED_ALERT,
    INCIDENT_KINDS,
    Incident,
    SessionShape,
    random_session,
)

# Per plateau viewer and second (SPEC funnel: views >> comments >> carts >> orders).
ENTRY_RATE, COMMENT_RATE, CART_RATE, ORDERS_PER_CART = 0.02, 0.01, 0.003, 0.3
PAY_SMOOTHING = 1 - 0.5 ** (1 / 10)  # orders follow carts with a ~10 s half-life
NOISE_SHAPE = 25.0  # gamma-mixed Poisson: per-second rates wobble ~20 % beyond Poisson
SIZE_BANDS = (
    ("rooms of 10,000+ viewers", 10_000, math.inf),
    ("2,000-10,000 viewers", 2_000, 10_000),
    ("under 2,000 viewers", 0, 2_000),
)
MATCH_AFTER_END_S = 30  # an alert starting this soon after an incident ends still counts
EXPLAINED_AFTER_END_S = 180  # side effects of an incident (recovery) within this are explained


@dataclass
class RoomRun:
    room_id: str
    viewers: float
    shape: SessionShape
    alerts: list[dict[str, Any]] = field(default_factory=list)
    from_s: int = 0  # the second of its session the detectors first see
    fills: bool = False  # its audience arrives at `from_s` in a rush, not over the ramp


def simulate(run: RoomRun, rules: AlertRules, rng: random.Random, start_ms: int) -> None:
    """Feed the room's per-second series through a RoomWatch; keep its transitions."""
    watch = RoomWatch(run.room_id, rules.for_room(run.room_id))
    v = run.viewers
    first = start_ms // 1000
    # Per product: carts on their way to an order (payment takes tens of seconds).
    paying: list[float] = []
    step_rows: dict[str, list[float]] = {}  # product -> [carts, orders] of the open step
    present = 0.0  # viewers in the room, when it fills
    for t in range(run.from_s, int(run.shape.duration_s)):
        f = run.shape.factors(t)
        mix = run.shape.product_mix(t)
        noise = rng.gammavariate(NOISE_SHAPE, 1 / NOISE_SHAPE)
        comments_rate = v * COMMENT_RATE * f.comments * noise
        negative = poisson(rng, comments_rate * f.negative_share)
        comments = negative + poisson(rng, comments_rate * (1 - f.negative_share))
        carts_rate = v * CART_RATE * f.carts * noise
        # Orders per cart, relative to normal (0 when checkout is broken).
        order_share = f.orders / f.carts if f.carts else 0.0
        carts = orders = 0
        paying.extend([0.0] * (len(mix.weights) - len(paying)))
        for k, share in enumerate(mix.shares()):
            paying[k] += (carts_rate * share - paying[k]) * PAY_SMOOTHING
            if not share and paying[k] < 1e-6:
                continue  # not listed yet
            product_carts = poisson(rng, carts_rate * share)
            payable = 0.0 if k in mix.broken else order_share
            product_orders = poisson(rng, paying[k] * ORDERS_PER_CART * payable)
            carts, orders = carts + product_carts, orders + product_orders
            if product_carts or product_orders:
                row = step_rows.setdefault(f"p{k}", [0, 0])
                row[0] += product_carts
                row[1] += product_orders
        entries = poisson(rng, v * ENTRY_RATE * f.entries * noise)
        online = round(v * run.shape.audience(t))
        if run.fills:
            rush = poisson(rng, max(0.0, online - present) * 0.2)
            present = min(present + rush, online)
            entries, online = entries + rush, round(present)
        run.alerts += watch.close(
            first + t,
            entries=entries,
            comments=comments,
            carts=carts,
            orders=orders,
            scored=comments,
            negative=negative,
            online=online,
            announced=f.announced,
        )
        second = first + t
        if (second + 1) % STEP_S == 0:
            rows = {p: (c, o) for p, (c, o) in step_rows.items()}
            run.alerts += watch.close_products(second // STEP_S, rows)
            step_rows.clear()


def sessions(rooms: int, hours: float, seed: int) -> list[RoomRun]:
    rng = random.Random(seed)
    out = []
    for i in range(rooms):
        # Zipf audiences: a few rooms of tens of thousands, a long tail of a few hundred.
        viewers = max(300.0, 50_000 / (i + 1) ** 0.9)
        every = len(INCIDENT_KINDS) + 1  # one room in `every` has no incident
        incident = None if i % every == every - 1 else INCIDENT_KINDS[i % every]
        shape = random_session(rng, hours * 3600, incident=incident, flash_sale=rng.random() < 0.3)
        out.append(RoomRun(f"room-{i:04d}", viewers, shape))
    return out


def tail_sessions(rooms: int, hours: float, seed: int) -> list[RoomRun]:
    """Small rooms (10-300 viewers, log-uniform), no incidents, opening on their plateau."""
    rng = random.Random(seed)
    out = []
    for i in range(rooms):
        viewers = math.exp(rng.uniform(math.log(10), math.log(300)))
        shape = random_session(rng, hours * 3600, flash_sale=rng.random() < 0.3)
        start = math.ceil(shape.ramp_s)
        out.append(RoomRun(f"tail-{i:04d}", viewers, shape, from_s=start, fills=True))
    return out


def classify(run: RoomRun, start_ms: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(detections per incident, false alarms, alerts explained by an incident)."""
    detections, false_alarms, explained = [], [], []
    firings = [a for a in run.alerts if a["status"] == FIRING]
    matched: set[int] = set()
    for incident in run.shape.incidents:
        want = EXPECTED_ALERT[incident.kind]
        hits = [
            a
            for a in firings
            if a["kind"] == want
            and incident.start_s <= rel(a, start_ms) < incident.end_s + MATCH_AFTER_END_S
        ]
        first = min(hits, key=lambda a: a["starts_at_ms"], default=None)
        detections.append(
            {
                "room_id": run.room_id,
                "kind": incident.kind,
                "viewers": run.viewers,
                "detected": first is not None,
                "delay_s": rel(first, start_ms) - incident.start_s if first else None,
            }
        )
        matched.update(id(a) for a in hits)
    for alert in firings:
        if id(alert) in matched:
            continue
        if any(explains(i, alert, start_ms) for i in run.shape.incidents):
            explained.append(alert)
        else:
            false_alarms.append(alert)
    return detections, false_alarms, explained


def rel(alert: dict[str, Any], start_ms: int) -> float:
    return (alert["starts_at_ms"] - start_ms) / 1000


def explains(incident: Incident, alert: dict[str, Any], start_ms: int) -> bool:
    t = rel(alert, start_ms)
    if not incident.start_s <= t < incident.end_s + EXPLAINED_AFTER_END_S:
        return False
    return (
        alert["kind"] == EXPECTED_ALERT[incident.kind]  # a second firing of the same incident
        or alert["kind"] in ALSO_EXPLAINED.get(incident.kind, set())
        or t >= incident.end_s  # what the end of the incident causes (the recovery)
    )


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def evaluate(rooms: int, hours: float, seed: int, tail_rooms: int = 0) -> dict[str, Any]:
    rules = AlertRules.load()
    start_ms = 1_762_790_400_000
    runs = sessions(rooms, hours, seed)
    rng = random.Random(seed + 1)
    started = time.perf_counter()
    steps = 0
    for run in runs:
        simulate(run, rules, rng, start_ms)
        steps += int(run.shape.duration_s)
    elapsed = time.perf_counter() - started
    detections, false_alarms, explained = [], [], []
    for run in runs:
        d, f, e = classify(run, start_ms)
        detections += d
        false_alarms += f
        explained += e
    true_alerts = sum(1 for d in detections if d["detected"])
    report: dict[str, Any] = {
        "rooms": rooms,
        "room_hours": rooms * hours,
        "seed": seed,
        "incidents": len(detections),
        "by_kind": {},
        "false_alarms": len(false_alarms),
        "false_alarms_per_room_hour": len(false_alarms) / (rooms * hours),
        "false_alarm_kinds": dict(sorted(_count(a["kind"] for a in false_alarms).items())),
        "explained_side_alerts": len(explained),
        "precision": true_alerts / (true_alerts + len(false_alarms)) if true_alerts else 0.0,
        "microseconds_per_room_second": elapsed / steps * 1e6,
    }
    for kind in INCIDENT_KINDS:
        mine = [d for d in detections if d["kind"] == kind]
        delays = [d["delay_s"] for d in mine if d["detected"]]
        report["by_kind"][kind] = _summary(mine, delays)
    all_delays = [d["delay_s"] for d in detections if d["detected"]]
    report["overall"] = _summary(detections, all_delays)
    # How fast a drop in orders can be seen is bounded by how many orders a room has:
    # the same incidents, by room size.
    report["by_size"] = {}
    for band, low, high in SIZE_BANDS:
        mine = [d for d in detections if low <= d["viewers"] < high]
        report["by_size"][band] = {
            kind: _summary(
                [d for d in mine if d["kind"] == kind],
                [d["delay_s"] for d in mine if d["kind"] == kind and d["detected"]],
            )
            for kind in INCIDENT_KINDS
        }
    report["missed"] = [d for d in detections if not d["detected"]]
    report["tail"] = evaluate_tail(tail_rooms, hours, seed, rules, start_ms)
    return report


def evaluate_tail(
    rooms: int, hours: float, seed: int, rules: AlertRules, start_ms: int
) -> dict[str, Any]:
    """False alarms in the long tail of small rooms (`tail_sessions`): every alert is one."""
    runs = tail_sessions(rooms, hours, seed + 2)  # its own draws: the main figures stay put
    rng = random.Random(seed + 3)
    seconds = 0
    for run in runs:
        simulate(run, rules, rng, start_ms)
        seconds += int(run.shape.duration_s) - run.from_s
    firings = [a for run in runs for a in run.alerts if a["status"] == FIRING]
    room_hours = seconds / 3600
    return {
        "rooms": rooms,
        "room_hours": room_hours,
        "false_alarms": len(firings),
        "false_alarms_per_room_hour": len(firings) / room_hours if room_hours else 0.0,
        "false_alarm_kinds": dict(sorted(_count(a["kind"] for a in firings).items())),
    }


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _summary(detections: list[dict], delays: list[float]) -> dict[str, Any]:
    return {
        "incidents": len(detections),
        "recall": sum(d["detected"] for d in detections) / len(detections) if detections else None,
        "delay_p50_s": statistics.median(delays) if delays else None,
        "delay_p95_s": percentile(delays, 0.95),
        "delay_max_s": max(delays) if delays else None,
    }


def render(report: dict[str, Any]) -> str:
    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    lines = [
        f"{report['rooms']} rooms x {report['room_hours'] / report['rooms']:g} h "
        f"(seed {report['seed']}), {report['incidents']} injected incidents",
        "",
        "| incident | n | recall | delay p50 | delay p95 | delay max |",
        "|---|---|---|---|---|---|",
    ]
    for kind, s in [*report["by_kind"].items(), ("all", report["overall"])]:
        lines.append(
            f"| {kind} | {s['incidents']} | {fmt(s['recall'], '.3f')} | "
            f"{fmt(s['delay_p50_s'], '.1f')} s | {fmt(s['delay_p95_s'], '.1f')} s | "
            f"{fmt(s['delay_max_s'], '.1f')} s |"
        )
    lines += ["", "Detection delay p95 by room size (n incidents):", ""]
    lines.append("| room size | " + " | ".join(INCIDENT_KINDS) + " |")
    lines.append("|---|" + "---|" * len(INCIDENT_KINDS))
    for band, kinds in report["by_size"].items():
        cells = [f"{fmt(s['delay_p95_s'], '.1f')} s ({s['incidents']})" for s in kinds.values()]
        lines.append(f"| {band} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"precision {report['precision']:.3f}; false alarms {report['false_alarms']} = "
        f"{report['false_alarms_per_room_hour']:.3f} per room-hour "
        f"{report['false_alarm_kinds'] or ''}; side alerts explained by an incident: "
        f"{report['explained_side_alerts']}",
        f"run cost: {report['microseconds_per_room_second']:.1f} µs per room-second "
        "(the simulation's draws and all detectors of a room; `make bench` times detectors)",
    ]
    tail = report["tail"]
    if tail["rooms"]:
        lines.append(
            f"long tail: {tail['rooms']} rooms of 10-300 viewers opening with a rush, no "
            f"incidents, {tail['room_hours']:,.0f} room-hours: false alarms "
            f"{tail['false_alarms']} = {tail['false_alarms_per_room_hour']:.3f} per room-hour "
            f"{tail['false_alarm_kinds'] or ''}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tail-rooms", type=int, default=200, help="small rooms, no incidents")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()
    report = evaluate(args.rooms, args.hours, args.seed, args.tail_rooms)
    print(render(report))
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
