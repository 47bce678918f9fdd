"""Backbones (registry and loading), classification heads and LoRA wrapping."""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "pad_batch": "batching", "auto_dtype": "precision", "best_peak": "precision", "compute_dtype": "precision", "load_backbone": "loading", "load_tokenizer": "loading", "tiny_tokenizer": "loading",
    "predict": "inference", "predict_ids": "inference", "predict_sets": "inference",
    "DEFAULT_MODEL": "registry", "MODELS": "registry", "ModelEntry": "registry", "resolve_model": "registry",
})
