"""`liveroom demo` left running: its embedded broker's and worker's memory over time.

    python -m loadtest.demo_memory [--seconds 7200] [--out docs/demo-memory.png]
    python -m loadtest.demo_memory --plot samples.txt [--out docs/demo-memory.png]

Runs the demo at its default rate (its own metrics port), samples the resident memory
of its broker and of its worker (a new worker process after each rotation of the
topics) every 10 s, prints a line a minute, and writes the samples (`t broker_MB
worker_MB`) beside the chart. `--plot` charts samples written before.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SAMPLE_S = 10


def children(demo: psutil.Process) -> tuple[int, int]:
    """(broker MB, worker MB) of the demo's own processes (0 while one is absent)."""
    broker = worker = 0
    for child in demo.children():
        try:
            line = " ".join(child.cmdline())
            rss = child.memory_info().rss // 2**20
        except psutil.Error:
            continue
        if "tansu" in line:
            broker = rss
        elif "streams worker" in line:
            worker = rss
    return broker, worker


def run(seconds: float, samples_path: Path) -> None:
    env = {**os.environ, "LIVEROOM_METRICS_PORT": os.environ.get("LIVEROOM_METRICS_PORT", "9478")}
    log = samples_path.with_suffix(".log").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "-m", "streams", "demo"], env=env, stdout=log, stderr=log
    )
    started = time.monotonic()
    try:
        process = psutil.Process(demo.pid)
        with samples_path.open("w") as out:
            while (elapsed := time.monotonic() - started) < seconds and demo.poll() is None:
                broker, worker = children(process)
                out.write(f"{elapsed:.0f} {broker} {worker}\n")
                out.flush()
                if int(elapsed) % 60 < SAMPLE_S:
                    print(f"{elapsed / 60:5.1f} min: broker {broker} MB, worker {worker} MB")
                time.sleep(SAMPLE_S)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
        log.close()


def plot(samples_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [line.split() for line in samples_path.read_text().splitlines() if line.strip()]
    t = [int(r[0]) / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t, [int(r[1]) for r in rows], label="embedded broker (Tansu)")
    ax.plot(t, [int(r[2]) for r in rows], label="worker (0: restarting at a rotation)")
    ax.set_xlabel("minutes of `liveroom demo`")
    ax.set_ylabel("resident memory, MB")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title("make demo left running: the topics rotate at 512 MB, memory stays in a band")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"chart: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=7200)
    parser.add_argument("--out", type=Path, default=Path("docs/demo-memory.png"))
    parser.add_argument("--plot", type=Path, help="chart these samples instead of running")
    args = parser.parse_args()
    samples = args.plot or args.out.with_suffix(".txt")
    if args.plot is None:
        run(args.seconds, samples)
    plot(samples, args.out)


if __name__ == "__main__":
    main()
