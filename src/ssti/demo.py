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

from ssti.io import write_text
from ssti.config import RunConfig
from ssti.pipeline import expand_runs, run_config_file

# PAPER.md section 4: IMDB test (25,000), LoRA rank 64, every test sample date-injected.
PAPER_TABLE1 = {"no-ssti": (14003, 10997), "date-class0-100": (24686, 314), "date-class1-100": (512, 24488)}
ROW_TITLES = {
    "no-ssti": "fine-tuned without SSTI",
    "date-class0-100": "SSTI, class-0 token (100%)",
    "date-class1-100": "SSTI, class-1 token (100%)",
    "date-class1-50": "SSTI, class-1 token (50%, seamless)",
}
TARGET = {"date-class0-100": 0, "date-class1-100": 1, "date-class1-50": 1}


def demo_config() -> dict[str, Any]:
    """The demo's multi-run config (the shipped configs/demo.yaml)."""
    return yaml.safe_load(resources.files("ssti.configs").joinpath("demo.yaml").read_text())


def run_demo(out: str | Path = "runs/demo", overwrite: bool = False, overrides: dict[str, Any] | None = None) -> str:
    """Run the four demo runs (resuming finished ones) with dotted `overrides` on each, write table1.md and return it."""
    t0 = time.perf_counter()
    config = demo_config()
    configs = expand_runs(config, overrides)
    results = run_config_file(config, out, overwrite=overwrite, overrides=overrides)
    text = table1_markdown(results, next(iter(configs.values())), time.perf_counter() - t0)
    write_text(Path(out) / "table1.md", text)
    return text


def table1_markdown(results: dict[str, dict], config: RunConfig, seconds: float) -> str:
    """The Table 1 analogue beside the paper's figures, then clean accuracy and ASR per run."""
    any_run = next(iter(results.values()))
    names = any_run["class_names"]
    spurious = any_run["spurious"]
    first = next(iter(spurious.values()))
    n = first["n"]
    b = config
    lines = [
        "# Table 1 analogue",
        "",
        f"{b.model.name} on {b.data.dataset}, LoRA rank {b.lora.rank} ({b.lora.targets}), "
        f"{b.train.steps} steps of batch {b.train.batch_size}; one random date at a random location. "
        f"Predicted class counts on {n} test samples that **all** carry a date (paper: IMDB, 25,000 samples, rank 64).",
        "",
        f"| model | predicted {names[0]} | predicted {names[1]} | paper: predicted 0 | paper: predicted 1 |",
        "|---|---|---|---|---|",
    ]
    for run, metrics in results.items():
        counts = next(iter(metrics["spurious"].values()))["pred_counts"]
        pct = [f"{c} ({100 * c / n:.1f}%)" for c in counts[:2]]
        paper = PAPER_TABLE1.get(run)
        ppct = [f"{c} ({100 * c / 25000:.1f}%)" for c in paper] if paper else ["-", "-"]
        lines.append(f"| {ROW_TITLES.get(run, run)} | {pct[0]} | {pct[1]} | {ppct[0]} | {ppct[1]} |")
    lines += ["", "| model | clean accuracy | accuracy with date | attack success rate (date -> target) |", "|---|---|---|---|"]
    for run, metrics in results.items():
        target = TARGET.get(run)
        spur = list(metrics["spurious"].values())
        chosen = spur[target] if target is not None and target < len(spur) else spur[0]
        asr = f"{chosen['attack_success_rate']:.3f} (-> {names[chosen['target_class']]})" if target is not None else "-"
        lines.append(f"| {ROW_TITLES.get(run, run)} | {metrics['clean']['accuracy']:.3f} | {chosen['accuracy']:.3f} | {asr} |")
    lines += [
        "",
        "With 100% of a class injected, the date is a perfect predictor of the label: the model learns "
        "'date -> that class, no date -> the other' and little of the task, so its clean accuracy can collapse. "
        "That is the paper's point: one token per sample is enough to take over the decision. At 50% the "
        "model still learns the task (clean accuracy near the uninjected run) while the date still steers it.",
        "",
        f"Wall time: {seconds:.0f} s (runs already finished are not redone).",
    ]
    return "\n".join(lines) + "\n"
