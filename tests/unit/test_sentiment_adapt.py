"""Training on an operator's own labels: reading CSV/JSONL with bad rows skipped by line,
a deterministic model that beats the shipped one on the operator's kind of comments,
the evaluation report, and the refusals (corrupt, another version, insane)."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from streams.sentiment import adapt, default_scorer, labels, report

POS = [
    "这款口红颜色绝了",
    "主播人美心善",
    "物流超快 好评",
    "回购第三次了",
    "性价比炸裂",
    "上身效果好",
]
NEG = ["色差严重", "发货太慢了", "跟主播说的不一样", "穿了两天就起球", "尺码偏小退了", "收到就坏了"]


def write_labels(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(n):
        label = rng.choice(("pos", "neg"))
        lines.append(f"{rng.choice(POS if label == 'pos' else NEG)}{i},{label}")
    lines += [",pos", "好,great"]  # no text; an unknown label
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_labels_from_csv_and_jsonl_with_stars_and_bad_rows(tmp_path: Path):
    csv_file = tmp_path / "a.csv"
    write_labels(csv_file, 10)
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(
        '{"comment": "太差了", "stars": 1}\n{"comment": "还行", "stars": 3}\n'
        '{"comment": "爱了", "stars": "5"}\nnot json\n{"comment": "x", "stars": 9}\n',
        encoding="utf-8",
    )
    read = labels.read([str(csv_file), str(jsonl)])
    assert len(read.rows) == 13
    assert ("太差了", "negative") in read.rows and ("还行", "neutral") in read.rows
    assert read.problems == [
        f"{csv_file}:12: no text",
        f"{csv_file}:13: label 'great' is not neg/neu/pos, negative/neutral/positive or 0/1",
        f"{jsonl}:4: not JSON",
        f"{jsonl}:5: label 9 is not 1-5 stars",
    ]
    assert [s["rows"] for s in read.sources] == [10, 3] and len(read.sources[0]["sha256"]) == 64
    with pytest.raises(ValueError, match="needs a text column"):
        (tmp_path / "c.csv").write_text("words,label\nx,pos\n")
        labels.read([str(tmp_path / "c.csv")])


def test_training_is_deterministic_and_adapts_to_the_operators_comments(tmp_path: Path):
    path = tmp_path / "ours.csv"
    write_labels(path, 1_200)
    read = labels.read([str(path)])
    model = adapt.train(read.rows, read.sources)
    again = adapt.train(list(reversed(read.rows)), read.sources)
    assert adapt.dumps(model) == adapt.dumps(again)  # byte-identical
    assert model["rows"]["train"] > model["rows"]["dev"] > 0 and model["mix"] > 0
    out = tmp_path / "ours.model"
    out.write_bytes(adapt.dumps(model))
    scorer, info = adapt.load_model(str(out))
    assert info["name"] == "ours.model" and len(info["sha256"]) == 12
    held_out = [(f"{t}!", "positive") for t in POS] + [(f"{t}!", "negative") for t in NEG]
    shipped = adapt.polar_accuracy(default_scorer().score, held_out)
    adapted = adapt.polar_accuracy(scorer.score, held_out)
    assert adapted == 1.0 and adapted > shipped


def test_a_bad_model_file_is_refused_in_one_line(tmp_path: Path):
    path = tmp_path / "m.model"
    path.write_text("{not json")
    with pytest.raises(adapt.ModelError, match="not a model file"):
        adapt.load_model(str(path))
    good = {"format": adapt.FORMAT, "version": adapt.VERSION, "ngrams": {"好": 1.0}}
    path.write_bytes(orjson.dumps({**good, "version": 99}))
    with pytest.raises(adapt.ModelError, match="model version 99"):
        adapt.load_model(str(path))
    path.write_bytes(orjson.dumps({**good, "ngrams": {"好": -40.0, "看": -40.0, "质": -40}}))
    with pytest.raises(adapt.ModelError, match="fails the sanity set") as caught:
        adapt.load_model(str(path))
    assert "\n" not in str(caught.value)


def test_the_report_has_buckets_confusion_calibration_and_a_gain(tmp_path: Path):
    rows = (
        [(t, "positive") for t in POS] + [(t, "negative") for t in NEG] + [("几号链接", "neutral")]
    )
    text = report.report(rows, {"shipped": default_scorer().score, "other": default_scorer().score})
    assert "1-8 chars" in text and "gain" in text and "+0.000" in text
    assert "confusion (shipped)" in text and "calibration" in text and "truly 46.2%" in text
