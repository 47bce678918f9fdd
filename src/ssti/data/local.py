"""Local csv/jsonl/parquet files; filled in below."""

from __future__ import annotations

SUFFIXES = (".csv", ".jsonl", ".parquet")


def load_local(path, text_column="text", label_column="label"):
    raise NotImplementedError
