"""What a report is drawn from: flat run records from a sweep's store, a store file, or run folders.

Every source gives the same records (see `ssti.sweep.results.flatten`) plus a `mode` (light,
aggressive, or the variant name) and the config that produced the runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssti.errors import SSTIError
from ssti.io import read_yaml
from ssti.sweep.results import STALE, flatten, mark_stale, run_folder_rows


@dataclass
class ReportData:
    """The records of finished runs, where they came from, and the config(s) behind them."""

    source: str
    records: list[dict[str, Any]]
    config: dict[str, Any]
    unfinished: int = 0  # runs not finished yet (running or queued)
    class_names: list[str] = field(default_factory=list)
    failed: int = 0  # runs that failed (their error is in the store)
    stale: int = 0  # finished runs the sweep's current config no longer has (changed data or axes): left out


def mode_of(rec: dict[str, Any]) -> str:
    """The SSTI mode of a run, by what its injection did, never by its variant's name (a run two grids share
    carries one grid's labels: the findings grid's rate-2% runs are both "light-2pct" and Figure 1's "light"):
    "no SSTI" without an injection, light (one token per sample), aggressive (a fraction of the words) or
    N tokens; a run whose training data went through a defence gets " + DEFENCE" (e.g. "light + scan-strip")."""
    defended = f" + {rec['defence']}" if rec.get("defence") else ""  # a defended run is never pooled with an undefended one
    if not rec.get("injected"):
        return "no SSTI" + defended
    if rec.get("token_fraction"):
        return f"aggressive ({rec['token_fraction']:g})" + defended
    return ("light" if rec.get("tokens") == 1 else f"{rec.get('tokens')} tokens") + defended


def load(path: str | Path) -> ReportData:
    """Records of the finished runs under `path`: a sweep folder, a results.sqlite, or a folder of runs."""
    from ssti.sweep import STORE_NAME, ResultsStore

    path = Path(path)
    if not path.exists():
        raise SSTIError(f"runs: {path} does not exist")
    store = path / STORE_NAME if path.is_dir() else path
    if store.is_file():
        with ResultsStore(store, read_only=True) as s:
            rows = mark_stale(s.rows(), store.parent)
        sweep_yaml = store.parent / "sweep.yaml"
        config = read_yaml(sweep_yaml) if sweep_yaml.exists() else {}
        done = [r for r in rows if r["status"] == "done" and r.get("metrics")]
        recs = [_with_mode(flatten(r)) for r in done]
        names = class_names(done[0]["metrics"]) if done else []
        failed, stale = (sum(r["status"] == k for r in rows) for k in ("failed", STALE))
        return ReportData(str(path), recs, config, unfinished=len(rows) - len(done) - failed - stale, class_names=names, failed=failed,
                          stale=stale)
    return _from_run_folders(path)


def load_many(paths: list[str | Path]) -> ReportData:
    """The records of several sources (e.g. one sweep per model family) in one report; each source's
    config is kept under its folder name."""
    unique = list(dict.fromkeys(Path(p).resolve() for p in paths))  # the same source given twice is read once
    if len(unique) == 1:
        return load(paths[0])
    parts = [load(p) for p in unique]
    names = [Path(str(p.source)).name for p in parts]
    if len(set(names)) != len(names):
        names = [str(p.source) for p in parts]
    seen: set[str] = set()
    records = [r for p in parts for r in p.records if not (r["run_id"] in seen or seen.add(r["run_id"]))]  # the same run twice: once
    return ReportData(", ".join(str(p.source) for p in parts), records,
                      {name: p.config for name, p in zip(names, parts)}, unfinished=sum(p.unfinished for p in parts),
                      class_names=parts[0].class_names if all(p.class_names == parts[0].class_names for p in parts) else [],
                      failed=sum(p.failed for p in parts), stale=sum(p.stale for p in parts))


def setups(recs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The distinct (model, dataset) pairs of `recs`, sorted: figures and trends are drawn per setup."""
    return sorted({(str(r.get("model")), str(r.get("dataset"))) for r in recs})


def setup_label(setup: tuple[str, str]) -> str:
    """'minilm-l6 on bbc-news' (a local dataset path shortened to its file name)."""
    model, dataset = setup
    return f"{model} on {Path(dataset).name if ('/' in dataset or os.sep in dataset) else dataset}"


def _from_run_folders(path: Path) -> ReportData:
    """Records of run folders (config.yaml + metrics.json) at or below `path`, e.g. `ssti demo`'s output."""
    rows = run_folder_rows(path)
    return ReportData(str(path), [_with_mode(flatten(r)) for r in rows], {"runs": {r["run_id"]: r["config"] for r in rows}},
                      class_names=class_names(rows[0]["metrics"]))


def class_names(metrics: dict[str, Any]) -> list[str]:
    """The class names in index order, as evaluation recorded them in metrics.json."""
    return list(metrics.get("class_names") or [])


def _with_mode(rec: dict[str, Any]) -> dict[str, Any]:
    rec["mode"] = mode_of(rec)
    return rec


def group_by(recs: list[dict[str, Any]], keys: list[str]) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """The records grouped by the values of `keys`: (values, records) pairs, sorted by `sort_key` of the values."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return sorted(groups.items(), key=lambda kv: tuple(sort_key(v) for v in kv[0]))


def aggregate(recs: list[dict[str, Any]], keys: list[str], value: str) -> list[dict[str, Any]]:
    """Mean, standard deviation (over seeds / repeats) and count of `value` per group of `keys`."""
    groups: dict[tuple, list[float]] = {}
    for r in recs:
        v = r.get(value)
        if v is None:
            continue
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(float(v))
    out = []
    for key, values in groups.items():
        a = np.asarray(values)
        out.append({**dict(zip(keys, key)), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)})
    return sorted(out, key=lambda g: tuple(sort_key(g[k]) for k in keys))


def rank_label(rank: Any) -> str:
    """A LoRA rank as the report shows it: rank 0 is full fine-tuning ("full"), not a LoRA rank."""
    return "full" if rank == 0 else str(rank)


def sort_key(v: Any) -> tuple:
    """Sort numbers numerically, then strings (SSTI modes: none, light, aggressive, others), then None."""
    if v is None:
        return (2, 0, "")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, "")
    first = {"no SSTI": 0, "light": 1}
    return (1, first.get(v, 2 if str(v).startswith("aggressive") else 3), str(v))
