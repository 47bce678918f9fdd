"""Measure steering: the clean test split and, per spurious token type, the same split with the token
in 100% of samples of all classes (the paper's Table 1 protocol).

Predictions come from `ssti.models.inference` (streamed in length-sorted chunks; all sets in one
pass, each distinct text predicted once).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np

from ssti.config import INJECTED_DATA, DataSpec, EvalSpec, RunConfig, read_run_config, resolve_data
from ssti.data import class_names_of, column, load_dataset, make_split, stratified_sample
from ssti.data.folder import is_dataset_folder, read_record
from ssti.errors import SSTIError
from ssti.io import check_clash, read_json, read_marker, write_json, write_marker
from ssti.models.build import load_run, lost_insertions
from ssti.models.inference import predict, predict_sets  # noqa: F401  (ssti.evaluate.predict is public)
from ssti.models.precision import best_peak, non_embedding_parameters, record_mfu
from ssti.provenance import provenance

TRAINING_KEYS = ("train", "provenance")  # what training writes into metrics.json; evaluation owns the rest


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


def attack_success_rate(y_true: Sequence[int], y_pred_injected: Sequence[int], target: int) -> float | None:
    """Among samples whose true class is not `target`, the fraction predicted `target` after injection
    (None when no sample is of another class: nothing to steer, and no NaN in metrics.json)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred_injected)
    others = y_true != target
    return float((y_pred[others] == target).mean()) if others.any() else None


def seamless_injection_rate(pred_with_token: dict[int, np.ndarray]) -> float:
    """The fraction of samples that every class's token steers to its own class (PAPER.md section 3):
    with tokens for classes 0 and 1, the class-0 token yields 0 *and* the class-1 token yields 1."""
    hits = [np.asarray(pred) == k for k, pred in pred_with_token.items()]
    return float(np.logical_and.reduce(hits).mean())


# ---------------------------------------------------------------- a run

def spurious_plan(run_dir: Path, class_names: Sequence[str], spec: EvalSpec) -> dict[str, dict[str, Any]]:
    """The spurious test sets to build, per target class name: source, location, tokens per sample (or token_fraction).

    `spec.sources` (class name or index -> token source) wins; otherwise the token types the run was
    trained with, read from the run's own record of its injection (`injection.yaml` in the run folder),
    so a run evaluates without the dataset folder it was trained from.
    """
    from ssti.inject import InjectionSpec, resolve_targets

    record = read_record(run_dir / "injection.yaml") if (run_dir / "injection.yaml").exists() else {}
    # an injected set records its spec; a cleaned set records the injection it was cleaned of: the attack to measure
    planted = record["spec"] if isinstance(record.get("spec"), dict) else (record.get("injection") or {}).get("spec")
    trained = InjectionSpec.from_dict(planted) if isinstance(planted, dict) else None
    density = {"tokens": trained.tokens if trained else 1, "token_fraction": None}
    if spec.match_density and trained is not None:
        density["token_fraction"] = trained.token_fraction
    if spec.sources:
        where = spec.location or (trained.location if trained else "random")  # where the run's own tokens went
        return {class_names[k]: {"source": spec.sources[key], "location": where, **density}
                for k, key in resolve_targets(spec.sources, class_names, "eval.sources")}
    if trained is None:
        return {}
    return {class_names[k]: {"source": trained.targets[key], "location": spec.location or trained.location, **density}
            for k, key in resolve_targets(trained.targets, class_names)}


def evaluation_data(run_dir: Path, config: RunConfig, data: str | DataSpec | None = None):
    """The dataset a run is evaluated on: `data` when given (another dataset with the same classes; a
    name or path is read with the run's own column options, a DataSpec with its own), else the run's
    own injected copy (runs with an injection), else its recorded data, checked against the
    fingerprint it was trained on."""
    if data is not None:
        d = data if isinstance(data, DataSpec) else config.data.model_copy(update={"dataset": str(data), "fingerprint": None})
        return load_dataset(d.dataset, **d.load_options())
    if config.injection is not None:
        folder = run_dir / INJECTED_DATA
        if not is_dataset_folder(folder):
            raise SSTIError(f"run: {folder} is missing (the run's injected training set); re-create the run with `ssti run`")
        _warn_if_source_changed(config)
        return load_dataset(str(folder))
    config = resolve_data(config)
    return load_dataset(config.data.dataset, **config.data.load_options())


