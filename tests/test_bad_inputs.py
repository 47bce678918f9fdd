"""Every command, walked with a table of bad inputs: each gets one line on stderr naming the field or
path, exit code 2, and the folder it ran in is left exactly as it was (nothing half-written)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ssti.cli import app

TINY_TRAIN = ["--model", "tiny-random-llama", "--steps", "1", "--batch-size", "4", "--max-length", "32"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Things the bad inputs need: a finished tiny run, an injected folder, a sweep folder, odd files."""
    root = tmp_path_factory.mktemp("made")
    r = CliRunner()
    assert r.invoke(app, ["inject", "--target", "1=date", "--count", "20", "--out", str(root / "inj")]).exit_code == 0
    res = r.invoke(app, ["train", "--data", str(root / "inj"), *TINY_TRAIN, "--out", str(root / "run")])
    assert res.exit_code == 0, res.output
    sweep = {"base": {"model": {"name": "tiny-random-llama", "max_length": 32}, "train": {"steps": 1, "batch_size": 4},
                      "eval": {"max_samples": 20}}, "axes": {"lora.rank": [1]}}
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    assert r.invoke(app, ["sweep", str(root / "sweep.yaml"), "--out", str(root / "sw")]).exit_code == 0
    (root / "empty.yaml").write_text("")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "binary.yaml").write_bytes(bytes(range(256)))
    (root / "broken.yaml").write_text("a: [1, 2\n")
    (root / "empty.csv").write_text("")
    (root / "nolabel.csv").write_text("text\nhello\nworld\n")
    (root / "other.csv").write_text("text,label\n" + "".join(f"t{i},{'x' if i % 2 else 'y'}\n" for i in range(10)))
    (root / "notes.txt").write_text("not data")
    (root / "multi.jsonl").write_text("".join(json.dumps({"text": f"t{i}", "label": [0, 1]}) + "\n" for i in range(6)))
    (root / "a-file").write_text("x")
    (root / "dupcol.csv").write_text("text,label,label\n" + "".join(f"t{i},a,b\n" for i in range(6)))
    (root / "typo.yaml").write_text("lora: {rnak: 8}\n")
    (root / "variant.yaml").write_text(yaml.safe_dump({**sweep, "variants": {"a": {"lora.rnk": 3}}}))
    (root / "run-badmetrics").mkdir()
    # damaged copies of the run
    for name, damage in (("run-badyaml", lambda d: (d / "config.yaml").write_text("- a list\n")),
                         ("run-badweights", lambda d: (d / "adapter" / "adapter_model.safetensors").write_bytes(b"\0garbage")),
                         ("run-pickle", lambda d: ((d / "adapter" / "adapter_model.safetensors").unlink(),
                                                    (d / "adapter" / "adapter_model.bin").write_bytes(b"\x80\x04pickle"))),
                         ("run-unfinished", lambda d: shutil.rmtree(d / "adapter")),
                         ("inj-badmanifest", None)):
        src = root / ("inj" if name.startswith("inj") else "run")
        shutil.copytree(src, root / name)
        if damage:
            damage(root / name)
    (root / "inj-badmanifest" / "manifest.jsonl").write_text("{not json\n")
    shutil.rmtree(root / "run-badmetrics")
    shutil.copytree(root / "run", root / "run-badmetrics")
    (root / "run-badmetrics" / "metrics.json").write_text("{broken")
    (root / "config-only").mkdir()
    shutil.copy(root / "run" / "config.yaml", root / "config-only" / "config.yaml")
    (root / "sw-foreign").mkdir()
    (root / "sw-foreign" / "results.sqlite").write_text("a text file, not a store")
    return root


