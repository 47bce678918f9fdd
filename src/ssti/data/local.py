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

SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t"}  # --delimiter tab / --delimiter '\t' as typed in a shell
MAX_CLASSES = 1000  # more distinct labels than this (or than half the rows) is a text column, not a label column
SPLIT_NAMES = ("train", "validation", "test")


UNLABELLED = ("-1", "")  # the GLUE convention for unlabelled rows (where 0 is a class), and an empty cell
_NOTED: set[tuple[str, tuple[str, ...]]] = set()  # files whose unused columns were already noted in this process


def _is_integer_text(v: str) -> bool:
    return v.lstrip("+-").isdigit()


def encode_labels(values: Sequence, field: str = "label") -> tuple[list[int], list[str]]:
    """Turn raw label values into class indices and class names, keeping every label's spelling.

    Labels are compared as the text written in the file (a number read from JSON or parquet becomes
    its text: 1 -> "1", a JSON true -> "true"), so "01" and "1" are two classes and "01" stays "01". Class
    order: numeric when every label looks like an integer ("2" before "10"; ties by spelling),
    otherwise sorted as text. Values must not be missing or unlabelled; the caller checks that first
    so it can name the row. Raises SSTIError for list or struct labels (multi-label rows).
    """
    kinds = {"text" if isinstance(v, str) else "number" for v in values if not isinstance(v, (list, tuple, dict))}
    if len(kinds) > 1 or any(isinstance(v, float) and not v.is_integer() for v in values):
        found = sorted({type(v).__name__ for v in values})
        raise SSTIError(f"{field}: labels must be all integers or all strings, found {', '.join(found)}")
    texts = []
    for i, v in enumerate(values):
        if isinstance(v, (list, tuple, dict)):
            raise SSTIError(f"{field}: row {i} (0-based) holds {type(v).__name__} label {v!r}: multi-label rows are not "
                            f"supported (one class per row)")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        texts.append(v if isinstance(v, str) else ("true" if v else "false") if isinstance(v, bool) else str(v))
    distinct = set(texts)
    if distinct and all(_is_integer_text(v) for v in distinct):
        names = sorted(distinct, key=lambda v: (int(v), v))
    else:
        names = sorted(distinct)
    index = {v: k for k, v in enumerate(names)}
    return [index[v] for v in texts], names


