"""A sentiment model trained on many comments: its training time, size, load time and
scoring speed (issue 41: a model trained on 1M comments loads in 2 s at most).

    python -m loadtest.sentiment_scale [--rows 1000000] [--narrow] [--dir /tmp/scale]

Writes a labelled CSV of synthetic comments, trains on it with `liveroom sentiment
train` (a subprocess, timed), then loads the model three times and scores 3,000
simulator comments of 10-30 characters with it and with the shipped model, alternated.
The rows are the simulator's labelled phrases inside 4-24 random characters of Zipf
frequency over 3,500 common CJK characters: a wider vocabulary of n-grams than real
comments have, so the model is bigger than a platform's would be (`--narrow`: the
phrases alone).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from streams.sentiment import default_scorer
from streams.sentiment.adapt import load_model
from streams.traffic.model import (
    COMMENTS_NEGATIVE,
    COMMENTS_NEUTRAL,
    COMMENTS_POSITIVE,
    comment_text,
)

# Praise the simulator's pool lacks, which the sanity set checks ("太好看了").
POSITIVE = (*COMMENTS_POSITIVE, "太好看了", "太美了", "好看", "太划算了", "太值了", "喜欢")
POOLS = {"pos": POSITIVE, "neu": COMMENTS_NEUTRAL, "neg": COMMENTS_NEGATIVE}


def labelled_rows(rows: int, narrow: bool, seed: int = 11) -> Iterator[tuple[str, str]]:
    """(text, label) rows: a labelled phrase, inside random characters unless `narrow`."""
    rng = random.Random(seed)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3500)]
    cumulative = list(itertools.accumulate(1 / (k + 1) for k in range(len(chars))))
    for _ in range(rows):
        label = rng.choice(tuple(POOLS))
        phrase = rng.choice(POOLS[label])
        if narrow:
            yield phrase, label
            continue
        n = rng.randint(4, 24)
        filler = "".join(
            chars[bisect.bisect(cumulative, rng.random() * cumulative[-1])] for _ in range(n)
        )
        cut = rng.randint(0, n)
        yield filler[:cut] + phrase + filler[cut:], label


def write_rows(path: Path, rows: int, narrow: bool) -> None:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        out.writerows(labelled_rows(rows, narrow))


def scoring_us(score, texts: list[str]) -> tuple[float, float]:
    times = []
    for text in texts:
        started = time.perf_counter_ns()
        score(text)
        times.append(time.perf_counter_ns() - started)
    times.sort()
    return statistics.mean(times) / 1000, times[int(0.99 * len(times))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--narrow", action="store_true", help="the phrases alone")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sentiment-scale"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    labels, model = args.dir / "labels.csv", args.dir / "scale.model"
    print(f"writing {args.rows:,} labelled rows to {labels}", flush=True)
    write_rows(labels, args.rows, args.narrow)
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "sentiment",
            "train",
            "--labels",
            str(labels),
            "--out",
            str(model),
        ],
        check=True,
    )
    print(f"trained in {time.perf_counter() - started:.0f} s; {model.stat().st_size / 1e6:.1f} MB")
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        load_model(str(model))
        loads.append(time.perf_counter() - started)
    tracemalloc.start()
    held, _ = load_model(str(model))
    size, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"loads in {min(loads):.2f}-{max(loads):.2f} s (3 loads); holds {size / 1e6:.0f} MB "
        f"({peak / 1e6:.0f} MB while loading)"
    )
    rng = random.Random(3)
    texts = [t for t in (comment_text(rng, 0.1) for _ in range(20_000)) if 10 <= len(t) <= 30]
    shipped = default_scorer()
    for _ in range(2):
        ours, theirs = scoring_us(held.score, texts[:3000]), scoring_us(shipped.score, texts[:3000])
        print(
            f"scoring 10-30 chars: this model {ours[0]:.1f} µs mean, {ours[1]:.1f} µs p99; "
            f"shipped {theirs[0]:.1f} µs, {theirs[1]:.1f} µs"
        )


if __name__ == "__main__":
    main()