R = "{run}"
CASES = [
    # inject
    (["inject", "--out", "o"], "target"),
    (["inject", "--target", "1", "--out", "o"], "target"),
    (["inject", "--target", "1=emoji", "--out", "o"], "targets"),
    (["inject", "--target", "9=date", "--out", "o"], "targets"),
    (["inject", "--target", "1=date", "--rate", "2", "--out", "o"], "rate"),
    (["inject", "--target", "1=date", "--rate", "-0.1", "--out", "o"], "rate"),
    (["inject", "--target", "1=date", "--count", "-1", "--out", "o"], "count"),
    (["inject", "--target", "1=date", "--count", "99999999", "--out", "o"], "count"),
    (["inject", "--target", "1=date", "--tokens", "0", "--out", "o"], "tokens"),
    (["inject", "--target", "1=date", "--tokens", "1000000000", "--out", "o"], "tokens"),
    (["inject", "--target", "1=date", "--token-fraction", "2", "--out", "o"], "token_fraction"),
    (["inject", "--target", "1=date", "--rate", "0.5", "--count", "3", "--out", "o"], "rate/count"),
    (["inject", "--target", "1=date", "--location", "middle", "--out", "o"], "location"),
    (["inject", "--target", "1=date", "--length-unit", "chars", "--out", "o"], "length_unit"),
    (["inject", "--target", "1=date", "--length-unit", "tokens", "--token-fraction", "0.1", "--out", "o"], "tokenizer"),
    (["inject", "--target", "1=date", "--dataset", "nosuch", "--out", "o"], "dataset"),
    (["inject", "--target", "1=date", "--dataset", "missing.csv", "--out", "o"], "dataset"),
    (["inject", "--target", "1=date", "--dataset", "{made}/notes.txt", "--out", "o"], "dataset"),
    (["inject", "--target", "1=date", "--dataset", "{made}/empty.csv", "--out", "o"], "empty"),
    (["inject", "--target", "1=date", "--dataset", "{made}/nolabel.csv", "--out", "o"], "label_column"),
    (["inject", "--target", "1=date", "--split", "nosuch", "--out", "o"], "split"),
    (["inject", "--target", "1=date", "--out", "{made}/a-file/sub"], "a file"),
    (["inject", "--target", "1=date", "--delimiter", "::", "--dataset", "{made}/other.csv", "--out", "o"], "delimiter"),
    (["inject", "--target", "1=file:missing.txt", "--out", "o"], "file:missing.txt"),
    (["inject", "--target", "1=list:", "--out", "o"], "list"),
    (["inject", "--target", "1=date", "--dataset", "{made}/multi.jsonl", "--out", "o"], "label"),
    (["inject", "--target", "1=date", "--dataset", "{made}/dupcol.csv", "--out", "o"], "more than once"),
    (["inject", "--target", "1=date", "--dataset", "{made}/other.csv", "--delimiter", "é", "--out", "o"], "delimiter"),
    (["inject", "--target", "1=file:{made}", "--out", "o"], "folder"),
    # show
    (["show", "nosuch"], "nosuch"),
    (["show", "{made}/inj-badmanifest"], "manifest"),
    (["show", "{made}/inj", "--split", "nosuch"], "split"),
    # scan
    (["scan", "nosuch"], "dataset"),
    (["scan", "rotten-tomatoes", "--levels", "nope"], "levels"),
    (["scan", "rotten-tomatoes", "--remove", "nope", "--out", "o"], "remove"),
    (["scan", "rotten-tomatoes", "--remove", "strip"], "out"),
    (["scan", "rotten-tomatoes", "--top", "-1"], "top"),
    (["scan", "{made}/multi.jsonl"], "label"),
    (["scan", "rotten-tomatoes", "--remove", "strip", "--out", "{made}/a-file"], "a file"),
    # train
    (["train", "--data", "rotten-tomatoes", "--model", "nope", "--out", "o"], "model"),
    (["train", "--data", "rotten-tomatoes", "--rank", "-1", "--out", "o"], "lora.rank"),
    (["train", *TINY_TRAIN, "--set", "eval.sources.zzz=date", "--out", "o"], "eval.sources: unknown class 'zzz'"),
    (["train", "--data", "rotten-tomatoes", "--optimizer", "sgd", "--out", "o"], "train.optimizer"),
    (["train", "--data", "rotten-tomatoes", "--lr", "0", "--out", "o"], "train.lr"),
    (["train", "--data", "rotten-tomatoes", "--batch-size", "0", "--out", "o"], "train.batch_size"),
    (["train", "--data", "rotten-tomatoes", "--steps", "0", "--out", "o"], "train.steps"),
    (["train", "--data", "rotten-tomatoes", "--head", "nope", "--out", "o"], "model.head"),
    (["train", "--data", "rotten-tomatoes", "--max-length", "4", "--out", "o"], "model.max_length"),
    (["train", "--data", "rotten-tomatoes", "--precision", "fp16", "--out", "o"], "train.precision"),
    (["train", "--data", "rotten-tomatoes", "--warmup-ratio", "2", "--out", "o"], "train.warmup_ratio"),
    (["train", "--data", "rotten-tomatoes", "--preset", "nope", "--out", "o"], "preset"),
    (["train", "--data", "rotten-tomatoes", "--set", "lora.rnak=1", "--out", "o"], "lora.rnak"),
    (["train", "--data", "rotten-tomatoes", "--set", "rank", "--out", "o"], "KEY=VALUE"),
    (["train", "--data", "nosuch", *TINY_TRAIN, "--out", "o"], "dataset"),
    (["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--resume", "--overwrite", "--out", "o"], "resume/overwrite: give one"),
    (["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--max-length", "4096", "--out", "o"], "model.max_length"),
    (["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--micro-batch-size", "8", "--out", "o"], "train.micro_batch_size"),
    (["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--micro-batch-size", "3", "--out", "o"], "train.micro_batch_size"),
    (["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--head", "verbalizer", "--template", "{txt}", "--out", "o"], "model.template"),
    (["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--head", "verbalizer", "--template", "none", "--out", "o"], "model.template"),
    # eval
    (["eval", "nosuch"], "not an ssti run folder"),
    (["eval", "{made}/run-badyaml"], "expected a mapping"),
    (["eval", "{made}/run-unfinished"], "not finished training"),
    (["eval", "{made}/run-badweights"], "run"),
    (["eval", "{made}/run-pickle"], "run"),
    (["eval", "{made}/run", "--batch-size", "0"], "batch_size"),
    (["eval", "{made}/run", "--max-samples", "-5"], "max_samples"),
    (["eval", "{made}/run", "--max-samples", "0"], "max_samples"),
    (["eval", "{made}/run", "--source", "7=date"], "eval.sources"),
    (["eval", "{made}/run", "--source", "1=emoji"], "source"),
    (["eval", "{made}/run", "--split", "nope"], "eval.split"),
    (["eval", "{made}/run", "--location", "middle"], "location"),
    (["eval", "{made}/run", "--data", "{made}/other.csv"], "classes"),
    (["eval", "{made}/run-badmetrics"], "metrics.json"),
    (["eval", "{made}/config-only"], "ssti run"),
    (["eval", "{made}/run", "--text-column", "review"], "--data"),
    # run
    (["run", "{made}/empty.yaml", "--out", "o"], "empty"),
    (["run", "{made}/list.yaml", "--out", "o"], "mapping"),
    (["run", "{made}/binary.yaml", "--out", "o"], "binary.yaml"),
    (["run", "{made}/broken.yaml", "--out", "o"], "YAML"),
    (["run", "{made}", "--out", "o"], "folder"),
    (["run", "missing.yaml", "--out", "o"], "not found"),
    (["run", "{made}/run/config.yaml", "lora.rnak=1", "--out", "o"], "lora.rnak"),
    (["run", "{made}/run/config.yaml", "--out", "{made}/a-file"], "a file"),
    (["run", "{made}/run/config.yaml"], "out"),
    (["run", "{made}/typo.yaml", "--out", "o"], "fields of lora: rank"),
    (["run", "{made}/run/config.yaml", "eval.split=validation", "--out", "o"], "eval.split"),
    (["run", "{made}/run/config.yaml", "eval.sources.nope=date", "--out", "o"], "eval.sources"),
    # sweep and results
    (["sweep", "missing.yaml"], "not found"),
    (["sweep", "{made}/list.yaml"], "sweep"),
    (["sweep", "{made}/sweep.yaml", "--workers", "0"], "workers"),
    (["sweep", "{made}/sweep.yaml", "--threads", "0"], "threads"),
    (["sweep", "{made}/sweep.yaml", "--executor", "slurm"], "executor"),
    (["sweep", "{made}/sweep.yaml", "lora.rnak=2", "--dry-run"], "lora.rnak"),
    (["sweep", "{made}/sweep.yaml", "--out", "{made}/sw-foreign"], "not written by ssti"),
    (["sweep", "{made}/variant.yaml", "--dry-run"], "variants.a"),
    (["results", "nosuch"], "store"),
    (["results", "{made}/sw", "--status", "nope"], "status"),
    (["results", "{made}/sw", "--csv", "{made}"], "--csv"),
    (["results", "{made}/sw", "--csv", "runs.txt"], "--csv"),
    (["results", "{made}/sw-foreign"], "store"),
    # report
    (["report", "nosuch", "-o", "o"], "nosuch"),
    (["report", "{made}/sw", "-o", "{made}/a-file"], "a file"),
]


