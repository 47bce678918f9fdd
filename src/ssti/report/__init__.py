"""`ssti report`: the paper's Table 1 and figures as a static HTML page, from a sweep or a folder of runs.

    from ssti.report import build_report
    build_report("runs/findings", "runs/findings/report")   # -> runs/findings/report/index.html
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {"build_report": "build", "load": "data"})
