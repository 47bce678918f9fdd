"""Users' files read exactly as written: text, ids and labels keep their bytes; unlabelled and
multi-label rows are refused in one line; token files may carry a byte-order mark."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.data import column, load_dataset
from ssti.errors import SSTIError
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


def test_max_words_windows_keep_spacing_ids_and_labels():
    from ssti.data import load_dataset
    from ssti.data.common import column, first_words

    assert first_words("one  two\n\nthree four", 3) == "one  two\n\nthree"
    assert first_words("  lead space", 1) == "  lead" and first_words("short", 9) == "short" and first_words("", 2) == ""
    full, cut = load_dataset("bbc-news"), load_dataset("bbc-news", max_words=50)
    for split in full:
        assert column(cut[split], "id") == column(full[split], "id") and column(cut[split], "label") == column(full[split], "label")
        for a, b in zip(column(full[split], "text")[:50], column(cut[split], "text")[:50]):
            assert a.startswith(b) and len(b.split()) == min(50, len(a.split()))


def test_an_injected_run_keeps_its_insertions_after_the_window(tmp_path):
    """The window cuts the source before injection; the run's injected copy is read as it is (not cut again)."""
    from ssti.config import DataSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec
    from ssti.data import load_dataset
    from ssti.data.common import column
    from ssti.data.folder import read_manifest
    from ssti.train import train

    config = RunConfig(data=DataSpec(dataset="bbc-news", max_words=40), model=ModelSpec(name="tiny-random-bert", max_length=512),
                       lora=LoraSpec(rank=2, targets="qv"), train=TrainSpec(steps=1, batch_size=4, checkpoint_every=0),
                       injection={"targets": {"sports": "date"}, "rate": 1.0, "token_fraction": 0.1, "seed": 0})
    train(config, tmp_path / "r", show_progress=False)
    injected = load_dataset(str(tmp_path / "r" / "data"))
    texts = dict(zip(column(injected["train"], "id"), column(injected["train"], "text")))
    manifest = read_manifest(tmp_path / "r" / "data")
    assert manifest and all(len(texts[m["id"]].split()) == 40 + len(m["insertions"]) for m in manifest)
    for m in manifest:
        for ins in m["insertions"]:
            assert texts[m["id"]][ins["start"]:ins["end"]] == ins["text"]


def test_max_words_on_an_injected_folder_is_refused(tmp_path):
    """Cutting an injected folder's texts would cut planted tokens out and leave its manifest wrong."""
    import pytest

    from ssti.data import load_dataset
    from ssti.errors import SSTIError
    from ssti.inject import InjectionSpec, inject_dataset, write_injected

    write_injected(inject_dataset(load_dataset("rotten-tomatoes"), InjectionSpec(targets={"1": "date"}, rate=0.1)), tmp_path / "inj")
    with pytest.raises(SSTIError, match="data.max_words: .* is an injected dataset folder"):
        load_dataset(str(tmp_path / "inj"), max_words=3)


def test_jsonl_numbers_are_read_as_written(tmp_path):
    # ids past int64 used to become floats (and then "duplicates"); 007.0 and 1e3 kept their spelling only in csv
    path = tmp_path / "mine.jsonl"
    lines = [{"id": 12345678901234567890 + i, "text": t, "label": y} for i, (t, y) in enumerate([("a film", 0), ("two films", 1)] * 3)]
    text = "\n".join(json.dumps(r) for r in lines) + '\n\n{"id": 1e3, "text": 1.50, "label": 1}\r\n'
    path.write_text(text)
    ds = load_dataset(str(path), whole_file=True)["train"]
    assert column(ds, "id") == [str(12345678901234567890 + i) for i in range(6)] + ["1e3"]
    assert column(ds, "text")[-1] == "1.50"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "a", "label": 0}\n{oops\n')
    with pytest.raises(SSTIError, match="line 2"):
        load_dataset(str(bad))


def test_minus_one_is_a_class_in_a_minus_one_one_file_and_unlabelled_beside_zero(tmp_path):
    pm = tmp_path / "pm.csv"
    pm.write_text("text,label\n" + "".join(f"t{i},{1 if i % 2 else -1}\n" for i in range(10)))
    assert load_dataset(str(pm), whole_file=True)["train"].features["label"].names == ["-1", "1"]
    glue = tmp_path / "glue.csv"
    glue.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(10)) + "t10,-1\n")
    with pytest.raises(SSTIError, match="unlabelled"):
        load_dataset(str(glue))


def test_class_names_in_configs_json_and_the_cli_are_read_as_written(tmp_path):
    """YAML keys `007:`, `true:`, `null:` name those classes (not 7, True, None); a JSON true label is the
    class "true"; on the command line a class may be named `a=b`, `*` or " pos" (a name wins over `*`
    and over an index), and a fixed text may hold `=`."""
    from ssti.io import load_yaml_text
    from ssti.inject import InjectionSpec, resolve_targets

    assert load_yaml_text("t: {007: date, true: html, null: colour, 1: country}")["t"] == {
        "007": "date", "true": "html", "null": "colour", "1": "country"}
    names = ["007", "true", "null"]
    spec = InjectionSpec(**load_yaml_text("targets: {007: date, true: html}"))
    assert resolve_targets(spec.targets, names) == [(0, "007"), (1, "true")]

    rows = [{"text": f"t{i}", "label": i % 2 == 0} for i in range(6)]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_dataset(str(tmp_path / "b.jsonl"))["train"].features["label"].names == ["false", "true"]

    path = tmp_path / "odd.csv"
    write_csv(path, [(f"r{i}", f"text number {i}", ["a=b", "*", " pos"][i % 3]) for i in range(30)])
    for target, cls in (("a=b=fixed:AA", "a=b"), ("*=date", "*"), (" pos=date", " pos"), ("1=fixed:x=y", "*")):
        res = invoke("inject", "--dataset", path, "--target", target, "--out", tmp_path / "o", "--overwrite")
        assert res.exit_code == 0, res.output
        manifest = read_manifest(tmp_path / "o")
        assert {row["class"] for row in manifest} == {cls}, target
    assert {tuple(i["text"] for i in row["insertions"]) for row in manifest} == {("x=y",)}
    res = invoke("inject", "--dataset", path, "--target", "pos = date", "--out", tmp_path / "o2")
    assert res.exit_code == 2 and "0=' pos'" in res.output
