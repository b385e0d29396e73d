"""`liveroom loadtest` end to end, short: its own embedded broker, a real worker, real
producer processes; the report's figures are present and add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_loadtest(out: Path, *args: str, timeout: float) -> dict:
    """`liveroom loadtest ... --out out` as a user runs it; its report.json."""
    result = subprocess.run(
        [sys.executable, "-m", "streams", "loadtest", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads((out / "report.json").read_text())


def test_short_load_test_report_is_complete_and_consistent(tmp_path):
    out = tmp_path / "report"
    report = run_loadtest(
        out,
        *("--scenario", "steady", "--duration", "12", "--rate", "3000", "--rooms", "50"),
        timeout=240,
    )

    totals, c = report["totals"], report["consistency"]
    assert c["drained"] and c["difference"] == 0
    worker = totals["worker"]
    assert (
        totals["produced_events"] == worker["processed"] + worker["rejected"] + worker["duplicates"]
    )
    injected = totals["injected"]
    assert injected["malformed"] > 0 and worker["rejected"] == injected["malformed"]
    assert injected["duplicates"] > 0 and worker["duplicates"] == injected["duplicates"]
    # A late event that is a room's first (no watermark yet) or a duplicate's twin is
    # not counted late; nearly all are.
    assert injected["late"] > 0 and worker["late"] >= 0.8 * injected["late"]

    rates = report["rates"]
    assert 2000 < rates["offered_mean"] < 4500
    assert rates["achieved_mean"] > 0.9 * rates["offered_mean"]
    assert rates["raw_ceiling"] > rates["worker_mean"] > 0
    assert 0 < rates["worker_to_ceiling_ratio"] < 1
    latency = report["latency_s"]
    assert latency["sampled_events_matched"] > 100
    for kind in ("event_to_metric", "event_to_state", "freshness"):
        assert latency[kind]["p50"] is not None and latency[kind]["p50"] <= latency[kind]["p99"]
    assert latency["event_to_state"]["p99"] < latency["event_to_metric"]["p99"]
    assert report["resources"]["rss_max_mb"] > 50
    assert report["resources"]["live_rooms_max"] == 50
    # The embedded broker and the load generator, sampled beside the worker.
    for name in ("broker", "generator"):
        assert report["resources"][f"{name}_cpu_mean_percent"] > 0
        assert report["resources"][f"{name}_rss_max_mb"] > 5
    series = report["timeseries"]
    assert len(series) >= 12
    assert {"offered", "produced", "worker_rate", "backlog", "rss_mb", "latency_p99"} <= set(
        series[0]
    )
    assert report["steady"]["sustained"] is True

    for chart in ("throughput.png", "latency.png", "resources.png"):
        assert (out / chart).stat().st_size > 10_000
    markdown = (out / "report.md").read_text()
    assert "| raw ceiling" in markdown and "![throughput.png](throughput.png)" in markdown


@pytest.mark.long
def test_short_soak_reports_each_burst_draining_and_memory_levels(tmp_path):
    """The `soak` scenario shortened to 2 minutes: a x10 burst every 40 s; the report
    gives each burst's backlog peak, drain time, RSS before and after, and the late
    share, and the backlog drains within 60 s of every burst."""
    scenario = tmp_path / "soak-short.toml"
    scenario.write_text(
        'description = "soak, 2 minutes"\n'
        "rate = 3000\nduration = 120\nrooms = 100\nbatch = 100\nseed = 4\nramp_s = 0\n"
        "duplicate_share = 0.001\nlate_share = 0.001\nmalformed_share = 0.001\n"
        "[flash_sale]\nstart = 20\nlength = 5\nfactor = 10\nevery = 40\n"
    )
    out = tmp_path / "report"
    report = run_loadtest(out, "--scenario", str(scenario), timeout=400)
    assert report["consistency"]["drained"]
    bursts = report["bursts"]["bursts"]
    assert [b["start"] for b in bursts] == [20, 60, 100]
    series = report["timeseries"]
    for b in bursts:
        # The burst was there: offered well above the base rate for its 5 s.
        during = [r["offered"] for r in series if b["start"] <= r["t"] < b["start"] + 5]
        assert max(during) > 3 * 3000, (b, during)
        assert b["drain_s"] is not None and b["drain_s"] <= 60, b
        assert b["rss_before_mb"] > 0 and b["rss_after_mb"] > 0
        assert 0 <= b["late_share"] < 0.05
        assert b["worker_cpu_during_drain"] > 0 and b["broker_cpu_during_drain"] > 0
    assert report["bursts"]["all_drained_within_60_s"]
    markdown = (out / "report.md").read_text()
    assert "## Bursts" in markdown and "RSS trend before bursts" in markdown
    assert (out / "late.png").stat().st_size > 10_000
