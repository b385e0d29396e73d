"""What SPEC's 10-minute dedup costs a busy room each second once the horizon is full:
the index touched with a second's ids, then expired, as the room does. Prints the CPU
a second, and how much of it the expiry takes.

    python -m loadtest.dedup_expiry --rate 1000

Run it in a worktree of an older commit (`cd` there, same command) to compare.
"""

from __future__ import annotations

import argparse
import time

from streams.rooms.windows import RecentIds

HORIZON_S = 600  # SPEC: a repeat within 10 minutes of event time is a duplicate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=1_000, help="new ids a second")
    parser.add_argument("--seconds", type=int, default=300, help="seconds timed at steady state")
    args = parser.parse_args()
    ids = RecentIds(HORIZON_S)
    first = 1_000
    for second in range(first, first + HORIZON_S):  # fill the horizon
        for i in range(args.rate):
            ids.touch(f"e{second}-{i}", second)
        ids.expire(second)
    start = first + HORIZON_S
    keys = [[f"e{s}-{i}" for i in range(args.rate)] for s in range(start, start + args.seconds)]
    total = expiring = 0.0
    for second, batch in zip(range(start, start + args.seconds), keys, strict=True):
        t0 = time.process_time()
        for key in batch:
            ids.touch(key, second)
        t1 = time.process_time()
        ids.expire(second)
        t2 = time.process_time()
        total += t2 - t0
        expiring += t2 - t1
    print(
        f"{args.seconds} s of {args.rate:,} ids/s with {len(ids):,} held: "
        f"{total / args.seconds * 1e3:.2f} ms of CPU a second, "
        f"of it the expiry {expiring / args.seconds * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
