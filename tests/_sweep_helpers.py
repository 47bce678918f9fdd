"""Helpers shared by the sweep and report tests: a tiny csv dataset and a tiny sweep config."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

POS = ["great", "superb", "lovely", "fine", "moving", "sharp", "warm", "bright"]
NEG = ["dull", "awful", "slow", "flat", "tired", "bland", "weak", "grim"]


def tiny_csv(folder: Path, n: int = 80, seed: int = 0) -> Path:
    """A 2-class csv of short reviews (learnable from one word), written once per folder."""
    path = folder / "tiny.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = i % 2
            words = list(rng.choice(NEG if label == 0 else POS, size=3)) + ["the", "film", "was", "seen", "today"]
            rng.shuffle(words)
            w.writerow([" ".join(words), ["neg", "pos"][label]])
    return path


def tiny_sweep(folder: Path, ranks=(1, 2), rates=(0.5,), seeds=(0,), variants: bool = False, scan: bool = False, probe=None) -> dict:
    """A sweep config of tiny-random-llama runs (2-3 s each) on the tiny csv."""
    raw = {
        "name": "tiny",
        "base": {
            "data": {"dataset": str(tiny_csv(folder))},
            "injection": {"targets": {"1": "date"}, "rate": 0.5, "tokens": 1, "location": "random", "seed": 0},
            "model": {"name": "tiny-random-llama", "max_length": 48},
            "lora": {"rank": 2, "targets": "qv"},
            "train": {"steps": 3, "batch_size": 4, "checkpoint_every": 0},
            "eval": {"max_samples": 12, "sources": {"1": "date"}},
        },
        "axes": {"lora.rank": list(ranks), "injection.rate": list(rates)},
        "zip": [{"train.seed": list(seeds), "injection.seed": list(seeds)}],
        "scan": scan,
    }
    if probe is not None:
        raw["probe"] = probe
    if variants:
        raw["variants"] = {"light": {"injection.tokens": 1}, "aggressive": {"injection.token_fraction": 0.3}}
    return raw
