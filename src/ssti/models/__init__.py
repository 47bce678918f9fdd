"""Backbones (registry and loading), classification heads and LoRA wrapping."""

from ssti.models.loading import load_backbone, load_tokenizer, tiny_tokenizer
from ssti.models.registry import DEFAULT_MODEL, MODELS, ModelEntry, cache_dir, resolve_model

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelEntry", "cache_dir", "load_backbone", "load_tokenizer", "resolve_model", "tiny_tokenizer"]
