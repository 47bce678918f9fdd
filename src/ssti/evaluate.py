"""Measure steering: the clean test split and, per spurious token type, the same split with the token
in 100% of samples of all classes (the paper's Table 1 protocol).

Predictions stream in length-sorted chunks under `inference_mode` and keep only the predicted class
per row, so a test set larger than memory for logits still evaluates. All sets go through one pass:
identical texts are predicted once, and sorting over every set at once wastes less on padding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ssti.data import class_names_of, column, load_dataset
from ssti.errors import SSTIError
from ssti.io import read_yaml, write_json
from ssti.models.build import Classifier, compute_dtype, load_run
from ssti.train import pad_batch

CHUNK_ROWS = 4096


# ---------------------------------------------------------------- metrics (pure numpy, hand-checkable)

def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro/weighted F1, per-class P/R/F1, confusion matrix, predicted counts.

    Classes absent from the truth are left out of balanced accuracy; an undefined precision or recall
    (no predictions / no samples of a class) counts as 0, as scikit-learn does.
    """
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    n = int(cm.sum())
    if n == 0:
        raise SSTIError("eval: the test split is empty")
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0
    return {
        "n": n,
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(recall[present].mean()),
        "f1_macro": float(f1.mean()),
        "f1_weighted": float((f1 * support).sum() / support.sum()),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(class_names)},
        "confusion_matrix": cm.tolist(),
        "pred_counts": cm.sum(axis=0).astype(int).tolist(),
    }


def attack_success_rate(y_true: Sequence[int], y_pred_injected: Sequence[int], target: int) -> float:
    """Among samples whose true class is not `target`, the fraction predicted `target` after injection."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred_injected)
    others = y_true != target
    return float((y_pred[others] == target).mean()) if others.any() else float("nan")


def seamless_injection_rate(pred_with_token: dict[int, np.ndarray]) -> float:
    """The fraction of samples that every class's token steers to its own class (PAPER.md section 3):
    with tokens for classes 0 and 1, the class-0 token yields 0 *and* the class-1 token yields 1."""
    hits = [np.asarray(pred) == k for k, pred in pred_with_token.items()]
    return float(np.logical_and.reduce(hits).mean())


# ---------------------------------------------------------------- prediction

def predict(clf: Classifier, texts: Sequence[str], batch_size: int = 32, device: torch.device | None = None,
            precision: str = "auto") -> np.ndarray:
    """Predicted class per text, streaming in chunks; each chunk sorted by length for little padding."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = compute_dtype(precision, device)
    module = clf.module.to(device).eval()
    pad_id = clf.tokenizer.pad_token_id
    preds = np.empty(len(texts), dtype=np.int64)
    with torch.inference_mode(), clf.autocast(device, dtype):
        for start in range(0, len(texts), CHUNK_ROWS):
            token_ids = clf.encode(list(texts[start:start + CHUNK_ROWS]))
            order = np.argsort([len(t) for t in token_ids], kind="stable")
            for b in range(0, len(order), batch_size):
                rows = order[b:b + batch_size]
                ids, mask = pad_batch(token_ids, rows, pad_id, device)
                preds[start + rows] = module(ids, mask).argmax(-1).cpu().numpy()
    return preds


def predict_sets(clf: Classifier, sets: dict[str, Sequence[str]], **kwargs) -> dict[str, np.ndarray]:
    """Predictions for several text sets in one pass, each distinct text predicted once."""
    unique: dict[str, int] = {}
    index = {name: np.fromiter((unique.setdefault(t, len(unique)) for t in texts), dtype=np.int64, count=len(texts))
             for name, texts in sets.items()}
    preds = predict(clf, list(unique), **kwargs)
    return {name: preds[idx] for name, idx in index.items()}


# ---------------------------------------------------------------- a run

def stratified_sample(labels: Sequence[int], n: int, seed: int) -> list[int]:
    """Row indices of a seeded subsample of about `n` rows with the class proportions of `labels`, in order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, n])
    picked = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        take = max(1, int(round(n * len(members) / len(labels))))
        picked.extend(rng.choice(members, size=min(take, len(members)), replace=False).tolist())
    return sorted(picked)


def spurious_sources(run_dir: Path, class_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The token types a run was trained with, per class name, with their location and token count."""
    if not (run_dir / "injection.yaml").exists():
        return {}
    from ssti.inject import read_spec
    from ssti.inject.engine import resolve_targets

    spec = read_spec(run_dir)
    out = {}
    for k, key in resolve_targets(spec.targets, class_names):
        out[class_names[k]] = {"source": spec.targets[key], "location": spec.location, "tokens": spec.tokens}
    return out


