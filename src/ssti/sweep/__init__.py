"""Sweeps: grids of runs (`grid`), a SQLite results store (`store`), executors (local, Ray), export.

    from ssti.sweep import load_sweep, run_sweep
    counts = run_sweep(load_sweep("configs/findings-cpu.yaml"), "runs/findings")
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Sweep": "grid", "SweepRun": "grid", "expand": "grid", "load_sweep": "grid", "run_id": "grid",
    "export": "results", "flatten": "results", "records": "results",
    "STORE_NAME": "run", "run_sweep": "run", "store_path": "run", "sweep_running": "run",
    "ResultsStore": "store",
})