def listing(folder: Path) -> list:
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


@pytest.mark.parametrize("args, word", CASES, ids=[" ".join(a[:3]) + f" [{i}]" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(made, tmp_path, args, word):
    args = [a.replace("{made}", str(made)) for a in args]
    cwd = os.getcwd()
    before, made_before = listing(tmp_path), listing(made)
    try:
        os.chdir(tmp_path)
        res = CliRunner().invoke(app, args, terminal_width=400)
    finally:
        os.chdir(cwd)
    assert res.exit_code == 2, f"exit {res.exit_code}: {res.output[-2000:]}\n{res.exception!r}"
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert word in res.output, res.output
    assert listing(tmp_path) == before and listing(made) == made_before


def test_the_table_is_large_enough():
    assert len(CASES) >= 60 and len({a[0] for a, _ in CASES}) >= 9


@pytest.mark.parametrize("errno_, reason", [(28, "No space left on device"), (13, "Permission denied"), (30, "Read-only file system")])
def test_disk_full_read_only_and_permission_failures_are_one_line(tmp_path, monkeypatch, errno_, reason):
    """Sessions run as root, so these are staged by raising the OSError at the write itself."""
    import ssti.io

    def fail(*a, **k):
        raise OSError(errno_, reason, str(a[-1]) if a else "?")

    monkeypatch.setattr(ssti.io.os, "replace", fail)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        for args in (["inject", "--target", "1=date", "--count", "5", "--out", "o"],
                     ["train", "--data", "rotten-tomatoes", *TINY_TRAIN, "--out", "r"]):
            res = CliRunner().invoke(app, args, terminal_width=400)
            assert res.exit_code == 2 and res.output.count("\n") == 1 and reason in res.output, res.output
    finally:
        os.chdir(cwd)
    assert listing(tmp_path) == []  # no debris: temp files and the half-made folders are gone


def test_usage_errors_of_the_real_command_are_one_line():
    """Click's usage errors (unknown option, wrong type, missing argument) through the `ssti` entry point."""
    import subprocess
    import sys

    for args in (["inject", "--out", "x", "--rate", "abc"], ["inject", "--nope"], ["eval"], ["nosuchcommand"]):
        done = subprocess.run([sys.executable, "-m", "ssti", *args], capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    done = subprocess.run([sys.executable, "-m", "ssti"], capture_output=True, text=True)
    assert done.returncode == 0 and "Commands" in done.stdout


@pytest.mark.parametrize("args", [["inject", "--target", "1=date"], ["scan", "rotten-tomatoes", "--remove", "strip"],
                                  ["defend", "{made}/inj", "--defence", "scan-strip"], ["train", *TINY_TRAIN],
                                  ["sweep", "{made}/sweep.yaml"], ["report", "{made}/sw"], ["probe", "{made}/run"],
                                  ["run", "{made}/config-only/config.yaml"], ["demo"]])
@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_out_is_refused_not_read_as_the_current_folder(made, tmp_path, args, empty):
    """`--out "$OUT"` with OUT unset: a usage error (exit 2, one line through the `ssti` entry point), nothing written."""
    args = [a.replace("{made}", str(made)) for a in args]
    cwd, made_before = os.getcwd(), listing(made)
    try:
        os.chdir(tmp_path)
        res = CliRunner().invoke(app, [*args, "--out", empty])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 2 and "Invalid value for '--out'" in res.output and "empty path" in res.output, res.output
    assert listing(tmp_path) == [] and listing(made) == made_before


def test_a_changed_config_of_a_finished_run_is_refused(made, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(made / "run", run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("steps: 1", "steps: 2"))
    res = CliRunner().invoke(app, ["eval", str(run)])
    assert res.exit_code == 2 and "changed after the run was made" in res.output


def test_ctrl_c_at_the_entry_point_is_one_line_exit_130(monkeypatch, capsys):
    """click's Abort (Ctrl-C) reaches `ssti.cli.main`: one line and 130, never a traceback of the handler itself."""
    import typer.main
    from typer.exceptions import Abort

    from ssti.cli import main

    class Command:
        def main(self, **kwargs):
            raise Abort()

    monkeypatch.setattr(typer.main, "get_command", lambda app: Command())
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 130 and capsys.readouterr().err.strip() == "interrupted"


def test_faults_a_stranger_found_in_run_configs(tmp_path):
    """A misspelled `runs:` beside `base`, and label words for a head that never reads them."""
    from typer.testing import CliRunner

    from ssti.cli import app

    cfg = tmp_path / "c.yaml"
    for text, message in (("base:\n  model: {name: tiny-random-llama}\nrnus:\n  a: {}\n", "`base` needs a `runs:` mapping"),
                          ("model: {name: tiny-random-llama, label_words: [a, b]}\n", "only the verbalizer head reads label words")):
        cfg.write_text(text)
        res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(tmp_path / "o")])
        assert res.exit_code == 2 and message in res.output and not (tmp_path / "o").exists(), res.output


def _api_cases():
    """(name, call) pairs: the Python API given what a notebook user has at hand (a DataFrame, a list of
    rows, a Dataset with text labels, a bad spec value)."""
    import datasets
    import pandas as pd

    from ssti.config import DefenceSpec, LoraSpec, RunConfig, TrainSpec
    from ssti.data import load_dataset
    from ssti.defend import defend_dataset
    from ssti.inject import InjectionSpec, inject_dataset
    from ssti.scan import scan_dataset
    from ssti.train import train

    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["w x", "x y", "y z", "z w"], "label": ["pos", "neg", "pos", "neg"]})
    text_labels = datasets.Dataset.from_pandas(df)
    spec = InjectionSpec(targets={"pos": "date"})
    scrub = DefenceSpec(name="scan-strip")
    return [
        ("inject DatasetDict without ClassLabel", lambda: inject_dataset(datasets.DatasetDict({"train": text_labels}), spec), "class_encode_column"),
        ("inject Dataset", lambda: inject_dataset(text_labels, spec), "class_encode_column"),
        ("inject list of rows", lambda: inject_dataset([{"text": "a", "label": 1}], spec), "got a list"),
        ("inject DataFrame", lambda: inject_dataset(df, spec), "got a pandas.DataFrame"),
        ("inject spec as dict", lambda: inject_dataset("rotten-tomatoes", {"targets": {"1": "date"}}), "InjectionSpec"),
        ("scan Dataset with text labels", lambda: scan_dataset(text_labels), "class_encode_column"),
        ("scan DataFrame", lambda: scan_dataset(df), "got a DataFrame"),
        ("defend DataFrame", lambda: defend_dataset(df, scrub), "got a pandas.DataFrame"),
        ("defend list", lambda: defend_dataset([1, 2], scrub), "got a list"),
        ("load DataFrame", lambda: load_dataset(df), "df.to_csv"),
        ("LoraSpec(rank=-1)", lambda: LoraSpec(rank=-1), "lora.rank:"),
        ("TrainSpec(lr='x')", lambda: TrainSpec(lr="x"), "train.lr:"),
        ("LoraSpec typo", lambda: LoraSpec(rnk=2), "lora.rnk: names no field"),
        ("RunConfig nested", lambda: RunConfig(lora={"rank": -2}), "lora.rank:"),
        ("DefenceSpec name", lambda: DefenceSpec(name="zz"), "defence.name:"),
        ("train eval.sources", lambda: train(RunConfig(model={"name": "tiny-random-llama"}, eval={"sources": {"zzz": "date"}}), "o"),
         "eval.sources: unknown class 'zzz'"),
    ]


