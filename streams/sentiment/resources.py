"""Loads the lexicon and n-gram weights shipped in `data/` (built by `build.py`).

Nothing is downloaded at run time: the files are package data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
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
    # char 1-3-gram -> learnt log-odds (positive > 0): the weights, or the bytes of the
    # shipped `ngrams.tsv` (the scorer's C table reads those without building a dict of
    # ~100,000 entries: ~35 MB of a worker's heap).
    ngram_source: dict[str, float] | bytes
    ngram_weight: float  # how much the n-gram sum counts beside the lexicon

    @cached_property
    def ngrams(self) -> dict[str, float]:
        """The n-gram weights as a dict (read from the file when first asked)."""
        if isinstance(self.ngram_source, dict):
            return self.ngram_source
        return {gram: float(weight) for gram, weight in _lines(self.ngram_source.decode())}


def _data(name: str) -> bytes:
    return resources.files(__package__).joinpath("data", name).read_bytes()


def _lines(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


def load() -> Resources:
    tokens: dict[str, tuple[int, float]] = {}
    for term, weight, kind, _source in _lines(_data("lexicon.tsv").decode()):
        tokens[term] = (KINDS[kind], float(weight))
    params = dict(_lines(_data("params.tsv").decode()))
    return Resources(
        tokens=tokens,
        max_token_len=max_token_len(tokens),
        ngram_source=_data("ngrams.tsv"),
        ngram_weight=float(params["ngram_weight"]),
    )


def max_token_len(tokens: dict[str, tuple[int, float]]) -> int:
    """Longest term the substring match must try (English words are matched whole)."""
    return max(len(t) for t in tokens if not (t.isascii() and t[0].isalpha()))
