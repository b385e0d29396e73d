"""A sentiment model adapted to a platform's own labelled comments (issue 41).

`train` learns character 1-3-gram weights (logistic regression, as the shipped weights
were learnt) from the operator's polar rows. It blends them with the shipped weights,
new = (1 - mix) x shipped + mix x learnt, at the mix that scores best on a dev split it
holds out itself (10 % by a hash of the text; another 10 % is the test split it
reports). The shipped lexicon is kept. The model is one JSON file: format and version,
its sources with row counts and hashes, the mix, dev and test accuracy, and the
weights. Deterministic: the same inputs give the same bytes.

A model file is refused (ModelError, one line) when it is corrupt, of another format
or version, or fails the sanity set: clear praise must score positive and clear
complaints negative, as the shipped scorer's behaviour tests say.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from streams.sentiment import corpus
from streams.sentiment.resources import Resources, load
from streams.sentiment.scorer import Scorer
from streams.sentiment.text import char_ngrams

FORMAT, VERSION = "liveroom-sentiment-model", 1
MIX_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
NGRAM_C = 0.3  # the shipped weights' (chosen on the corpus's dev split among 0.3, 1, 3)
MIN_WEIGHT = 0.01
# The sanity set: what every model must still get right (tests/unit/test_sentiment.py).
SANITY = {
    "positive": ("好看", "太好看了", "质量很好", "真香", "this is great", "主播好 👍"),
    "negative": ("假货", "骗子", "质量差", "退款!", "terrible quality", "不推荐"),
}


class ModelError(ValueError):
    """A model file the worker will not use: the message says why, in one line."""


def split_of(text: str) -> str:
    """The corpus's 80/10/10 split by a hash of the text, salted: independent of the
    shipped corpus's own split, so rows from one of its splits still spread over all
    three here."""
    return corpus.split_of(text, salt=b"liveroom-adapt:")


def polar(rows: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(t, label) for t, label in rows if label != "neutral"]


def polar_accuracy(score: Callable[[str], float], rows: list[tuple[str, str]]) -> float | None:
    rows = polar(rows)
    if not rows:
        return None
    return sum((score(t) < 0) == (label == "negative") for t, label in rows) / len(rows)


def learn(rows: list[tuple[str, str]], min_docs: int = 1) -> dict[str, float]:
    """Log-odds per n-gram from polar rows (scikit-learn: `liveroom-streams[train]`); an
    n-gram in fewer than `min_docs` texts is left out."""
    try:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ModelError(
            "training needs scikit-learn: pip install 'liveroom-streams[train]' "
            "(make test installs it)"
        ) from None
    rows = polar(rows)
    labels = {label for _, label in rows}
    if labels != {"negative", "positive"}:
        raise ModelError(f"training needs negative and positive rows; found {sorted(labels)}")
    vectorizer = CountVectorizer(analyzer=char_ngrams, min_df=min_docs)
    features = vectorizer.fit_transform([t for t, _ in rows])
    model = LogisticRegression(C=NGRAM_C, max_iter=2000)
    model.fit(features, [label == "positive" for _, label in rows])
    return {
        gram: round(float(w), 3)
        for gram, w in zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True)
        if abs(w) >= MIN_WEIGHT
    }


def blend(shipped: dict[str, float], learnt: dict[str, float], mix: float) -> dict[str, float]:
    out = {}
    for gram in sorted(shipped.keys() | learnt.keys()):
        w = round((1 - mix) * shipped.get(gram, 0.0) + mix * learnt.get(gram, 0.0), 3)
        if abs(w) >= MIN_WEIGHT:
            out[gram] = w
    return out


def scorer_of(ngrams: dict[str, float], base: Resources | None = None) -> Scorer:
    base = base or load()
    return Scorer(Resources(base.tokens, base.max_token_len, ngrams, base.ngram_weight))


def train(
    rows: list[tuple[str, str]],
    sources: list[dict[str, Any]],
    progress: Callable[[str], None] = lambda step: None,
) -> dict[str, Any]:
    """The model (a JSON-ready dict) adapted to `rows`."""
    rows = sorted(set(rows))  # the same rows in any order give the same model
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    for row in rows:
        splits[split_of(row[0])].append(row)
    base = load()
    shipped = base.ngrams
    progress(f"learning from {len(polar(splits['train'])):,} polar rows")
    learnt = learn(splits["train"])
    accuracy: dict[float, float] = {}
    for mix in MIX_GRID:
        progress(f"trying mix {mix:g} on the dev split")
        score = scorer_of(blend(shipped, learnt, mix), base).score
        accuracy[mix] = polar_accuracy(score, splits["dev"]) or 0.0
    best = max(MIX_GRID, key=lambda m: (accuracy[m], -m))  # a tie: the smaller mix
    ngrams = blend(shipped, learnt, best)
    test = polar_accuracy(scorer_of(ngrams, base).score, splits["test"])
    return {
        "format": FORMAT,
        "version": VERSION,
        "sources": sources,
        "rows": {name: len(part) for name, part in splits.items()},
        "mix": best,
        "accuracy": {
            "dev": round(accuracy[best], 4),
            "test": None if test is None else round(test, 4),
            "dev_by_mix": {f"{m:g}": round(a, 4) for m, a in accuracy.items()},
        },
        "ngrams": ngrams,
    }


def dumps(model: dict[str, Any]) -> bytes:
    return orjson.dumps(model, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def load_model(path: str) -> tuple[Scorer, dict[str, Any]]:
    """A model file's scorer and its description (name, sha256, mix, accuracy); a model
    that is corrupt, of another format or version, or insane raises ModelError."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ModelError(f"{path}: cannot read it ({err.strerror})") from None
    try:
        model = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ModelError(f"{path}: not a model file (not JSON)") from None
    if not isinstance(model, dict) or model.get("format") != FORMAT:
        raise ModelError(f"{path}: not a model file from `liveroom sentiment train`")
    if model.get("version") != VERSION:
        raise ModelError(
            f"{path}: model version {model.get('version')!r}, this liveroom reads {VERSION}"
        )
    ngrams = model.get("ngrams")
    if not isinstance(ngrams, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) for k, v in ngrams.items()
    ):
        raise ModelError(f"{path}: its n-gram weights are damaged")
    scorer = scorer_of({k: float(v) for k, v in ngrams.items()})
    wrong = [
        text
        for label, texts in SANITY.items()
        for text in texts
        if (scorer.score(text) < 0) != (label == "negative") or scorer.score(text) == 0
    ]
    if wrong:
        raise ModelError(
            f"{path}: fails the sanity set on {len(wrong)} texts (e.g. {wrong[0]!r}): "
            "retrain with more rows"
        )
    info = {
        "name": Path(path).name,
        "sha256": hashlib.sha256(data).hexdigest()[:12],
        "mix": model.get("mix"),
        "accuracy": model.get("accuracy", {}),
    }
    return scorer, info
