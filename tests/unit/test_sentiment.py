"""Behaviour of the comment scorer on the cases live rooms produce.

These guard behaviour; accuracy evidence is `python -m streams.sentiment.evaluate`.
"""

from __future__ import annotations

import pytest

from streams.sentiment import classify, classify_batch, score, score_batch


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
