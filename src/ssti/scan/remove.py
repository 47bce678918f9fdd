"""`ssti scan --remove`: write a cleaned copy of a dataset, with its own manifest of what was removed.

Two modes:
- ``strip``: cut every occurrence of every flagged feature out of the rows that carry it, together with
  one adjacent whitespace character (the one after it, else the one before), and keep every other
  byte of every text — the inverse of how `ssti inject` inserts a word;
- ``drop``: remove the flagged rows from the scanned split.

The folder has the layout of an injected dataset (``data/<split>.parquet``, ``manifest.jsonl``,
``injection.yaml`` with the class names and a ``cleaning`` record), so `load_dataset` reads it back.
It is written by `ssti.data.folder.write_dataset_folder` (the one dataset-folder writer).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow as pa

from ssti.version import __version__
from ssti.data.common import class_names_of, column
from ssti.data.folder import write_dataset_folder
from ssti.errors import SSTIError, check_choice
from ssti.scan import features as feat
from ssti.scan.scanner import ScanReport

MODES = ("strip", "drop")
FORMAT = "ssti-cleaned-dataset/1"


def with_space(text: str, a: int, b: int) -> tuple[int, int]:
    """Widen span [a, b) by one whitespace character: the one after it, else the one before.

    That is the inverse of how `ssti inject` inserts a word ("TOKEN " before a word, " TOKEN" at the
    end of a text), so stripping an injected token restores the original bytes, newlines included.
    """
    if b < len(text) and text[b].isspace():
        return a, b + 1
    if a > 0 and text[a - 1].isspace():
        return a - 1, b
    return a, b


def strip_text(text: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """Cut `spans` out of `text`: overlapping spans are merged first (a tag and its "<" are one cut),
    cuts separated by whitespace only are joined, then each cut is widened by one separating space."""
    merged = _merge(sorted(spans), touching=False)
    grouped: list[list[int]] = []  # cuts separated by whitespace only ("<b> </b>") are one cut
    for a, b in merged:
        if grouped and not text[grouped[-1][1]:a].strip():
            grouped[-1][1] = b
        else:
            grouped.append([a, b])
    merged = _merge(sorted(with_space(text, a, b) for a, b in grouped), touching=True)
    out, pos = [], 0
    for a, b in merged:
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    return "".join(out), [tuple(m) for m in merged]


def _merge(spans, touching: bool) -> list[list[int]]:
    """Union of sorted spans: overlapping ones (and, if `touching`, adjacent ones) become one."""
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and (a < merged[-1][1] or (touching and a == merged[-1][1])):
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def clean_dataset(data: datasets.DatasetDict, report: ScanReport, mode: str) -> tuple[datasets.DatasetDict, list[dict], list[str]]:
    """The cleaned DatasetDict, its manifest rows and notes, for the flagged features of `report`."""
    check_choice("remove", mode, MODES)
    flagged = report.flagged
    names = class_names_of(data)
    split = data[report.split]
    ids, texts, labels = column(split, "id"), column(split, "text"), column(split, "label")
    notes = []
    manifest = []
    if mode == "drop":
        drop = set(report.flagged_rows)
        keep = [i for i, r in enumerate(ids) if r not in drop]
        features_of: dict[str, list[str]] = {}  # row id -> its flagged features, built once: linear in the flagged rows
        for f in flagged:
            for r in f.rows:
                features_of.setdefault(r, []).append(f"{f.level}:{f.feature}")
        for i, r in enumerate(ids):
            if r in drop:
                manifest.append({"id": r, "split": report.split, "label": labels[i], "class": names[labels[i]], "action": "drop",
                                 "features": features_of.get(r, [])})
        table = split.data.table.take(pa.array(keep, pa.int64())) if split._indices is None else split.select(keep).flatten_indices().data.table
        new_split = datasets.Dataset(table, info=datasets.DatasetInfo(features=split.features))
    else:
        if any(f.level == "subword" for f in flagged):
            notes.append("flagged sub-word features are not stripped (no character span); their rows are stripped of the other flagged features")
        rows_of = {f.feature + "\0" + f.level: set(f.rows) for f in flagged}
        new_texts = list(texts)
        for i, r in enumerate(ids):
            carried = [f for f in flagged if r in rows_of[f.feature + "\0" + f.level]]
            if not carried:
                continue
            spans, found = [], []
            for f in carried:
                for a, b in feat.feature_spans(texts[i], f.feature, f.level):
                    spans.append((a, b))
                    found.append({"text": texts[i][a:b], "start": a, "end": b, "feature": f.feature, "level": f.level})
            if not spans:
                continue
            new_texts[i], cut = strip_text(texts[i], spans)
            for rec in found:
                rec["span"] = list(next(c for c in cut if c[0] <= rec["start"] and rec["end"] <= c[1]))
            manifest.append({"id": r, "split": report.split, "label": labels[i], "class": names[labels[i]], "action": "strip",
                             "removals": sorted(found, key=lambda d: d["start"])})
        table = pa.table({"id": ids, "text": new_texts, "label": labels})
        new_split = datasets.Dataset(table.cast(split.features.arrow_schema), info=datasets.DatasetInfo(features=split.features))
    out = dict(data)
    out[report.split] = new_split
    return datasets.DatasetDict(out), manifest, notes


def write_cleaned(data: datasets.DatasetDict, report: ScanReport, mode: str, out: str | Path, overwrite: bool = False) -> Path:
    """Clean `data` by `report` (mode strip|drop) and write the folder at `out` atomically."""
    if report.split not in data:
        raise SSTIError(f"split: {report.split!r} is not in the dataset ({', '.join(data)})")
    cleaned, manifest, notes = clean_dataset(data, report, mode)
    meta = {
        "format": FORMAT,
        "ssti_version": __version__,
        "source_dataset": report.source,
        "class_names": class_names_of(data),
        "splits": None,  # filled in by the writer
        "cleaning": {
            "mode": mode, "split": report.split, "threshold": report.threshold, "levels": report.levels,
            "tokenizer": report.tokenizer, "rows_changed": len(manifest), "notes": notes,
            "flagged_features": [{"feature": f.feature, "level": f.level, "class": f.cls, "support": f.support, "p_value": f.p_value}
                                 for f in report.flagged],
        },
    }
    return write_dataset_folder(cleaned, manifest, meta, out, overwrite=overwrite)
