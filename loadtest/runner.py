"""`liveroom loadtest`: run a scenario against a real worker and write the report.

Starts the embedded broker (or uses LIVEROOM_KAFKA_BOOTSTRAP), a worker process with
every processor on, the open-loop producer processes, and watches: the worker's
/metrics each second (throughput, backlog, consumer lag, CPU, RSS), the room-metrics
topic (event→metric latency) and the alerts topic (incident detection). Then it waits
for the backlog to drain, measures the raw ceiling on the same records, and writes
report.json, report.md and PNG charts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import queue
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from loadtest import profile as profiling
from loadtest import report
from loadtest.ceiling import raw_ceiling
from loadtest.generator import ProducerJob, run_producer
from loadtest.probe import (
    SnapshotLatency,
    bucket_percentiles,
    follow_topics,
    merge_samples,
    scrape,
)
from loadtest.procstat import ProcessGroup
from loadtest.report import WARMUP_S
from loadtest.scenario import Scenario, ScenarioError, load
from streams import config
from streams.broker import EmbeddedBroker, all_topics, create_topics, free_port
from streams.demo import spawn_worker
from streams.kafka import aiokafka_options

DRAIN_TIMEOUT_S = 180.0
console = Console(stderr=True)


class Run:
    """One load-test run: its processes, what it measured, and the report."""

    def __init__(
        self,
        scenario: Scenario,
        out: Path,
        producers: int,
        bootstrap: str,
        profile: bool = False,
        workers: int = 1,
    ) -> None:
        self.scenario = scenario
        self.profile = profile
        self.profiler: Any = None
        self.worker_pid = 0  # the first worker's (the one --profile samples)
        self.workers = workers
        self.out = out
        self.producers = producers
        tag = f"lt{os.getpid()}{int(time.time()) % 100000}"
        self.env = {
            config.env_name("kafka_bootstrap"): bootstrap,
            config.env_name("metrics_host"): "127.0.0.1",
            config.env_name("metrics_port"): str(free_port()),
            **config.namespaced(tag),
        }
        if scenario.top_room_shards > 1:
            self.env[config.env_name("room_shards")] = (
                f"{scenario.top_room_id}={scenario.top_room_shards}"
            )
        self.settings = config.load({**os.environ, **self.env})
        self.options = aiokafka_options(self.settings)
        # Health families only: rendering thousands of rooms every second would load the
        # worker far more than Prometheus (every 15 s) does.
        # Each worker process of the group serves its own /metrics; the probe sums them.
        ports = [self.settings.metrics_port, *(free_port() for _ in range(workers - 1))]
        self.metrics_urls = [f"http://127.0.0.1:{port}/metrics?rooms=0" for port in ports]
        self.worker_envs = [{**self.env, config.env_name("metrics_port"): str(p)} for p in ports]
        self.series: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.produced_by_second: dict[int, dict[str, float]] = {}
        self.injected: dict[int, dict[str, int]] = {}
        self.max_behind = 0.0
        self.start_ms = 0  # wall-clock ms of second 0 of the run
        self.fold_lag_start: dict[float, float] = {}  # event-lag histogram after warm-up
        self.fold_lag_end: dict[float, float] = {}
        self.latency: SnapshotLatency | None = None
        # The broker (when embedded) and the load generators, sampled beside the worker.
        self.neighbours: dict[str, ProcessGroup] = {}
        self.split: list[dict[str, float]] = []  # per worker at the end: folded, CPU s

    # -- processes -----------------------------------------------------------------------

    def start_workers(self) -> list[Any]:
        """The worker processes of one consumer group, each started and answering."""
        asyncio.run(
            create_topics(self.options, all_topics(self.settings), self.settings.partitions)
        )
        self.out.mkdir(parents=True, exist_ok=True)
        workers = []
        for i, env in enumerate(self.worker_envs):
            log = self.out / ("worker.log" if i == 0 else f"worker-{i + 1}.log")
            workers.append(spawn_worker(self.settings, str(log), env))
        self.worker_pid = workers[0].pid
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                self.scrape()
                return workers
            except OSError:
                if any(worker.poll() is not None for worker in workers):
                    raise SystemExit(
                        f"liveroom: a worker exited; see {self.out}/worker*.log"
                    ) from None
                time.sleep(0.5)
        raise SystemExit(f"liveroom: the workers did not start; see {self.out}/worker*.log")

    def scrape(self) -> dict[str, Any]:
        """The group's figures: every worker's /metrics, summed."""
        return merge_samples([scrape(url) for url in self.metrics_urls])

    def per_worker(self) -> list[dict[str, float]]:
        """Each worker's events folded and CPU seconds: how the work divided."""
        out = []
        for url in self.metrics_urls:
            sample = scrape(url)
            out.append({"processed": sample["processed"], "cpu_seconds": sample["cpu_seconds"]})
        return out

    def start_producers(self, start_at: float) -> tuple[list[Any], Any, Any]:
        ctx = mp.get_context("spawn")
        stats, stop = ctx.Queue(), ctx.Event()
        procs = []
        for share in range(self.producers):
            job = ProducerJob(
                self.scenario,
                share,
                self.producers,
                self.options,
                self.settings.input_topics,
                start_at,
            )
            proc = ctx.Process(target=run_producer, args=(job, stats, stop), daemon=True)
            proc.start()
            procs.append(proc)
        self.neighbours["generator"] = ProcessGroup([proc.pid for proc in procs if proc.pid])
        return procs, stats, stop

    # -- the run -------------------------------------------------------------------------

    async def watch(self, start_at: float, stats: Any, procs: list[Any]) -> dict[str, Any]:
        self.start_ms = int(start_at * 1000)
        latency = self.latency = SnapshotLatency(self.start_ms)
        stop = asyncio.Event()
        follower = asyncio.create_task(
            follow_topics(
                self.options,
                self.settings.topic_room_metrics,
                self.settings.topic_alerts,
                latency,
                self.alerts,
                stop,
            )
        )
        duration = self.scenario.total_duration
        previous = await asyncio.to_thread(self.scrape)
        before = self.sample_neighbours()
        done_shares: set[int] = set()
        with Live(self.progress(0, None), console=console, refresh_per_second=2) as live:
            t = 0
            while True:
                await asyncio.sleep(max(0.0, start_at + t + 1 - time.time()))
                self.drain_stats(stats, done_shares)
                sample = await asyncio.to_thread(self.scrape)
                row = self.row(t, previous, sample, latency)
                now = self.sample_neighbours()
                for name, (cpu, rss) in now.items():
                    row[f"{name}_cpu_percent"] = 100.0 * (cpu - before[name][0])
                    row[f"{name}_rss_mb"] = rss / 2**20
                before = now
                self.series.append(row)
                if t == WARMUP_S:
                    self.fold_lag_start = sample["fold_lag_buckets"]
                    if self.profile:
                        seconds = max(5.0, min(60.0, duration - WARMUP_S))
                        self.profiler = profiling.start(
                            self.worker_pid, seconds, self.out / "profile.raw"
                        )
                        if self.profiler is None:
                            self.notes.append("No profile: py-spy is not installed.")
                self.fold_lag_end = sample["fold_lag_buckets"]
                previous = sample
                live.update(self.progress(t + 1, row))
                t += 1
                produced = self.total("produced")
                behind = produced - row["accounted"]
                finished = len(done_shares) == self.producers or not any(
                    p.is_alive() for p in procs
                )
                drained = behind <= 0 or t >= duration + self.drain_timeout(row)
                if t >= duration and finished and drained:
                    break
        stop.set()
        await follower
        return {"latency": latency}

    def sample_neighbours(self) -> dict[str, tuple[float, int]]:
        return {name: group.sample() for name, group in self.neighbours.items()}

    def drain_timeout(self, row: dict[str, Any]) -> float:
        backlog = self.total("produced") - row["accounted"]
        rate = max(row["worker_rate"], 1.0)
        return min(DRAIN_TIMEOUT_S, max(20.0, 1.5 * backlog / rate))

    def drain_stats(self, stats: Any, done: set[int]) -> None:
        while True:
            try:
                item = stats.get_nowait()
            except queue.Empty:
                return
            self.injected[item["share"]] = item["injected"]
            if self.latency is not None:
                for room_id, ts_ms in item.get("samples", ()):
                    self.latency.expect(room_id, ts_ms)
            if item.get("done"):
                done.add(item["share"])
                continue
            cell = self.produced_by_second.setdefault(
                item["t"], {"offered": 0, "produced": 0, "records": 0, "generate_s": 0.0}
            )
            for key in ("offered", "produced", "records"):
                cell[key] += item[key]
            cell["generate_s"] = max(cell["generate_s"], item["generate_s"])
            self.max_behind = max(self.max_behind, item["behind_s"])

    def total(self, key: str) -> float:
        return sum(cell[key] for cell in self.produced_by_second.values())

    def row(
        self, t: int, before: dict[str, float], now: dict[str, float], latency: SnapshotLatency
    ) -> dict[str, Any]:
        accounted = now["processed"] + now["rejected"] + now["duplicates"]
        was = before["processed"] + before["rejected"] + before["duplicates"]
        cell = self.produced_by_second.get(t, {})
        lat = latency.per_second.get(t)
        fresh = latency.freshness.get(t)
        return {
            "t": t,
            "offered": cell.get("offered", 0),
            "produced": cell.get("produced", 0),
            "records": cell.get("records", 0),
            "worker_rate": accounted - was,
            "accounted": accounted,
            "backlog": self.total("produced") - accounted,
            "lag_records": now["lag_records"],
            "cpu_percent": 100.0 * (now["cpu_seconds"] - before["cpu_seconds"]),
            "rss_mb": now["rss_bytes"] / 2**20,
            "live_rooms": now["live_rooms"],
            "latency_p50": lat.percentile(0.5) if lat else None,
            "latency_p95": lat.percentile(0.95) if lat else None,
            "latency_p99": lat.percentile(0.99) if lat else None,
            "freshness_p99": fresh.percentile(0.99) if fresh else None,
            # Event time -> folded, for the events folded in this second.
            "state_p99": bucket_percentiles(before["fold_lag_buckets"], now["fold_lag_buckets"])[
                "p99"
            ],
            "processed": now["processed"],
            "rejected": now["rejected"],
            "duplicates": now["duplicates"],
            "late": now["late"],
        }

    def progress(self, t: int, row: dict[str, Any] | None) -> Table:
        s = self.scenario
        table = Table(title=f"liveroom loadtest — {s.name}: {s.description}")
        for column in ("t", "offered/s", "sent/s", "worker/s", "backlog", "p99 lat", "RSS", "CPU"):
            table.add_column(column, justify="right")
        if row is not None:
            p99 = row["latency_p99"]
            table.add_row(
                f"{t}/{s.total_duration:.0f}s",
                f"{row['offered']:,.0f}",
                f"{row['produced']:,.0f}",
                f"{row['worker_rate']:,.0f}",
                f"{row['backlog']:,.0f}",
                "-" if p99 is None else f"{p99 * 1000:,.0f} ms",
                f"{row['rss_mb']:,.0f} MB",
                f"{row['cpu_percent']:.0f} %",
            )
        if self.max_behind > 1.0:
            table.caption = (
                f"generator behind schedule by {self.max_behind:.1f} s: "
                "it is the bottleneck (try --producers)"
            )
        return table


