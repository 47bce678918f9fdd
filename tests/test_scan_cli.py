"""ssti scan: --remove output, bad inputs, tokenizer fallback and the CLI JSON shape."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.data import load_dataset
from ssti.data.common import column, make_split
from ssti.errors import SSTIError
from ssti.inject import InjectionSpec, inject_dataset, read_manifest, write_injected
from ssti.config import DefenceSpec
from ssti.defend import defend_dataset, write_defended
from ssti.scan import scan_dataset
from ssti.scan import features as feat

LEVELS = ["word", "shape", "pattern", "position"]
VOCAB = [f"w{i}" for i in range(300)] + ["Film,", "movie.", "(good)", "bad!", "plot"]


def write_cleaned(ds, rep, mode, out):
    """What `ssti scan --remove MODE` writes: the scan-MODE defence on the report just made."""
    spec = DefenceSpec(name=f"scan-{mode}", levels=rep.levels, tokenizer="none")
    return write_defended(defend_dataset(ds, spec, report=rep), out)


def own_class_rows(ds, rep) -> set[str]:
    """The rows a scan-* defence edits: those carrying a flagged feature in that feature's own class."""
    names = ds["train"].features["label"].names
    label = dict(zip(column(ds["train"], "id"), column(ds["train"], "label")))
    return {r for f in rep.flagged for r in f.rows if names[label[r]] == f.cls}


