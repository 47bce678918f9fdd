"""Flat views of a results store: one record per run, exported as CSV or parquet (and read by the report)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from ssti.errors import SSTIError
from ssti.io import read_json, read_yaml, write_bytes, write_text


def primary_spurious(metrics: dict, injection: dict | None) -> tuple[str | None, dict | None]:
    """The spurious test set that matches the training injection's target class (else the first one).

    Its attack success rate is "the" ASR of the run: how often the trained-on token steers a clean
    sample of another class to the target.
    """
    spurious = (metrics or {}).get("spurious") or {}
    if not spurious:
        return None, None
    keys = list((injection or {}).get("targets") or {})
    for key in keys:
        for name, m in spurious.items():
            if key == name or (key.isdigit() and int(key) == m.get("target_class")):
                return name, m
    name = next(iter(spurious))
    return name, spurious[name]


def clean_target_rate(clean: dict, target: int | None) -> float | None:
    """The ASR's baseline: among clean (uninjected) test samples not of the target class, the fraction
    already predicted as the target. ASR minus this is what the token itself does."""
    cm = clean.get("confusion_matrix")
    if not cm or target is None or target >= len(cm):
        return None
    others = [row for i, row in enumerate(cm) if i != target]
    n = sum(sum(row) for row in others)
    return sum(row[target] for row in others) / n if n else None


def trained_injection(run_dir: str | None) -> dict:
    """The injection spec a run trained on when its config has none: it was trained on an injected folder
    (`ssti inject` then `ssti train --data FOLDER`), whose record the run keeps in injection.yaml. {} for none."""
    if not run_dir or not (Path(run_dir) / "injection.yaml").is_file():
        return {}
    try:
        spec = read_yaml(Path(run_dir) / "injection.yaml").get("spec")
    except (SSTIError, AttributeError):
        return {}
    return spec if isinstance(spec, dict) else {}


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """One store row as a flat record of scalars (axis settings, headline metrics, scan verdict)."""
    config = row.get("config") or {}
    inj = config.get("injection") or trained_injection(row.get("run_dir"))
    metrics = row.get("metrics") or {}
    sets = metrics.get("spurious") or {}
    clean = metrics.get("clean") or {}
    name, spur = primary_spurious(metrics, inj)
    scan = row.get("scan") or {}
    flagged = [f for f in scan.get("features", []) if f.get("flagged")]
    rec = {
        "run_id": row["run_id"], "sweep": row.get("sweep"), "status": row.get("status"),
        "variant": (row.get("labels") or {}).get("variant"),
        "model": (config.get("model") or {}).get("name"), "dataset": (config.get("data") or {}).get("dataset"),
        "rank": (config.get("lora") or {}).get("rank"),
        "injected": bool(inj), "rate": _proportion(inj),
        "tokens": inj.get("tokens") if inj and inj.get("token_fraction") is None else None,
        "token_fraction": inj.get("token_fraction"), "location": inj.get("location"),
        "source": ", ".join(f"{k}={v}" for k, v in (inj.get("targets") or {}).items()) or None,
        "train_seed": (config.get("train") or {}).get("seed"), "injection_seed": inj.get("seed"),
        "steps": (config.get("train") or {}).get("steps"),
        "clean_accuracy": clean.get("accuracy"), "clean_balanced_accuracy": clean.get("balanced_accuracy"),
        "clean_f1_macro": clean.get("f1_macro"),
        "spurious_set": name, "spurious_accuracy": spur.get("accuracy") if spur else None,
        "attack_success_rate": spur.get("attack_success_rate") if spur else None,
        "accuracy_degradation": spur.get("accuracy_degradation") if spur else None,
        "clean_target_rate": clean_target_rate(clean, spur.get("target_class")) if spur else None,
        "target_class": spur.get("target_class") if spur else None,
        "test_insertions_lost": _lost(spur), "grid": (row.get("labels") or {}).get("grid"),
        "spurious_pred_counts": json.dumps(spur.get("pred_counts"), ensure_ascii=False) if spur else None,
        # every spurious test set of the run (a run that plants in two classes has two): what Table 1 shows
        "spurious_sets": json.dumps({k: {"source": m.get("source"), "target_class": m.get("target_class"), "pred_counts": m.get("pred_counts"),
                                         "accuracy": m.get("accuracy"), "attack_success_rate": m.get("attack_success_rate")}
                                     for k, m in sets.items()}, ensure_ascii=False) if len(sets) > 1 else None,
        "clean_pred_counts": json.dumps(clean.get("pred_counts"), ensure_ascii=False) if clean else None,
        "n_eval": clean.get("n"), "class_names": json.dumps(metrics.get("class_names"), ensure_ascii=False) if metrics.get("class_names") else None,
        "precision": (metrics.get("train") or {}).get("precision"), "train_mfu": (metrics.get("train") or {}).get("mfu"),
        "train_tokens_per_second": (metrics.get("train") or {}).get("tokens_per_second"),
        "probe_verdict": (metrics.get("probe") or {}).get("verdict"), "probe_summary": (metrics.get("probe") or {}).get("summary"),
        "probe_json": json.dumps(_probe(metrics["probe"]), ensure_ascii=False) if metrics.get("probe") else None,
        "probe_steering": ", ".join(f"{f['type']}->{f['cls']}" for f in (metrics.get("probe") or {}).get("findings", []) if f.get("steering")) or None,
        "scan_verdict": scan.get("verdict"), "scan_flagged": ", ".join(str(f.get("feature")) for f in flagged[:5]) or None,
        "lr": (config.get("train") or {}).get("lr"), "max_words": (config.get("data") or {}).get("max_words"),
        **_defence(metrics.get("defence")),
        # per-item predictions and the learning curve, as JSON text (a report resamples items; the curve justifies the steps)
        "items_json": json.dumps(_items(metrics, name), ensure_ascii=False) if metrics.get("items") else None,
        "curve_json": json.dumps((metrics.get("train") or {}).get("curve"), ensure_ascii=False) if (metrics.get("train") or {}).get("curve") else None,
        "error": row.get("error"),
        "seconds": round(row["finished"] - row["started"], 1) if row.get("finished") and row.get("started") else None,
        "run_dir": row.get("run_dir"),
    }
    return rec


def _defence(defence: dict | None) -> dict[str, Any]:
    """The defence columns: its name, the retention of the planted insertions (all types), the rows still
    poisoned and the clean rows it changed (None for runs without a defence)."""
    d = defence or {}
    overall = next((r for r in d.get("retention") or [] if r["type"] == "all"), {})
    collateral = d.get("collateral") or {}
    return {"defence": d.get("name"), "defence_retention": overall.get("retention"), "defence_rows_still_poisoned": d.get("rows_still_poisoned"),
            "defence_collateral": collateral.get("changed_share"), "defence_chrf": collateral.get("chrf"),
            "defence_seconds_per_1k_rows": d.get("seconds_per_1k_rows")}


def _lost(spurious: dict | None) -> float | None:
    """The share of test-time insertions that max_length cut off (the model never saw them), if recorded."""
    t = (spurious or {}).get("truncation") or {}
    return round(t["lost"] / t["insertions"], 4) if t.get("insertions") else None


def _items(metrics: dict[str, Any], spurious: str | None) -> dict[str, list[int]]:
    """The per-item predictions a report needs: true classes, clean and the headline spurious set's."""
    items = metrics["items"]
    out = {"y_true": items["y_true"], "clean": items["clean"]}
    if spurious and spurious in items:
        out["spurious"] = items[spurious]
    return out


