"""Datasets in one shape: `load_dataset` returns a DatasetDict with splits train/test (+ validation)
and columns `id` (stable string), `text` and `label` (ClassLabel), from a registry name (embedded or
hub), an ssti dataset folder, or a local csv/jsonl/parquet file."""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DATASETS": "registry", "DEFAULT_DATASET": "registry", "DatasetEntry": "registry", "load_dataset": "registry", "register": "registry",
    "check_contract": "common", "class_names_of": "common", "column": "common", "make_split": "common", "stratified_sample": "common",
    "window_words": "common",
})
