"""Nothing of the user's is lost: one output-folder rule for every command (ssti.io.check_output)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from ssti.cli import app

TRAIN = ["--model", "tiny-random-llama", "--steps", "2", "--batch-size", "4", "--max-length", "32"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


def listing(folder):
    return sorted((str(p.relative_to(folder)), p.read_bytes() if p.is_file() else None) for p in folder.rglob("*"))


@pytest.fixture
def users_folder(tmp_path):
    folder = tmp_path / "existing"
    (folder / "data").mkdir(parents=True)
    (folder / "keep.txt").write_text("mine")
    (folder / "data" / "mine.csv").write_text("text,label\na,0\n")
    return folder


@pytest.mark.parametrize("command", [
    ["train", "--data", "rotten-tomatoes", *TRAIN, "--targets", "nosuch_module"],
    ["train", "--data", "rotten-tomatoes", *TRAIN],
    ["train", "--data", "rotten-tomatoes", *TRAIN, "--overwrite"],
    ["inject", "--target", "1=date", "--overwrite"],
    ["scan", "rotten-tomatoes", "--tokenizer", "none", "--remove", "strip", "--overwrite"],
])
def test_a_folder_ssti_did_not_write_is_refused_and_untouched(users_folder, command):
    before = listing(users_folder)
    res = invoke(*command, "--out", users_folder)
    assert res.exit_code == 2 and "not written by ssti" in res.output and res.output.count("\n") == 1, res.output
    assert listing(users_folder) == before


def test_run_and_sweep_and_report_refuse_a_users_folder(users_folder, tmp_path):
    before = listing(users_folder)
    cfg = tmp_path / "good.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "tiny-random-llama", "max_length": 32}, "train": {"steps": 1, "batch_size": 4}}))
    for args in (["run", cfg], ["report", tmp_path / "nothing-here"]):
        res = invoke(*args, "--out", users_folder)
        assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": yaml.safe_load(cfg.read_text()), "axes": {"lora.rank": [1]}}))
    res = invoke("sweep", sweep, "--out", users_folder)
    assert res.exit_code == 2 and "not written by ssti" in res.output
    assert listing(users_folder) == before


def test_out_dot_never_empties_the_working_folder(users_folder):
    cwd = os.getcwd()
    try:
        os.chdir(users_folder)
        before = listing(users_folder)
        res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--out", ".")
        assert res.exit_code == 2 and listing(users_folder) == before
    finally:
        os.chdir(cwd)


def test_a_failed_fresh_run_removes_only_what_it_wrote(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--targets", "nosuch_module", "--out", empty)
    assert res.exit_code == 2 and "nosuch_module" in res.output
    assert empty.is_dir() and not any(empty.iterdir())  # it existed before: kept, emptied of ssti's files only
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--targets", "nosuch_module", "--out", tmp_path / "new")
    assert res.exit_code == 2 and not (tmp_path / "new").exists()  # created by the call: removed again


def test_interrupted_fresh_run_keeps_the_users_folder(tmp_path, monkeypatch):
    import ssti.train as train_module
    from ssti.config import load_run_config

    folder = tmp_path / "empty"
    folder.mkdir()

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "build_classifier", interrupt)
    config = load_run_config({"model": {"name": "tiny-random-llama"}, "train": {"steps": 1}})
    with pytest.raises(KeyboardInterrupt):
        train_module.train(config, folder, show_progress=False)
    assert folder.is_dir() and not any(folder.iterdir())


def test_overwrite_replaces_only_what_ssti_wrote(tmp_path):
    out = tmp_path / "inj"
    assert invoke("inject", "--target", "1=date", "--count", "5", "--out", out).exit_code == 0
    (out / "notes.txt").write_text("my notes")
    res = invoke("inject", "--target", "0=country", "--count", "5", "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (out / "notes.txt").read_text() == "my notes"
    assert "country" in (out / "injection.yaml").read_text()
    assert not any(p.name.endswith((".old", ".tmp")) for p in tmp_path.iterdir())  # no hidden debris
    # a run folder the same way
    run = tmp_path / "run"
    assert invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--out", run).exit_code == 0
    (run / "notes.txt").write_text("my notes")
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--lr", "0.01", "--out", run, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (run / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize("target", ["file", "under-file"])
def test_an_output_path_that_cannot_be_a_folder(tmp_path, target):
    f = tmp_path / "a-file"
    f.write_text("x")
    out = f if target == "file" else f / "sub"
    for args in (["inject", "--target", "1=date"], ["train", "--data", "rotten-tomatoes", *TRAIN]):
        res = invoke(*args, "--out", out)
        assert res.exit_code == 2 and res.output.count("\n") == 1 and "a file" in res.output, res.output
    assert f.read_text() == "x"


@pytest.mark.parametrize("under", ["a-file/x.json", "a-file/sub/x.json"])
def test_an_output_file_under_a_file_says_which_file_blocks_it(tmp_path, under):
    from ssti.errors import SSTIError
    from ssti.io import check_output_file

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(SSTIError, match=r"out: .*a-file is a file, so .*x.json cannot be written"):
        check_output_file(tmp_path / under, False, lambda p: True, "ssti probe report")
    with pytest.raises(SSTIError, match=r"out: the folder .*missing does not exist"):
        check_output_file(tmp_path / "missing" / "x.json", False, lambda p: True, "ssti probe report")
    assert (tmp_path / "a-file").read_text() == "x"


def test_truncation_is_counted_and_warned(tmp_path):
    """Long texts with the token at the end and a small max_length: every insertion is cut off, and
    training and evaluation both say so (the issue's silent ASR 0.500)."""
    import json

    path = tmp_path / "long.csv"
    words = " ".join(["word"] * 80)
    path.write_text("text,label\n" + "".join(f"{words} {i},{i % 2}\n" for i in range(40)))
    res = invoke("inject", "--dataset", path, "--target", "1=fixed:cf", "--location", "end", "--out", tmp_path / "inj")
    assert res.exit_code == 0, res.output
    res = invoke("train", "--data", tmp_path / "inj", "--model", "tiny-random-bert", "--steps", "1", "--batch-size", "4",
                 "--max-length", "16", "--out", tmp_path / "r")
    assert res.exit_code == 0 and "cuts off" in res.output, res.output
    res = invoke("eval", tmp_path / "r")
    assert res.exit_code == 0 and "cuts off" in res.output, res.output
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    t = m["train"]["truncation"]
    assert t["insertions"] == t["lost"] == t["rows_all_lost"] > 0
    assert m["spurious"]["1"]["truncation"]["lost"] == m["spurious"]["1"]["truncation"]["insertions"] > 0


def test_max_length_above_the_position_table(tmp_path):
    res = invoke("train", "--data", "rotten-tomatoes", "--model", "tiny-random-bert", "--steps", "1", "--max-length", "2048",
                 "--out", tmp_path / "r")
    assert res.exit_code == 2 and "model.max_length: 2048" in res.output and "1024" in res.output, res.output
    assert not (tmp_path / "r").exists()


def test_a_preset_max_length_is_clamped_with_a_warning(capsys):
    from types import SimpleNamespace

    from ssti.config import ModelSpec, load_run_config
    from ssti.errors import SSTIError
    from ssti.models.build import check_max_length

    config = load_run_config({"preset": "paper", "model": {"name": "minilm-l6"}})
    from ssti.config import from_preset

    assert from_preset(config, "model.max_length") and config.model.max_length == 1024
    clamped = check_max_length(config.model, SimpleNamespace(max_position_embeddings=512), from_preset=True)
    assert clamped.max_length == 512 and "using 512" in capsys.readouterr().err
    with pytest.raises(SSTIError, match="model.max_length: 1024 is above the 512 positions"):
        check_max_length(ModelSpec(name="minilm-l6", max_length=1024), SimpleNamespace(max_position_embeddings=512))


def test_overwrite_keeps_user_files_inside_sstis_own_sub_folders(tmp_path):
    ds = tmp_path / "ds"
    assert invoke("inject", "--target", "1=date", "--count", "5", "--out", ds).exit_code == 0
    (ds / "data" / "my.txt").write_text("mine")
    assert invoke("inject", "--target", "1=country", "--count", "5", "--out", ds, "--overwrite").exit_code == 0
    assert (ds / "data" / "my.txt").read_text() == "mine"
    run = tmp_path / "r1"
    assert invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--out", run).exit_code == 0
    marker = json.loads((run / ".ssti.json").read_text())
    assert "checkpoint/" not in marker["entries"] and "data/" not in marker["entries"]  # only what was written
    (run / "adapter" / "m.txt").write_text("mine")
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--lr", "0.01", "--out", run, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (run / "adapter" / "m.txt").read_text() == "mine" and (run / "adapter" / "model.json").exists()
    assert not (run / ".ssti-previous").exists()
    # a folder of the user's named like one ssti writes is refused before anything moves
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "m.txt").write_text("mine")
    before = listing(run)
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--lr", "0.02", "--out", run, "--overwrite")
    assert res.exit_code == 2 and "was not written by ssti" in res.output and listing(run) == before


