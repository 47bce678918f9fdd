"""`ssti run`: one config, one pipeline: inject (optional) -> defend (optional) -> train -> evaluate, resumable.

A run folder that already finished with the same run id is not redone; one interrupted mid-way is
resumed; one holding another run (other settings, or data whose bytes changed) is refused unless
overwritten, and then only the files ssti wrote there are replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssti.config import RunConfig, deep_merge, load_run_config, read_run_config, resolve_data, shipped_config
from ssti.errors import SSTIError
from ssti.io import check_output, read_json, read_marker, read_yaml, write_marker
from ssti.train import check_classes, describe_difference, train


def run_state(out: Path, config: RunConfig) -> str:
    """Where run `config` stands in folder `out`: new, other (another run is there), training, trained or evaluated."""
    if read_marker(out) is None or not (out / "config.yaml").exists():
        return "new"  # (train refuses a non-empty folder ssti did not write)
    if read_run_config(out).run_id() != config.run_id():
        return "other"
    if not (out / "adapter" / "model.json").exists() or (out / "checkpoint" / "state.json").exists():
        return "training"
    metrics = out / "metrics.json"
    if metrics.exists() and read_json(metrics).get("eval_config") == config.eval.model_dump(mode="json"):
        return "evaluated"
    return "trained"


def check_run_folder(out: Path, config: RunConfig, overwrite: bool) -> str:
    """`run_state` of `out`, after the refusals a run would meet there (a folder ssti did not write, another
    run without `overwrite`), so a multi-run config checks every run before any starts."""
    check_output(out, "run")
    state = run_state(out, config)
    if state == "other" and not overwrite:
        raise SSTIError(f"out: {out} holds another run ({describe_difference(read_run_config(out), config)}); "
                        f"pass --overwrite (overwrite=True) to replace it, or use a new --out")
    return state


def run_pipeline(config: RunConfig, out: str | Path, overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run `config` into folder `out` and return its metrics (train, clean, spurious, provenance)."""
    from ssti.evaluate import evaluate_run

    out = Path(out)
    config = resolve_data(config)
    state = check_run_folder(out, config, overwrite)
    if state == "evaluated":
        return read_json(out / "metrics.json")
    if state in ("new", "other", "training"):
        train(config, out, resume=state == "training", overwrite=state == "other", show_progress=show_progress)
    return evaluate_run(out, config.eval)


def expand_runs(data: dict, overrides: dict[str, Any] | None = None) -> dict[str, RunConfig]:
    """The runs of a config file: one RunConfig, or a `base` plus named `runs` that override it.

    Dotted `overrides` (see `ssti.config.parse_overrides`) apply to every run.
    """
    if not isinstance(data, dict):
        raise SSTIError(f"config: expected a mapping of sections (data, injection, model, lora, train, eval), got {type(data).__name__}")
    sweep_keys = sorted({"axes", "zip", "grids", "variants"} & set(data))
    if sweep_keys:
        raise SSTIError(f"config: this is a sweep config ({', '.join(sweep_keys)}); run it with `ssti sweep`")
    if "runs" not in data:
        if "base" in data:  # base is only a multi-run config's key: its `runs:` is missing or misspelled
            others = ", ".join(sorted(set(data) - {"base"}))
            found = f" (found {others} instead)" if others else ""
            raise SSTIError(f"config: `base` needs a `runs:` mapping of run name -> overrides beside it{found}; a single run config has no base")
        return {"": load_run_config(data, overrides=overrides)}
    runs = data["runs"]
    if not isinstance(runs, dict) or not runs:
        raise SSTIError("runs: expected a non-empty mapping of run name -> overrides of base")
    for name in runs:
        if not isinstance(name, str) or not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name:
            raise SSTIError(f"runs: {name!r} is not a plain folder name (letters, digits, - and _; no '/', not starting with '.')")
    unknown = set(data) - {"base", "runs"}
    if unknown:
        raise SSTIError(f"config: unknown key(s) {', '.join(sorted(unknown))} beside runs; allowed: base, runs")
    out = {}
    for name, own in runs.items():
        merged = deep_merge(data.get("base") or {}, own or {})
        # an injection.* override applies to the runs that inject; a run without an injection keeps none
        mine = {k: v for k, v in (overrides or {}).items() if merged.get("injection") is not None or not k.startswith("injection.")}
        out[name] = load_run_config(merged, f"runs.{name}", overrides=mine)
    return out


def read_config_file(path: str | Path | dict) -> dict:
    """A run config file's data (a mapping given as is passes through); one-line errors for empty or non-mapping files."""
    if isinstance(path, dict):
        return path
    path = shipped_config(path)
    if path.is_dir():
        raise SSTIError(f"config: {path} is a folder; give a YAML file (a run folder's own is {path / 'config.yaml'})")
    data = read_yaml(path)
    if data is None:
        raise SSTIError(f"config: {path} is empty; expected a mapping of sections (data, injection, model, lora, train, eval)")
    return data


def run_config_file(path: str | Path | dict, out: str | Path, overwrite: bool = False, show_progress: bool = True,
                    overrides: dict[str, Any] | None = None) -> dict[str, dict]:
    """Run every run of a config file into `out` (sub-folders per named run); metrics by run name.

    Every run is validated (and its data resolved) before any is started.
    """
    runs = {name: resolve_data(c) for name, c in expand_runs(read_config_file(path), overrides).items()}
    check_classes(list(runs.values()))
    named = any(runs)
    if named:  # a folder of named runs: the same output rule, one level up
        check_output(out, "runs")
    for name, config in runs.items():  # every run's folder is checked before any run starts
        check_run_folder(Path(out) / name if name else Path(out), config, overwrite)
    if named:
        Path(out).mkdir(parents=True, exist_ok=True)
    results = {}
    for name, config in runs.items():
        if named:
            write_marker(out, "runs", [f"{name}/"])
        if name and show_progress:
            from rich.console import Console

            Console().rule(f"[bold]{name}")
        results[name] = run_pipeline(config, Path(out) / name if name else out, overwrite=overwrite, show_progress=show_progress)
    return results
