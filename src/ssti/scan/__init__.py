"""Model-free detection of planted spurious tokens: features, statistics and the scanner (cleaning by
its report is the scan-strip / scan-drop defence, `ssti.defend`).

    from ssti.scan import scan_dataset
    report = scan_dataset(load_dataset("runs/rt-date"))
    print(report.verdict, report.features[0].feature)
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DEFAULT_THRESHOLD": "scanner", "FeatureReport": "scanner", "ScanReport": "scanner", "scan_dataset": "scanner",
})
