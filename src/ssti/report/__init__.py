"""`ssti report`: the paper's Table 1 and figures as a static HTML page, from a sweep or a folder of runs.

    from ssti.report import build_report
    build_report("runs/findings", "runs/findings/report")   # -> runs/findings/report/index.html
"""

from ssti.report.build import build_report
from ssti.report.data import load

__all__ = ["build_report", "load"]
