"""Sweeps: grids of runs (`grid`), a SQLite results store (`store`), executors (local, Ray), export.

    from ssti.sweep import load_sweep, run_sweep
    counts = run_sweep(load_sweep("configs/findings-cpu.yaml"), "runs/findings")
"""

from ssti.sweep.grid import Sweep, SweepRun, expand, load_sweep, run_id
from ssti.sweep.results import export, flatten, records
from ssti.sweep.run import STORE_NAME, run_sweep, store_path
from ssti.sweep.store import ResultsStore

__all__ = ["STORE_NAME", "ResultsStore", "Sweep", "SweepRun", "expand", "export", "flatten", "load_sweep", "records",
           "run_id", "run_sweep", "store_path"]
