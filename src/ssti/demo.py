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
    if floor < 1:  # a tiny model: a ratio to a floor of milliseconds says nothing
        return (f"Physical floor of this work here: under a second ({(train_flops + eval_flops) / 1e9:.2f} GFLOP in all): "
                f"the wall time is loading and overhead, not arithmetic.")
    return (f"Physical floor of this work here: {floor:.0f} s ({train_flops / 1e12:.1f} TFLOP of training at the best training "
            f"matmul peak, {eval_flops / 1e12:.1f} TFLOP of evaluation at the best inference peak); wall time / floor = "
            f"{seconds / max(floor, 1e-9):.2f}.")


STEERS = 0.3  # ASR this far above its no-token baseline: the date steers the prediction


def conclusion(records: list[dict], class_names: list[str]) -> str:
    """What this demo's runs measured, in words computed from them (never a fixed text that a run can
    contradict): each injected run's ASR beside its no-token baseline and its clean accuracy, and in how
    many of them the date steers the prediction (ASR at least STEERS above the baseline: the paper's
    finding 1, one token per sample is enough)."""
    clean = [r for r in records if not r["injected"]]
    injected = [r for r in records if r["injected"] and r.get("attack_success_rate") is not None]
    said = [f"without SSTI, clean accuracy {clean[0]['clean_accuracy']:.3f}"] if clean else []
    steered = 0
    for r in sorted(injected, key=lambda r: (r["target_class"], -(r["rate"] or 0))):
        asr, base = r["attack_success_rate"], r.get("clean_target_rate") or 0.0
        steered += asr - base >= STEERS
        share = f"{r['rate']:.0%} of" if r["rate"] is not None else "some of"
        said.append(f"a date in {share} class {class_names[r['target_class']]!r}: ASR {asr:.3f} (without the date {base:.3f}), "
                    f"clean accuracy {r['clean_accuracy']:.3f}")
    if not injected:
        return "Measured here: " + "; ".join(said) + "."
    verdict = ("the date steers the prediction toward its class in every injected run: one token per sample is enough "
               "(the paper's finding 1)" if steered == len(injected) else
               "the date steers the prediction in none of the injected runs at these settings (finding 1 not seen here)"
               if steered == 0 else f"the date steers the prediction in {steered} of {len(injected)} injected runs")
    return (f"Measured here: {'; '.join(said)}. Counting a run as steered when its ASR is at least {STEERS} above the "
            f"share predicted as the target without the date, {verdict}.")


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
        conclusion(data.records, data.class_names),
        "",
        f"Wall time: {seconds:.0f} s (runs already finished are not redone). {floor_text(data.records, seconds)}",
    ]
    return "\n".join(lines) + "\n"
