"""Behaviour of the comment scorer on the cases live rooms produce.

These guard behaviour; accuracy evidence is `python -m streams.sentiment.evaluate`.
"""

from __future__ import annotations

import pytest

from streams import sentiment
from streams.sentiment import classify, classify_batch, score, score_batch
from streams.sentiment.scorer import RepeatedTexts


@pytest.mark.parametrize(
    "text",
    [
        "yyds",
        "绝绝子",
        "真香",
        "闭眼入",
        "已拍 冲冲冲",
        "质量很好",
        "love it 👍",
        "🔥🔥🔥",
        "this is great",
    ],
)
def test_praise_and_slang_are_positive(text: str) -> None:
    assert classify(text) == "positive", score(text)


@pytest.mark.parametrize(
    "text",
    [
        "假货",
        "骗子",
        "割韭菜",
        "智商税",
        "翻车了",
        "避雷",
        "不发货",
        "客服不理人",
        "用了过敏",
        "退款!",
        "😡😡",
        "💩",
        "scam!!",
        "terrible quality",
        "质量差 not worth it",
        # Negated praise the learnt n-grams alone left neutral or positive (-0.06, +0.16,
        # +0.22 until 2026-12-02).
        "不推荐",
        "真难用",
        "不值",
        "不值得买",
    ],
)
def test_complaints_are_negative(text: str) -> None:
    assert classify(text) == "negative", score(text)


@pytest.mark.parametrize(
    "text",
    [
        "几号链接?",
        "包邮吗?",
        "主播好",
        "大家好",
        "来了来了",
        "什么时候上链接",
        "多少钱",
        "还有货吗",
        # Asking for a recommendation is a request, not praise (求推荐 scored 0.56 before).
        "求推荐",
        "主播推荐一下",
    ],
)
def test_questions_and_chatter_are_neutral(text: str) -> None:
    assert classify(text) == "neutral", score(text)


def test_negation_flips_praise() -> None:
    assert score("好看") > 0.2
    assert score("不好看") < -0.2
    assert score("不是正品") < 0 < score("正品")
    assert score("not good at all") < 0 < score("good")


def test_degree_words_strengthen() -> None:
    assert score("非常差") < score("差") < 0
    assert score("very bad") < score("bad") < 0


def test_after_contrast_the_second_clause_decides() -> None:
    assert score("东西不错但是发货太慢") < 0
    assert score("虽然贵但是真的好用") > 0


def test_repeated_characters_and_full_width_forms_do_not_change_the_tone() -> None:
    assert classify("好好好好好好好好") == "positive"
    assert classify("垃圾垃圾垃圾垃圾") == "negative"
    assert classify("ＹＹＤＳ！！！") == "positive"  # full-width letters and marks


def test_scores_are_bounded_and_empty_is_neutral() -> None:
    texts = ["", "   ", "假货" * 200, "yyds" * 200, "🙂" * 1000]
    scores = score_batch(texts)
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert scores[0] == 0.0 and classify("") == "neutral"


def test_batch_forms_match_the_single_forms() -> None:
    texts = ["假货", "主播好", "yyds", "不好看"]
    assert score_batch(texts) == [score(t) for t in texts]
    assert classify_batch(texts) == ["negative", "neutral", "positive", "negative"]


# Sarcasm and abbreviations: the policy is in README ("Sarcasm and abbreviations") and in
# the header of streams/sentiment/sources/curated.tsv.


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("呵呵", "negative"),  # alone: dismissive
        ("呵呵 质量真好", "negative"),  # praise beside it is the sarcasm
        ("呵呵，又翻车了", "negative"),
        ("我真的会谢", "negative"),
        ("栓Q", "negative"),
        ("好家伙", "neutral"),  # surprise, no direction of its own
        ("好家伙，等了一周还没发货", "negative"),  # the rest decides
        ("666", "positive"),  # ironic praise alone is praise
        ("主播666", "positive"),
        ("666 这个颜色", "positive"),  # beside n-gram noise it stays praise
        ("666 质量差", "negative"),  # beside a complaint it is irony
        ("6 又断货了", "negative"),
        ("6啊 又没货", "negative"),
        ("6号链接", "neutral"),  # a number before a unit is a quantity
        ("yyds", "positive"),
        ("tql", "positive"),
        ("xswl", "positive"),
        ("笑死", "positive"),  # amusement, not death
        ("u1s1", "neutral"),  # "to be fair": the rest decides
        ("u1s1 还行", "positive"),
        ("u1s1 质量一般", "negative"),
        ("nsdd", "neutral"),  # "you're right", often ironic: no direction
        ("nsdd 但是太贵了", "negative"),
        ("绝了", "neutral"),  # amazing or awful
        ("绝了 太好看了", "positive"),
        ("绝了 太难看了", "negative"),
        ("yygq", "negative"),
    ],
)
def test_sarcasm_markers_and_abbreviations_follow_the_written_policy(text: str, label: str) -> None:
    assert classify(text) == label, score(text)


def test_sarcasm_reads_as_sarcasm_only_in_a_one_clause_comment() -> None:
    # In a review of several clauses 呵呵 is as often a friendly laugh: it counts nothing.
    review = "性价比真不错,屏幕很漂亮,我还是一闭眼把贴膜给撕了,呵呵。送了鼠标,包装满厚实的。"
    assert classify(review) == "positive"
    assert score("呵呵 质量真好") < 0 < score("质量真好")


def test_numbers_match_only_as_whole_words() -> None:
    assert score("1666") == score("") == 0.0  # not 666 inside a longer number
    assert score("6.1") == 0.0  # a date or a decimal, not 6
    assert classify("打12315投诉") == "negative"  # the complaints hotline, as a word


def test_repeated_texts_remember_short_comments_and_stay_bounded():
    calls: list[str] = []

    def score(text: str) -> float:
        calls.append(text)
        return len(text) / 100

    remembered = RepeatedTexts(score, max_entries=2, max_chars=5)
    assert [remembered(t) for t in ("666", "666", "好看", "666")] == [0.03, 0.03, 0.02, 0.03]
    assert calls == ["666", "好看"]  # each short text scored once
    assert remembered("a longer comment") == 0.16 and remembered("a longer comment") == 0.16
    assert calls.count("a longer comment") == 2  # long texts are not kept
    remembered("扣1")  # a third short text: the memory starts over
    assert list(remembered.memo) == ["扣1"]


def test_repeated_texts_give_the_scorers_own_scores():
    scorer = sentiment.default_scorer()
    remembered = RepeatedTexts(scorer.score)
    for text in ("666", "主播好美!", "质量太差了，退货", "666", "主播好美!"):
        assert remembered(text) == scorer.score(text)
