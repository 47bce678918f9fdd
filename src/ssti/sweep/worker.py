"""What one sweep task does, in whatever process runs it (the driver, a pool worker or a Ray worker).

It takes plain data and returns plain data, so it crosses process and machine boundaries; it never
raises for a failed run, the failure comes back as `error` and the sweep goes on.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any


def execute(config: dict[str, Any], run_dir: str, scan: bool = False, threads: int | None = None,
            show_progress: bool = False) -> dict[str, Any]:
    """Run one pipeline (inject -> train -> evaluate) into `run_dir`; optionally scan its training set.

    Returns {"metrics", "scan", "error", "started", "finished"}. A run folder left by a killed
    attempt is resumed from its checkpoint by `run_pipeline`.
    """
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
            if scan and run_config.injection:
                result["scan"] = scan_training_set(Path(run_dir) / INJECTED_DATA, run_config.model.name)
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
