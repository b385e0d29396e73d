"""`liveroom sentiment eval`: how a model does on a labelled file, before trusting it.

Per length bucket: accuracy and macro-F1 over the labels the file has (three classes
when it has neutral rows, else negative/positive by the score's sign), a confusion
matrix, and the calibration NegativeCommentSurge acts on: the share of comments the
scorer calls negative against the true negative share.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.sentiment.scorer import label_of

CLASSES = ("negative", "neutral", "positive")
# Comment lengths the and the bench's figures use (characters, inclusive).
LENGTH_BUCKETS = ((1, 8), (9, 15), (16, 30), (31, 60), (61, 10_000))


def figures(rows: list[tuple[str, str]], score: Callable[[str], float]) -> dict[str, object]:
    three = any(label == "neutral" for _, label in rows)
    classes = CLASSES if three else ("negative", "positive")
    said = []
    for text, _ in rows:
        s = score(text)
        said.append(label_of(s) if three else ("negative" if s < 0 else "positive"))
    gold = [label for _, label in rows]
    f1s = []
    for cls in classes:
        tp = sum(g == cls and s == cls for g, s in zip(gold, said, strict=True))
        fp = sum(g != cls and s == cls for g, s in zip(gold, said, strict=True))
        fn = sum(g == cls and s != cls for g, s in zip(gold, said, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    n = max(len(rows), 1)
    return {
        "texts": len(rows),
        "accuracy": sum(g == s for g, s in zip(gold, said, strict=True)) / n,
        "macro_f1": sum(f1s) / len(classes),
        "said_negative": sum(s == "negative" for s in said) / n,
        "truly_negative": sum(g == "negative" for g in gold) / n,
        "confusion": {
            g: {
                s: sum(1 for a, b in zip(gold, said, strict=True) if a == g and b == s)
                for s in classes
            }
            for g in classes
        },
    }


def buckets(rows: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    out = {"all": rows}
    for lo, hi in LENGTH_BUCKETS[:4]:
        out[f"{lo}-{hi} chars"] = [r for r in rows if lo <= len(r[0]) <= hi]
    return out


def report(rows: list[tuple[str, str]], models: dict[str, Callable[[str], float]]) -> str:
    lines = [f"{len(rows):,} labelled texts"]
    header = f"{'':14s}" + "".join(f"{name[:24]:>26s}" for name in models)
    lines += ["", "accuracy / macro-F1 (n)", header]
    results = {
        name: {b: figures(r, score) for b, r in buckets(rows).items() if r}
        for name, score in models.items()
    }
    for bucket in buckets(rows):
        row = f"{bucket:14s}"
        for name in models:
            f = results[name].get(bucket)
            row += (
                f"{'-':>26s}"
                if f is None
                else (f"{f['accuracy']:>10.3f} / {f['macro_f1']:.3f} ({f['texts']:>5,})")
            )
        lines.append(row)
    if len(models) == 2:
        a, b = list(models)
        gain = results[b]["all"]["accuracy"] - results[a]["all"]["accuracy"]
        lines.append(f"{'gain':14s}{gain:>+26.3f}  ({b} against {a}, accuracy, all texts)")
    lines += ["", "calibration: share called negative against the true negative share"]
    for name in models:
        f = results[name]["all"]
        lines.append(
            f"  {name}: said {f['said_negative']:.1%}, truly {f['truly_negative']:.1%}"
            f" ({f['said_negative'] - f['truly_negative']:+.1%})"
        )
    for name in models:
        confusion = results[name]["all"]["confusion"]
        classes = list(confusion)
        lines += ["", f"confusion ({name}): rows are the labels, columns what it said"]
        lines.append(f"{'':10s}" + "".join(f"{c:>10s}" for c in classes))
        for g in classes:
            lines.append(f"{g:10s}" + "".join(f"{confusion[g][s]:>10,}" for s in classes))
    return "\n".join(lines)
