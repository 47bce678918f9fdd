"""Sweep configs: a base run config, axes to expand (dotted paths into RunConfig), named variants.

```yaml
base: {data: ..., injection: ..., model: ..., lora: ..., train: ..., eval: ...}
axes:                        # the grid: every combination of these values
  lora.rank: [1, 4, 16, 64]
  injection.rate: [0.5, 1.0]
  train.seed: [0, 1]
zip:                         # optional: axes that move together (same length), one grid dimension
  - {injection.seed: [0, 1], eval.seed: [0, 1]}
variants:                    # optional: named overrides, one more grid dimension ("variant")
  light: {injection.tokens: 1}
  aggressive: {injection.token_fraction: 0.1}
scan: false                  # scan each injected training set with `ssti scan`
executor: local              # local | ray (the CLI's --executor wins)
workers: 1                   # local: worker processes
threads: null                # local: torch CPU threads per run (default: the cores shared among workers)
resources: {cpus: 1, gpus: 0}  # ray: per run
```

A run's id is the hash of its resolved config, so re-running a sweep skips finished runs and a
changed setting is a new run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ssti.config import RunConfig, load_run_config
from ssti.errors import SSTIError
from ssti.io import read_yaml
from ssti.train import config_hash

SWEEP_KEYS = {"base", "axes", "zip", "variants", "scan", "executor", "workers", "threads", "resources", "name"}


@dataclass
class SweepRun:
    """One run of a sweep: its id, the axis values that made it, and its validated config."""

    run_id: str
    labels: dict[str, Any]
    config: RunConfig
    resolved: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass
class Sweep:
    """A parsed sweep file: runs in grid order plus how to execute them."""

    name: str
    runs: list[SweepRun]
    raw: dict[str, Any]
    scan: bool = False
    executor: str = "local"
    workers: int = 1
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1, "gpus": 0})
    threads: int | None = None


def resolve_config(config: RunConfig) -> dict[str, Any]:
    """The fully resolved config of a run as plain data: every default filled in, also in `injection`.

    Two configs that differ only by spelling out a default resolve to the same dict (same run id).
    """
    data = config.model_dump(mode="json")
    if config.injection is not None:
        from ssti.inject import InjectionSpec

        data["injection"] = InjectionSpec.from_dict(config.injection).model_dump(mode="json")
    return data


def run_id(config: RunConfig) -> str:
    """The run id: `config_hash` of the resolved config (stable across processes and key order)."""
    return config_hash(resolve_config(config))


def _fields_of(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def check_path(path: str) -> None:
    """Refuse a dotted path that names no RunConfig field, saying which fields exist there."""
    from ssti.inject import InjectionSpec

    parts = path.split(".")
    model: type[BaseModel] | None = RunConfig
    for i, part in enumerate(parts):
        if model is None:
            raise SSTIError(f"axes: {path!r}: {'.'.join(parts[:i])} has no sub-fields")
        if part not in model.model_fields:
            where = ".".join(parts[:i]) or "the run config"
            raise SSTIError(f"axes: {path!r} names no field; fields of {where}: {', '.join(_fields_of(model))}")
        if model is RunConfig and part == "injection":
            model = InjectionSpec
            continue
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if i < len(parts) - 1 and model is None and part != "targets" and part != "sources":
            raise SSTIError(f"axes: {path!r}: {'.'.join(parts[:i + 1])} has no sub-fields")
        if model is None:  # a dict field (injection.targets, eval.sources): any key below it is fine
            return


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of nested dict `data` with the dotted `path` set to `value` (creating mappings on the way)."""
    out = dict(data)
    head, _, rest = path.partition(".")
    if not rest:
        out[head] = value
        return out
    inner = out.get(head)
    out[head] = set_path(inner if isinstance(inner, dict) else {}, rest, value)
    return out


def _axis_values(name: str, values: Any, where: str) -> list[Any]:
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise SSTIError(f"{where}: {name!r} is empty; give at least one value")
    return values


