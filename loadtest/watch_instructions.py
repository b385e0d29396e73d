"""A room's alert watch fed a synthetic room, for counting instructions (repeatable
whatever the machine's phase, where wall-clock figures move 2-3x):

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        .venv/bin/python -m loadtest.watch_instructions --seconds 5000

Only the `functools.reduce` over the seconds is counted; the "Collected" line divided
by --seconds is the instructions a room-second. Without valgrind it prints the µs.
"""

from __future__ import annotations

import argparse
import functools
import random
import time

from streams.alerts.rules import AlertRules
from streams.alerts.watch import RoomWatch

Second = tuple[int, float, float, float, float, float, float, float]


def series(seconds: int, seed: int = 7) -> list[Second]:
    """Per-second counts of one room: a busy and a quiet level in turns of 15 minutes."""
    rng = random.Random(seed)
    out = []
    for s in range(seconds):
        entries = rng.expovariate(1 / (50 if (s // 900) % 3 else 5))
        comments, carts, orders = entries * 0.3, entries * 0.1, entries * 0.03
        out.append((s, entries, comments, carts, orders, comments, comments * 0.1, entries * 20))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5000)
    args = parser.parse_args()
    rows = series(args.seconds)
    watch = RoomWatch("r", AlertRules.load().for_room("r"))

    def close(_: None, row: Second) -> None:
        watch.close(*row)

    started = time.perf_counter()
    functools.reduce(close, rows, None)
    took = time.perf_counter() - started
    print(f"room watch: {took / args.seconds * 1e6:.2f} µs a room-second ({args.seconds} s)")


if __name__ == "__main__":
    main()
