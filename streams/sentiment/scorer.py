"""Lexicon + rules + learnt n-gram scoring of short live-room comments.

One pass over the normalised text: longest-match the lexicon (Chinese terms,
English words, emoji, slang), apply negation, degree and contrast as they come,
then add the learnt character n-gram weights. A few microseconds per comment.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable
from typing import Literal

import ahocorasick_rs

from streams.sentiment.resources import (
    CONTRAST,
    DEGREE,
    IRONIC,
    NEGATOR,
    SARCASM,
    SENTIMENT,
    Resources,
)
from streams.sentiment.text import normalize

try:  # built by `pip install` (pyproject.toml); Python below gives the same sums
    from streams.sentiment import _ngrams
    from streams.sentiment._ngrams import NgramTable
except ImportError:  # pragma: no cover - a source tree that was never built
    _ngrams = NgramTable = None

Label = Literal["negative", "neutral", "positive"]

NEUTRAL_BAND = 0.2  # |score| below this is chatter, not an opinion
NEGATION_WINDOW = 3  # tokens a negator reaches: 不 太 好, 没有 那么 好
NEGATED = -0.8  # 不好 is negative, but weaker than 差
BEFORE_CONTRAST = 0.4  # 东西不错但是发货太慢: what follows 但是 is the point
QUESTION_DAMPING = 0.5  # 怎么还不发货? is a complaint; 包邮吗? is not an opinion
CLAUSE_ENDS = frozenset(",.!;~，。！；、\n")
QUESTION_ENDS = frozenset("?吗呢么")
# Latin letters and digits are matched as whole words (xswl, u1s1, 666, 12315), never
# inside a longer run (1666, 16), and a number followed by a unit or an ordinal (6号链接,
# 66元, 6斤) is a quantity, not a word.
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'")
UNIT_CHARS = frozenset("号元块斤折个件点毛分秒万千百十克米岁楼期月日天")
GAP = "\x00"
_HAS_WORD = re.compile(r"[a-z0-9]")
_WORD_RUN = re.compile(  # not inside a decimal or a time either (6.1, 10:66)
    r"(?<![a-z0-9'])(?<!\d[.:,/])[a-z0-9']++(?![" + "".join(sorted(UNIT_CHARS)) + r"]|[.:,/]\d)"
)
_TOKEN = re.compile(r"[a-z0-9']+|.", re.DOTALL)  # what one unmatched token is
# Ironic praise counts as complaint only beside a comment that is negative on its own,
# by the same line `classify` draws (score = tanh(raw / 2)): 666 beside n-gram noise
# stays praise.
IRONY_LINE = -2 * math.atanh(NEUTRAL_BAND)
_ZEROS = itertools.repeat(0.0)
_CLAUSE_END_CHARS = "".join(sorted(CLAUSE_ENDS))
_CLAUSE_END = re.compile("[" + re.escape(_CLAUSE_END_CHARS) + "]")


class Scorer:
    """Matching runs in compiled code: an Aho-Corasick automaton (ahocorasick-rs, Rust)
    finds the lexicon's leftmost-longest terms and a regex the whole English words;
    the walk over the matched terms and the n-gram sum run in this package's C
    extension (`_ngrams.c`; `_evidence_py` and `_ngram_sum_py` are the same in Python)."""

    def __init__(self, res: Resources) -> None:
        self._words = {term: e for term, e in res.tokens.items() if term[0] in WORD_CHARS}
        terms = [term for term in res.tokens if term[0] not in WORD_CHARS]
        self._entries = [res.tokens[term] for term in terms]
        self._automaton = ahocorasick_rs.AhoCorasick(
            terms, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
        )
        self._res = res
        self._ngram_weight = res.ngram_weight
        if NgramTable is None:
            self._ngram_sum = self._ngram_sum_py
            self._evidence = self._evidence_py
            return
        if isinstance(res.ngram_source, bytes):
            table = NgramTable.from_tsv(res.ngram_source)
        else:
            table = NgramTable(res.ngram_source)
        self._ngram_sum = table.sum
        self._evidence = table.evidence  # `_evidence_py` in C, the same sums

    def _terms(self, t: str) -> list[tuple[int, int, int, float]]:
        """(start, end, kind, value) of the lexicon terms in `t`, in order: the longest
        term at each position, English words whole, none overlapping."""
        entries = self._entries
        found = [
            (start, end, *entries[index])
            for index, start, end in self._automaton.find_matches_as_indexes(t)
        ]
        if _HAS_WORD.search(t) is None:
            return found
        words = self._words
        for m in _WORD_RUN.finditer(t):
            entry = words.get(m.group())
            if entry is not None:
                found.append((m.start(), m.end(), *entry))
        found.sort()
        kept, last_end = [], 0
        for term in found:
            if term[0] >= last_end:
                kept.append(term)
                last_end = term[1]
        return kept

    def raw(self, text: str) -> float:
        """Unbounded evidence: lexicon-and-rules sum plus the weighted n-gram sum.

        The n-gram sum does not see the characters of chatter entries (主播好, 几号链接):
        that is what keeps chatter neutral. Its weights exist for Chinese n-grams only.
        """
        t = normalize(text)
        if not t:
            return 0.0
        return self._evidence(t, self._terms(t), self._ngram_weight)

    def _evidence_py(
        self, t: str, terms: list[tuple[int, int, int, float]], ngram_weight: float
    ) -> float:
        """`raw` of a normalised, non-empty text from its terms: the walk that
        `NgramTable.evidence` does in C, operation for operation."""
        total = clause = 0.0
        negation = 0
        degree = 1.0
        at = 0  # end of the previous term
        sarcasm = ironic = 0.0
        chatter: list[tuple[int, int]] = []  # spans the n-grams do not see
        for start, end, kind, value in terms:
            if start > at:  # unmatched characters and words: each one a token
                gap = t[at:start]
                if _CLAUSE_END.search(gap) is not None:
                    negation, degree = -1, 1.0
                elif negation > 0:
                    negation -= len(_TOKEN.findall(gap))
            at = end
            if kind == SENTIMENT:
                value *= degree
                clause += value * NEGATED if negation > 0 else value
                degree = 1.0
                negation = 0
            elif kind == NEGATOR:
                # 不是不好: a second negator inside the window cancels the first.
                negation = 0 if negation > 0 else NEGATION_WINDOW
            elif kind == DEGREE:
                degree = value
            elif kind == CONTRAST:
                total = (total + clause) * BEFORE_CONTRAST
                clause = 0.0
            else:  # chatter, sarcasm and ironic praise: markers, not opinions of their own
                negation -= 1
                chatter.append((start, end))
                if kind == SARCASM:
                    sarcasm += value
                elif kind == IRONIC:
                    ironic += value
        evidence = total + clause
        u = t
        for start, end in reversed(chatter):
            u = u[:start] + GAP + u[end:]
        if len(u) > len(chatter):  # something besides chatter is left
            evidence += ngram_weight * self._ngram_sum(u)
        if sarcasm and _one_clause(t):  # 呵呵 质量真好: the praise is the sarcasm
            evidence = sarcasm - abs(evidence)
        if ironic:  # 666 alone is praise; 666 又断货了 is not
            evidence += -ironic if evidence <= IRONY_LINE else ironic
        if t[-1] in QUESTION_ENDS:
            evidence *= QUESTION_DAMPING
        return evidence

    def _ngram_sum_py(self, u: str) -> float:
        """Sum of the learnt weights of every 1-, 2- and 3-gram of `u` (grams with a GAP
        or a non-Chinese character have none), with the end of the comment counted again:
        its last character twice more and its last pair once more, as the scorer has
        always weighed it (the weights and the n-gram weight were chosen with it; where
        a comment ends is usually where its point is). The grams are built and looked up
        by `map` in C: an n-gram automaton measured slower (more instructions per
        character than a dict lookup). `_ngrams.NgramTable.sum` gives the same sum ~30x
        faster (a dict of 100,000 strings misses the CPU cache at every lookup) and is
        used wherever it was built."""
        get = self._res.ngrams.get
        learnt = sum(map(get, u, _ZEROS)) + 2 * get(u[-1], 0.0)
        if len(u) > 1:
            pairs = list(map(operator.add, u, u[1:]))
            learnt += sum(map(get, pairs, _ZEROS)) + get(pairs[-1], 0.0)
            if len(u) > 2:
                learnt += sum(map(get, map(operator.add, pairs, u[2:]), _ZEROS))
        return learnt

    def score(self, text: str) -> float:
        """In (-1, 1); below 0 is negative."""
        return math.tanh(self.raw(text) / 2.0)

    def classify(self, text: str) -> Label:
        return label_of(self.score(text))


def _one_clause(t: str) -> bool:
    """A danmaku-shaped comment: no clause end but at its end. Sarcasm markers read as
    sarcasm only there; in longer texts 呵呵 is as often a friendly laugh."""
    return _CLAUSE_END.search(t.rstrip(_CLAUSE_END_CHARS)) is None


def label_of(score: float) -> Label:
    if score <= -NEUTRAL_BAND:
        return "negative"
    if score >= NEUTRAL_BAND:
        return "positive"
    return "neutral"


class RepeatedTexts:
    """`score` remembered for short texts. Live-room comments repeat (666, 扣1, 好看,
    a bot's line): the traffic model's comments are 41 % repeats within 300,000
    events, and a remembered score costs a dict lookup instead of ~10 µs. Bounded:
    short texts only, and the memory starts over when full."""

    __slots__ = ("max_chars", "max_entries", "memo", "score")

    def __init__(
        self, score: Callable[[str], float], max_entries: int = 50_000, max_chars: int = 32
    ) -> None:
        self.score = score
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.memo: dict[str, float] = {}

    def __call__(self, text: str) -> float:
        if len(text) > self.max_chars:
            return self.score(text)
        value = self.memo.get(text)
        if value is None:
            if len(self.memo) >= self.max_entries:
                self.memo.clear()
            value = self.memo[text] = self.score(text)
        return value


if _ngrams is not None:  # the walk in C takes the rules' constants from here
    _ngrams.configure(
        (SENTIMENT, NEGATOR, DEGREE, CONTRAST, SARCASM, IRONIC),
        NEGATION_WINDOW,
        NEGATED,
        BEFORE_CONTRAST,
        QUESTION_DAMPING,
        IRONY_LINE,
        _CLAUSE_END_CHARS,
        "".join(sorted(QUESTION_ENDS)),
    )
