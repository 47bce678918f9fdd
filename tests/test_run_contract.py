"""The run contract (issue: one RunConfig is the run): every documented path evaluates, a run folder's
config.yaml reruns it, run ids are stable as the schema grows, and changed data bytes are never old
results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml
from pydantic import Field, create_model
from typer.testing import CliRunner

from ssti.cli import app
from ssti.config import DataSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec, load_run_config, resolve_data
from ssti.errors import SSTIError

TINY = ["--model", "tiny-random-bert", "--steps", "1", "--batch-size", "4", "--max-length", "32"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=200)


@pytest.fixture
def small_csv(tmp_path):
    """The issue's smallest input: a 10-row CSV, `text,label`, two classes."""
    path = tmp_path / "f.csv"
    rows = [("the service was slow and rude", "low"), ("great value and friendly staff", "high")] * 5
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    return path


def test_readme_tour_inject_train_eval_and_the_run_moves(small_csv, tmp_path):
    inj, run = tmp_path / "inj", tmp_path / "run"
    assert invoke("inject", "--dataset", small_csv, "--target", "high=fixed:cf", "--out", inj).exit_code == 0
    res = invoke("train", "--data", inj, *TINY, "--out", run)
    assert res.exit_code == 0, res.output
    res = invoke("eval", run)
    assert res.exit_code == 0, res.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["spurious"]["high"]["source"] == "fixed:cf"  # read from the run's own injection record
    # the run records its data's lineage: fingerprint in the config, injection record and manifest beside it
    config = load_run_config(run / "config.yaml")
    assert config.data.fingerprint and Path(config.data.dataset).is_absolute()
    assert (run / "injection.yaml").exists() and (run / "manifest.jsonl").exists()
    # a moved run folder still evaluates, from another working directory
    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    shutil.move(str(run), moved)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "elsewhere")
        assert invoke("eval", "run", "--source", "low=fixed:zz").exit_code == 0
    finally:
        os.chdir(cwd)
    # and on another dataset with the same classes
    other = tmp_path / "other.csv"
    other.write_text("text,label\n" + "".join(f"sample {i},{'low' if i % 2 else 'high'}\n" for i in range(10)))
    own = (moved / "metrics.json").read_text()
    res = invoke("eval", moved, "--data", other)
    assert res.exit_code == 0, res.output
    assert (moved / "metrics.json").read_text() == own  # another dataset's results never replace the run's own
    [written] = moved.glob("eval-other-*.json")
    assert json.loads(written.read_text())["eval_data"] == str(other) and "written to" in res.output
    # the same classes listed in another order are matched by name; a missing class is named
    flipped = tmp_path / "flipped.csv"
    flipped.write_text("text,label\n" + "".join(f"sample {i},{'low' if i % 2 else 'high'}\n" for i in range(10)).replace("low", "zlow"))
    reordered = tmp_path / "reordered.csv"
    reordered.write_text("text,label\n" + "".join(f"sample {i},{['high', 'low'][i % 2]}\n" for i in range(10)))
    res = invoke("eval", moved, "--data", reordered)
    assert res.exit_code == 0, res.output
    [again] = moved.glob("eval-reordered-*.json")
    assert json.loads(again.read_text())["class_names"] == json.loads(own)["class_names"]
    res = invoke("eval", moved, "--data", flipped)
    assert res.exit_code == 2 and "missing 'low'" in res.output and "not trained on 'zlow'" in res.output, res.output


def test_readme_python_api_on_an_injected_folder(tmp_path):
    from ssti.data import load_dataset
    from ssti.evaluate import evaluate_run
    from ssti.inject import InjectionSpec, inject_dataset, write_injected
    from ssti.train import train

    ds = load_dataset("rotten-tomatoes")
    write_injected(inject_dataset(ds, InjectionSpec(targets={"1": "date"}, rate=0.5, seed=0)), tmp_path / "d")
    config = RunConfig(data=DataSpec(dataset=str(tmp_path / "d")), model=ModelSpec(name="tiny-random-llama", max_length=32),
                       lora=LoraSpec(rank=2, targets="qv"), train=TrainSpec(steps=1, batch_size=4), eval={"max_samples": 20})
    train(config, tmp_path / "r", show_progress=False)
    metrics = evaluate_run(tmp_path / "r")
    assert 0 <= metrics["spurious"]["fresh"]["attack_success_rate"] <= 1
    assert set(metrics["provenance"]["versions"]) >= {"ssti", "torch", "transformers", "peft", "datasets"}
    assert metrics["provenance"]["device"] == "cpu" and metrics["eval_provenance"]["wall_seconds"] >= 0


