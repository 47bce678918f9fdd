"""`ssti demo`: the paper's Table 1 on the embedded default model and dataset, in minutes on a CPU.

Four LoRA runs share every setting but the injection (configs/demo.yaml): no SSTI; a random date in
100% of class-0 training samples; the same for class 1; a date in 50% of class-1 samples. Each is
evaluated on the clean test set and on the test set with a date in every sample.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ssti.config import RunConfig
from ssti.io import check_clash, write_marker, write_text
from ssti.pipeline import expand_runs, run_config_file


def demo_config() -> dict[str, Any]:
    """The demo's multi-run config (the shipped configs/demo.yaml)."""
    return yaml.safe_load(resources.files("ssti.configs").joinpath("demo.yaml").read_text())


def run_demo(out: str | Path = "runs/demo", overwrite: bool = False, overrides: dict[str, Any] | None = None) -> str:
    """Run the four demo runs (resuming finished ones) with dotted `overrides` on each, write table1.md and return it."""
    t0 = time.perf_counter()
    if Path(out).is_dir():
        check_clash(out, ["table1.md"])  # before any work: a table1.md of the user's is never replaced
    config = demo_config()
    configs = expand_runs(config, overrides)
    run_config_file(config, out, overwrite=overwrite, overrides=overrides)
    text = table1_markdown(out, next(iter(configs.values())), time.perf_counter() - t0)
    write_marker(out, "runs", ["table1.md"])
    write_text(Path(out) / "table1.md", text)
    return text


def floor_text(records: list[dict], seconds: float) -> str:
    """The physical floor of the demo's work on this machine: its training FLOPs at the best training matmul
    peak plus its evaluation FLOPs at the best inference peak, beside the wall time."""
    import json

    import torch

    from ssti.models.precision import best_peak

    cpu = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_flops = eval_flops = 0.0
    for r in records:
        metrics = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        t = metrics.get("train") or {}
        train_flops += (t.get("flops_per_token") or 0) * (t.get("real_tokens") or 0)
        eval_flops += (metrics.get("eval_cost") or {}).get("flops", 0)
    floor = train_flops / best_peak(cpu, "train") + eval_flops / best_peak(cpu, "infer")
    return (f"Physical floor of this work here: {floor:.0f} s ({train_flops / 1e12:.1f} TFLOP of training at the best training "
            f"matmul peak, {eval_flops / 1e12:.1f} TFLOP of evaluation at the best inference peak); wall time / floor = "
            f"{seconds / max(floor, 1e-9):.2f}.")


def table1_markdown(out: str | Path, config: RunConfig, seconds: float) -> str:
    """The Table 1 analogue of the demo's run folders (the report's one Table 1 renderer, beside the paper's rows)."""
    from ssti.report.data import load
    from ssti.report.tables import markdown, table1

    data = load(out)
    b = config
    lines = [
        "# Table 1 analogue",
        "",
        f"{b.model.name} on {b.data.dataset}, LoRA rank {b.lora.rank} ({b.lora.targets}), {b.train.steps} steps of batch "
        f"{b.train.batch_size}; one random date at a random location. Predicted class counts on "
        f"{data.records[0]['n_eval']} test samples that **all** carry a date (paper: IMDB, 25,000 samples, rank 64).",
        "",
        markdown(table1(data.records, data.class_names)),
        "With 100% of a class injected, the date is a perfect predictor of the label: the model learns "
        "'date -> that class, no date -> the other' and little of the task, so its clean accuracy can collapse. "
        "That is the paper's point: one token per sample is enough to take over the decision. At 50% the "
        "model still learns the task (clean accuracy near the uninjected run) while the date still steers it.",
        "",
        f"Wall time: {seconds:.0f} s (runs already finished are not redone). {floor_text(data.records, seconds)}",
    ]
    return "\n".join(lines) + "\n"
