"""The embedded broker's memory: how long until it is too big (issue 39).

The embedded broker (Tansu, memory storage) keeps every record for its whole life: no
retention, and DeleteRecords drops the connection. In embedded mode the worker watches
its resident memory, forecasts the hours left at the recent growth before a cap (half
of this machine's memory by default), and says so at start, in its log and on the live
page. The demo stops producing at the cap rather than let the machine swap. Against
real Kafka none of this runs: retention is the brokers' job.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

ENV_PID = "_LIVEROOM_EMBEDDED_BROKER_PID"  # set by `liveroom demo` for its worker
# Set by `liveroom demo` when it rotates the broker's topics (streams.demo_rotation): MB
ENV_ROTATES_AT = "_LIVEROOM_EMBEDDED_ROTATE_MB"
WINDOW_S = 600.0  # growth is judged over the last 10 minutes
NOTE = (
    "the embedded broker keeps every record in memory (no retention): it is for "
    "development and small shops; run beside Kafka for more"
)


def rss_bytes(pid: int) -> int | None:
    """A process's resident memory, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def default_cap() -> int:
    """Half of this machine's memory."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError):
        return 8 * 1024**3


def rotating_note(megabytes: int) -> str:
    return (
        f"the demo moves the embedded broker's topics to a fresh generation at {megabytes} "
        "MB (figures pause ~10 s): its memory stays in a band"
    )


class MemoryForecast:
    """Samples of (time s, bytes); the hours left before `cap` at the recent growth
    (none while the demo rotates the topics: `rotates_at_mb`)."""

    def __init__(self, cap_bytes: int, window_s: float = WINDOW_S, rotates_at_mb: int = 0) -> None:
        self.cap = cap_bytes
        self.window_s = window_s
        self.rotates_at_mb = rotates_at_mb
        self.samples: deque[tuple[float, int]] = deque()

    def observe(self, t: float, rss: int) -> None:
        self.samples.append((t, rss))
        while self.samples and self.samples[0][0] < t - self.window_s:
            self.samples.popleft()

    @property
    def rss(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    def bytes_per_hour(self) -> float | None:
        """Growth over the window (None until a minute of samples)."""
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        if t1 - t0 < 60:
            return None
        return (b1 - b0) / (t1 - t0) * 3600

    def hours_left(self) -> float | None:
        """Hours until the cap at the recent growth; None while it does not grow."""
        rate, rss = self.bytes_per_hour(), self.rss
        if rate is None or rss is None or rate <= 0 or self.rotates_at_mb:
            return None
        return max(0.0, (self.cap - rss) / rate)

    def over_cap(self) -> bool:
        return self.rss is not None and self.rss >= self.cap

    def summary(self) -> dict[str, float | int | str | None]:
        """For the live page's health and the log."""
        hours = self.hours_left()
        return {
            "rss_bytes": self.rss,
            "cap_bytes": self.cap,
            "bytes_per_hour": self.bytes_per_hour(),
            "hours_left": None if hours is None else round(hours, 1),
            "note": rotating_note(self.rotates_at_mb) if self.rotates_at_mb else NOTE,
        }
