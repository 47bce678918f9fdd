"""Model-free detection of planted spurious tokens: features, statistics, the scanner and cleaning.

    from ssti.scan import scan_dataset
    report = scan_dataset(load_dataset("runs/rt-date"))
    print(report.verdict, report.features[0].feature)
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "clean_dataset": "remove", "write_cleaned": "remove",
    "DEFAULT_THRESHOLD": "scanner", "FeatureReport": "scanner", "ScanReport": "scanner", "scan_dataset": "scanner",
})
