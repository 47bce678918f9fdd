"""The training loop: run folder, batching, schedule, resume and its refusals (tiny random models)."""

import json

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from ssti.cli import app
from ssti.config import DataSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec
from ssti.errors import SSTIError
from ssti.train import length_grouped_batches, lr_factor, train

MODEL = ModelSpec(name="tiny-random-llama", max_length=64)
LORA = LoraSpec(rank=2, targets="qv")


def spec(**kw):
    return TrainSpec(**{"steps": 6, "batch_size": 4, "micro_batch_size": 2, "checkpoint_every": 0, **kw})


def cfg(model=MODEL, lora=LORA, train_spec=None):
    return RunConfig(data=DataSpec(dataset="rotten-tomatoes"), model=model, lora=lora, train=train_spec or spec())


def interrupted_at_step_4(monkeypatch, run) -> None:
    """Call `run` (a training) with Ctrl-C arriving right after its step-4 checkpoint is saved."""
    import ssti.train as train_module

    real_save = train_module._save_checkpoint

    def save_then_die(out, clf, optimizer, step, *rest):
        real_save(out, clf, optimizer, step, *rest)
        if step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(train_module, "_save_checkpoint", real_save)


def test_run_folder(tmp_path):
    result = train(cfg(train_spec=spec()), tmp_path / "run", show_progress=False)
    run = tmp_path / "run"
    assert (run / "config.yaml").exists() and (run / "adapter" / "adapter_model.safetensors").exists()
    assert (run / "adapter" / "head.safetensors").exists() and not (run / "checkpoint").exists()
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))
    metrics = json.loads((run / "metrics.json").read_text())["train"]
    assert metrics["steps"] == 6 and metrics["real_tokens"] == result.real_tokens > 0


def test_length_grouping_pads_little_and_covers_rows():
    lengths = np.random.default_rng(0).integers(1, 200, size=400)
    schedule = length_grouped_batches(lengths, micro=8, per_step=2, steps=25, seed=0)
    rows = np.concatenate([b for step in schedule for b in step])
    assert len(rows) == 400 and len(set(rows.tolist())) == 400  # one epoch: every row once
    waste = sum(len(b) * lengths[b].max() - lengths[b].sum() for step in schedule for b in step)
    assert waste < 0.1 * lengths.sum()
    assert [x.tolist() for s in schedule for x in s] == [x.tolist() for s in length_grouped_batches(lengths, 8, 2, 25, 0) for x in s]


def test_schedule_warmup_then_cosine():
    s = TrainSpec(warmup_ratio=0.1)
    assert lr_factor(0, 100, s) == pytest.approx(0.1)
    assert lr_factor(9, 100, s) == pytest.approx(1.0)
    assert lr_factor(55, 100, s) == pytest.approx(0.5, abs=0.02)
    assert lr_factor(99, 100, s) < 0.01


def test_resume_gives_the_same_weights(tmp_path, monkeypatch):
    train(cfg(train_spec=spec(checkpoint_every=2)), tmp_path / "whole", show_progress=False)
    interrupted_at_step_4(monkeypatch, lambda: train(cfg(train_spec=spec(checkpoint_every=2)), tmp_path / "cut", show_progress=False))
    result = train(cfg(train_spec=spec(checkpoint_every=2)), tmp_path / "cut", resume=True, show_progress=False)
    assert result.steps == 6
    for name in ("adapter_model.safetensors", "head.safetensors"):
        a, b = load_file(tmp_path / "whole" / "adapter" / name), load_file(tmp_path / "cut" / "adapter" / name)
        for key in a:
            assert (a[key] == b[key]).all(), key
    log = [json.loads(line)["step"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 7))
    whole, cut = (json.loads((tmp_path / d / "metrics.json").read_text())["train"] for d in ("whole", "cut"))
    assert cut["resumed_from_step"] == 4 and cut["real_tokens"] == whole["real_tokens"] == result.real_tokens  # all 6 steps, not 2


def test_resume_refusals(tmp_path):
    out = tmp_path / "run"
    train(cfg(train_spec=spec()), out, show_progress=False)
    with pytest.raises(SSTIError, match="already holds a run"):
        train(cfg(train_spec=spec()), out, show_progress=False)
    with pytest.raises(SSTIError, match="another config .*train"):
        train(cfg(train_spec=spec(lr=0.5)), out, resume=True, show_progress=False)
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "state.json").write_text("{not json")
    with pytest.raises(SSTIError, match="checkpoint exists and was not written by ssti"):
        train(cfg(train_spec=spec()), out, resume=True, show_progress=False)
    from ssti.io import write_marker

    write_marker(out, "run", ["checkpoint/"])  # as if ssti had written it, then it was damaged
    import ssti.train as train_module

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the damaged checkpoint was refused")

    real_build, train_module.build_classifier = train_module.build_classifier, no_model
    try:
        with pytest.raises(SSTIError, match="corrupt"):
            train(cfg(train_spec=spec()), out, resume=True, show_progress=False)
    finally:
        train_module.build_classifier = real_build
    with pytest.raises(SSTIError, match="resume/overwrite: give one"):
        train(cfg(train_spec=spec()), out, resume=True, overwrite=True, show_progress=False)


def test_resume_with_no_run_in_the_folder_starts_fresh(tmp_path, capsys):
    """Ctrl-C before the first checkpoint leaves nothing behind; --resume then starts from step 0, saying so."""
    result = train(cfg(train_spec=spec()), tmp_path / "new", resume=True, show_progress=False)
    assert result.steps == 6 and (tmp_path / "new" / "adapter" / "model.json").exists()
    assert "holds no run to resume" in capsys.readouterr().err
    assert json.loads((tmp_path / "new" / "metrics.json").read_text())["train"]["resumed_from_step"] == 0