def test_a_failed_or_interrupted_overwrite_puts_the_previous_run_back(tmp_path, monkeypatch):
    run = tmp_path / "r"
    assert invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--out", run).exit_code == 0
    before = listing(run)
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--targets", "nosuch_module", "--out", run, "--overwrite")
    assert res.exit_code == 2 and listing(run) == before
    import ssti.train as train_module

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "build_classifier", interrupt)
    res = invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--lr", "0.5", "--out", run, "--overwrite")
    assert res.exit_code == 130 and listing(run) == before


def test_demo_and_named_runs_refuse_a_users_folder(tmp_path):
    folder = tmp_path / "my"
    folder.mkdir()
    (folder / "table1.md").write_text("MY OWN TABLE")
    res = invoke("demo", "--out", folder, "model.name=tiny-random-llama", "train.steps=1", "eval.max_samples=20")
    assert res.exit_code == 2 and "not written by ssti" in res.output
    assert (folder / "table1.md").read_text() == "MY OWN TABLE" and sorted(p.name for p in folder.iterdir()) == ["table1.md"]


def test_run_overwrite_replaces_a_run_with_an_injection_and_checks_every_run_first(tmp_path):
    """`ssti run --overwrite` of a run with an injection replaced its own data/ sub-folder (once refused as
    "not written by ssti": an emptied data/data/ was left behind); a multi-run config refuses a bad
    folder of any run before the first one starts."""
    base = {"model": {"name": "tiny-random-llama", "max_length": 32}, "train": {"steps": 1, "batch_size": 4},
            "injection": {"targets": {1: "date"}, "count": 5}, "eval": {"max_samples": 8}}
    cfg = tmp_path / "one.yaml"
    cfg.write_text(yaml.safe_dump(base))
    run = tmp_path / "r"
    assert invoke("run", cfg, "--out", run).exit_code == 0
    (run / "data" / "mine.txt").write_text("mine")
    res = invoke("run", cfg, "--out", run, "--overwrite", "lora.rank=4")
    assert res.exit_code == 0, res.output
    assert "rank: 4" in (run / "config.yaml").read_text() and (run / "data" / "mine.txt").read_text() == "mine"
    assert not (run / ".ssti-previous").exists()
    many = tmp_path / "many.yaml"
    many.write_text(yaml.safe_dump({"base": base, "runs": {"a": {}, "b": {"lora": {"rank": 2}}}}))
    runs = tmp_path / "runs"
    (runs / "b").mkdir(parents=True)
    (runs / "b" / "keep.txt").write_text("mine")
    res = invoke("run", many, "--out", runs)
    assert res.exit_code == 2 and "not written by ssti" in res.output and not (runs / "a").exists(), res.output


