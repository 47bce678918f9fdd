"""What one sweep task does, in whatever process runs it (the driver, a pool worker or a Ray worker).

It takes plain data and returns plain data, so it crosses process and machine boundaries; it never
raises for a failed run, the failure comes back as `error` and the sweep goes on.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any


def execute(config: dict[str, Any], run_dir: str, audits: dict | None = None, threads: int | None = None,
            show_progress: bool = False) -> dict[str, Any]:
    """Run one pipeline (inject -> train -> evaluate) into `run_dir`, then the audits asked for:
    `audits["scan"]` scans its injected training set; `audits["probe"]` (options of `ssti.probe.probe`)
    probes the trained model, its report kept in the metrics under "probe" (and in the run's probe.json).

    Returns {"metrics", "scan", "error", "started", "finished"}. A run folder left by a killed
    attempt is resumed from its checkpoint by `run_pipeline`.
    """
    audits = audits or {}
    started = time.time()
    result: dict[str, Any] = {"metrics": None, "scan": None, "error": None, "started": started}
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        from ssti.config import INJECTED_DATA, load_run_config
        from ssti.io import read_json
        from ssti.errors import SSTIError
        from ssti.pipeline import run_pipeline

        run_config = load_run_config(config)
        try:
            metrics = run_pipeline(run_config, run_dir, overwrite=True, show_progress=show_progress)
            path = Path(run_dir) / "metrics.json"  # the whole file: evaluation plus the training summary
            result["metrics"] = read_json(path, metrics)
            if audits.get("scan") and run_config.injection:
                result["scan"] = scan_training_set(Path(run_dir) / INJECTED_DATA, run_config.model.name)
            if audits.get("probe") is not None:
                result["metrics"]["probe"] = probe_run(Path(run_dir), audits["probe"])
            from ssti.provenance import peak_rss_gb

            result["metrics"]["peak_rss_gb"] = peak_rss_gb()  # what `ssti sweep --dry-run` sizes --workers by
        except SSTIError as e:
            result["error"] = str(e)
    except Exception as e:  # a crash of one run is recorded, not fatal to the sweep
        result["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
    result["finished"] = time.time()
    return result


def scan_training_set(folder: Path, tokenizer: str) -> dict[str, Any]:
    """The scanner's report (verdict, top features) on the injected training split a run trained on."""
    from ssti.data import load_dataset
    from ssti.scan import scan_dataset

    report = scan_dataset(load_dataset(str(folder)), split="train", tokenizer=tokenizer, top=5, source=str(folder)).to_dict()
    report.pop("flagged_rows", None)  # ids of every flagged row: large, and in the run folder's manifest anyway
    return report


def probe_run(run_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """`ssti probe` on a finished run (its own test split); the report is written to the run's probe.json
    (listed in the run's marker) and returned with one example per finding."""
    import json

    from ssti.io import write_marker, write_text
    from ssti.probe import probe

    report = probe(run_dir, **options).to_dict()
    write_marker(run_dir, "run", ["probe.json"])
    write_text(run_dir / "probe.json", json.dumps(report, indent=2) + "\n")
    for finding in report["findings"]:
        finding["examples"] = finding["examples"][:1]
    return report