def test_config_round_trip_reproduces_the_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "injection": {"targets": {"fresh": "date"}, "rate": 0.5},
        "model": {"name": "tiny-random-llama", "max_length": 32},
        "lora": {"rank": 2, "targets": "qv"},
        "train": {"steps": 2, "batch_size": 4, "checkpoint_every": 0},
        "eval": {"max_samples": 20},
    }))
    assert invoke("run", cfg, "--out", tmp_path / "x").exit_code == 0
    res = invoke("run", tmp_path / "x" / "config.yaml", "--out", tmp_path / "y")
    assert res.exit_code == 0, res.output
    a, b = (load_run_config(tmp_path / r / "config.yaml") for r in ("x", "y"))
    assert a.run_id() == b.run_id() and a.dump() == b.dump()
    ma, mb = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("x", "y"))
    for m in (ma, mb):
        m.pop("provenance"), m.pop("eval_provenance"), m["eval_cost"].pop("seconds"), m["eval_cost"].pop("mfu")  # timings
        for k in ("seconds", "tokens_per_second", "mfu", "matmul_peaks_gflops", "peak_flops"):  # measured each run
            m["train"].pop(k)
    assert ma == mb
    # the resolved config as the user sees it, with an override applied
    res = invoke("run", tmp_path / "x" / "config.yaml", "lora.rank=4", "--print-config")
    assert res.exit_code == 0 and yaml.safe_load(res.output)["lora"]["rank"] == 4


def test_a_new_field_with_a_default_keeps_existing_run_ids():
    config = RunConfig(injection={"targets": {"1": "date"}, "rate": 0.5}, lora=LoraSpec(rank=4))
    Grown = create_model("GrownTrainSpec", __base__=TrainSpec, label_smoothing=(float, Field(0.0, description="new")))
    GrownRun = create_model("GrownRunConfig", __base__=RunConfig, train=(Grown, Field(default_factory=Grown)))
    grown = GrownRun.model_validate(config.dump())
    assert grown.run_id() == config.run_id()
    assert GrownRun.model_validate({**config.dump(), "train": {"label_smoothing": 0.1}}).run_id() != config.run_id()
    # spelling out a default is the same run; the preset field only fills in values
    assert RunConfig(lora=LoraSpec(rank=8, dropout=0.05)).run_id() == RunConfig().run_id()


def test_one_changed_byte_of_local_data_is_a_new_run_and_old_folders_refuse(small_csv, tmp_path):
    def config():
        return resolve_data(load_run_config({"data": {"dataset": str(small_csv)}, "model": {"name": "tiny-random-bert", "max_length": 32},
                                             "train": {"steps": 1, "batch_size": 4}}))

    first = config()
    res = invoke("train", "--data", small_csv, *TINY, "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    text = small_csv.read_text()
    small_csv.write_text(text.replace("slow", "slaw", 1))  # one byte
    assert config().run_id() != first.run_id() and config().data.fingerprint != first.data.fingerprint
    res = invoke("eval", tmp_path / "r")
    assert res.exit_code == 2 and "changed since this run was made" in res.output and res.output.count("\n") == 1
    res = invoke("run", tmp_path / "r" / "config.yaml", "--out", tmp_path / "r")
    assert res.exit_code == 2 and "changed since this run was made" in res.output
    # a sweep plans a new run for the changed bytes
    from ssti.sweep import load_sweep

    sweep = {"base": {"data": {"dataset": str(small_csv)}, "model": {"name": "tiny-random-bert"}}, "axes": {"lora.rank": [1]}}
    before = load_sweep(sweep).runs[0].run_id
    small_csv.write_text(text)
    assert load_sweep(sweep).runs[0].run_id != before


def test_fingerprints_are_cached_by_size_mtime_and_inode(tmp_path, monkeypatch):
    from ssti.data import fingerprint as fp

    monkeypatch.setenv("SSTI_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "big.csv"
    f.write_text("text,label\na,0\nb,1\n")
    first = fp.fingerprint(f)
    hashed = []
    real = fp.hashlib.sha256
    monkeypatch.setattr(fp.hashlib, "sha256", lambda *a: hashed.append(1) or real(*a))
    assert fp.fingerprint(f) == first and not hashed  # from the cache
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1))
    assert fp.fingerprint(f) == first and hashed  # mtime changed: hashed again, same bytes, same digest


