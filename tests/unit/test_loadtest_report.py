"""The load-test report: the burst table (drain time, and who was busy while it drained),
and the figures of a group of workers."""

from loadtest.probe import WANTED, merge_samples
from loadtest.report import bursts


def row(t: int, backlog: int, worker: float, broker: float) -> dict:
    return {
        "t": t,
        "backlog": backlog,
        "rss_mb": 100.0 + t,
        "processed": 1000 * t,
        "late": t,
        "cpu_percent": worker,
        "broker_cpu_percent": broker,
    }


def test_a_burst_reports_its_drain_and_the_cpu_of_worker_and_broker_while_draining():
    # A burst at 40 s for 5 s; the backlog is over 1 s of traffic (1,000) until 48 s.
    series = [row(t, 0, 30.0, 20.0) for t in range(40)]
    series += [row(t, 50_000, 90.0, 60.0) for t in range(40, 45)]
    series += [row(t, 20_000, 100.0, 95.0) for t in range(45, 48)]
    series += [row(t, 500, 40.0, 25.0) for t in range(48, 80)]
    (burst,) = bursts(series, [(40, 5, 10)], rate=1000)["bursts"]
    assert burst["backlog_peak"] == 50_000
    assert burst["drain_s"] == 3  # drained at 48 s, the burst ended at 45 s
    # Mean over 45..48 s: three busy seconds and the one it drained in.
    assert burst["worker_cpu_during_drain"] == 85.0
    assert burst["broker_cpu_during_drain"] == 77.5
    assert burst["generator_cpu_during_drain"] is None  # not sampled in this run
    assert burst["late_share"] == 39 / 39_000


def test_the_figures_of_a_group_of_workers_are_their_sums():
    def sample(processed: float, rss: float, buckets: dict[float, float]) -> dict:
        out = dict.fromkeys(WANTED.values(), 0.0)
        out.update(processed=processed, rss_bytes=rss, live_rooms=3.0)
        out["fold_lag_buckets"] = buckets
        return out

    merged = merge_samples(
        [sample(100, 5e8, {0.05: 90, float("inf"): 100}), sample(40, 3e8, {0.05: 10, 0.1: 20})]
    )
    assert merged["processed"] == 140 and merged["rss_bytes"] == 8e8
    assert merged["live_rooms"] == 6  # each worker's rooms are its own partitions'
    assert merged["fold_lag_buckets"] == {0.05: 100, 0.1: 20, float("inf"): 100}
