"""The load-test report: every figure in report.json, a Markdown summary, PNG charts."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from loadtest import profile as profiling
from loadtest.probe import Histogram, SnapshotLatency, bucket_percentiles, percentiles
from streams.kafka import partition_for
from streams.traffic.model import TrafficModel
from streams.traffic.session import EXPECTED_ALERT

if TYPE_CHECKING:
    from loadtest.runner import Run

WARMUP_S = 10  # the first seconds (ramp-up, group join) are left out of steady figures
BOUNDED_SLOPE = 0.02  # backlog growing by less than 2 % of the rate per second is bounded


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    if len(points) < 2:
        return 0.0
    mt = _mean([p[0] for p in points])
    my = _mean([p[1] for p in points])
    num = sum((t - mt) * (y - my) for t, y in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return num / den if den else 0.0


DRAINED_RECORDS_S = 1.0  # "drained": the backlog is under one second of offered events
SETTLE_S = 30  # levels are the mean over this long


CPU_KEYS = {  # a series row's CPU figure of each process
    "worker": "cpu_percent",
    "broker": "broker_cpu_percent",
    "generator": "generator_cpu_percent",
}


def bursts(
    series: list[dict], shape: list[tuple[float, float, float]], rate: float
) -> dict[str, Any]:
    """Per burst: backlog peak, seconds from the burst's end until the backlog is under
    a second of traffic, RSS before and after, and the late share; then whether RSS
    trends up across the run (the level before each burst, MB per hour)."""
    rows = []
    for i, (start, length, _factor) in enumerate(shape):
        end = start + length
        next_start = shape[i + 1][0] if i + 1 < len(shape) else series[-1]["t"] + 1
        before = _window(series, start - SETTLE_S, start)
        during = _window(series, start, next_start)
        after = _window(series, next_start - SETTLE_S, next_start)
        drained_at = next(
            (r["t"] for r in during if r["t"] >= end and r["backlog"] <= rate * DRAINED_RECORDS_S),
            None,
        )
        # Who was busy while it drained: the worker, or its neighbours on the same cores.
        draining = [
            r for r in during if r["t"] >= end and (drained_at is None or r["t"] <= drained_at)
        ]
        busy = {
            f"{name}_cpu_during_drain": round(_mean([r[key] for r in draining]), 1)
            if draining and key in draining[0]
            else None
            for name, key in CPU_KEYS.items()
        }
        processed = during[-1]["processed"] - during[0]["processed"] if during else 0
        late = during[-1]["late"] - during[0]["late"] if during else 0
        rows.append(
            {
                "start": start,
                "backlog_peak": round(max((r["backlog"] for r in during), default=0)),
                "drain_s": None if drained_at is None else round(drained_at - end, 1),
                "rss_before_mb": round(_mean([r["rss_mb"] for r in before]), 1) if before else None,
                "rss_after_mb": round(_mean([r["rss_mb"] for r in after]), 1) if after else None,
                "late_share": round(late / processed, 5) if processed else None,
                **busy,
            }
        )
    levels = [(r["start"], r["rss_before_mb"]) for r in rows if r["rss_before_mb"] is not None]
    trend = _slope(levels) * 3600 if len(levels) >= 2 else None
    return {
        "bursts": rows,
        "rss_trend_mb_per_hour": None if trend is None else round(trend, 1),
        "all_drained_within_60_s": all(
            r["drain_s"] is not None and r["drain_s"] <= 60 for r in rows
        ),
    }


def _window(series: list[dict], start: float, end: float) -> list[dict]:
    return [r for r in series if start <= r["t"] < end]


def judge(rows: list[dict], rate: float) -> dict[str, Any]:
    """Did the worker keep up over these seconds? Judged on the second half."""
    half = rows[len(rows) // 2 :]
    slope = _slope([(r["t"], r["backlog"]) for r in half])
    end_backlog = half[-1]["backlog"] if half else 0.0
    sustained = slope < BOUNDED_SLOPE * rate and end_backlog < 3 * rate
    return {
        "offered_rate": round(_mean([r["offered"] for r in rows])),
        "achieved_rate": round(_mean([r["produced"] for r in rows])),
        "worker_rate": round(_mean([r["worker_rate"] for r in half])),
        "backlog_slope_per_s": round(slope, 1),
        "backlog_end": round(end_backlog),
        "sustained": sustained,
    }


def build(
    *,
    run: Run,
    latency: SnapshotLatency,
    ceiling: tuple[float, int],
    machine: dict[str, Any],
    scenario: dict[str, Any],
    producers: int,
    workers: int = 1,
) -> dict[str, Any]:
    s = run.scenario
    series = run.series
    duration = s.total_duration
    steady = _window(series, WARMUP_S, duration) or series
    last = series[-1]
    injected = {
        k: sum(v.get(k, 0) for v in run.injected.values())
        for k in ("duplicates", "late", "malformed")
    }
    produced = run.total("produced")
    accounted = last["accounted"]
    ceiling_s, ceiling_events = ceiling
    ceiling_rate = ceiling_events / ceiling_s if ceiling_s > 0 else 0.0

    lat_all, fresh_all = Histogram(), Histogram()
    for second, hist in latency.per_second.items():
        if WARMUP_S <= second < duration:
            lat_all.merge(hist)
    for second, hist in latency.freshness.items():
        if WARMUP_S <= second < duration:
            fresh_all.merge(hist)

    worker_rates = [r["worker_rate"] for r in steady]
    result: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "scenario": scenario,
        "machine": machine,
        "producers": producers,
        "workers": workers,
        "partitions": run.settings.partitions,
        "totals": {
            "offered_events": run.total("offered"),
            "produced_events": produced,
            "records": run.total("records"),
            "injected": injected,
            "worker": {k: last[k] for k in ("processed", "rejected", "duplicates", "late")},
        },
        "consistency": {
            "produced": produced,
            "processed_plus_rejected_plus_duplicates": accounted,
            "difference": produced - accounted,
            "drained": produced == accounted,
        },
        "rates": {
            "offered_mean": round(_mean([r["offered"] for r in steady])),
            "achieved_mean": round(_mean([r["produced"] for r in steady])),
            "worker_mean": round(_mean(worker_rates)),
            "worker_peak": round(max(worker_rates, default=0)),
            "raw_ceiling": round(ceiling_rate),
            "worker_to_ceiling_ratio": round(_mean(worker_rates) / ceiling_rate, 4)
            if ceiling_rate
            else None,
            "peak_to_ceiling_ratio": round(max(worker_rates, default=0) / ceiling_rate, 4)
            if ceiling_rate
            else None,
        },
        "latency_s": {
            # Event time -> folded into room state (the worker's liveroom_event_lag_seconds).
            "event_to_state": bucket_percentiles(run.fold_lag_start, run.fold_lag_end),
            # Event time -> the first room-metrics snapshot that holds the event.
            "event_to_metric": percentiles(lat_all),
            "freshness": percentiles(fresh_all),
            "snapshots": latency.snapshots,
            "sampled_events_matched": latency.matched,
            # From building a snapshot to its record's timestamp (the producer's queue).
            "snapshot_queue_ms": _quantiles(latency.queued),
        },
        "resources": {
            "rss_max_mb": round(max(r["rss_mb"] for r in series), 1),
            "rss_end_mb": round(last["rss_mb"], 1),
            "cpu_mean_percent": round(_mean([r["cpu_percent"] for r in steady]), 1),
            **{
                f"{name}_{figure}": round(fn([r[f"{name}_{key}"] for r in steady]), 1)
                for name in ("broker", "generator")
                if steady and f"{name}_cpu_percent" in steady[0]
                for figure, key, fn in (
                    ("cpu_mean_percent", "cpu_percent", _mean),
                    ("cpu_max_percent", "cpu_percent", max),
                    ("rss_max_mb", "rss_mb", max),
                )
            },
            "live_rooms_max": max(r["live_rooms"] for r in series),
        },
        "generator": {
            "max_behind_s": round(run.max_behind, 2),
            "bottleneck": run.max_behind > 1.0,
        },
        "alerts": _alert_counts(run.alerts),
        "incidents": _incidents(run, s),
        "timeseries": series,
        "notes": list(run.notes),
        "profile": profiling.summarize(run.out / "profile.raw") if run.profile else None,
    }
    if s.steps:
        steps = []
        for i, rate in enumerate(s.steps):
            rows = _window(series, i * s.step_duration, (i + 1) * s.step_duration)
            if rows:
                steps.append({"rate": rate, **judge(rows, rate)})
        result["steps"] = steps
        kept = [st["rate"] for st in steps if st["sustained"]]
        result["max_sustained_rate"] = max(kept) if kept else None
    else:
        result["steady"] = judge(steady, s.rate)
    if len(s.bursts()) > 1:
        result["bursts"] = bursts(series, s.bursts(), s.rate)
    if len(run.split) > 1:
        result["per_worker"] = divided(run.split)
    notes = result["notes"]
    if result["generator"]["bottleneck"]:
        notes.append(
            f"The generator fell {run.max_behind:.1f} s behind its schedule: it, not the worker, "
            "limited the offered rate. Use --producers N, or run it on another machine."
        )
    if not result["consistency"]["drained"]:
        notes.append(
            f"The worker had not caught up when the report was written: "
            f"{produced - accounted:,.0f} events still behind."
        )
    return result


def _quantiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    ordered = sorted(values)
    return {"p50": ordered[len(ordered) // 2], "p99": ordered[int(len(ordered) * 0.99)]}


def _alert_counts(alerts: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in alerts:
        if a["status"] == "firing":
            out[a["kind"]] = out.get(a["kind"], 0) + 1
    return out


def _incidents(run: Run, s: Any) -> list[dict[str, Any]]:
    if not s.incidents:
        return []
    # Room ids depend on the number of rooms only: no need for the scenario's audience.
    model_rooms = TrafficModel(rooms=s.rooms, total_viewers=s.rooms).rooms
    start_ms = run.start_ms
    out = []
    for incident in s.incidents:
        room_id = model_rooms[incident.room_rank - 1].room_id
        begins_ms = start_ms + int(incident.start * 1000)
        want = EXPECTED_ALERT[incident.kind]
        hits = sorted(
            (
                a
                for a in run.alerts
                if a["status"] == "firing"
                and a["room_id"] == room_id
                and a["kind"] == want
                and a["starts_at_ms"] >= begins_ms - 5000
            ),
            key=lambda a: a["starts_at_ms"],
        )
        first = hits[0] if hits else None
        out.append(
            {
                "kind": incident.kind,
                "room_id": room_id,
                "partition": partition_for(room_id, run.settings.partitions),
                "expected_alert": want,
                "starts_at_s": incident.start,
                "detected": first is not None,
                "delay_event_s": round((first["starts_at_ms"] - begins_ms) / 1000, 2)
                if first
                else None,
                "delay_wall_s": round((first["emitted_at_ms"] - begins_ms) / 1000, 2)
                if first and "emitted_at_ms" in first
                else None,
            }
        )
    return out


# -- output ------------------------------------------------------------------------------


def write(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    charts = _charts(out, result)
    (out / "report.md").write_text(markdown(result, charts), encoding="utf-8")


def _fmt(x: Any, unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x * scale:,.{digits}f}{unit}"


def divided(per_worker: list[dict[str, float]]) -> dict[str, Any]:
    """How the group's work divided: events folded and CPU per worker, and the largest
    departure from an even share."""
    folded = [w["processed"] for w in per_worker]
    even = sum(folded) / len(folded) if folded else 0.0
    return {
        "folded": folded,
        "cpu_seconds": [round(w["cpu_seconds"], 1) for w in per_worker],
        "cpu_us_per_event": [
            round(w["cpu_seconds"] / w["processed"] * 1e6, 1) if w["processed"] else None
            for w in per_worker
        ],
        "max_departure_from_even": round(max(abs(f - even) / even for f in folded), 3)
        if even
        else None,
    }


def summary_text(result: dict[str, Any]) -> str:
    r, lat, res = result["rates"], result["latency_s"]["event_to_metric"], result["resources"]
    c = result["consistency"]
    lines = [
        f"offered {_fmt(r['offered_mean'])} ev/s, achieved {_fmt(r['achieved_mean'])}, "
        f"worker {_fmt(r['worker_mean'])} (peak {_fmt(r['worker_peak'])}); raw ceiling "
        f"{_fmt(r['raw_ceiling'])} ev/s (worker/ceiling {_fmt(r['worker_to_ceiling_ratio'], digits=3)})",
        f"event→metric latency p50 {_fmt(lat['p50'], ' s', digits=3)}, p95 "
        f"{_fmt(lat['p95'], ' s', digits=3)}, p99 {_fmt(lat['p99'], ' s', digits=3)}; "
        f"RSS max {_fmt(res['rss_max_mb'], ' MB')}",
        f"produced {c['produced']:,.0f} = processed + rejected + duplicates "
        f"{c['processed_plus_rejected_plus_duplicates']:,.0f} ({'ok' if c['drained'] else 'NOT drained'})",
    ]
    if "max_sustained_rate" in result:
        lines.append(f"max sustained rate: {_fmt(result['max_sustained_rate'])} ev/s")
    if "per_worker" in result:
        lines.append(per_worker_line(result["per_worker"]))
    lines += result["notes"]
    return "\n".join(lines)


def per_worker_line(split: dict[str, Any]) -> str:
    folded = " / ".join(f"{n:,.0f}" for n in split["folded"])
    cpu = " / ".join("-" if c is None else f"{c:.0f}" for c in split["cpu_us_per_event"])
    return (
        f"folded per worker: {folded} (at most {split['max_departure_from_even']:.1%} from an "
        f"even share); CPU µs per event folded: {cpu}"
    )


def markdown(result: dict[str, Any], charts: list[str]) -> str:
    s, r = result["scenario"], result["rates"]
    lat, fresh = result["latency_s"]["event_to_metric"], result["latency_s"]["freshness"]
    state = result["latency_s"]["event_to_state"]
    res, tot, c = result["resources"], result["totals"], result["consistency"]
    m = result["machine"]
    lines = [
        f"# Load test: {s['name']}",
        "",
        f"{s['description']}. {result['generated_at']}, {m['cpus']} CPUs, Python {m['python']}, "
        f"broker {m['broker']}, {result['partitions']} partitions, {result['producers']} "
        f"producer process(es), {result.get('workers', 1)} worker process(es). Rate {s['rate']:,.0f} ev/s, {s['rooms']} rooms, "
        f"{s['batch']} events per record, seed {s['seed']}.",
        "",
        "Latency: *event→metric* is from an event's time to the first room-metrics snapshot "
        "that holds it; SPEC allows one snapshot per room per second, so it includes a wait "
        "of up to ~1 s. *event→room state* is until the worker has folded the event (what "
        "the next snapshot and /metrics will show). *freshness* is the age of a snapshot's "
        "newest event when it is published.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| offered / achieved (produced) | {_fmt(r['offered_mean'])} / {_fmt(r['achieved_mean'])} events/s |",
        f"| worker throughput (mean / peak) | {_fmt(r['worker_mean'])} / {_fmt(r['worker_peak'])} events/s |",
        f"| raw ceiling (getmany + orjson.loads, same records) | {_fmt(r['raw_ceiling'])} events/s |",
        f"| worker / ceiling | {_fmt(r['worker_to_ceiling_ratio'], digits=3)} (peak {_fmt(r['peak_to_ceiling_ratio'], digits=3)}) |",
        f"| event→metric latency p50 / p95 / p99 | {_fmt(lat['p50'], ' s', digits=3)} / {_fmt(lat['p95'], ' s', digits=3)} / {_fmt(lat['p99'], ' s', digits=3)} |",
        f"| event→room state (folded) p50 / p95 / p99 | {_fmt(state['p50'], ' s', digits=3)} / {_fmt(state['p95'], ' s', digits=3)} / {_fmt(state['p99'], ' s', digits=3)} |",
        f"| metric freshness p50 / p95 / p99 | {_fmt(fresh['p50'], ' s', digits=3)} / {_fmt(fresh['p95'], ' s', digits=3)} / {_fmt(fresh['p99'], ' s', digits=3)} |",
        f"| worker RSS max / at end | {_fmt(res['rss_max_mb'], ' MB')} / {_fmt(res['rss_end_mb'], ' MB')} |",
        f"| worker CPU (mean) | {_fmt(res['cpu_mean_percent'], ' %')} |",
        *(
            f"| {name} CPU mean / max, RSS max | {_fmt(res[name + '_cpu_mean_percent'], ' %')} / "
            f"{_fmt(res[name + '_cpu_max_percent'], ' %')}, {_fmt(res[name + '_rss_max_mb'], ' MB')} |"
            for name in ("broker", "generator")
            if name + "_cpu_mean_percent" in res
        ),
        f"| live rooms (max) | {_fmt(res['live_rooms_max'])} |",
        f"| events produced | {tot['produced_events']:,.0f} (duplicates {tot['injected']['duplicates']:,}, "
        f"late {tot['injected']['late']:,}, malformed {tot['injected']['malformed']:,}) |",
        f"| worker: processed + rejected + duplicates | {c['processed_plus_rejected_plus_duplicates']:,.0f} "
        f"= {tot['worker']['processed']:,.0f} + {tot['worker']['rejected']:,.0f} + "
        f"{tot['worker']['duplicates']:,.0f} ({'matches' if c['drained'] else 'does NOT match'}) |",
        f"| generator behind schedule (max) | {result['generator']['max_behind_s']} s |",
    ]
    if "steady" in result:
        st = result["steady"]
        lines.append(
            f"| backlog bounded at this rate | {'yes' if st['sustained'] else 'no'} "
            f"(slope {st['backlog_slope_per_s']:,} events/s², {st['backlog_end']:,} behind) |"
        )
    if "steps" in result:
        lines += [
            "",
            "## Rate steps",
            "",
            "| offered | achieved | worker | backlog slope | backlog at end | kept up |",
            "|---|---|---|---|---|---|",
        ]
        for st in result["steps"]:
            lines.append(
                f"| {st['rate']:,.0f} | {st['achieved_rate']:,} | {st['worker_rate']:,} | "
                f"{st['backlog_slope_per_s']:,} | {st['backlog_end']:,} | "
                f"{'yes' if st['sustained'] else 'no'} |"
            )
        lines += ["", f"Max sustained rate: **{_fmt(result['max_sustained_rate'])} events/s**."]
    if "bursts" in result:
        b = result["bursts"]
        lines += [
            "",
            "## Bursts",
            "",
            "| burst at | backlog peak | drained after (s) | RSS before / after (MB) | late share "
            "| CPU while draining: worker / broker / generator |",
            "|---|---|---|---|---|---|",
        ]
        for r in b["bursts"]:
            busy = " / ".join(_fmt(r.get(f"{name}_cpu_during_drain"), " %") for name in CPU_KEYS)
            lines.append(
                f"| {r['start']:.0f} s | {r['backlog_peak']:,} | {_fmt(r['drain_s'], digits=1)} | "
                f"{_fmt(r['rss_before_mb'])} / {_fmt(r['rss_after_mb'])} | "
                f"{_fmt(r['late_share'], digits=4)} | {busy} |"
            )
        lines += [
            "",
            f"RSS trend before bursts: {_fmt(b['rss_trend_mb_per_hour'], ' MB/hour', digits=1)}; "
            f"every burst drained within 60 s: {'yes' if b['all_drained_within_60_s'] else 'no'}.",
        ]
    if result["incidents"]:
        lines += [
            "",
            "## Injected incidents",
            "",
            "| incident | room | alert | detected | delay (event time) | delay (wall) |",
            "|---|---|---|---|---|---|",
        ]
        for i in result["incidents"]:
            lines.append(
                f"| {i['kind']} | {i['room_id']} | {i['expected_alert']} | "
                f"{'yes' if i['detected'] else 'no'} | {_fmt(i['delay_event_s'], ' s', digits=1)} | "
                f"{_fmt(i['delay_wall_s'], ' s', digits=1)} |"
            )
    if result["alerts"]:
        lines += ["", "Alerts fired: " + ", ".join(f"{k} {v}" for k, v in result["alerts"].items())]
    if "per_worker" in result:
        lines += ["", per_worker_line(result["per_worker"])]
    if result.get("profile"):
        prof = result["profile"]
        lines += [
            "",
            "## Where the worker's time goes (py-spy)",
            "",
            f"{prof['samples']:,} samples of the worker while it ran; share of samples "
            "in a function and what it calls (inclusive), then in the function itself.",
            "",
            "| inclusive | function |",
            "|---|---|",
        ]
        lines += [f"| {x['share']:.1%} | `{x['function']}` |" for x in prof["inclusive"][:20]]
        lines += ["", "| own | function |", "|---|---|"]
        lines += [f"| {x['share']:.1%} | `{x['function']}` |" for x in prof["own"][:15]]
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    if charts:
        lines += ["", "## Charts", ""] + [f"![{c}]({c})" for c in charts]
    return "\n".join(lines) + "\n"


def _charts(out: Path, result: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        result["notes"].append(
            "No charts: matplotlib is not installed (pip install 'liveroom-streams[loadtest]')."
        )
        return []
    series = result["timeseries"]
    t = [r["t"] for r in series]
    made: list[str] = []

    def save(fig: Any, axes: list[Any], title: str, name: str) -> str:
        """One legend for all axes (twin axes included), the title, the PNG."""
        handles: list[Any] = []
        labels: list[str] = []
        for axis in axes:
            h, lb = axis.get_legend_handles_labels()
            handles += h
            labels += lb
        axes[0].legend(handles, labels, loc="upper left")
        axes[0].set_title(title)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        return name

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(t, [r["offered"] for r in series], label="offered", linestyle="--")
    ax.plot(t, [r["produced"] for r in series], label="achieved (produced)")
    ax.plot(t, [r["worker_rate"] for r in series], label="worker processed")
    ax.set_xlabel("seconds")
    ax.set_ylabel("events / s")
    ax2 = ax.twinx()
    ax2.fill_between(t, [r["backlog"] for r in series], alpha=0.15, color="red", label="backlog")
    ax2.set_ylabel("backlog (events)")
    made.append(save(fig, [ax, ax2], "Throughput and backlog", "throughput.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for key, label in (
        ("latency_p50", "p50"),
        ("latency_p95", "p95"),
        ("latency_p99", "p99"),
        ("freshness_p99", "freshness p99"),
        ("state_p99", "event → room state p99"),
    ):
        values = [r.get(key) for r in series]  # reports from before a figure lack it
        ax.plot(t, [v if v is not None else float("nan") for v in values], label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("latency (s): event → metric, and → state")
    ax.set_yscale("log")
    made.append(save(fig, [ax], "Latency percentiles over time", "latency.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, [r["rss_mb"] for r in series], label="RSS (MB)", color="purple")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MB)")
    ax2 = ax.twinx()
    ax2.plot(t, [r["cpu_percent"] for r in series], label="CPU (%)", color="gray", alpha=0.6)
    for name, color in (("broker", "tab:orange"), ("generator", "tab:green")):
        if series and f"{name}_cpu_percent" in series[-1]:
            cpu = [r.get(f"{name}_cpu_percent", float("nan")) for r in series]
            ax2.plot(t, cpu, label=f"{name} CPU (%)", color=color, alpha=0.6)
    ax2.set_ylabel("CPU (% of one core)")
    made.append(
        save(fig, [ax, ax2], "Worker memory, and CPU beside its neighbours", "resources.png")
    )

    # Late share per second: events counted late / events processed in that second.
    late_share = [float("nan")]
    for prev, row in itertools.pairwise(series):
        done = row["processed"] - prev["processed"]
        late_share.append((row["late"] - prev["late"]) / done if done > 0 else float("nan"))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(t, late_share, label="late share", color="darkorange")
    ax.set_xlabel("seconds")
    ax.set_ylabel("late / processed")
    made.append(save(fig, [ax], "Events later than the allowed lateness", "late.png"))
    return made
