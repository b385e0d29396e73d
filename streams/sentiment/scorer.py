"""Lexicon + rules + learnt n-gram scoring of short live-room comments.

One pass over the normalised text: longest-match the lexicon (Chinese terms,
English words, emoji, slang), apply negation, degree and contrast as they come,
then add the learnt character n-gram weights. A few microseconds per comment.
"""

from __future__ import annotations

import math
from typing import Literal

from streams.sentiment.resources import CHATTER, CONTRAST, DEGREE, NEGATOR, SENTIMENT, Resources
from streams.sentiment.text import normalize

Label = Literal["negative", "neutral", "positive"]

NEUTRAL_BAND = 0.2  # |score| below this is chatter, not an opinion
NEGATION_WINDOW = 3  # tokens a negator reaches: 不 太 好, 没有 那么 好
NEGATED = -0.8  # 不好 is negative, but weaker than 差
BEFORE_CONTRAST = 0.4  # 东西不错但是发货太慢: what follows 但是 is the point
QUESTION_DAMPING = 0.5  # 怎么还不发货? is a complaint; 包邮吗? is not an opinion
CLAUSE_ENDS = frozenset(",.!;~，。！；、\n")
QUESTION_ENDS = frozenset("?吗呢么")
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz'")
GAP = "\x00"


class Scorer:
    def __init__(self, res: Resources) -> None:
        self._tokens = res.tokens
        self._max_len = res.max_token_len
        self._ngrams = res.ngrams
        self._ngram_weight = res.ngram_weight

    def raw(self, text: str) -> float:
        """Unbounded evidence: lexicon-and-rules sum plus the weighted n-gram sum.

        The n-gram sum does not see the characters of chatter entries (主播好, 几号链接):
        that is what keeps chatter neutral. Its weights exist for Chinese n-grams only.
        """
        t = normalize(text)
        n = len(t)
        if n == 0:
            return 0.0
        tokens = self._tokens
        max_len = self._max_len
        total = clause = 0.0
        negation = 0
        degree = 1.0
        rest: list[str] = []  # the text the n-grams see: GAP where chatter was
        i = 0
        while i < n:
            c = t[i]
            entry = None
            if c in WORD_CHARS:
                j = i + 1
                while j < n and t[j] in WORD_CHARS:
                    j += 1
                entry = tokens.get(t[i:j])
            else:
                for j in range(min(n, i + max_len), i, -1):
                    entry = tokens.get(t[i:j])
                    if entry is not None:
                        break
                else:
                    j = i + 1
                    if c in CLAUSE_ENDS:
                        negation, degree = 0, 1.0
            rest.append(GAP if entry is not None and entry[0] == CHATTER else t[i:j])
            i = j
            if entry is None:
                negation -= 1
                continue
            kind, value = entry
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
            else:  # chatter
                negation -= 1
        evidence = total + clause
        u = "".join(rest)
        if len(u.replace(GAP, "")):
            ngrams = self._ngrams
            learnt = 0.0
            get = ngrams.get
            for k in range(len(u)):
                learnt += get(u[k], 0.0) + get(u[k : k + 2], 0.0) + get(u[k : k + 3], 0.0)
            evidence += self._ngram_weight * learnt
        if t[-1] in QUESTION_ENDS:
            evidence *= QUESTION_DAMPING
        return evidence

    def score(self, text: str) -> float:
        """In (-1, 1); below 0 is negative."""
        return math.tanh(self.raw(text) / 2.0)

    def classify(self, text: str) -> Label:
        return label_of(self.score(text))


def label_of(score: float) -> Label:
    if score <= -NEUTRAL_BAND:
        return "negative"
    if score >= NEUTRAL_BAND:
        return "positive"
    return "neutral"