def test_python_api_bad_inputs_are_one_line_ssti_errors(tmp_path, monkeypatch):
    """The Python API raises SSTIError (one line, naming the argument or field, saying how to convert) for
    the objects a notebook user passes, never an AttributeError, TypeError, OSError or pydantic's report."""
    from ssti import SSTIError

    monkeypatch.chdir(tmp_path)
    for name, call, words in _api_cases():
        with pytest.raises(SSTIError) as e:
            call()
        message = str(e.value)
        assert "\n" not in message and words in message, (name, message)
    assert not any(tmp_path.iterdir())


def test_the_python_api_takes_an_encoded_dataset_and_a_path():
    import datasets
    import pandas as pd

    from ssti.inject import InjectionSpec, inject_dataset

    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["w x", "x y", "y z", "z w"], "label": ["pos", "neg", "pos", "neg"]})
    encoded = datasets.Dataset.from_pandas(df).class_encode_column("label")
    out = inject_dataset(encoded, InjectionSpec(targets={"pos": "date"}))
    assert out.injected_counts() == {"neg": 0, "pos": 2}
    injected = inject_dataset("rotten-tomatoes", InjectionSpec(targets={"1": "date"}, count=60))
    assert injected.injected_counts()["fresh"] == 60

    from ssti.config import DefenceSpec
    from ssti.defend import defend_dataset

    cleaned = defend_dataset(injected, DefenceSpec(name="scan-strip"))  # in memory, its manifest measures retention
    assert cleaned.measurement["retention"][-1]["insertions"] == 60 and cleaned.source_record["spec"]["targets"] == {"1": "date"}