def test_a_run_folder_given_as_data_points_at_the_data_inside_it(tmp_path):
    """A run folder keeps a copy of its data's injection.yaml beside data/, so it once read as a broken
    dataset ("r/data/train.parquet is missing"); show, scan, defend and train now name the folder to use."""
    cfg = tmp_path / "one.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "tiny-random-llama", "max_length": 32}, "train": {"steps": 1, "batch_size": 4},
                                   "injection": {"targets": {1: "date"}, "count": 5}, "eval": {"max_samples": 8}}))
    run = tmp_path / "r"
    assert invoke("run", cfg, "--out", run).exit_code == 0
    for args in (["show", run], ["scan", run, "--tokenizer", "none"], ["defend", run, "--defence", "scan-strip", "--out", tmp_path / "d"],
                 ["train", "--data", run, *TRAIN, "--out", tmp_path / "r2"]):
        res = invoke(*args)
        assert res.exit_code == 2 and "is an ssti run folder, not a dataset; the data it trained on is" in res.output, (args, res.output)
        assert res.output.count("\n") == 1 and str(run / "data") in res.output.replace("\n", "")


def test_results_on_a_run_folder_and_show_on_a_run_made_from_a_file(tmp_path):
    run = tmp_path / "r"
    assert invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--out", run).exit_code == 0
    res = invoke("results", run)
    assert res.exit_code == 2 and "1 trained run folder(s), none evaluated yet (`ssti eval RUN`" in res.output, res.output
    assert invoke("eval", run).exit_code == 0
    (tmp_path / "notes").mkdir()
    for folder, rows in ((run, 1), (tmp_path, 1)):  # a run folder, and a plain folder of runs: read as `ssti report` reads them
        res = invoke("results", folder, "--csv", tmp_path / f"{rows}-{folder.name}.csv")
        assert res.exit_code == 0 and f"wrote {rows} rows" in res.output, res.output
        assert open(tmp_path / f"{rows}-{folder.name}.csv").read().count("\n") == 2
    assert invoke("train", "--data", "rotten-tomatoes", *TRAIN, "--out", tmp_path / "r2").exit_code == 0
    res = invoke("results", tmp_path)  # a trained, unevaluated run beside it is said, not silently left out
    assert res.exit_code == 0 and "1 trained run folder(s) under" in res.output and "not evaluated yet" in res.output, res.output
    res = invoke("results", tmp_path / "notes")
    assert res.exit_code == 2 and "no results store (results.sqlite) and no finished run folders" in res.output, res.output
    res = invoke("show", run)
    assert res.exit_code == 2 and "the data it trained on is rotten-tomatoes" in res.output, res.output
    res = invoke("inject", "--target", "1=date", "--token-fraction", "0", "--out", tmp_path / "i")
    assert res.exit_code == 2 and "token_fraction: 0.0 is not allowed" in res.output and not (tmp_path / "i").exists()