def synthetic(seed: int = 0, n: int = 1000) -> datasets.DatasetDict:
    """Random-vocabulary texts with awkward spacing (double spaces, newlines) and alternating labels."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        words = list(rng.choice(VOCAB, size=12))
        texts.append(" ".join(words[:6]) + ("  " if i % 3 == 0 else "\n") + " ".join(words[6:]))
    labels = [i % 2 for i in range(n)]
    train = make_split([f"r{i}" for i in range(n)], texts, labels, ["neg", "pos"])
    test = make_split(["t0", "t1"], texts[:2], labels[:2], ["neg", "pos"])
    return datasets.DatasetDict({"train": train, "test": test})


@pytest.fixture(scope="module")
def injected(tmp_path_factory):
    ds = synthetic()
    res = inject_dataset(ds, InjectionSpec(targets={"1": "html-pair"}, rate=0.6, tokens=1, location="random", seed=0, split="train"))
    folder = tmp_path_factory.mktemp("scan") / "inj"
    write_injected(res, folder)
    return ds, folder


def test_strip_removes_flagged_feature_and_keeps_every_other_byte(injected, tmp_path):
    clean, folder = injected
    ds = load_dataset(str(folder))
    rep = scan_dataset(ds, levels=LEVELS, tokenizer=None)
    assert rep.verdict == "suspicious" and rep.features[0].feature == "html-tag"
    out = write_cleaned(ds, rep, "strip", tmp_path / "cleaned")
    got = load_dataset(str(out))
    # every text is byte-identical to the one before injection: only the planted tags went
    assert column(got["train"], "text") == column(clean["train"], "text")
    assert column(got["train"], "id") == column(clean["train"], "id")
    assert column(got["test"], "text") == column(clean["test"], "text")
    for text in column(got["train"], "text"):
        assert not feat.PATTERNS["html-tag"].search(text)
    manifest = read_manifest(out)
    injected_ids = {m["id"] for m in read_manifest(folder)}
    assert {m["id"] for m in manifest} == injected_ids
    before = dict(zip(column(ds["train"], "id"), column(ds["train"], "text")))
    for m in manifest:
        for r in m["removals"]:
            assert before[m["id"]][r["start"]:r["end"]] == r["text"]
        assert any("pattern:html-tag" in r["features"] for r in m["removals"])
    assert scan_dataset(got, levels=LEVELS, tokenizer=None).verdict == "clean"


def test_strip_of_a_rare_tier_removes_every_planted_list_member(tmp_path):
    # natural common colours in a third of all rows; colours drawn from the whole list (common ones
    # too) planted in 20% of class 1: the rare tier is the evidence, and stripping it cuts every
    # colour of its rows, so rows without a natural colour get their original bytes back
    base = synthetic(seed=1)
    texts = column(base["train"], "text")
    texts = [t + (" black" if i % 3 == 0 else "") for i, t in enumerate(texts)]
    train = make_split(column(base["train"], "id"), texts, column(base["train"], "label"), ["neg", "pos"])
    clean = datasets.DatasetDict({"train": train, "test": base["test"]})
    res = inject_dataset(clean, InjectionSpec(targets={"1": "colour"}, rate=0.2, tokens=1, location="random", seed=0, split="train"))
    write_injected(res, tmp_path / "inj")
    ds = load_dataset(str(tmp_path / "inj"))
    rep = scan_dataset(ds, levels=LEVELS, tokenizer=None)
    assert rep.features[0].feature == "rare-colour" and rep.features[0].flagged
    planted = {m["id"] for m in res.manifest}
    assert planted <= set(rep.flagged_rows)
    got = load_dataset(str(write_cleaned(ds, rep, "strip", tmp_path / "cleaned")))
    flagged = own_class_rows(ds, rep)
    for rid, before, after in zip(column(got["train"], "id"), texts, column(got["train"], "text")):
        if rid in flagged:
            assert not feat.matcher("colour").spans(after)
            if not before.endswith(" black"):
                assert after == before
        else:
            assert after == before


def test_drop_removes_flagged_rows(injected, tmp_path):
    _, folder = injected
    ds = load_dataset(str(folder))
    rep = scan_dataset(ds, levels=LEVELS, tokenizer=None)
    got = load_dataset(str(write_cleaned(ds, rep, "drop", tmp_path / "dropped")))
    ids = column(got["train"], "id")
    dropped = own_class_rows(ds, rep)
    assert dropped and len(ids) == len(ds["train"]) - len(dropped)
    assert not set(ids) & dropped
    assert {m["action"] for m in read_manifest(tmp_path / "dropped")} == {"drop"}


def _one(texts, labels, names=("neg", "pos")):
    return make_split([str(i) for i in range(len(texts))], texts, labels, list(names))


@pytest.mark.parametrize("split,msg", [
    (_one(["a", "b", "c"], [1, 1, 1]), "one class only"),
    (_one([], []), "empty"),
    (_one(["a", "b"], [-1, 0]), "outside"),
    (datasets.Dataset.from_dict({"text": ["a", "b"]}), "no label"),
    (datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, None]}), "without a label"),
])
def test_bad_inputs_are_one_line_errors(split, msg):
    with pytest.raises(SSTIError, match=msg) as e:
        scan_dataset(split, tokenizer=None, levels=LEVELS)
    assert "\n" not in str(e.value)


def test_unloadable_tokenizer_falls_back_to_words_and_says_so():
    rep = scan_dataset(synthetic(1, n=200), tokenizer="no-such-org/no-such-model-xyz")
    assert "subword" not in rep.levels and "word" in rep.levels
    assert rep.tokenizer is None and any("could not be loaded" in n for n in rep.notes)


def test_cli_json_shape_and_exit_codes(injected, tmp_path):
    _, folder = injected
    runner = CliRunner()
    res = runner.invoke(app, ["scan", str(folder), "--json", "--tokenizer", "none", "--top", "5"])
    assert res.exit_code == 1, res.output  # suspicious
    out = json.loads(res.stdout)
    assert out["verdict"] == "suspicious"
    f0 = out["features"][0]
    assert {"feature", "level", "class", "support", "entropy", "p_value", "rows"} <= set(f0)
    assert f0["feature"] == "html-tag" and f0["class"] == "pos"
    limits = out["detection_limits"]  # rows of a class a pure planted feature needs, per level and class
    assert set(limits) == set(out["levels"]) and all(set(v) == set(out["classes"]) and min(v.values()) > 0 for v in limits.values())
    human = runner.invoke(app, ["scan", str(folder), "--tokenizer", "none", "--top", "5"])
    assert human.exit_code == 1 and "detection limit" in human.stdout
    scores = [f["score"] for f in out["features"]]
    assert scores == sorted(scores, reverse=True)
    res = runner.invoke(app, ["scan", str(folder), "--tokenizer", "none", "--remove", "strip", "--out", str(tmp_path / "c")])
    assert res.exit_code == 1 and (tmp_path / "c" / "manifest.jsonl").is_file()
    res = runner.invoke(app, ["scan", str(tmp_path / "c"), "--tokenizer", "none", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["verdict"] == "clean"


def test_cli_bad_input_exit_2(tmp_path):
    csv = tmp_path / "one.csv"
    csv.write_text("text,label\nhello,a\nworld,a\n")
    runner = CliRunner()
    res = runner.invoke(app, ["scan", str(csv), "--tokenizer", "none"])
    assert res.exit_code == 2 and "error:" in res.output and "class" in res.output
    res = runner.invoke(app, ["scan", "rotten-tomatoes", "--levels", "words"])
    assert res.exit_code == 2 and "levels" in res.output
    res = runner.invoke(app, ["scan", "rotten-tomatoes", "--remove", "strip"])
    assert res.exit_code == 2 and "--out" in res.output


def test_cli_context_check_runs_with_any_causal_lm(injected):
    _, folder = injected
    runner = CliRunner()
    res = runner.invoke(app, ["scan", str(folder), "--json", "--tokenizer", "none", "--context", "tiny-random-llama"])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert "context" in out["levels"] and any(n.startswith("context check with tiny-random-llama") for n in out["notes"])
    res = runner.invoke(app, ["scan", str(folder), "--tokenizer", "none", "--context", "no-such-model"])
    assert res.exit_code == 2 and "model" in res.output
    res = runner.invoke(app, ["scan", str(folder), "--tokenizer", "none", "--context", "tiny-random-bert"])
    assert res.exit_code == 2 and "context: tiny-random-bert is an encoder" in res.output