def _dimensions(raw: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The grid dimensions, each a list of {dotted path: value} assignments (variants add a "variant" label).

    Order (outermost first): zip groups (e.g. seeds: a cut-short sweep then holds whole grids), axes in
    file order, variants.
    """
    dims: list[list[dict[str, Any]]] = []
    for i, group in enumerate(raw.get("zip") or []):
        if not isinstance(group, dict) or not group:
            raise SSTIError(f"zip[{i}]: expected a non-empty mapping of dotted path -> list of values")
        lists = {p: _axis_values(p, v, f"zip[{i}]") for p, v in group.items()}
        for p in lists:
            check_path(p)
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise SSTIError(f"zip[{i}]: the lists have different lengths ({', '.join(f'{p}: {len(v)}' for p, v in lists.items())})")
        dims.append([{p: v[k] for p, v in lists.items()} for k in range(lengths.pop())])
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict):
        raise SSTIError("axes: expected a mapping of dotted field path -> list of values")
    for path, values in axes.items():
        check_path(path)
        dims.append([{path: v} for v in _axis_values(path, values, "axes")])
    variants = raw.get("variants")
    if variants is not None:
        if not isinstance(variants, dict) or not variants:
            raise SSTIError("variants: expected a non-empty mapping of variant name -> {dotted path: value}")
        dim = []
        for name, overrides in variants.items():
            if not isinstance(overrides, dict):
                raise SSTIError(f"variants.{name}: expected a mapping of dotted path -> value")
            for p in overrides:
                check_path(p)
            dim.append({"variant": str(name), **overrides})
        dims.append(dim)
    return dims


def expand(raw: dict[str, Any], name: str = "sweep") -> Sweep:
    """Expand a sweep mapping into its runs (grid order; duplicates of one resolved config kept once)."""
    if not isinstance(raw, dict) or "base" not in raw:
        raise SSTIError("sweep: expected a mapping with `base` (a run config) and `axes`")
    unknown = set(raw) - SWEEP_KEYS
    if unknown:
        raise SSTIError(f"sweep: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SWEEP_KEYS))}")
    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise SSTIError("base: expected a run config mapping (data, injection, model, lora, train, eval)")
    runs: dict[str, SweepRun] = {}
    for combo in itertools.product(*_dimensions(raw)):
        data, labels = base, {}
        for assignment in combo:
            if "variant" in assignment:
                labels["variant"] = assignment["variant"]
            for path, value in assignment.items():
                if "variant" not in assignment:
                    labels[path] = value
                if path != "variant":
                    if path.startswith("injection.") and data.get("injection") is None:
                        raise SSTIError(f"axes: {path!r} varies the injection but base.injection is null")
                    data = set_path(data, path, value)
        where = ", ".join(f"{k}={v}" for k, v in labels.items())
        config = load_run_config(data, where=f"run [{where}]" if where else "base")
        resolved = resolve_config(config)
        rid = config_hash(resolved)
        runs.setdefault(rid, SweepRun(rid, labels, config, resolved))
    resources = {"cpus": 1, "gpus": 0, **(raw.get("resources") or {})}
    executor = raw.get("executor", "local")
    if executor not in ("local", "ray"):
        raise SSTIError(f"executor: {executor!r} is not allowed; expected 'local' or 'ray'")
    workers = raw.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        raise SSTIError(f"workers: {workers!r} is not a positive integer")
    threads = raw.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise SSTIError(f"threads: {threads!r} is not a positive integer")
    return Sweep(str(raw.get("name") or name), list(runs.values()), raw, scan=bool(raw.get("scan", False)),
                 executor=executor, workers=workers, resources=resources, threads=threads)


def load_sweep(path: str | Path | dict) -> Sweep:
    """Read and expand a sweep YAML file (or an already-parsed mapping)."""
    if isinstance(path, dict):
        return expand(path)
    return expand(read_yaml(path), name=Path(path).stem)
