"""Local csv/jsonl/parquet files, read with pyarrow straight into the dataset contract.

The files are read with pyarrow's own readers (not `datasets`' cached builders): no cache
directory is written and a file of a few hundred thousand rows loads in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from ssti.data.common import SPLIT_SEED, TEST_FRACTION, make_split, stratified_split
from ssti.errors import SSTIError

SUFFIXES = (".csv", ".jsonl", ".parquet")
SPLIT_NAMES = ("train", "validation", "test")


def encode_labels(values: Sequence, field: str = "label") -> tuple[list[int], list[str]]:
    """Turn raw label values into class indices and class names.

    Integer labels (and floats that are whole numbers) get names `str(value)` in sorted order and
    are remapped to 0..K-1 (so labels 0..K-1 keep their numbers and gaps such as {1, 5} become
    {0, 1} named "1", "5"); string labels get their sorted distinct values as names. Values must not
    be missing (None); the caller checks that first so it can name the row.
    """
    distinct = set(values)
    if all(isinstance(v, bool) for v in distinct):
        names = sorted(str(v) for v in distinct)
        index = {v: names.index(str(v)) for v in distinct}
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in distinct) or all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in distinct
    ):
        ordered = sorted({int(v) for v in distinct})
        names = [str(v) for v in ordered]
        position = {v: k for k, v in enumerate(ordered)}
        index = {v: position[int(v)] for v in distinct}
    elif all(isinstance(v, str) for v in distinct):
        names = sorted(distinct)
        position = {v: k for k, v in enumerate(names)}
        index = position
    else:
        kinds = sorted({type(v).__name__ for v in distinct})
        raise SSTIError(f"{field}: labels must be all integers or all strings, found {', '.join(kinds)}")
    return [index[v] for v in values], names


def _read_table(path: Path) -> pa.Table:
    """Read a csv/jsonl/parquet file into an Arrow table, turning parse errors into one line."""
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pacsv.read_csv(path)
        if suffix == ".jsonl":
            return pajson.read_json(path)
        return pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SSTIError(f"dataset: cannot read {path} as {suffix[1:]}: {first_line}") from None


def _first_null(values: list) -> int | None:
    """The index of the first missing value, or None."""
    for i, v in enumerate(values):
        if v is None:
            return i
    return None


def _text_values(table: pa.Table, name: str, path: Path) -> list:
    """The text column as Python strings (numbers read by type inference become their text)."""
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        try:
            col = pc.cast(col, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise SSTIError(f"text_column: column {name!r} of {path} holds {col.type}, not text") from None
    return col.to_pylist()


def load_local(
    path: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    test_fraction: float = TEST_FRACTION,
    seed: int = SPLIT_SEED,
) -> datasets.DatasetDict:
    """Load a local csv/jsonl/parquet file into the dataset contract (`id`, `text`, `label` ClassLabel).

    A `split` column (train/validation/test) is honoured; otherwise the rows are split into
    train/test stratified by label with `test_fraction` and `seed`, so the same file always gives
    the same split. An `id` column is kept (as a string); otherwise ids are `<filestem>-<row>`.
    Every problem (missing file or column, empty file, missing values) is a one-line SSTIError.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise SSTIError(f"dataset: {path} has suffix {path.suffix or '(none)'!r}; allowed: {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise SSTIError(f"dataset: file {path} does not exist")
    if not 0.0 < test_fraction < 1.0:
        raise SSTIError(f"test_fraction: {test_fraction} is not between 0 and 1 (exclusive)")
    if path.stat().st_size == 0:
        raise SSTIError(f"dataset: {path} is empty")
    table = _read_table(path)
    for option, name in (("text_column", text_column), ("label_column", label_column)):
        if name not in table.column_names:
            raise SSTIError(
                f"{option}: column {name!r} is not in {path.name} (columns: {', '.join(table.column_names) or 'none'})"
            )
    if table.num_rows == 0:
        raise SSTIError(f"dataset: {path} is empty (no rows)")

    texts = _text_values(table, text_column, path)
    raw_labels = table.column(label_column).to_pylist()
    raw_labels = [None if isinstance(v, str) and not v.strip() else v for v in raw_labels]
    for field, name, values in (("text_column", text_column, texts), ("label_column", label_column, raw_labels)):
        row = _first_null(values)
        if row is not None:
            raise SSTIError(f"{field}: row {row} (0-based) of {path.name} has no value in column {name!r}")
    labels, class_names = encode_labels(raw_labels, field="label_column")

    if "id" in table.column_names:
        ids = pc.cast(table.column("id"), pa.string()).to_pylist()
        row = _first_null(ids)
        if row is not None:
            raise SSTIError(f"id: row {row} (0-based) of {path.name} has no id")
        seen: set[str] = set()
        for value in ids:
            if value in seen:
                raise SSTIError(f"id: {value!r} appears more than once in {path.name}; ids must be unique")
            seen.add(value)
    else:
        ids = [f"{path.stem}-{i}" for i in range(table.num_rows)]

    if "split" not in table.column_names:
        return stratified_split(ids, texts, labels, class_names, test_fraction=test_fraction, seed=seed)

    splits = table.column("split").to_pylist()
    for row, value in enumerate(splits):
        if value not in SPLIT_NAMES:
            raise SSTIError(
                f"split: row {row} (0-based) of {path.name} has split {value!r}; allowed: {', '.join(SPLIT_NAMES)}"
            )
    out = {}
    for name in SPLIT_NAMES:
        rows = [i for i, s in enumerate(splits) if s == name]
        if rows:
            out[name] = make_split([ids[i] for i in rows], [texts[i] for i in rows], [labels[i] for i in rows], class_names)
    for required in ("train", "test"):
        if required not in out:
            raise SSTIError(f"split: {path.name} has no {required!r} rows (found: {', '.join(out) or 'none'})")
    return datasets.DatasetDict(out)
