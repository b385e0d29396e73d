"""Where the worker's time goes: py-spy samples the running worker (no restart, no
instrumentation), and the report lists the functions that took the most of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

TOP = 25


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """Sample `pid` for `seconds` in the background (None when py-spy is missing)."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "100",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _frame(frame: str) -> str:
    """`function (path/to/file.py:line)` -> `function (file.py)`, paths shortened."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/streams/", "/loadtest/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker != "site-packages/":
                path = marker.strip("/") + "/" + path
            break
    return f"{name} ({path})"


def summarize(raw: Path) -> dict[str, Any] | None:
    """Top functions by own samples and by inclusive samples (share of all samples)."""
    if not raw.exists():
        return None
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return None

    def top(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "share": round(n / total, 4)} for f, n in counter.most_common(TOP)]

    interesting = Counter(
        {
            f: n
            for f, n in inclusive.items()
            if "streams/" in f
            or "faust" in f
            or "aiokafka" in f
            or "prometheus_client" in f
            or "orjson" in f
        }
    )
    return {"samples": total, "own": top(own), "inclusive": top(interesting)}
