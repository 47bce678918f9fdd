"""`ssti run`: one config, one pipeline: inject (optional) -> train -> evaluate, resumable.

A run folder that already finished with the same config is not redone; one interrupted mid-way is
resumed; one holding another config is refused unless overwritten.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ssti.config import RunConfig
from ssti.errors import SSTIError
from ssti.io import read_yaml
from ssti.train import config_hash, run_config, train

INJECTED_DATA = "data"  # the injected dataset lives inside the run folder


def run_pipeline(config: RunConfig, out: str | Path, overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run `config` into folder `out` and return its metrics (train, clean, spurious)."""
    from ssti.evaluate import evaluate_run

    out = Path(out)
    data_source = config.data.dataset
    extra = {"dataset": config.data.model_dump(), "injection": config.injection, "preset": config.preset}
    if config.injection:
        data_source = str(out / INJECTED_DATA)
    resolved = run_config(data_source, config.model, config.lora, config.train, extra)

    if (out / "config.yaml").exists():
        same = config_hash(read_yaml(out / "config.yaml")) == config_hash(resolved)
        if not same and not overwrite:
            raise SSTIError(f"out: {out} holds a run of another config (pass --overwrite to replace it)")
        if not same:
            shutil.rmtree(out)
        elif _finished(out, config):
            return json.loads((out / "metrics.json").read_text())
    if config.injection and not (out / INJECTED_DATA / "injection.yaml").exists():
        _inject(config, out / INJECTED_DATA)
    resume = (out / "config.yaml").exists()
    if not (resume and (out / "adapter" / "model.json").exists() and not (out / "checkpoint").exists()):
        train(data_source, out, config.model, config.lora, config.train, resume=resume, extra_config=extra, show_progress=show_progress,
              text_column=config.data.text_column, label_column=config.data.label_column)
    e = config.eval
    return evaluate_run(out, sources=e.sources, location=e.location, split=e.split, batch_size=e.batch_size, seed=e.seed,
                        max_samples=e.max_samples, eval_config=e.model_dump())


def _finished(out: Path, config: RunConfig) -> bool:
    """Whether `out` already holds this config's evaluation."""
    path = out / "metrics.json"
    return path.exists() and json.loads(path.read_text()).get("eval_config") == config.eval.model_dump()


def _inject(config: RunConfig, folder: Path) -> None:
    """Inject the configured tokens into the configured dataset and write the folder the run trains on."""
    from ssti.data import load_dataset
    from ssti.inject import InjectionSpec, inject_dataset, write_injected

    spec = InjectionSpec.from_dict(config.injection)
    d = config.data
    dataset = load_dataset(d.dataset, text_column=d.text_column, label_column=d.label_column)
    write_injected(inject_dataset(dataset, spec, source_dataset=d.dataset), folder, overwrite=True)


def deep_merge(base: dict, override: dict) -> dict:
    """`base` with `override` laid over it, recursing into mappings (None in override replaces)."""
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def expand_runs(data: dict) -> dict[str, RunConfig]:
    """The runs of a config file: one RunConfig, or a `base` plus named `runs` that override it."""
    from ssti.config import load_run_config

    if "runs" not in data:
        return {"": load_run_config(data)}
    runs = data["runs"]
    if not isinstance(runs, dict) or not runs:
        raise SSTIError("runs: expected a non-empty mapping of run name -> overrides of base")
    return {name: load_run_config(deep_merge(data.get("base") or {}, overrides or {}), f"runs.{name}") for name, overrides in runs.items()}


def run_config_file(path: str | Path, out: str | Path, overwrite: bool = False, show_progress: bool = True) -> dict[str, dict]:
    """Run every run of a config file into `out` (sub-folders per named run); metrics by run name."""
    runs = expand_runs(read_yaml(path) if not isinstance(path, dict) else path)
    results = {}
    for name, config in runs.items():
        if name and show_progress:
            from rich.console import Console

            Console().rule(f"[bold]{name}")
        results[name] = run_pipeline(config, Path(out) / name if name else out, overwrite=overwrite, show_progress=show_progress)
    return results