def _read_table(path: Path, text_columns: Sequence[str], delimiter: str | None = None) -> pa.Table:
    """Read a csv/jsonl/parquet file into an Arrow table, turning parse errors into one line.

    CSV cells are read as the text in the file: no type inference on the text, label, id and split
    columns ("0007" stays "0007", "1e3" stays "1e3", "NA" stays "NA").
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SSTIError(f"dataset: {path} is not UTF-8 (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}; "
                            f"latin-1 or cp1252 text?); save it as UTF-8") from None
    try:
        if suffix in (".csv", ".tsv"):
            delimiter = delimiter or ("\t" if suffix == ".tsv" else None)
            convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns}, strings_can_be_null=False,
                                           quoted_strings_can_be_null=False)
            parse = pacsv.ParseOptions(delimiter=delimiter) if delimiter else None
            return pacsv.read_csv(path, parse_options=parse, convert_options=convert)
        if delimiter:
            raise SSTIError(f"delimiter: only csv/tsv files have a delimiter ({path.name} is {suffix[1:]})")
        if suffix in (".jsonl", ".json"):
            return _read_jsonl(path)
        return pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SSTIError(f"dataset: cannot read {path} as {suffix[1:]}: {first_line}") from None


def _read_jsonl(path: Path) -> pa.Table:
    """One JSON object per line (blank lines skipped), or a .json file holding one array of objects;
    numbers kept as the text written: an id 12345678901234567890 or a label 007.0 is not rounded through
    a float; text, id and label columns then hold that text (`encode_labels` orders integer-looking
    labels numerically)."""
    import json

    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SSTIError(f"dataset: {path} is not UTF-8 (byte {exc.start}); save it as UTF-8") from None
    if path.suffix.lower() == ".json" and raw.lstrip().startswith("["):
        try:
            rows = json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
        except json.JSONDecodeError as exc:
            raise SSTIError(f"dataset: cannot read {path} as json: line {exc.lineno}: {exc.msg} (column {exc.colno})") from None
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise SSTIError(f"dataset: cannot read {path} as json: item {bad} (0-based) of its array is not an object "
                            f"(one object per row: {{\"text\": ..., \"label\": ...}})")
        return _rows_table(rows, path, "item")
    lines = raw.split("\n")  # not splitlines: U+2028 may sit inside a string
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_int=str, parse_float=str, parse_constant=str)
        except json.JSONDecodeError as exc:
            raise SSTIError(f"dataset: cannot read {path} as jsonl: line {n}: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise SSTIError(f"dataset: cannot read {path} as jsonl: line {n} is a JSON {type(row).__name__}, not an object")
        rows.append(row)
    return _rows_table(rows, path, "object")


_JSON_KIND = {str: "text", list: "a list", dict: "an object", bool: "true/false"}


def _rows_table(rows: list[dict], path: Path, unit: str) -> pa.Table:
    """JSON objects -> an Arrow table; a key whose values mix kinds (text in one object, a list in another:
    multi-label rows) is a one-line SSTIError naming the key and the first odd object (0-based)."""
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        for key in dict.fromkeys(k for r in rows for k in r):
            kinds = [_JSON_KIND.get(type(r[key]), "value") for r in rows if r.get(key) is not None]
            if len(set(kinds)) > 1:
                first = next(i for i, r in enumerate(rows) if r.get(key) is not None and _JSON_KIND.get(type(r[key]), "value") != kinds[0])
                raise SSTIError(f"dataset: column {key!r}: {unit} {first} (0-based) of {path.name} holds "
                                f"{_JSON_KIND.get(type(rows[first][key]), 'value')} where earlier ones hold {kinds[0]} "
                                f"(a list label is a multi-label row: ssti supports one class per row)") from None
        raise


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
    delimiter: str | None = None,
    drop_unlabelled: bool = False,
    whole: bool = False,
    id_column: str = "id",
) -> datasets.DatasetDict:
    """Load a local csv/jsonl/parquet file into the dataset contract (`id`, `text`, `label` ClassLabel).

    A `split` column (train/validation/test) is honoured; otherwise the rows are split into
    train/test stratified by label with `test_fraction` and `seed`, so the same file always gives
    the same split; with `whole` (scanning and cleaning a file: every row is data) all rows go to
    `train` instead. The `id_column` is kept (as a string); without one ids are `<filestem>-<row>`;
    other columns are not carried (a note on stderr names them). A .tsv file is tab-separated; a .json
    file is one array of objects (or JSON lines).
    Text, id and label cells are read as written (see `_read_table` and `encode_labels`). Rows
    labelled -1 (the GLUE convention for unlabelled rows, in a file that also has label 0; in a -1/1
    file -1 is a class) or left empty are refused, or with
    `drop_unlabelled` dropped and counted on stderr. Every problem (missing file or column, empty
    file, missing values, multi-label rows) is a one-line SSTIError.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise SSTIError(f"dataset: {path} has suffix {path.suffix or '(none)'!r}; allowed: {', '.join(SUFFIXES)}")
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the working folder {Path.cwd()})"
        raise SSTIError(f"dataset: file {path} does not exist{where}")
    if not 0.0 < test_fraction < 1.0:
        raise SSTIError(f"test_fraction: {test_fraction} is not between 0 and 1 (exclusive)")
    if path.stat().st_size == 0:
        raise SSTIError(f"dataset: {path} is empty")
    delimiter = DELIMITER_NAMES.get(delimiter.lower(), delimiter) if delimiter else delimiter
    if len({text_column, label_column, id_column}) < 3:
        raise SSTIError(f"label_column: the text, label and id columns must be three different columns "
                        f"(text_column {text_column!r}, label_column {label_column!r}, id_column {id_column!r})")
    if delimiter is not None and (len(delimiter) != 1 or not delimiter.isascii() or delimiter in "\r\n\""):
        raise SSTIError(f"delimiter: {delimiter!r} is not one ASCII character other than a quote or line break (e.g. ';', or tab)")
    head = path.read_bytes()[:4] if path.suffix.lower() in (".csv", ".jsonl") else b""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SSTIError(f"dataset: {path} is UTF-16 text; ssti reads csv and jsonl as UTF-8: save it as UTF-8")
    table = _read_table(path, (text_column, label_column, id_column, "split"), delimiter)
    dupes = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
    if dupes:
        raise SSTIError(f"dataset: {path.name} has column(s) {', '.join(map(repr, dupes))} more than once; give every column its own name")
    for option, name in (("text_column", text_column), ("label_column", label_column)):
        if name not in table.column_names:
            hint = ""
            if len(table.column_names) == 1 and path.suffix.lower() in (".csv", ".tsv"):
                seen = next((d for d in (";", "\t", "|", ",") if d in table.column_names[0]), None)
                if seen:
                    spelled = "tab" if seen == "\t" else repr(seen)
                    hint = f"; the file looks {spelled}-separated: pass --delimiter {spelled} (data.delimiter)"
            raise SSTIError(
                f"{option}: column {name!r} is not in {path.name} (columns: {', '.join(table.column_names) or 'none'}){hint}"
            )
    if id_column != "id" and id_column not in table.column_names:
        raise SSTIError(f"id_column: column {id_column!r} is not in {path.name} (columns: {', '.join(table.column_names)})")
    unused = [c for c in table.column_names if c not in (text_column, label_column, id_column, "split")]
    if unused and (str(path.resolve()), tuple(unused)) not in _NOTED:
        import sys

        _NOTED.add((str(path.resolve()), tuple(unused)))  # a command that loads the file twice says it once
        print(f"note: {path.name}: column(s) {', '.join(map(repr, unused))} are not carried (ssti keeps id, text, label"
              f"{', split' if 'split' in table.column_names else ''})", file=sys.stderr)
    if table.num_rows == 0:
        raise SSTIError(f"dataset: {path} is empty (no rows)")

    raw_labels = table.column(label_column).to_pylist()
    spelled = [None if v is None or isinstance(v, bool) else str(v).strip() for v in raw_labels]
    # -1 marks an unlabelled row only beside a 0 label (GLUE: classes 0..K-1); in a -1/1 file it is a class
    missing = UNLABELLED if "0" in spelled else ("",)
    unlabelled = [i for i, (v, w) in enumerate(zip(raw_labels, spelled)) if v is None or (w is not None and w in missing)]
    if unlabelled and not drop_unlabelled:
        i = unlabelled[0]
        raise SSTIError(f"label_column: row {i} (0-based) of {path.name} is unlabelled ({raw_labels[i]!r} in column {label_column!r}; "
                        f"{len(unlabelled)} such rows); remove them, or pass --drop-unlabelled (data.drop_unlabelled) to drop them")
    if unlabelled:
        import sys

        keep = pa.array(sorted(set(range(table.num_rows)) - set(unlabelled)), pa.int64())
        table = table.take(keep)
        raw_labels = table.column(label_column).to_pylist()
        print(f"note: dropped {len(unlabelled)} unlabelled row(s) of {path.name} (label -1 or empty)", file=sys.stderr)
        if table.num_rows == 0:
            raise SSTIError(f"dataset: {path} has no labelled rows")
    texts = _text_values(table, text_column, path)
    row = _first_null(texts)
    if row is not None:
        raise SSTIError(f"text_column: row {row} (0-based) of {path.name} has no value in column {text_column!r}")
    labels, class_names = encode_labels(raw_labels, field="label_column")
    if len(class_names) > MAX_CLASSES or (len(class_names) >= 50 and len(class_names) > len(labels) / 2):
        raise SSTIError(f"label_column: column {label_column!r} of {path.name} has {len(class_names):,} distinct values in "
                        f"{len(labels):,} rows: free text, not class labels; name the label column with --label-column")

    if id_column in table.column_names:
        ids = pc.cast(table.column(id_column), pa.string()).to_pylist()
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

    if "split" not in table.column_names and whole:
        return datasets.DatasetDict({"train": make_split(ids, texts, labels, class_names)})
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
