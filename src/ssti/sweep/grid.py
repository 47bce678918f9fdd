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
grids:                       # optional, instead of axes/zip/variants: several grids in one sweep
  - {name: ranks, axes: {lora.rank: [1, 64]}}
  - {name: fig1, set: {lora.rank: 1}, axes: {injection.rate: [0.25, 1.0]}}
scan: false                  # scan each injected training set with `ssti scan`
probe: false                 # probe each trained model with `ssti probe` (true, or its options:
                             #   {max_samples: 100, types: [date, fixed:cf], location: random, seed: 0,
                             #    search: true, top_k: 20, max_tokens: 8, attention: true})
executor: local              # local | ray (the CLI's --executor wins)
workers: 1                   # local: worker processes
threads: null                # local: torch CPU threads per run (default: the cores shared among workers)
resources: {cpus: 1, gpus: 0}  # ray: per run
```

A run's id is `RunConfig.run_id` of its resolved config (fields left at their defaults do not enter
it, local data enters by content hash), so re-running a sweep skips finished runs, a changed setting
or changed data bytes is a new run, and a field added to the schema later keeps existing ids.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssti.config import RunConfig, apply_overrides, field_of, load_run_config, resolve_data, set_path, shipped_config
from ssti.errors import SSTIError
from ssti.io import read_yaml

SWEEP_KEYS = {"base", "axes", "zip", "variants", "grids", "scan", "probe", "executor", "workers", "threads", "resources", "name"}


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
    raw: dict[str, Any]  # the sweep mapping with any key=value overrides set in its base (written as sweep.yaml)
    scan: bool = False
    probe: dict[str, Any] | None = None  # options of `ssti.probe.probe` when every run is probed
    executor: str = "local"
    workers: int = 1
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1, "gpus": 0})
    threads: int | None = None

    @property
    def audits(self) -> dict[str, Any]:
        """What each run is audited with after training (passed to `ssti.sweep.worker.execute`)."""
        return {"scan": self.scan, "probe": self.probe}


def probe_options(value: Any) -> dict[str, Any] | None:
    """The sweep's `probe:` (false, true, or a mapping of `ProbeSpec` fields), checked before any run, as a
    plain mapping for the workers (None: the runs are not probed)."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise SSTIError(f"probe: {value!r} is not allowed; expected true, false or a mapping of probe options")
    from ssti.config import validate
    from ssti.probe.spec import ProbeSpec

    return validate(ProbeSpec, value, "probe").model_dump(exclude_defaults=True)


def run_id(config: RunConfig) -> str:
    """The run id of a sweep run: `RunConfig.run_id` (data resolved first, so changed data bytes are a new id)."""
    return resolve_data(config).run_id()


MAX_RUNS = 100_000  # a grid larger than this is a typo (a 6-axis product of 10 values each), not a plan


def check_path(path: str, where: str = "axes") -> None:
    """Refuse a dotted path that names no RunConfig field (one line naming `where` and listing the fields there)."""
    try:
        field_of(path)
    except SSTIError as e:
        raise SSTIError(f"{where}: {e}") from None


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
    owner: dict[str, str] = {}  # dotted path -> where it is varied: one place only, or one value would silently win

    def claim(path: str, where: str) -> None:
        if path in owner and owner[path] != where:
            raise SSTIError(f"{where}: {path!r} is also varied in {owner[path]}; vary each field in one place")
        owner[path] = where

    for i, group in enumerate(raw.get("zip") or []):
        if not isinstance(group, dict) or not group:
            raise SSTIError(f"zip[{i}]: expected a non-empty mapping of dotted path -> list of values")
        lists = {p: _axis_values(p, v, f"zip[{i}]") for p, v in group.items()}
        for p in lists:
            check_path(p, f"zip[{i}]")
            claim(p, f"zip[{i}]")
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise SSTIError(f"zip[{i}]: the lists have different lengths ({', '.join(f'{p}: {len(v)}' for p, v in lists.items())})")
        dims.append([{p: v[k] for p, v in lists.items()} for k in range(lengths.pop())])
    axes = raw.get("axes") or {}
    if not isinstance(axes, dict):
        raise SSTIError("axes: expected a mapping of dotted field path -> list of values")
    for path, values in axes.items():
        check_path(path)
        claim(path, "axes")
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
                check_path(p, f"variants.{name}")
                if p in owner and not owner[p].startswith("variants"):
                    raise SSTIError(f"variants.{name}: {p!r} is also varied in {owner[p]}; vary each field in one place")
                owner.setdefault(p, "variants")
            dim.append({"variant": str(name), **overrides})
        dims.append(dim)
    return dims


GRID_KEYS = {"name", "set", "axes", "zip", "variants"}


def _grids(raw: dict[str, Any], base: dict[str, Any]) -> list[tuple[str | None, dict[str, Any], dict[str, Any]]]:
    """(name, base with the grid's `set` overrides, the grid's axes/zip/variants) for each grid.

    Without `grids` the file's own axes/zip/variants are the one grid. With `grids`, each entry is a
    grid of its own (its runs labelled `grid: NAME`); the union is the sweep, a run that two grids share
    is run once.
    """
    grids = raw.get("grids")
    if grids is None:
        return [(None, base, raw)]
    if not isinstance(grids, list) or not grids:
        raise SSTIError("grids: expected a non-empty list of {name, set, axes, zip, variants}")
    shared = sorted(k for k in ("axes", "zip", "variants") if raw.get(k))
    if shared:
        raise SSTIError(f"grids: with `grids`, give {', '.join(shared)} inside each grid, not at the top level")
    out, names = [], set()
    for i, grid in enumerate(grids):
        if not isinstance(grid, dict):
            raise SSTIError(f"grids[{i}]: expected a mapping with name, set, axes, zip, variants")
        unknown = set(grid) - GRID_KEYS
        if unknown:
            raise SSTIError(f"grids[{i}]: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(GRID_KEYS))}")
        name = str(grid.get("name") or f"grid{i}")
        if name in names:
            raise SSTIError(f"grids[{i}]: the name {name!r} is used twice")
        names.add(name)
        sets = grid.get("set") or {}
        if not isinstance(sets, dict):
            raise SSTIError(f"grids[{i}].set: expected a mapping of dotted path -> value")
        grid_base = base
        for path, value in sets.items():
            check_path(path, f"grids[{i}].set")
            grid_base = set_path(grid_base, path, value)
        out.append((name, grid_base, grid))
    return out


def expand(raw: dict[str, Any], name: str = "sweep", overrides: dict[str, Any] | None = None) -> Sweep:
    """Expand a sweep mapping into its runs (grid order; duplicates of one resolved config kept once).

    Dotted `overrides` (`ssti sweep CFG lora.rank=8`) are set in the base before the axes.
    """
    if not isinstance(raw, dict) or "base" not in raw:
        raise SSTIError("sweep: expected a mapping with `base` (a run config) and `axes`")
    unknown = set(raw) - SWEEP_KEYS
    if "runs" in unknown:
        raise SSTIError("sweep: this is a multi-run config (a `runs:` list), not a sweep; run it with `ssti run FILE`")
    if unknown:
        raise SSTIError(f"sweep: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(SWEEP_KEYS))}")
    base = raw.get("base") or {}
    if not isinstance(base, dict):
        raise SSTIError("base: expected a run config mapping (data, injection, model, lora, train, eval)")
    base = apply_overrides(base, overrides or {})
    runs: dict[str, SweepRun] = {}
    for i, (grid_name, grid_base, grid) in enumerate(_grids(raw, base)):
        try:
            dimensions = _dimensions(grid)
        except SSTIError as e:
            raise SSTIError(f"grids[{i}] ({grid_name}): {e}" if grid_name else str(e)) from None
        size = 1
        for dim in dimensions:
            size *= len(dim)
        if size > MAX_RUNS:
            raise SSTIError(f"{f'grids[{i}] ({grid_name})' if grid_name else 'sweep'}: {size:,} runs; at most {MAX_RUNS:,} per grid "
                            f"(split it into several sweeps)")
        varied = {path for dim in dimensions for assignment in dim for path in assignment if path != "variant"}
        where = f"grids[{i}] ({grid_name})" if grid_name else "the sweep"
        for path in overrides or {}:  # an override the grid then varies would be dropped without a word
            if path in varied:
                raise SSTIError(f"override: {path} is varied by {where}; change it in the sweep file instead")
        for path in (grid.get("set") or {}) if grid_name else ():
            if path in varied:
                raise SSTIError(f"grids[{i}] ({grid_name}).set: {path!r} is also varied in the grid; vary each field in one place")
        for combo in itertools.product(*dimensions):
            data, labels = grid_base, ({"grid": grid_name} if grid_name else {})
            for assignment in combo:
                if "variant" in assignment:
                    labels["variant"] = assignment["variant"]
                for path, value in assignment.items():
                    if "variant" not in assignment:
                        labels[path] = value
                    if path != "variant":
                        if path.startswith("injection.") and data.get("injection") is None:
                            source = f"variants.{labels['variant']}" if "variant" in assignment else "axes"
                            where = f"grids[{i}] ({grid_name}): " if grid_name else ""
                            raise SSTIError(f"{where}{source}: {path!r} varies the injection but the injection is null there")
                        data = set_path(data, path, value)
            where = ", ".join(f"{k}={v}" for k, v in labels.items())
            config = resolve_data(load_run_config(data, where=f"run [{where}]" if where else "base"))
            rid = config.run_id()
            runs.setdefault(rid, SweepRun(rid, labels, config, config.dump()))
    resources = {"cpus": 1, "gpus": 0, **(raw.get("resources") or {})}
    for key, value in resources.items():
        if key not in ("cpus", "gpus") or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SSTIError(f"resources.{key}: {value!r} is not allowed; expected cpus and gpus as numbers >= 0")
    if not isinstance(raw.get("scan", False), bool):
        raise SSTIError(f"scan: {raw['scan']!r} is not allowed; expected true or false")
    executor = raw.get("executor", "local")
    if executor not in ("local", "ray"):
        raise SSTIError(f"executor: {executor!r} is not allowed; expected 'local' or 'ray'")
    workers = raw.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        raise SSTIError(f"workers: {workers!r} is not a positive integer")
    threads = raw.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise SSTIError(f"threads: {threads!r} is not a positive integer")
    sweep_name = str(raw["name"]) if raw.get("name") else re.sub(r"[^\w.-]+", "-", name).strip(".") or "sweep"
    if not re.fullmatch(r"[\w.-]+", sweep_name) or sweep_name in (".", ".."):  # a file stem ("my grid.yaml") is made safe
        raise SSTIError(f"name: {sweep_name!r} is not allowed; a sweep name is letters, digits, '.', '_' and '-' "
                        f"(it names the default folder runs/NAME)")
    # the overrides are kept in the base, so sweep.yaml expands to exactly these runs (and tells stale runs apart)
    return Sweep(sweep_name, list(runs.values()), {**raw, "base": base} if overrides else raw, scan=bool(raw.get("scan", False)),
                 probe=probe_options(raw.get("probe")), executor=executor, workers=workers, resources=resources, threads=threads)


def load_sweep(path: str | Path | dict, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read and expand a sweep YAML file (or an already-parsed mapping), with dotted `overrides` on its base."""
    if isinstance(path, dict):
        return expand(path, overrides=overrides)
    path = shipped_config(path)
    if path.is_dir():
        raise SSTIError(f"sweep: {path} is a folder; give a sweep YAML file")
    return expand(read_yaml(path), name=path.stem, overrides=overrides)