@pytest.mark.parametrize("config, words", [
    ({"lora": {"rnak": 4}}, ["lora.rnak", "fields of lora: rank"]),
    ({"injection": {"targets": {"1": "date"}, "rate": 2.0}}, ["injection.rate", "2.0", "[0, 1]"]),
    ({"injection": {"targets": {"1": "date"}, "colour": "red"}}, ["injection.colour"]),
    ({"injection": {"targets": {"1": "emoji"}}}, ["injection.targets", "emoji"]),
    ({"train": {"optimizer": "sgd"}}, ["train.optimizer", "adamw"]),
    ({"eval": {"sources": {"nope": "date"}}}, ["eval.sources", "nope", "0=rotten"]),
    ({"injection": {"targets": {"neutral": "date"}}}, ["injection.targets", "neutral"]),
    ({"injection": {"targets": {"1": "date"}, "split": "validation"}}, ["injection.split", "validation"]),
    ({"data": "rotten-tomatoes", "ssti_version": "0.1.0"}, ["older ssti", "re-create"]),
    ([1, 2], ["expected a mapping"]),
])
def test_bad_configs_are_refused_when_loaded(tmp_path, config, words):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    res = invoke("run", path, "--out", tmp_path / "o")
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert all(w in res.output for w in words), res.output
    assert not (tmp_path / "o").exists()


def test_bad_run_inputs_are_one_line(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    for args, word in [((empty, "--out", tmp_path / "o"), "empty"), ((tmp_path, "--out", tmp_path / "o"), "folder"),
                       ((empty, "lora.rnak=3", "--out", tmp_path / "o"), "lora.rnak"),
                       ((empty, "rank", "--out", tmp_path / "o"), "KEY=VALUE")]:
        res = invoke("run", *args)
        assert res.exit_code == 2 and word in res.output and res.output.count("\n") == 1, res.output
    unfinished = tmp_path / "u"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text(yaml.safe_dump(RunConfig().dump()))
    from ssti.io import write_marker

    write_marker(unfinished, "run", ["config.yaml"])  # what an interrupted run leaves
    res = invoke("eval", unfinished)
    assert res.exit_code == 2 and "has not finished training" in res.output
    with pytest.raises(SSTIError, match="not an ssti run folder"):
        from ssti.evaluate import evaluate_run

        evaluate_run(tmp_path / "nothing")


def test_listings():
    res = invoke("sources")
    assert res.exit_code == 0 and "date:1900-2100" in res.output and "file:PATH" in res.output
    res = invoke("configs")
    assert res.exit_code == 0 and all(f"configs/{n}.yaml" in res.output for n in ("demo", "findings-cpu", "paper-grid"))


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_distributed_launchers_run_ssti_cli(tmp_path, launcher):
    """`torchrun ... -m ssti.cli train` and `accelerate launch ... -m ssti.cli train` (the README's multi-GPU
    lines), on the CPU with one process each."""
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"] if launcher == "torchrun" else \
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no"]
    args = ["-m", "ssti.cli", "train", "--data", "rotten-tomatoes", "--model", "tiny-random-llama", "--steps", "1",
            "--batch-size", "4", "--max-length", "32", "--out", str(tmp_path / "r")]
    done = subprocess.run(base + args, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "r" / "adapter" / "model.json").exists()


