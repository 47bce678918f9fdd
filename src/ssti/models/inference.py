"""Predicted classes for lists of texts: the one inference loop of ssti (evaluation, the training
curve and the benchmarks use it).

Predictions stream in length-sorted chunks under `inference_mode` and keep only the predicted class
per row, so a test set larger than memory for logits still evaluates. `predict_sets` sends several
sets through one pass: identical texts are predicted once, and sorting over every set at once wastes
less on padding.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ssti.models.batching import pad_batch
from ssti.models.build import Classifier
from ssti.models.precision import compute_dtype

CHUNK_ROWS = 4096


def predict(clf: Classifier, texts: Sequence[str], batch_size: int = 32, device: torch.device | None = None,
            precision: str = "auto", stats: dict | None = None) -> np.ndarray:
    """Predicted class per text, shape (len(texts),), streaming in chunks of CHUNK_ROWS texts (`predict_ids`
    on each). `stats`, when given, gets "real_tokens" (tokens predicted, padding excluded) added."""
    preds = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), CHUNK_ROWS):
        token_ids = clf.encode(list(texts[start:start + CHUNK_ROWS]))
        if stats is not None:
            stats["real_tokens"] = stats.get("real_tokens", 0) + sum(map(len, token_ids))
        preds[start:start + len(token_ids)] = predict_ids(clf, token_ids, batch_size, device, precision)
    return preds


def predict_ids(clf: Classifier, token_ids: Sequence[Sequence[int]], batch_size: int = 32, device: torch.device | None = None,
                precision: str = "auto") -> np.ndarray:
    """Predicted class per list of token ids (already encoded), shape (len(token_ids),): batches sorted by
    length for little padding, under `inference_mode` and the classifier's autocast."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = compute_dtype(precision, device, "infer")
    module = clf.module.to(device).eval()
    pad_id = clf.tokenizer.pad_token_id
    preds = np.empty(len(token_ids), dtype=np.int64)
    order = np.argsort([len(t) for t in token_ids], kind="stable")
    with torch.inference_mode(), clf.autocast(device, dtype):
        for b in range(0, len(order), batch_size):
            rows = order[b:b + batch_size]
            ids, mask = pad_batch(token_ids, rows, pad_id, device)
            preds[rows] = module(ids, mask).argmax(-1).cpu().numpy()
    return preds


def predict_sets(clf: Classifier, sets: dict[str, Sequence[str]], **kwargs) -> dict[str, np.ndarray]:
    """Predictions for several text sets in one pass, each distinct text predicted once."""
    unique: dict[str, int] = {}
    index = {name: np.fromiter((unique.setdefault(t, len(unique)) for t in texts), dtype=np.int64, count=len(texts))
             for name, texts in sets.items()}
    preds = predict(clf, list(unique), **kwargs)
    return {name: preds[idx] for name, idx in index.items()}
