"""Loads the lexicon and n-gram weights shipped in `data/` (built by `build.py`).

Nothing is downloaded at run time: the files are package data.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

# Token kinds in the lexicon table. Sarcasm markers (呵呵, 会谢) turn a one-clause comment's
# praise into complaint; ironic praise (6, 666) is praise alone and complaint beside one.
SENTIMENT, NEGATOR, DEGREE, CONTRAST, CHATTER, SARCASM, IRONIC = range(7)
KINDS = {
    "sentiment": SENTIMENT,
    "negator": NEGATOR,
    "degree": DEGREE,
    "contrast": CONTRAST,
    "chatter": CHATTER,
    "sarcasm": SARCASM,
    "ironic": IRONIC,
}


@dataclass(frozen=True)
class Resources:
    tokens: dict[str, tuple[int, float]]  # term -> (kind, weight or degree factor)
    max_token_len: int
    ngrams: dict[str, float]  # char 1-3-gram -> learnt log-odds (positive > 0)
    ngram_weight: float  # how much the n-gram sum counts beside the lexicon


def _data_lines(name: str) -> list[list[str]]:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def load() -> Resources:
    tokens: dict[str, tuple[int, float]] = {}
    for term, weight, kind, _source in _data_lines("lexicon.tsv"):
        tokens[term] = (KINDS[kind], float(weight))
    ngrams = {gram: float(weight) for gram, weight in _data_lines("ngrams.tsv")}
    params = dict(_data_lines("params.tsv"))
    return Resources(
        tokens=tokens,
        max_token_len=max_token_len(tokens),
        ngrams=ngrams,
        ngram_weight=float(params["ngram_weight"]),
    )


def max_token_len(tokens: dict[str, tuple[int, float]]) -> int:
    """Longest term the substring match must try (English words are matched whole)."""
    return max(len(t) for t in tokens if not (t.isascii() and t[0].isalpha()))