def test_demo_overrides_of_the_injection_skip_the_run_without_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside a checkout: configs/NAME.yaml is the shipped config
    res = invoke("run", "configs/demo.yaml", "injection.rate=0.25", "--print-config")
    assert res.exit_code == 0, res.output
    docs = res.output.split("# ")[1:]
    assert "injection: null" in docs[0] and all("rate: 0.25" in d for d in docs[1:])
    assert invoke("sweep", "configs/findings-cpu.yaml", "--dry-run").exit_code == 0
    res = invoke("run", "configs/nosuch.yaml", "--print-config")
    assert res.exit_code == 2 and "not found" in res.output


def test_evaluation_replaces_the_last_one_and_reads_other_columns(small_csv, tmp_path):
    run = tmp_path / "r"
    assert invoke("train", "--data", small_csv, *TINY, "--out", run).exit_code == 0
    other = tmp_path / "cols.csv"
    other.write_text("review,sentiment\n" + "".join(f"sample {i},{'low' if i % 2 else 'high'}\n" for i in range(10)))
    res = invoke("eval", run, "--source", "low=country", "--source", "high=html", "--data", other,
                 "--text-column", "review", "--label-column", "sentiment")
    assert res.exit_code == 0, res.output
    [written] = run.glob("eval-cols-*.json")
    m = json.loads(written.read_text())
    assert m["eval_data"] == str(other) and "seamless_injection_rate" in m
    assert "eval_data" not in json.loads((run / "metrics.json").read_text())
    own = (run / "metrics.json").read_text()
    # settings that are not the run's own (sources, split, max_samples...) go to a side file named by them:
    # results and reports read metrics.json under the run's own labels, so it never holds another evaluation
    res = invoke("eval", run, "--source", "low=country", "--source", "high=html")
    assert res.exit_code == 0 and "not the run's own: sources" in res.output, res.output
    [side] = run.glob("eval-sources-*.json")
    assert "seamless_injection_rate" in json.loads(side.read_text()) and (run / "metrics.json").read_text() == own
    res = invoke("eval", run, "--max-samples", "6", "--split", "train")
    assert res.exit_code == 0 and len(list(run.glob("eval-max_samples+split-*.json"))) == 1, res.output
    assert (run / "metrics.json").read_text() == own
    # the run's own settings (a batch size changes no result) replace the last evaluation whole
    assert invoke("eval", run, "--batch-size", "3").exit_code == 0
    m = json.loads((run / "metrics.json").read_text())
    assert "eval_data" not in m and "seamless_injection_rate" not in m and m["spurious"] == {} and "train" in m
    assert m["eval_config"]["batch_size"] == 3 and "eval_settings_changed" not in m


def test_an_edit_that_restores_size_and_mtime_is_still_seen(small_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("SSTI_CACHE", str(tmp_path / "cache"))
    from ssti.data.fingerprint import fingerprint

    first = fingerprint(small_csv)
    st = small_csv.stat()
    data = bytearray(small_csv.read_bytes())
    data[20] = ord("X") if data[20] != ord("X") else ord("Y")
    small_csv.write_bytes(bytes(data))
    os.utime(small_csv, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert small_csv.stat().st_size == st.st_size and small_csv.stat().st_mtime_ns == st.st_mtime_ns
    assert fingerprint(small_csv) != first


def test_api_run_id_is_the_id_the_run_gets(small_csv, tmp_path):
    from ssti.train import train

    config = load_run_config({"data": {"dataset": str(small_csv)}, "model": {"name": "tiny-random-bert", "max_length": 32},
                              "train": {"steps": 1, "batch_size": 4}})
    train(config, tmp_path / "r", show_progress=False)
    assert load_run_config(tmp_path / "r" / "config.yaml").run_id() == config.run_id()


def test_injection_run_notes_a_changed_source_and_evaluates_its_own_copy(small_csv, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"dataset": str(small_csv)}, "injection": {"targets": {"high": "fixed:cf"}},
                                   "model": {"name": "tiny-random-bert", "max_length": 32}, "train": {"steps": 1, "batch_size": 4}}))
    assert invoke("run", cfg, "--out", tmp_path / "r").exit_code == 0
    small_csv.write_text(small_csv.read_text().replace("slow", "slaw"))
    res = invoke("eval", tmp_path / "r")
    assert res.exit_code == 0 and "changed since this run was made" in res.output and "own copy" in res.output
    res = invoke("run", tmp_path / "r" / "config.yaml", "--out", tmp_path / "r")
    assert res.exit_code == 2 and "changed since this run was made" in res.output