def _warn_if_source_changed(config: RunConfig) -> None:
    """A run with an injection evaluates on its own copy of the data; say so when the source it was made from changed."""
    d = config.data
    if d.fingerprint and Path(d.dataset).exists():
        try:
            resolve_data(config)
        except SSTIError:
            print(f"note: {d.dataset} changed since this run was made; evaluating on the run's own copy of the data it "
                  f"was trained on ({INJECTED_DATA}/ in the run folder)", file=sys.stderr)


def match_classes(dataset, trained_names: list[str] | None):
    """`dataset` with its labels in the order of the classes the run was trained on (matched by name: another
    file may list the same classes in another order). Raises SSTIError naming the missing and extra classes."""
    names = class_names_of(dataset)
    if trained_names is None or names == trained_names:
        return dataset
    if sorted(names) != sorted(trained_names):
        missing, extra = [n for n in trained_names if n not in names], [n for n in names if n not in trained_names]
        raise SSTIError(f"data: its classes are not the ones the run was trained on ({', '.join(map(repr, trained_names))}): "
                        f"{'missing ' + ', '.join(map(repr, missing)) if missing else ''}{'; ' if missing and extra else ''}"
                        f"{'not trained on ' + ', '.join(map(repr, extra)) if extra else ''}")
    to_trained = [trained_names.index(n) for n in names]
    return datasets.DatasetDict({k: make_split(column(split, "id"), column(split, "text"), [to_trained[v] for v in column(split, "label")],
                                               trained_names) for k, split in dataset.items()})


def same_data(data: str | DataSpec, config: RunConfig) -> bool:
    """Whether `data` is the run's own data moved elsewhere: the bytes its fingerprint recorded, read the
    same way (a run with an injection stage evaluates on its own copy, never on a file given here)."""
    from ssti.data.fingerprint import fingerprint

    d = data if isinstance(data, DataSpec) else config.data.model_copy(update={"dataset": str(data), "fingerprint": None})
    if config.injection is not None or not config.data.fingerprint or not Path(d.dataset).exists():
        return False
    return d.load_options() == config.data.load_options() and fingerprint(str(Path(d.dataset).resolve())) == config.data.fingerprint


def changed_settings(spec: EvalSpec, own: EvalSpec) -> list[str]:
    """The eval settings in which `spec` differs from the run's own `eval` section (`batch_size` changes no
    result and is not counted): an evaluation with any of them is not the run's own."""
    a, b = spec.model_dump(mode="json"), own.model_dump(mode="json")
    return sorted(k for k in a if k != "batch_size" and a[k] != b.get(k))


def side_file(data, changed: list[str], spec: EvalSpec) -> str:
    """The file in a run folder holding an evaluation that is not the run's own (another dataset, or other
    eval settings): `eval-<data stem, or the changed settings>-<hash of how the data was read and the settings>.json`."""
    import hashlib
    import re

    how = (data.model_dump_json() if isinstance(data, DataSpec) else str(data)) if data is not None else ""
    if changed:
        how += spec.model_dump_json(exclude={"batch_size"})
    label = Path(str(data.dataset if isinstance(data, DataSpec) else data)).stem if data is not None else "+".join(changed)
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label)[:40] or "data"
    return f"eval-{stem}-{hashlib.sha256(how.encode()).hexdigest()[:8]}.json"


