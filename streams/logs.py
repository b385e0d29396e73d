"""A library's repeated log lines, collapsed.

While the broker is gone, aiokafka logs every reconnect attempt of every connection:
730 error lines in a 20 s outage were measured (~36 a second, ~130,000 an hour), which
buries what an on-call engineer looks for and fills the log volume. Each distinct
message (logger and format string) is let through at most once per interval; the next
one let through says how many were held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REPEAT_INTERVAL_S = 30.0
MAX_KINDS = 1_000  # distinct messages remembered (format strings: a few dozen in practice)


class RepeatLimiter(logging.Filter):
    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._shown_at: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.clock()
        shown_at = self._shown_at.get(key)
        if shown_at is not None and now - shown_at < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._shown_at) >= MAX_KINDS and shown_at is None:
            self._shown_at.clear()
            self._held.clear()
        self._shown_at[key] = now
        held = self._held.pop(key, 0)
        if held:
            # Appended to the format string: no '%' in it, so the record's args still fit.
            record.msg = f"{record.msg} ({held} more like this in the last {now - shown_at:.0f} s)"
        return True


def limit_repeats(prefix: str, limiter: RepeatLimiter | None = None) -> RepeatLimiter:
    """Put one limiter on every logger named `prefix` or under it that exists now (a
    logger's filters see only its own records, so each one gets it)."""
    limiter = limiter or RepeatLimiter()
    names = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and (name == prefix or name.startswith(prefix + "."))
    ]
    for name in names:
        logging.getLogger(name).addFilter(limiter)
    return limiter