def main(args: argparse.Namespace) -> None:
    try:
        scenario = load(
            args.scenario,
            rate=args.rate,
            duration=args.duration,
            batch=args.batch,
            rooms=args.rooms,
            seed=args.seed,
        )
    except ScenarioError as err:
        sys.exit(f"liveroom: {err}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"loadtest-reports/{scenario.name}-{stamp}")
    bootstrap = os.environ.get(config.env_name("kafka_bootstrap"), "")
    broker = None
    if not bootstrap:
        broker = EmbeddedBroker(
            log_path=str(out / "broker.log")
            if out.mkdir(parents=True, exist_ok=True) is None
            else None
        ).start()
        bootstrap = broker.bootstrap
    args.workers = args.workers or scenario.workers
    run = Run(scenario, out, args.producers, bootstrap, profile=args.profile, workers=args.workers)
    if broker is not None and broker.process is not None:
        run.neighbours["broker"] = ProcessGroup([broker.process.pid])
    workers = run.start_workers()
    try:
        start_at = time.time() + 1.0
        procs, stats, stop = run.start_producers(start_at)
        watched = asyncio.run(run.watch(start_at, stats, procs))
        stop.set()
        for proc in procs:
            proc.join(10)
        run.drain_stats(stats, set())
        run.split = run.per_worker()
        records = int(run.total("records"))
        console.print(f"measuring the raw ceiling on the same {records:,} records…")
        ceiling_s, ceiling_events = asyncio.run(
            raw_ceiling(run.options, list(run.settings.input_topics), records)
        )
        if run.profiler is not None:
            run.profiler.wait(90)
        result = report.build(
            run=run,
            latency=watched["latency"],
            ceiling=(ceiling_s, ceiling_events),
            machine={
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "broker": "embedded (Tansu)" if broker else bootstrap,
            },
            scenario=asdict(scenario),
            producers=args.producers,
            workers=args.workers,
        )
        report.write(out, result)
        console.print(report.summary_text(result))
        console.print(f"report: {out}/report.md, report.json, *.png")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(20)
            except Exception:
                worker.kill()
        if broker is not None:
            broker.stop()
