"""Local csv/jsonl/parquet files into the contract, and every bad-input error."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ssti.data import check_contract, column, load_dataset
from ssti.data.local import SUFFIXES, encode_labels, load_local
from ssti.errors import SSTIError

TEXTS = [f"review number {i}, with a comma" for i in range(10)]
LABELS = [0, 1] * 5


def write(path: Path, rows: list[dict]) -> Path:
    """Write rows as csv, tsv, jsonl, json (one array) or parquet, by suffix."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        import csv

        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    return path


def rows(**extra) -> list[dict]:
    base = [{"text": t, "label": l} for t, l in zip(TEXTS, LABELS)]
    for key, values in extra.items():
        for r, v in zip(base, values):
            r[key] = v
    return base


def all_rows(ds: datasets.DatasetDict) -> dict[str, tuple[str, int]]:
    return {i: (t, l) for s in ds.values() for i, t, l in zip(column(s, "id"), column(s, "text"), column(s, "label"))}


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip(tmp_path, suffix):
    path = write(tmp_path / f"reviews{suffix}", rows())
    ds = load_local(path)
    check_contract(ds, str(path))
    assert list(ds) == ["train", "test"]
    assert [len(ds["train"]), len(ds["test"])] == [8, 2]
    assert column(ds["test"], "label").count(0) == 1  # stratified: one of each class
    assert ds["train"].features["label"].names == ["0", "1"]
    assert ds["train"].features["id"] == datasets.Value("string")
    got = all_rows(ds)
    assert got == {f"reviews-{i}": (t, l) for i, (t, l) in enumerate(zip(TEXTS, LABELS))}


def test_same_file_same_split_and_seed_changes_it(tmp_path):
    path = write(tmp_path / "d.csv", rows())
    a, b, c = load_local(path), load_local(path), load_local(path, seed=1)
    assert column(a["test"], "id") == column(b["test"], "id")
    assert column(a["test"], "id") != column(c["test"], "id")


def test_test_fraction(tmp_path):
    path = write(tmp_path / "d.jsonl", rows())
    ds = load_local(path, test_fraction=0.4)
    assert [len(ds["train"]), len(ds["test"])] == [6, 4]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2])
def test_bad_test_fraction(tmp_path, fraction):
    path = write(tmp_path / "d.csv", rows())
    with pytest.raises(SSTIError, match="test_fraction"):
        load_local(path, test_fraction=fraction)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_column_options(tmp_path, suffix):
    data = [{"review": t, "sentiment": l, "other": 1} for t, l in zip(TEXTS, LABELS)]
    path = write(tmp_path / f"d{suffix}", data)
    ds = load_local(path, text_column="review", label_column="sentiment")
    assert sorted(t for t, _ in all_rows(ds).values()) == sorted(TEXTS)
    assert ds["train"].column_names == ["id", "text", "label"]


def test_load_dataset_passes_column_options(tmp_path):
    data = [{"review": t, "sentiment": l} for t, l in zip(TEXTS, LABELS)]
    path = write(tmp_path / "d.parquet", data)
    ds = load_dataset(str(path), text_column="review", label_column="sentiment")
    assert len(ds["train"]) + len(ds["test"]) == 10


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_string_labels(tmp_path, suffix):
    names = ["pos", "neg", "neutral", "pos", "neg", "neutral", "pos", "neg", "neutral", "pos"]
    path = write(tmp_path / f"d{suffix}", rows(label=names))
    ds = load_local(path)
    assert ds["train"].features["label"].names == ["neg", "neutral", "pos"]
    class_names = ds["train"].features["label"].names
    for i, (text, label) in all_rows(ds).items():
        assert class_names[label] == names[int(i.split("-")[1])]


def test_non_contiguous_int_labels_keep_their_values_as_names(tmp_path):
    path = write(tmp_path / "d.csv", rows(label=[5, 1, 3] * 3 + [5]))
    ds = load_local(path)
    names = ds["train"].features["label"].names
    assert names == ["1", "3", "5"]
    assert {names[l] for _, l in all_rows(ds).values()} == {"1", "3", "5"}
    assert all_rows(ds)["d-0"][1] == names.index("5")