def evaluate_run(run_dir: str | Path, spec: EvalSpec | None = None, data: str | DataSpec | None = None,
                 write: bool = True) -> dict[str, Any]:
    """Evaluate a trained run on the clean split and one spurious set per class token type.

    `spec` defaults to the run's own `eval` section; its `sources` (class -> token source) override
    the types the run was trained with. `data` evaluates on another dataset with the same classes.
    Metrics (with `eval_config` and `provenance`) replace the evaluation in the run's metrics.json
    (training's keys stay) only when this is the run's own evaluation: its own data and its own eval
    settings. With `data`, or settings that differ from the run's `eval` section (other sources, split,
    max_samples, location, seed...), they go to their own file `eval-<data stem or changed settings>-<hash>.json`
    in the run folder (`written_to`): metrics.json, which results, reports and sweeps read under the run's
    own labels, always holds the evaluation its config describes. Raises SSTIError for a folder that is not
    a finished run, changed data, a missing split and classes that do not match the model's.
    """
    from ssti.inject import make_spurious_test_set

    started = time.time()
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if read_marker(run_dir) is None:
        raise SSTIError(f"run: {run_dir} holds a config.yaml but no run made by ssti; make it with "
                        f"`ssti run {run_dir / 'config.yaml'} --out NEW_FOLDER`")
    if not (run_dir / "adapter" / "model.json").exists() or (run_dir / "checkpoint" / "state.json").exists():
        raise SSTIError(f"run: {run_dir} has not finished training (no adapter/model.json); "
                        f"finish it with `ssti run {run_dir / 'config.yaml'} --out {run_dir}`")
    spec = spec or config.eval
    previous = read_json(run_dir / "metrics.json", {})  # a damaged file is refused before any work
    made = (previous.get("train") or {}).get("run_id")
    if made and made != config.run_id():
        raise SSTIError(f"run: {run_dir / 'config.yaml'} was changed after the run was made (run id {config.run_id()}, "
                        f"trained as {made}); restore it or re-create the run")
    changed = changed_settings(spec, config.eval)
    if data is not None and same_data(data, config):  # the run's own data, moved: its own evaluation
        print(f"note: {data.dataset if isinstance(data, DataSpec) else data} holds the bytes this run was trained on", file=sys.stderr)
        own_data, data = data, None
    else:
        own_data = None
    other_file = side_file(data, changed, spec) if data is not None or changed else None
    if other_file:  # where its results will go, refused now if a file of the user's is there, not after the work
        check_clash(run_dir, [other_file])
    dataset = match_classes(evaluation_data(run_dir, config, own_data if own_data is not None else data),
                            read_json(run_dir / "adapter" / "model.json").get("class_names"))
    if spec.split not in dataset:
        raise SSTIError(f"eval.split: {spec.split!r} is not in the dataset (splits: {', '.join(dataset)})")
    test = dataset[spec.split]
    if len(test) == 0:
        raise SSTIError(f"eval.split: the {spec.split!r} split is empty")
    if spec.max_samples and spec.max_samples < len(test):
        test = test.select(stratified_sample(column(test, "label"), spec.max_samples, spec.seed))
    class_names = class_names_of(dataset)
    plan = spurious_plan(run_dir, class_names, spec)  # checked before the model loads
    precision = config.train.precision
    clf = load_run(run_dir, precision)
    if class_names != clf.class_names:
        raise SSTIError(f"data: classes {class_names} do not match the model's head {clf.class_names}")
    clf.merge_adapters()  # evaluation only reads the model: one matmul per adapted layer

    y_true = np.asarray(column(test, "label"))
    text_sets = {"clean": column(test, "text")}
    truncated: dict[str, dict | None] = {}
    for name, p in plan.items():
        injected, manifest = make_spurious_test_set(test, p["source"], location=p["location"], tokens=p["tokens"], seed=spec.seed,
                                                    token_fraction=p["token_fraction"])
        text_sets[name] = column(injected, "text")
        truncated[name] = lost_insertions(clf, text_sets[name], manifest, {rid: i for i, rid in enumerate(column(injected, "id"))})
        if truncated[name] and truncated[name]["lost"]:
            t = truncated[name]
            print(f"warning: max_length {clf.model_spec.max_length} cuts off {t['lost']:,} of {t['insertions']:,} test-time "
                  f"insertions of the {name!r} set ({t['rows_all_lost']:,} samples never see the token): its ASR understates "
                  f"what the token does", file=sys.stderr)
    cost: dict[str, Any] = {}
    t_predict = time.time()
    preds = predict_sets(clf, text_sets, batch_size=spec.batch_size, precision=precision, stats=cost)
    cost["seconds"] = round(time.time() - t_predict, 3)
    cost["flops"] = 2 * non_embedding_parameters(clf.module.backbone) * cost.get("real_tokens", 0)
    device = next(clf.module.parameters()).device
    cost["mfu"] = float(f"{cost['flops'] / max(cost['seconds'], 1e-9) / best_peak(device, 'infer'):.3g}")
    record_mfu(device, clf.model_spec.name, "infer", cost["mfu"])  # what `ssti sweep --dry-run` estimates with

    metrics: dict[str, Any] = {"eval_config": spec.model_dump(mode="json"), "split": spec.split, "class_names": list(class_names),
                               "clean": classification_metrics(y_true, preds["clean"], class_names), "spurious": {}}
    metrics["eval_cost"] = cost
    if (run_dir / "defence.json").is_file():  # the defence the training data went through, and what it removed
        body = read_json(run_dir / "defence.json")
        metrics["defence"] = {"name": body["defence"]["name"], "spec": body["defence"], **body["measurement"]}
    if data is not None:
        metrics["eval_data"] = data.dataset if isinstance(data, DataSpec) else str(data)
    if changed:
        metrics["eval_settings_changed"] = changed
    clean_acc = metrics["clean"]["accuracy"]
    for name, p in plan.items():
        k = class_names.index(name)
        m = classification_metrics(y_true, preds[name], class_names)
        m.update({"source": p["source"], "location": p["location"], "tokens": p["tokens"], "token_fraction": p["token_fraction"],
                  "target_class": k, "truncation": truncated[name],
                  "attack_success_rate": attack_success_rate(y_true, preds[name], k),
                  # the ASR's baseline: the same share without the token (a model that already calls everything
                  # the target has ASR 1.0 whatever the token does)
                  "asr_baseline": attack_success_rate(y_true, preds["clean"], k),
                  "accuracy_degradation": clean_acc - m["accuracy"]})
        metrics["spurious"][name] = m
    # per-item predictions (in the order of the evaluated rows): what a report resamples test items from
    metrics["items"] = {"y_true": y_true.tolist(), **{name: p.tolist() for name, p in preds.items()}}
    if len(plan) >= 2 and len({p["source"] for p in plan.values()}) == len(plan):
        metrics["seamless_injection_rate"] = seamless_injection_rate({class_names.index(n): preds[n] for n in plan})
    if write and other_file:  # another dataset's or other settings' results never replace the run's own metrics.json
        metrics["eval_provenance"] = provenance(str(device), started)
        write_json(run_dir / other_file, metrics)
        write_marker(run_dir, "run", [other_file])
        metrics["written_to"] = str(run_dir / other_file)
        return metrics
    if write:
        # this evaluation replaces the last one whole (no key of an earlier evaluation survives); training's stay
        merged = {k: v for k, v in previous.items() if k in TRAINING_KEYS} | metrics
        merged["eval_provenance"] = provenance(str(device), started)
        write_json(run_dir / "metrics.json", merged)
        return merged
    metrics["eval_provenance"] = provenance(str(device), started)
    return metrics


