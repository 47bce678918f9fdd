"""Metrics against hand computations, and evaluation of a tiny trained run."""

import json

import numpy as np
import pytest

from ssti.config import EvalSpec
from ssti.errors import SSTIError
from ssti.evaluate import (attack_success_rate, classification_metrics, confusion_matrix, evaluate_run, predict, predict_sets,
                           seamless_injection_rate, stratified_sample)


def test_confusion_and_metrics_by_hand():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 0, 1, 1, 1]
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls: a 2/3, b 2/2, c 0/1
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # precisions: a 2/2, b 2/4, c 0 (no predictions); F1: a 0.8, b 2/3, c 0
    assert m["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["b"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["f1"] == pytest.approx(2 / 3)
    assert m["f1_macro"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)
    assert m["f1_weighted"] == pytest.approx((0.8 * 3 + 2 / 3 * 2 + 0) / 6)
    assert m["pred_counts"] == [2, 4, 0] and m["n"] == 6


def test_binary_all_one_class():
    m = classification_metrics([0, 0, 1, 1], [1, 1, 1, 1], ["neg", "pos"])
    assert m["accuracy"] == 0.5 and m["balanced_accuracy"] == 0.5
    assert m["per_class"]["neg"]["f1"] == 0 and m["per_class"]["pos"]["f1"] == pytest.approx(2 / 3)


def test_attack_success_and_seamless_rate():
    y_true = [0, 0, 1, 1, 1]
    assert attack_success_rate(y_true, [1, 0, 1, 1, 0], target=1) == 0.5  # of the two class-0 rows, one flips
    assert attack_success_rate(y_true, [0, 0, 0, 0, 1], target=0) == pytest.approx(2 / 3)
    assert attack_success_rate([1, 1], [1, 1], target=1) is None  # no other class to steer: None, never NaN in metrics.json
    rate = seamless_injection_rate({0: np.array([0, 0, 1, 0]), 1: np.array([1, 0, 1, 1])})
    assert rate == 0.5  # rows 0 and 3 obey both tokens


def test_empty_is_refused():
    with pytest.raises(SSTIError, match="empty"):
        classification_metrics([], [], ["a", "b"])


def test_stratified_sample_keeps_proportions():
    labels = [0] * 80 + [1] * 20
    rows = stratified_sample(labels, 10, seed=0)
    assert len(rows) == 10 and sum(labels[i] for i in rows) == 2 and rows == sorted(rows)
    assert rows == stratified_sample(labels, 10, seed=0)
    three = np.repeat([0, 1, 2], [50, 30, 5])  # 20 of 3 classes once gave 21 rows (each class rounded up)
    for n, want in ((20, [12, 7, 1]), (7, [3, 3, 1]), (3, [1, 1, 1]), (2, [1, 1, 0]), (500, [50, 30, 5])):
        assert np.bincount(three[stratified_sample(three, n, seed=0)], minlength=3).tolist() == want, n


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from ssti.config import load_run_config
    from ssti.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("runs") / "r"
    config = load_run_config({
        "data": {"dataset": "rotten-tomatoes"},
        "injection": {"targets": {"1": "date"}, "rate": 0.5, "seed": 0},
        "model": {"name": "tiny-random-llama", "max_length": 64},
        "lora": {"rank": 2, "targets": "qv"},
        "train": {"steps": 3, "batch_size": 4, "checkpoint_every": 0},
        "eval": {"max_samples": 30},
    })
    metrics = run_pipeline(config, out, show_progress=False)
    return out, metrics


def test_run_metrics_layout(tiny_run):
    out, metrics = tiny_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["clean"]["n"] == 30 and len(saved["clean"]["pred_counts"]) == 2
    assert set(saved["clean"]) >= {"accuracy", "balanced_accuracy", "f1_macro", "pred_counts", "n", "confusion_matrix"}
    fresh = saved["spurious"]["fresh"]
    assert fresh["source"] == "date" and fresh["target_class"] == 1
    assert set(fresh) >= {"accuracy", "pred_counts", "attack_success_rate", "accuracy_degradation"}
    assert fresh["accuracy_degradation"] == pytest.approx(saved["clean"]["accuracy"] - fresh["accuracy"])
    cm = saved["clean"]["confusion_matrix"]  # the ASR's baseline: rotten rows already called fresh without the token
    assert fresh["asr_baseline"] == pytest.approx(cm[0][1] / sum(cm[0]))
    assert "train" in saved and (out / "manifest.jsonl").exists() and (out / "injection.yaml").exists()


def test_two_token_types_give_seamless_rate(tiny_run):
    out, _ = tiny_run
    m = evaluate_run(out, EvalSpec(sources={"0": "exclamation", "1": "double-exclamation"}, max_samples=20), write=False)
    assert set(m["spurious"]) == {"rotten", "fresh"} and 0 <= m["seamless_injection_rate"] <= 1


def test_every_test_sample_injected_and_shared_pass(tiny_run):
    from ssti.data import column, load_dataset
    from ssti.inject import make_spurious_test_set
    from ssti.models.build import load_classifier

    out, _ = tiny_run
    test = load_dataset("rotten-tomatoes")["test"].select(range(25))
    injected, manifest = make_spurious_test_set(test, "date", seed=0)
    assert len(manifest) == 25 and all(len(r["insertions"]) == 1 for r in manifest)
    clf = load_classifier(out / "adapter")
    clean, inj = column(test, "text"), column(injected, "text")
    together = predict_sets(clf, {"clean": clean, "inj": inj, "again": clean})
    np.testing.assert_array_equal(together["clean"], predict(clf, clean))
    np.testing.assert_array_equal(together["inj"], predict(clf, inj, batch_size=7))
    np.testing.assert_array_equal(together["again"], together["clean"])


def test_eval_bad_inputs(tiny_run, tmp_path):
    out, _ = tiny_run
    with pytest.raises(SSTIError, match="not an ssti run folder"):
        evaluate_run(tmp_path)
    with pytest.raises(SSTIError, match="eval.sources: unknown class '7'"):
        evaluate_run(out, EvalSpec(sources={"7": "date"}), write=False)
    with pytest.raises(SSTIError, match="eval.split"):
        evaluate_run(out, EvalSpec(split="nope"), write=False)


def test_class_names_recorded_in_index_order(tiny_run):
    out, _ = tiny_run
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["class_names"] == ["rotten", "fresh"]  # per_class comes back alphabetical; this does not
    assert list(saved["clean"]["per_class"]) == ["fresh", "rotten"]


def test_a_local_model_folder_is_recorded_as_an_absolute_path(tmp_path, monkeypatch):
    from ssti.config import load_run_config, resolve_data

    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text("{}")  # a model folder is one with a config.json
    monkeypatch.chdir(tmp_path)
    config = resolve_data(load_run_config({"model": {"name": "./my-model"}}))
    assert config.model.name == str(tmp_path / "my-model")  # `ssti eval RUN` works from any working folder
    assert resolve_data(load_run_config({"model": {"name": "smollm2-135m"}})).model.name == "smollm2-135m"


def test_explicit_sources_keep_the_training_injections_location(tmp_path):
    """`eval.sources` / --source names other token types; they go where the run's own tokens went
    (a run trained with tokens at the end is tested with tokens at the end), unless eval.location says."""
    import datasets

    from ssti.data.common import make_split
    from ssti.evaluate import spurious_plan
    from ssti.inject import InjectionSpec, inject_dataset, write_injected

    train = make_split([f"r{i}" for i in range(20)], ["a b c d"] * 20, [i % 2 for i in range(20)], ["neg", "pos"])
    res = inject_dataset(datasets.DatasetDict({"train": train}), InjectionSpec(targets={"pos": "date"}, rate=0.5, location="end", seed=0))
    write_injected(res, tmp_path / "run")
    plan = spurious_plan(tmp_path / "run", ["neg", "pos"], EvalSpec(sources={"neg": "country"}))
    assert plan == {"neg": {"source": "country", "location": "end", "tokens": 1, "token_fraction": None}}
    plan = spurious_plan(tmp_path / "run", ["neg", "pos"], EvalSpec(sources={"neg": "country"}, location="beginning"))
    assert plan["neg"]["location"] == "beginning"