def test_encode_labels():
    assert encode_labels([2, 0, 1]) == ([2, 0, 1], ["0", "1", "2"])
    assert encode_labels([10, -1, 10]) == ([1, 0, 1], ["-1", "10"])
    assert encode_labels([1.0, 0.0]) == ([1, 0], ["0", "1"])
    assert encode_labels(["b", "a", "b"]) == ([1, 0, 1], ["a", "b"])
    assert encode_labels([True, False]) == ([1, 0], ["false", "true"])  # as JSON writes them
    with pytest.raises(SSTIError, match="all integers or all strings"):
        encode_labels([1, "a"])
    with pytest.raises(SSTIError, match="all integers or all strings"):
        encode_labels([0.5, 1.0])


def test_id_column_kept_as_string(tmp_path):
    path = write(tmp_path / "d.jsonl", rows(id=list(range(100, 110))))
    ds = load_local(path)
    assert set(all_rows(ds)) == {str(i) for i in range(100, 110)}
    assert ds["train"].features["id"] == datasets.Value("string")


def test_duplicate_ids_refused(tmp_path):
    path = write(tmp_path / "d.csv", rows(id=["a"] * 10))
    with pytest.raises(SSTIError, match="id: 'a' appears more than once"):
        load_local(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_split_column_honoured(tmp_path, suffix):
    splits = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    path = write(tmp_path / f"d{suffix}", rows(split=splits))
    ds = load_local(path)
    assert list(ds) == ["train", "validation", "test"]
    assert column(ds["validation"], "id") == ["d-6", "d-7"]
    assert column(ds["test"], "text") == TEXTS[8:]
    assert ds["train"].column_names == ["id", "text", "label"]


def test_bad_split_value(tmp_path):
    path = write(tmp_path / "d.csv", rows(split=["train"] * 9 + ["dev"]))
    with pytest.raises(SSTIError, match="split: row 9 .* 'dev'; allowed: train, validation, test"):
        load_local(path)


def test_split_column_without_test(tmp_path):
    path = write(tmp_path / "d.csv", rows(split=["train"] * 10))
    with pytest.raises(SSTIError, match="no 'test' rows"):
        load_local(path)


def test_awkward_texts_survive(tmp_path):
    texts = ["line one\nline two", "  spaced  ", "", "ça très bien 😀", "x" * 20000, "a,\"quoted\",b"] + TEXTS[:4]
    for suffix in SUFFIXES:
        path = write(tmp_path / f"d{suffix}", rows(text=texts))
        got = sorted(t for t, _ in all_rows(load_local(path)).values())
        assert got == sorted(texts), suffix


def test_numeric_text_column_becomes_strings(tmp_path):
    path = write(tmp_path / "d.csv", rows(text=list(range(10))))
    ds = load_local(path)
    assert sorted(t for t, _ in all_rows(ds).values()) == sorted(str(i) for i in range(10))


def test_missing_file():
    with pytest.raises(SSTIError, match="does not exist"):
        load_local("/nonexistent/data.csv")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("x")
    with pytest.raises(SSTIError, match=r"allowed: \.csv, \.tsv, \.jsonl, \.json, \.parquet"):
        load_local(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("option", ["text_column", "label_column"])
def test_missing_column(tmp_path, suffix, option):
    path = write(tmp_path / f"d{suffix}", rows())
    with pytest.raises(SSTIError) as info:
        load_local(path, **{option: "body"})
    message = str(info.value)
    assert message.startswith(f"{option}: column 'body' is not in d{suffix}")
    assert "columns: text, label" in message and "\n" not in message


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    path.write_text("")
    with pytest.raises(SSTIError, match="is empty"):
        load_local(path)


def test_header_only_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n")
    with pytest.raises(SSTIError, match="empty"):
        load_local(path)


def test_empty_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())}), path)
    with pytest.raises(SSTIError, match="empty"):
        load_local(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_missing_text_names_row(tmp_path, suffix):
    path = write(tmp_path / f"d{suffix}", rows(text=TEXTS[:3] + [None] + TEXTS[4:]))
    with pytest.raises(SSTIError, match=r"text_column: row 3 \(0-based\) of d.* no value in column 'text'"):
        load_local(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_label_names_row(tmp_path, suffix):
    labels = LABELS[:4] + [None] + LABELS[5:]
    if suffix == ".csv":
        labels = ["" if v is None else v for v in labels]
    path = write(tmp_path / f"d{suffix}", rows(label=labels))
    with pytest.raises(SSTIError, match=r"label_column: row 4 \(0-based\) .* column 'label'"):
        load_local(path)


def test_unparseable_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1}\nnot json\n')
    with pytest.raises(SSTIError, match="cannot read") as info:
        load_local(path)
    assert "\n" not in str(info.value)


def test_one_class_refused_by_contract(tmp_path):
    path = write(tmp_path / "d.csv", rows(label=[1] * 10))
    with pytest.raises(SSTIError, match="at least 2"):
        load_dataset(str(path))


def test_stranger_file_shapes_tsv_json_array_delimiter_names_and_id_column(tmp_path):
    """A stranger's files: .tsv by its suffix, a JSON array, --delimiter tab, their own id column kept as written."""
    expected = {f"doc-{i:03d}": (t, l) for i, (t, l) in enumerate(zip(TEXTS, LABELS))}
    table = rows(doc_id=[f"doc-{i:03d}" for i in range(10)], stars=list(range(10)))
    for path, options in ((write(tmp_path / "d.tsv", table), {}), (write(tmp_path / "d.json", table), {}),
                          (write(tmp_path / "d.jsonl", table), {})):
        assert all_rows(load_local(path, id_column="doc_id", **options)) == expected, path.name
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text((tmp_path / "d.tsv").read_text())
    for spelled in ("tab", "\\t", "\t"):
        assert all_rows(load_local(tabbed, id_column="doc_id", delimiter=spelled)) == expected
    with pytest.raises(SSTIError, match=r"id_column: column 'nope' is not in d.tsv"):
        load_local(tmp_path / "d.tsv", id_column="nope")


def test_unused_columns_are_named_on_stderr(tmp_path, capsys):
    load_local(write(tmp_path / "d.csv", rows(stars=list(range(10)))))
    assert "column(s) 'stars' are not carried" in capsys.readouterr().err


@pytest.mark.parametrize("content, suffix, message", [
    ("text;label\na;0\nb;1\n", ".csv", r"looks ';'-separated: pass --delimiter ';'"),
    ("text,label\ncaf\xe9,0\nb,1\n", ".csv", r"is not UTF-8 \(byte 14: b'\\xe9'; latin-1 or cp1252 text\?\); save it as UTF-8"),
    ('{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n', ".jsonl",
     r"column 'label': object 1 \(0-based\) of d.jsonl holds a list where earlier ones hold text .*multi-label"),
    ('[{"text": "a", "label": 0}, 3]', ".json", r"item 1 \(0-based\) of its array is not an object"),
])
def test_a_strangers_malformed_files_are_one_line_errors_naming_the_fix(tmp_path, content, suffix, message):
    path = tmp_path / f"d{suffix}"
    path.write_bytes(content.encode("latin-1") if "\xe9" in content else content.encode("utf-8"))
    with pytest.raises(SSTIError, match=message) as info:
        load_local(path)
    assert "\n" not in str(info.value)


def test_free_text_as_labels_and_one_column_twice_are_refused(tmp_path):
    path = write(tmp_path / "d.csv", [{"text": f"review {i}", "label": i % 2} for i in range(200)])
    with pytest.raises(SSTIError, match=r"label_column: column 'text' of d.csv has 200 distinct values in 200 rows: free text"):
        load_local(path, label_column="text", text_column="label")
    with pytest.raises(SSTIError, match="must be three different columns"):
        load_local(path, text_column="label")
    with pytest.raises(SSTIError, match="dataset: an empty name"):
        load_dataset("")
