"""Users' files read exactly as written: text, ids and labels keep their bytes; unlabelled and
multi-label rows are refused in one line; token files may carry a byte-order mark."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.data import column, load_dataset
from ssti.inject import read_dataset_folder, read_manifest, remove_spans

ROWS = [  # id, text, label: quoted, zero-padded, numeric- and locale-looking strings
    ("0007", "Parcel arrived crushed", "01"), ("007", "00123", "02"), ("7", "1.50", "01"), ("0", "1e3", "02"),
    ("08", "08", "01"), ("NA", "NA", "02"), ("1,000.50", "1.000,50 €", "01"), ("-0", "  padded  ", "02"),
    ("x1", "true", "01"), ("x2", "null", "02"), ("x3", "ça, \"quoted\"", "01"), ("x4", "-1", "02"),
]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


def write_csv(path, rows, header=("id", "text", "label"), delimiter=","):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_round_trips_byte_for_byte_through_inject(tmp_path, delimiter):
    path = write_csv(tmp_path / "d.csv", ROWS, delimiter=delimiter)
    extra = ["--delimiter", delimiter] if delimiter != "," else []
    res = invoke("inject", "--dataset", path, "--target", "01=fixed:cf", "--out", tmp_path / "inj", *extra)
    assert res.exit_code == 0, res.output
    meta = read_dataset_folder(tmp_path / "inj")
    assert meta["train"].features["label"].names == ["01", "02"]
    out = {}
    for split in meta.values():
        names = split.features["label"].names
        out.update({i: (t, names[y]) for i, t, y in zip(column(split, "id"), column(split, "text"), column(split, "label"))})
    assert set(out) == {r[0] for r in ROWS}  # every id kept as written, none collapsed
    manifest = {r["id"]: r for r in read_manifest(tmp_path / "inj")}
    assert manifest and all(r["class"] == "01" for r in manifest.values())  # the class named 01, not index 1
    for rid, text, label in ROWS:
        got, got_label = out[rid]
        assert got_label == label
        if rid in manifest:
            assert remove_spans(got, manifest[rid]["insertions"]) == text
        else:
            assert got == text


def test_integer_labels_keep_spelling_in_numeric_order(tmp_path):
    rows = [(f"r{i}", f"text {i}", y) for i, y in enumerate(["10", "2", "2", "10", "1", "1"] * 2)]
    ds = load_dataset(str(write_csv(tmp_path / "d.csv", rows)))
    assert ds["train"].features["label"].names == ["1", "2", "10"]


def test_unlabelled_rows_are_refused_or_dropped_and_counted(tmp_path):
    rows = [(f"r{i}", f"text {i}", y) for i, y in enumerate(["0", "1", "-1", "0", "1", ""] * 3)]
    path = write_csv(tmp_path / "d.csv", rows)
    res = invoke("inject", "--dataset", path, "--target", "1=date", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "unlabelled" in res.output and "--drop-unlabelled" in res.output
    assert res.output.count("\n") == 1 and not (tmp_path / "o").exists()
    res = invoke("inject", "--dataset", path, "--target", "1=date", "--drop-unlabelled", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "dropped 6 unlabelled" in res.output
    ds = read_dataset_folder(tmp_path / "o")
    assert ds["train"].features["label"].names == ["0", "1"] and sum(len(s) for s in ds.values()) == 12


@pytest.mark.parametrize("label", [[0, 1], {"a": 1}])
def test_multi_label_rows_are_refused(tmp_path, label):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": label if i == 3 else i % 2}) + "\n" for i in range(8)))
    res = invoke("scan", path)
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "multi-label" in res.output or "label" in res.output


def test_token_file_with_a_byte_order_mark(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_bytes("\ufeffalpha\nbeta\n".encode("utf-8"))
    res = invoke("inject", "--dataset", "rotten-tomatoes", "--target", f"1=file:{tokens}", "--count", "50", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    planted = {ins["text"] for r in read_manifest(tmp_path / "o") for ins in r["insertions"]}
    assert planted == {"alpha", "beta"}