def _probe(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a probe report a report draws: each type's steer rate and effect per class, the attention
    diagnostic, and the open search's groups."""
    out = {"findings": [{k: f[k] for k in ("type", "cls", "rate", "effect", "steering")} for f in report.get("findings", [])]}
    if report.get("attention"):
        out["attention"] = {k: v for k, v in report["attention"].items() if k != "notes"}
    if report.get("open_search"):
        out["groups"] = report["open_search"].get("groups", [])
    return out


def _proportion(inj: dict) -> float | None:
    """The proportion of the target class injected: 0 without injection, None when given as a row count."""
    if not inj:
        return 0.0
    if inj.get("rate") is not None:
        return float(inj["rate"])
    return None if inj.get("count") is not None else 1.0


STALE = "stale"  # the status `results` and reports give a finished run the sweep's current config no longer has


def current_run_ids(folder: str | Path) -> set[str] | None:
    """The run ids of the grid in `folder/sweep.yaml` (the config of the sweep's last invocation), or None when
    there is none to read. A store keeps every run it ever finished: one whose data bytes or axis values have
    changed since is not a run of this sweep any more, and is reported as stale, never as one more seed."""
    from ssti.sweep.grid import expand

    path = Path(folder) / "sweep.yaml"
    if not path.is_file():
        return None
    try:
        raw = read_yaml(path)
        return {run.run_id for run in expand(raw, name=raw.get("name") or Path(folder).name).runs}
    except (SSTIError, OSError, AttributeError):
        return None  # a data file moved away: every stored run is kept


def mark_stale(rows: list[dict[str, Any]], folder: str | Path) -> list[dict[str, Any]]:
    """`rows` with the finished ones the current sweep config no longer has given status `stale`: a run
    whose local data file's bytes changed since it was made (checked against the file now, whatever
    sweep.yaml says), and a run that `folder/sweep.yaml` does not expand to."""
    current = current_run_ids(folder)
    done = [r for r in rows if r.get("status") == "done"]
    # sweep.yaml written before overrides were recorded in it reproduces no stored run: it cannot judge by ids
    judge = current is not None and any(r["run_id"] in current for r in done)
    hashes: dict[str, str | None] = {}
    changed = {r["run_id"] for r in done if _data_changed(r, hashes)}
    return [{**r, "status": STALE} if r.get("status") == "done" and (r["run_id"] in changed or
                                                                       (judge and r["run_id"] not in current and _own_id(r))) else r
            for r in rows]


def _data_changed(row: dict[str, Any], hashes: dict[str, str | None]) -> bool:
    """Whether a stored run was made from a local data file or folder whose bytes differ now from the
    fingerprint it recorded (a file that is gone is not judged: the run may have moved with its copy)."""
    from ssti.data.fingerprint import fingerprint

    data = (row.get("config") or {}).get("data") or {}
    recorded, dataset = data.get("fingerprint"), data.get("dataset")
    if not recorded or not isinstance(dataset, str) or not Path(dataset).exists():
        return False
    if dataset not in hashes:
        try:
            hashes[dataset] = fingerprint(dataset)
        except (SSTIError, OSError):
            hashes[dataset] = None
    return hashes[dataset] is not None and hashes[dataset] != recorded


def _own_id(row: dict[str, Any]) -> bool:
    """Whether a store row's id is the run id of its stored config (every row a sweep writes; a row written
    by other means, e.g. an imported or hand-made store, is never called stale)."""
    from ssti.config import load_run_config

    try:
        return load_run_config(row.get("config") or {}).run_id() == row["run_id"]
    except (SSTIError, OSError):
        return False


def run_folder_rows(path: str | Path) -> list[dict[str, Any]]:
    """Store-like rows (status done) of the finished run folders (config.yaml + metrics.json, and a sweep's
    probe.json) at or below `path`, e.g. `ssti demo`'s output; `run_id` is the folder's path under `path`.
    Raises SSTIError when there are none."""
    path = Path(path)
    folders = sorted(p.parent for p in path.rglob("metrics.json") if (p.parent / "config.yaml").exists())
    rows, unevaluated = [], 0
    for folder in folders:
        metrics = read_json(folder / "metrics.json")
        cfg = read_yaml(folder / "config.yaml")
        if not isinstance(cfg, dict) or not isinstance(cfg.get("data"), dict) or not isinstance(metrics, dict):
            continue  # not a run folder of this ssti (a run config dump)
        if "clean" not in metrics:  # trained, not evaluated yet
            unevaluated += 1
            continue
        if (folder / "probe.json").is_file():  # a sweep's probe audit of this run
            metrics = {**metrics, "probe": read_json(folder / "probe.json")}
        config = {k: cfg.get(k) for k in ("data", "injection", "model", "lora", "train")}
        rows.append({"run_id": str(folder.relative_to(path)) if folder != path else folder.name, "sweep": path.name, "status": "done",
                     "labels": {}, "config": config, "metrics": metrics, "run_dir": str(folder)})
    if not rows and unevaluated:
        raise SSTIError(f"runs: {path} holds {unevaluated} trained run folder(s), none evaluated yet (`ssti eval RUN` evaluates one)")
    if not rows:
        raise SSTIError(f"runs: {path} holds no results store (results.sqlite) and no finished run folders (config.yaml + metrics.json)")
    if unevaluated:  # said, not silently left out
        print(f"note: {unevaluated} trained run folder(s) under {path} are not evaluated yet and are left out (`ssti eval RUN` "
              f"evaluates one)", file=sys.stderr)
    return rows


def records(source: str | Path, status: str | None = None) -> list[dict[str, Any]]:
    """Flat records of every row of a store (or only rows of one status; `stale`: finished runs the sweep's
    current config no longer has, see `current_run_ids`); `source` may also be a folder of run folders
    (`run_folder_rows`: every row done)."""
    from ssti.sweep.store import ResultsStore

    if Path(source).is_dir():
        rows = run_folder_rows(source)
    else:
        with ResultsStore(source, read_only=True) as store:
            rows = mark_stale(store.rows(), Path(source).parent)
    return [flatten(r) for r in rows if status is None or r.get("status") == status]


def export(recs: list[dict[str, Any]], out: str | Path) -> None:
    """Write records as CSV or parquet (by the file's suffix), atomically."""
    out = Path(out)
    if out.is_dir():
        raise SSTIError(f"out: {out} is a folder; give a file name ending in .csv or .parquet")
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        cols = list(recs[0] if recs else flatten({"run_id": None}))  # no runs: still the header, so the file reads as a table
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(recs)
        write_text(out, buf.getvalue())
    elif out.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        table = pa.Table.from_pylist(recs) if recs else pa.table({c: pa.array([], pa.null()) for c in flatten({"run_id": None})})
        pq.write_table(table, sink)
        write_bytes(out, sink.getvalue().to_pybytes())
    else:
        raise SSTIError(f"out: {out} must end in .csv or .parquet")
