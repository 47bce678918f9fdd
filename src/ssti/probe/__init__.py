"""Audit a trained classifier you were given: which inserted token types steer it, how hard, toward what.

    from ssti.probe import probe
    report = probe("runs/demo/date-class1-100")          # an ssti run folder (or adapter / HF model + data=)
    print(report.sweep.summary())
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ProbeReport": "run", "probe": "run", "held_out_data": "run",
    "ProbeTarget": "target", "load_target": "target",
    "BUILT_IN_TYPES": "types", "TypeFinding": "types", "TypeSweep": "types", "type_sweep": "types",
})