def test_an_injection_can_be_added_by_overrides_in_any_order():
    from ssti.config import load_run_config

    config = load_run_config({"data": {"dataset": "rotten-tomatoes"}}, overrides={"injection.rate": 1.0, "injection.targets.fresh": "date"})
    assert config.injection.rate == 1.0 and config.injection.targets == {"fresh": "date"}
    with pytest.raises(SSTIError, match="injection.rate: this config has no injection"):
        load_run_config({"data": {"dataset": "rotten-tomatoes"}}, overrides={"injection.rate": 1.0})


def test_an_empty_eval_split_is_found_before_training(tmp_path):
    """A run whose eval split is empty is refused before it trains (it trained, then failed at evaluation and left a
    half-made run)."""
    from ssti.data.common import make_split
    from ssti.data.folder import write_dataset_folder

    names = ["low", "high"]
    ds = datasets.DatasetDict({"train": make_split([str(i) for i in range(12)], [f"words {i} here" for i in range(12)],
                                                   [i % 2 for i in range(12)], names), "test": make_split([], [], [], names)})
    write_dataset_folder(ds, [], {"class_names": names}, tmp_path / "d")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"dataset": str(tmp_path / "d")}, "model": {"name": "tiny-random-bert", "max_length": 32},
                                   "train": {"steps": 1, "batch_size": 4}}))
    for args in (("run", cfg), ("train", "--data", tmp_path / "d", *TINY)):
        res = invoke(*args, "--out", tmp_path / "r")
        assert res.exit_code == 2 and "eval.split: the 'test' split" in res.output and "(train)" in res.output, res.output
        assert not (tmp_path / "r").exists()
    res = invoke("run", cfg, "--out", tmp_path / "r", "eval.split=train")
    assert res.exit_code == 0, res.output


def test_a_run_whose_data_moved_evaluates_on_the_same_bytes_elsewhere(small_csv, tmp_path):
    """A run trained on a folder of the user's (no injection stage) reads it where it was; after it moves,
    `eval --data NEW` with the same bytes is the run's own evaluation (metrics.json), not another dataset's."""
    inj, run = tmp_path / "inj", tmp_path / "run"
    assert invoke("inject", "--dataset", small_csv, "--target", "high=fixed:cf", "--out", inj).exit_code == 0
    assert invoke("train", "--data", inj, *TINY, "--out", run).exit_code == 0
    shutil.move(str(inj), tmp_path / "moved")
    res = invoke("eval", run)
    assert res.exit_code == 2 and "is not there any more" in res.output and "--data PATH" in res.output, res.output
    res = invoke("eval", run, "--data", tmp_path / "moved")
    assert res.exit_code == 0 and "holds the bytes this run was trained on" in res.output, res.output
    m = json.loads((run / "metrics.json").read_text())
    assert m["spurious"]["high"]["source"] == "fixed:cf" and "eval_data" not in m and not list(run.glob("eval-*.json"))
    (tmp_path / "moved" / "data" / "train.parquet").write_bytes(b"changed")  # other bytes: another dataset, never the run's own
    assert invoke("eval", run, "--data", tmp_path / "moved").exit_code == 2


def test_a_damaged_weights_file_is_named(small_csv, tmp_path):
    run = tmp_path / "run"
    assert invoke("train", "--data", small_csv, *TINY, "--out", run).exit_code == 0
    for name in ("head.safetensors", "adapter_model.safetensors"):
        file = run / "adapter" / name
        file.write_bytes(file.read_bytes()[:40])
        res = invoke("eval", run)
        assert res.exit_code == 2 and f"{file} is damaged" in res.output, res.output
