"""`ssti run` and `ssti demo` end to end on a tiny model."""

import json

import pytest
import yaml

from ssti.errors import SSTIError
from typer.testing import CliRunner

from ssti.cli import app

TINY = {
    "base": {
        "data": {"dataset": "rotten-tomatoes"},
        "model": {"name": "tiny-random-llama", "max_length": 64},
        "lora": {"rank": 2, "targets": "qv"},
        "train": {"steps": 2, "batch_size": 4, "checkpoint_every": 0},
        "eval": {"max_samples": 20, "sources": {"rotten": "date", "fresh": "date"}},
    },
    "runs": {"clean": {"injection": None}, "dates": {"injection": {"targets": {"fresh": "date"}, "rate": 1.0}}},
}


def test_run_config_end_to_end_and_skip_when_done(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY))
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "dates" / "metrics.json").read_text())
    assert metrics["clean"]["n"] == 20 and "fresh" in metrics["spurious"]
    assert (tmp_path / "out" / "dates" / "data" / "manifest.jsonl").exists()
    mtime = (tmp_path / "out" / "dates" / "adapter" / "model.json").stat().st_mtime
    again = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert again.exit_code == 0 and (tmp_path / "out" / "dates" / "adapter" / "model.json").stat().st_mtime == mtime
    TINY["base"]["train"]["lr"] = 0.5
    path.write_text(yaml.safe_dump(TINY))
    changed = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert changed.exit_code == 2 and "another run" in changed.output and "train.lr" in changed.output
    TINY["base"]["train"].pop("lr")


def test_bad_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"lora": {"rank": "big"}}))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "lora.rank" in result.output


def test_demo_on_tiny_model(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "model.name=tiny-random-llama", "train.steps=2", "eval.max_samples=20"])
    assert result.exit_code == 0, result.output
    table = (tmp_path / "d" / "table1.md").read_text()
    assert "24686" in table and "light SSTI: date in class 1, 50% of the class" in table and "fine-tuned without SSTI" in table
    assert all((tmp_path / "d" / r / "metrics.json").exists() for r in ("no-ssti", "date-class0-100", "date-class1-100", "date-class1-50"))
    # the words below the table are computed from the runs (a fixed text contradicted them), the floor of a tiny model is not a ratio
    assert "Measured here: without SSTI, clean accuracy" in table and "a date in 50% of class 'fresh': ASR" in table, table
    assert "the date steers the prediction" in table and "under a second" in table and "wall time / floor" not in table


def test_shipped_configs_parse():
    from pathlib import Path

    from ssti.pipeline import expand_runs

    paths = list(Path(__file__).parent.parent.glob("configs/*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        data = yaml.safe_load(path.read_text())
        if {"axes", "zip", "grids"} & set(data):  # sweep configs: they expand as sweeps, and `ssti run` refuses them
            from ssti.sweep import expand

            assert expand(data, name=path.stem).runs
            with pytest.raises(SSTIError, match="this is a sweep config"):
                expand_runs(data)
            continue
        assert expand_runs(data)


def test_configs_lists_whole_first_sentences():
    from ssti.cli.listings import first_sentence

    text = "# One thing: it does\n# this well. And more.\n#   ssti run x\n# later prose\nbase: {}\n"
    assert first_sentence(text) == "One thing: it does this well."
    assert first_sentence("# The grid, in 40 minutes:\n#   ssti sweep x\n") == "The grid, in 40 minutes."
    from ssti.config import shipped_config

    assert first_sentence(shipped_config("configs/findings-smollm2.yaml").read_text()).endswith("at one seed).")
    assert CliRunner().invoke(app, ["configs"]).exit_code == 0
