"""An operator's labelled comments: CSV or JSONL, a text column and a label column.

Labels: `neg`/`neu`/`pos` (or negative/neutral/positive), `0`/`1` (negative/positive),
or 1-5 stars (1-2 negative, 3 neutral, 4-5 positive). A bad row is reported with its
line number and skipped; it never stops a long run.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import orjson

TEXT_COLUMNS = ("text", "comment", "content", "review")
LABEL_COLUMNS = ("label", "sentiment", "stars", "rating", "polarity")
LABELS = {
    "neg": "negative",
    "negative": "negative",
    "neu": "neutral",
    "neutral": "neutral",
    "pos": "positive",
    "positive": "positive",
    "0": "negative",
    "1": "positive",
}
STARS = {"1": "negative", "2": "negative", "3": "neutral", "4": "positive", "5": "positive"}
MAX_TEXT_CHARS = 2000


@dataclass
class Labelled:
    rows: list[tuple[str, str]] = field(default_factory=list)  # (text, label)
    problems: list[str] = field(default_factory=list)  # "file:line: what"
    sources: list[dict[str, object]] = field(default_factory=list)  # file, rows, sha256


def label_of(value: object, stars: bool) -> str | None:
    text = str(value).strip().lower()
    if stars:
        return STARS.get(text.removesuffix(".0"))
    return LABELS.get(text.removesuffix(".0"))


def read(paths: list[str]) -> Labelled:
    out = Labelled()
    for path in paths:
        data = Path(path).read_bytes()
        before = len(out.rows)
        if path.endswith((".jsonl", ".ndjson")):
            _jsonl(path, data, out)
        else:
            _csv(path, data, out)
        out.sources.append(
            {
                "file": Path(path).name,
                "rows": len(out.rows) - before,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return out


def _row(path: str, line: int, text: object, raw_label: object, stars: bool, out: Labelled) -> None:
    if not isinstance(text, str) or not text.strip():
        out.problems.append(f"{path}:{line}: no text")
        return
    if len(text) > MAX_TEXT_CHARS:
        out.problems.append(f"{path}:{line}: text over {MAX_TEXT_CHARS} characters")
        return
    label = label_of(raw_label, stars)
    if label is None:
        expected = "1-5 stars" if stars else "neg/neu/pos, negative/neutral/positive or 0/1"
        out.problems.append(f"{path}:{line}: label {raw_label!r} is not {expected}")
        return
    out.rows.append((text.strip(), label))


def _columns(names: list[str], path: str) -> tuple[str, str, bool]:
    lower = {n.strip().lower(): n for n in names}
    text = next((lower[c] for c in TEXT_COLUMNS if c in lower), None)
    label = next((lower[c] for c in LABEL_COLUMNS if c in lower), None)
    if text is None or label is None:
        raise ValueError(
            f"{path}: needs a text column ({', '.join(TEXT_COLUMNS)}) and a label column "
            f"({', '.join(LABEL_COLUMNS)}); found {', '.join(names) or 'none'}"
        )
    return text, label, label.strip().lower() in ("stars", "rating")


def _csv(path: str, data: bytes, out: Labelled) -> None:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    text_col, label_col, stars = _columns(list(reader.fieldnames or []), path)
    for row in reader:
        _row(path, reader.line_num, row.get(text_col), row.get(label_col), stars, out)


def _jsonl(path: str, data: bytes, out: Labelled) -> None:
    columns: tuple[str, str, bool] | None = None
    for line, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.problems.append(f"{path}:{line}: not JSON")
            continue
        if not isinstance(doc, dict):
            out.problems.append(f"{path}:{line}: not a JSON object")
            continue
        if columns is None:
            columns = _columns(list(doc), path)
        text_col, label_col, stars = columns
        _row(path, line, doc.get(text_col), doc.get(label_col), stars, out)
