"""Model-free detection of planted spurious tokens: features, statistics, the scanner and cleaning.

    from ssti.scan import scan_dataset
    report = scan_dataset(load_dataset("runs/rt-date"))
    print(report.verdict, report.features[0].feature)
"""

from ssti.scan.remove import clean_dataset, write_cleaned
from ssti.scan.scanner import DEFAULT_THRESHOLD, FeatureReport, ScanReport, scan_dataset

__all__ = ["DEFAULT_THRESHOLD", "FeatureReport", "ScanReport", "clean_dataset", "scan_dataset", "write_cleaned"]