def test_batch_must_split_into_micro_batches(tmp_path):
    from ssti.config import load_run_config

    with pytest.raises(SSTIError, match="train.micro_batch_size: 2 does not divide batch_size 5"):
        load_run_config({"train": {"batch_size": 5, "micro_batch_size": 2}})


def test_cli_train_and_errors(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["train", "--data", "rotten-tomatoes", "--model", "tiny-random-bert", "--targets", "qv", "--rank", "2",
                             "--steps", "2", "--batch-size", "4", "--max-length", "32", "--out", str(tmp_path / "r")])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["train", "--data", "rotten-tomatoes", "--model", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "model: 'nope'" in bad.output
    bad = runner.invoke(app, ["train", "--data", "rotten-tomatoes", "--rank", "-1", "--out", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "lora.rank" in bad.output
    bad = runner.invoke(app, ["train", "--data", "rotten-tomatoes", "--optimizer", "sgd", "--out", str(tmp_path / "z")])
    assert bad.exit_code == 2 and "train.optimizer" in bad.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_paper_preset_fills_in_and_explicit_fields_win():
    from ssti.config import load_run_config

    config = load_run_config({"preset": "paper", "train": {"lr": 1}})
    assert config.train.optimizer == "adafactor" and config.train.batch_size == 128 and config.model.head == "paper"
    assert config.train.lr == 1  # explicit wins over the preset
    # the same rule from the command line: an option given wins, the rest come from the preset
    res = CliRunner().invoke(app, ["train", "--preset", "paper", "--lr", "0.5", "--out", "x", "--print-config"])
    assert res.exit_code == 0, res.output
    printed = __import__("yaml").safe_load(res.output)
    assert printed["train"]["lr"] == 0.5 and printed["train"]["optimizer"] == "adafactor"
    with pytest.raises(SSTIError, match="preset"):
        load_run_config({"preset": "nope"})


def test_adafactor_and_full_finetune(tmp_path):
    train(cfg(lora=LoraSpec(rank=0), train_spec=spec(optimizer="adafactor", steps=2)), tmp_path / "r", show_progress=False)
    assert (tmp_path / "r" / "adapter" / "backbone.safetensors").exists()


@pytest.mark.slow
def test_smollm2_trains_a_few_steps(tmp_path):
    result = train(cfg(ModelSpec(max_length=32), LoraSpec(rank=4, targets="qv"), TrainSpec(steps=2, batch_size=4, checkpoint_every=0)),
                   tmp_path / "r", show_progress=False)
    assert result.real_tokens > 0 and np.isfinite(result.final_loss)


def test_two_processes_train_the_same_weights_as_one(tmp_path):
    """Data parallel through a distributed launcher (torchrun here; `accelerate launch` sets the same
    variables) with no code change: each process takes its share of every global batch and the
    gradients are averaged, so the final weights match a single-process run."""
    import os
    import subprocess
    import sys

    import torch

    script = tmp_path / "job.py"
    script.write_text(
        "import sys\n"
        "from ssti.config import LoraSpec, ModelSpec, RunConfig, TrainSpec\n"
        "from ssti.train import train\n"
        "train(RunConfig(model=ModelSpec(name='tiny-random-llama', max_length=64), lora=LoraSpec(rank=2, targets='qv', dropout=0.0),\n"
        "      train=TrainSpec(steps=3, batch_size=8, micro_batch_size=4, checkpoint_every=0, precision='fp32')),\n"
        "      sys.argv[1], show_progress=False)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], check=True, env=env, capture_output=True)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "two")]
    done = subprocess.run(launch, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    one = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5), key
    log = [json.loads(line) for line in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3  # one log, written by the main process only


def test_a_run_that_checkpointed_evaluates(tmp_path):
    """Checkpoints during training are cleaned up at the end, so the finished run evaluates (the demo's settings)."""
    from ssti.evaluate import evaluate_run

    out = tmp_path / "run"
    train(cfg(train_spec=spec(steps=4, checkpoint_every=2)), out, show_progress=False)
    assert not (out / "checkpoint").exists()
    assert evaluate_run(out)["clean"]["n"] > 0


def test_learning_curve_is_logged_kept_on_resume_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """train.eval_every: clean accuracy on eval_samples rows every N steps and at the end, in the log and metrics."""
    curve_spec = spec(steps=5, checkpoint_every=2, eval_every=2, eval_samples=12)
    train(cfg(train_spec=curve_spec), tmp_path / "whole", show_progress=False)
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())["train"]["curve"]
    assert [p["step"] for p in whole] == [2, 4, 5] and all(0 <= p["clean_accuracy"] <= 1 for p in whole)
    interrupted_at_step_4(monkeypatch, lambda: train(cfg(train_spec=curve_spec), tmp_path / "cut", show_progress=False))
    train(cfg(train_spec=curve_spec), tmp_path / "cut", resume=True, show_progress=False)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["train"]["curve"] == whole
    rows = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "clean_accuracy" in r] == [2, 4, 5] and rows[-1]["curve_samples"] >= 12
    plain = train(cfg(train_spec=spec(steps=5)), tmp_path / "plain", show_progress=False)
    assert json.loads((tmp_path / "plain" / "metrics.json").read_text())["train"]["curve"] == [] and plain.steps == 5


def test_learning_curve_needs_the_eval_split(tmp_path):
    config = cfg(train_spec=spec(eval_every=2)).model_copy(update={"eval": cfg().eval.model_copy(update={"split": "validation"})})
    with pytest.raises(SSTIError, match="eval.split: 'validation' is not a split"):
        train(config, tmp_path / "r", show_progress=False)
    assert not (tmp_path / "r").exists()
