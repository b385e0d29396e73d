"""The scorer's matching in compiled code (Aho-Corasick, the C n-gram sum) gives exactly the
scores of the straightforward per-character scan it replaced, kept here as the reference."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.sentiment import default_scorer
from streams.sentiment.resources import (
    CHATTER,
    CONTRAST,
    DEGREE,
    IRONIC,
    NEGATOR,
    SARCASM,
    SENTIMENT,
    Resources,
    load,
)
from streams.sentiment.scorer import (
    BEFORE_CONTRAST,
    CLAUSE_ENDS,
    GAP,
    IRONY_LINE,
    NEGATED,
    NEGATION_WINDOW,
    QUESTION_DAMPING,
    QUESTION_ENDS,
    UNIT_CHARS,
    WORD_CHARS,
)
from streams.sentiment.text import normalize
from streams.traffic.model import comment_text


def reference_raw(res: Resources, text: str) -> float:
    """Unbounded evidence: lexicon-and-rules sum plus the weighted n-gram sum.

    The n-gram sum does not see the characters of chatter entries (主播好, 几号链接):
    that is what keeps chatter neutral. Its weights exist for Chinese n-grams only.
    """
    t = normalize(text)
    n = len(t)
    if n == 0:
        return 0.0
    tokens = res.tokens
    max_len = res.max_token_len
    total = clause = sarcasm = ironic = 0.0
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
            quantity = (j < n and t[j] in UNIT_CHARS) or (  # 6号, 6.1, 1.6
                (j + 1 < n and t[j] in ".:,/" and t[j + 1].isdecimal())
                or (i >= 2 and t[i - 1] in ".:,/" and t[i - 2].isdecimal())
            )
            entry = None if quantity else tokens.get(t[i:j])
        else:
            for j in range(min(n, i + max_len), i, -1):
                entry = tokens.get(t[i:j])
                if entry is not None:
                    break
            else:
                j = i + 1
                if c in CLAUSE_ENDS:
                    negation, degree = 0, 1.0
        marker = entry is not None and entry[0] in (CHATTER, SARCASM, IRONIC)
        rest.append(GAP if marker else t[i:j])
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
        else:  # chatter, sarcasm, ironic praise
            negation -= 1
            sarcasm += value if kind == SARCASM else 0.0
            ironic += value if kind == IRONIC else 0.0
    evidence = total + clause
    u = "".join(rest)
    if len(u.replace(GAP, "")):
        ngrams = res.ngrams
        learnt = 0.0
        get = ngrams.get
        for k in range(len(u)):
            learnt += get(u[k], 0.0) + get(u[k : k + 2], 0.0) + get(u[k : k + 3], 0.0)
        evidence += res.ngram_weight * learnt
    if sarcasm and not any(c in CLAUSE_ENDS for c in t.rstrip("".join(CLAUSE_ENDS))):
        evidence = sarcasm - abs(evidence)
    if ironic:
        evidence += -ironic if evidence <= IRONY_LINE else ironic
    if t[-1] in QUESTION_ENDS:
        evidence *= QUESTION_DAMPING
    return evidence


def corpus() -> list[str]:
    rng = random.Random(8)
    texts = [comment_text(rng, 0.3) for _ in range(3000)]
    texts += [
        "东西不错但是发货太慢",
        "不是不好",
        "真的太好了!!!",
        "不太满意",
        "good but too slow",
        "not bad 👍",
        "yyds！但是客服态度差",
        "呵呵，又翻车了",
        "好家伙，等了一周",
        "666 质量差",
        "包邮吗？",
        "u1s1 还行",
        "xswl 主播",
        "nsdd",
        "",
        "!!!",
        "a",
        "好",
        "okay好的",
        "don't buy, terrible quality 😡",
        "主播好，几号链接",
        "超级无敌好用，回购",
        "\x00好",
        "6号链接",
        "6 又断货了",
        "呵呵 质量真好",
        "打12315投诉",
        "123150",
        "66元 太贵",
        "1666",
        "我真的会谢",
        "栓q",
        "不6",
        "女儿6.1的礼物",
        "1.6 好",
        "呵呵，质量真好",
        "呵呵 质量真好！！",
    ]
    return texts


@pytest.mark.parametrize("chunk", range(4))
def test_scores_equal_the_reference_scan(chunk: int) -> None:
    res: Resources = load()
    scorer = default_scorer()
    texts = corpus()[chunk::4]
    for text in texts:
        assert scorer.raw(text) == pytest.approx(reference_raw(res, text), abs=1e-9), text


def test_the_c_ngram_sum_is_built_and_equals_the_python_sum() -> None:
    """`pip install` builds `_ngrams.c`; if it did not, the scorer would run ~10x slower
    on the Python path, so a missing build fails here rather than only in `make bench`."""
    from streams.sentiment import scorer as scorer_module

    assert scorer_module.NgramTable is not None
    scorer = default_scorer()
    texts = [normalize(t) for t in corpus() if t]
    texts += ["\x00", "\x00好", "好\x00", "好\x00好", "好好", "ab好的\x00吗", "𠀀好", "好" * 500]
    for text in texts:
        # Bit for bit: the C loop adds in the order the Python sums do.
        assert scorer._ngram_sum(text) == scorer._ngram_sum_py(text), text
    assert len(scorer_module.NgramTable({"好": 1.0, "好的": 2.0, "\x00": 3.0, "abcd": 4.0})) == 2


def test_the_table_read_from_the_weights_file_is_the_dicts() -> None:
    """The worker's table is read straight from `ngrams.tsv` (no dict of 100,000 grams);
    it must hold exactly the weights the dict path holds."""
    from streams.sentiment.scorer import NgramTable

    res = load()
    assert isinstance(res.ngram_source, bytes)
    from_file, from_dict = NgramTable.from_tsv(res.ngram_source), NgramTable(res.ngrams)
    assert len(from_file) == len(from_dict) == len(res.ngrams) > 90_000
    texts = [normalize(t) for t in corpus() if t] + ["好\x00好", "𠀀好", "ab好的\x00吗"]
    for text in texts:
        assert from_file.sum(text) == from_dict.sum(text), text
    small = NgramTable.from_tsv("# comment\n好\t1.5\r\n\n好的\t-2\n好\t0.25\nabcd\t4\n".encode())
    # 好 once (a later line wins over an earlier one), 好的 twice: it ends the comment
    assert len(small) == 2 and small.sum("好的") == 0.25 + 2 * -2.0
    for bad in (b"no tab\n", b"\xff\t1\n", b"ok\tnot a number\n", b"a\t1\t2\n"):
        with pytest.raises(ValueError):
            NgramTable.from_tsv(bad)


@given(st.text(alphabet=st.sampled_from("好不差的太了很\x00a!？👍𠀀"), min_size=1, max_size=40))
def test_the_c_ngram_sum_equals_python_on_any_text(text: str) -> None:
    scorer = default_scorer()
    assert scorer._ngram_sum(text) == scorer._ngram_sum_py(text)


def _walks_agree(scorer, text: str) -> None:
    t = normalize(text)
    if not t:
        return
    terms, weight = scorer._terms(t), scorer._ngram_weight
    assert scorer._evidence(t, terms, weight) == scorer._evidence_py(t, terms, weight), text


def test_the_walk_in_c_equals_the_python_walk() -> None:
    """Bit for bit: the C walk adds the same floats in the same order."""
    scorer = default_scorer()
    assert scorer._evidence != scorer._evidence_py  # the C walk is the one in use
    for text in corpus():
        _walks_agree(scorer, text)


# Terms of every kind (sentiment, negator, degree, contrast, chatter, sarcasm, ironic),
# English words and numbers, clause ends and question ends, a GAP.
_PIECES = [
    "好",
    "差",
    "不",
    "很",
    "太",
    "但是",
    "主播好",
    "呵呵",
    "666",
    "6",
    "yyds",
    "good",
    "not",
    "u1s1",
    "，",
    "!",
    "？",
    "吗",
    " ",
    "的",
    "质量",
    "发货",
    "慢",
    "\x00",
    "号",
]


@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12))
def test_the_walk_in_c_equals_python_on_any_mix_of_terms(pieces: list[str]) -> None:
    _walks_agree(default_scorer(), "".join(pieces))