def evaluate_run(run_dir: str | Path, sources: dict[str, str] | None = None, location: str | None = None,
                 split: str = "test", batch_size: int = 32, seed: int = 0, data: str | None = None,
                 max_samples: int | None = None, write: bool = True, eval_config: dict | None = None) -> dict[str, Any]:
    """Evaluate a trained run on the clean split and one spurious set per class token type.

    `sources` maps a class (name or index) to a token source and overrides the types the run was
    trained with; `max_samples` evaluates a stratified seeded subsample. Metrics are merged into the
    run's metrics.json under "clean" and "spurious".
    """
    from ssti.inject import make_spurious_test_set

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists() or not (run_dir / "adapter" / "model.json").exists():
        raise SSTIError(f"run: {run_dir} is not a finished ssti run (needs config.yaml and adapter/model.json)")
    config = read_yaml(run_dir / "config.yaml")
    ds_spec = config.get("dataset") or {}
    dataset = load_dataset(data or config["data"], text_column=ds_spec.get("text_column", "text"), label_column=ds_spec.get("label_column", "label"))
    if split not in dataset:
        raise SSTIError(f"split: {split!r} is not in the dataset (splits: {', '.join(dataset)})")
    test = dataset[split]
    if len(test) == 0:
        raise SSTIError(f"split: the {split!r} split is empty")
    if max_samples and max_samples < len(test):
        test = test.select(stratified_sample(column(test, "label"), max_samples, seed))
    class_names = class_names_of(dataset)
    precision = config.get("train", {}).get("precision", "auto")
    clf = load_run(run_dir, precision)
    if class_names != clf.class_names:
        raise SSTIError(f"data: classes {class_names} do not match the model's head {clf.class_names}")
    clf.merge_adapters()  # evaluation only reads the model: one matmul per adapted layer

    plan = spurious_sources(run_dir, class_names)
    if sources:
        plan = {}
        for key, source in sources.items():
            name = _class_name(key, class_names)
            plan[name] = {"source": source, "location": location or "random", "tokens": 1}
    elif location:
        plan = {name: {**p, "location": location} for name, p in plan.items()}

    y_true = np.asarray(column(test, "label"))
    text_sets = {"clean": column(test, "text")}
    for name, p in plan.items():
        injected, _ = make_spurious_test_set(test, p["source"], location=p["location"], tokens=p["tokens"], seed=seed)
        text_sets[name] = column(injected, "text")
    preds = predict_sets(clf, text_sets, batch_size=batch_size, precision=precision)

    metrics: dict[str, Any] = {"eval_config": eval_config, "split": split, "class_names": list(class_names), "clean": classification_metrics(y_true, preds["clean"], class_names), "spurious": {}}
    clean_acc = metrics["clean"]["accuracy"]
    for name, p in plan.items():
        k = class_names.index(name)
        m = classification_metrics(y_true, preds[name], class_names)
        m.update({"source": p["source"], "location": p["location"], "target_class": k,
                  "attack_success_rate": attack_success_rate(y_true, preds[name], k),
                  "accuracy_degradation": clean_acc - m["accuracy"]})
        metrics["spurious"][name] = m
    if len(plan) >= 2 and len({p["source"] for p in plan.values()}) == len(plan):
        metrics["seamless_injection_rate"] = seamless_injection_rate({class_names.index(n): preds[n] for n in plan})
    if write:
        path = run_dir / "metrics.json"
        merged = json.loads(path.read_text()) if path.exists() else {}
        merged.update(metrics)
        write_json(path, merged)
        return merged
    return metrics


def _class_name(key: str | int, class_names: Sequence[str]) -> str:
    """A class given by name or index, checked against the model's classes."""
    key = str(key)
    if key in class_names:
        return key
    if key.isdigit() and int(key) < len(class_names):
        return class_names[int(key)]
    raise SSTIError(f"class: {key!r} is not a class of this model ({', '.join(f'{i}={n}' for i, n in enumerate(class_names))})")


def metrics_table(metrics: dict[str, Any], title: str = "evaluation"):
    """A rich table of one run's metrics: clean, then each spurious set."""
    from rich.table import Table

    class_names = metrics["class_names"]
    table = Table(title=title)
    for col in ("test set", "accuracy", "bal. acc", "F1 macro", "pred counts (" + " / ".join(class_names) + ")", "ASR", "acc. drop"):
        table.add_column(col, justify="right" if col != "test set" else "left")
    c = metrics["clean"]
    table.add_row("clean", f"{c['accuracy']:.3f}", f"{c['balanced_accuracy']:.3f}", f"{c['f1_macro']:.3f}", " / ".join(map(str, c["pred_counts"])), "", "")
    for name, m in metrics["spurious"].items():
        table.add_row(f"+{m['source']} (class {name})", f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}", f"{m['f1_macro']:.3f}",
                      " / ".join(map(str, m["pred_counts"])), f"{m['attack_success_rate']:.3f}", f"{m['accuracy_degradation']:+.3f}")
    return table
