"""Comment sentiment: `score`, `classify` and their batch forms (SPEC.md, Python API).

The scorer loads its shipped lexicon and weights once, on first use.
"""

from __future__ import annotations

import os
from functools import cache

from streams.sentiment.resources import load
from streams.sentiment.scorer import Label, Scorer, label_of

__all__ = ["Label", "classify", "classify_batch", "default_scorer", "score", "score_batch"]


@cache
def default_scorer() -> Scorer:
    """The model LIVEROOM_SENTIMENT_MODEL names (the worker's), else the shipped one."""
    path = os.environ.get("LIVEROOM_SENTIMENT_MODEL", "")
    if path:
        from streams.sentiment.adapt import load_model

        return load_model(path)[0]
    return Scorer(load())


def score(text: str) -> float:
    """Sentiment in [-1, 1]; below 0 is negative."""
    return default_scorer().score(text)


def classify(text: str) -> Label:
    """ "negative", "neutral" (chatter, questions, no opinion) or "positive"."""
    return default_scorer().classify(text)


def score_batch(texts: list[str]) -> list[float]:
    scorer = default_scorer().score
    return [scorer(t) for t in texts]


def classify_batch(texts: list[str]) -> list[Label]:
    scorer = default_scorer().score
    return [label_of(scorer(t)) for t in texts]