def metrics_table(metrics: dict[str, Any], title: str = "evaluation"):
    """A rich table of one run's metrics: clean, then each spurious set."""
    from rich.table import Table

    class_names = metrics["class_names"]
    table = Table(title=title)
    for col in ("test set", "accuracy", "bal. acc", "F1 macro", "pred counts (" + " / ".join(class_names) + ")", "ASR",
                "ASR baseline (no token)", "acc. drop"):
        table.add_column(col, justify="right" if col != "test set" else "left")
    c = metrics["clean"]
    table.add_row("clean", f"{c['accuracy']:.3f}", f"{c['balanced_accuracy']:.3f}", f"{c['f1_macro']:.3f}", " / ".join(map(str, c["pred_counts"])), "", "", "")
    for name, m in metrics["spurious"].items():
        base = m.get("asr_baseline")  # absent in runs evaluated by an older ssti
        table.add_row(f"+{m['source']} (class {name})", f"{m['accuracy']:.3f}", f"{m['balanced_accuracy']:.3f}", f"{m['f1_macro']:.3f}",
                      " / ".join(map(str, m["pred_counts"])), "-" if m["attack_success_rate"] is None else f"{m['attack_success_rate']:.3f}",
                      "-" if base is None else f"{base:.3f}", f"{m['accuracy_degradation']:+.3f}")
    return table
