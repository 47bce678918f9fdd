"""ssti defend: each defence on small data, the measurement, resume, bad input and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.config import DEFENCES, DefenceSpec, load_run_config
from ssti.data import load_dataset
from ssti.data.common import column, make_split
from ssti.data.folder import read_meta
from ssti.defend import DEFENCES as REGISTRY, defend_dataset, measure_defence, write_defended
from ssti.defend.onion import windows
from ssti.defend.scan_guided import extended_spans
from ssti.errors import SSTIError
from ssti.inject import InjectionSpec, inject_dataset, read_manifest, write_injected

VOCAB = [f"w{i}" for i in range(300)]
NAMES = ["neg", "pos"]


def corpus(n: int = 600, seed: int = 0, extra=lambda i, t: t) -> datasets.DatasetDict:
    rng = np.random.default_rng(seed)
    texts = [extra(i, " ".join(rng.choice(VOCAB, size=10))) for i in range(n)]
    labels = [i % 2 for i in range(n)]
    train = make_split([f"r{i}" for i in range(n)], texts, labels, NAMES)
    test = make_split(["t0", "t1"], texts[:2], labels[:2], NAMES)
    return datasets.DatasetDict({"train": train, "test": test})


def injected(tmp_path, data, **spec):
    res = inject_dataset(data, InjectionSpec(seed=0, split="train", **spec))
    write_injected(res, tmp_path / "inj")
    return str(tmp_path / "inj")


def test_registry_names_are_the_configs():
    assert set(REGISTRY) == set(DEFENCES)


def test_scan_strip_removes_a_planted_phrase_whole_and_keeps_every_other_byte(tmp_path):
    # the case: "I watch this 3D movie" is flagged through "3d" alone; the other words occur in
    # other rows too (here: the neg class) and must go with it from the planted rows only
    clean = corpus(extra=lambda i, t: t + (" I watch this movie" if i % 5 == 1 else "") + (" 3D" if i % 50 == 3 else ""))
    src = injected(tmp_path, clean, targets={"pos": "fixed:I watch this 3D movie"}, rate=0.3)
    result = defend_dataset(src, DefenceSpec(name="scan-strip", tokenizer="none"))
    before = column(clean["train"], "text")
    after = column(result.dataset["train"], "text")
    planted = {r["id"] for r in read_manifest(src)}
    for rid, b, a in zip(column(clean["train"], "id"), before, after):
        assert a == b, rid  # planted rows: the whole phrase and one space went; every other row (natural 3D too) untouched
    m = result.measurement
    assert m["retention"][-1]["retention"] == 0 and m["rows_still_poisoned"] == 0
    assert m["collateral"]["changed"] == 0
    assert result.record["rescan"]["verdict"] == "clean"
    assert any("I watch this movie" in n for n in result.notes)


def test_scan_strip_edits_only_rows_of_the_flagged_class(tmp_path):
    # numbers occur naturally in both classes; a planted date must not take "179" out of "179-minute"
    clean = corpus(extra=lambda i, t: t + (" a 179-minute film" if i % 7 == 0 else ""))
    src = injected(tmp_path, clean, targets={"pos": "date"}, rate=0.2)
    result = defend_dataset(src, DefenceSpec(name="scan-strip", tokenizer="none"))
    assert column(result.dataset["train"], "text") == column(clean["train"], "text")
    assert result.measurement["collateral"]["changed"] == 0


def test_scan_drop_drops_only_planted_class_rows(tmp_path):
    clean = corpus()
    src = injected(tmp_path, clean, targets={"pos": "html-pair"}, rate=0.3)
    result = defend_dataset(src, DefenceSpec(name="scan-drop", tokenizer="none"))
    planted = {r["id"] for r in read_manifest(src)}
    kept = set(column(result.dataset["train"], "id"))
    assert not kept & planted and len(kept) == len(clean["train"]) - len(planted)
    assert result.measurement["rows_dropped"] == len(planted) and result.measurement["retention"][-1]["raw"] == 0


def test_extension_needs_the_share():
    texts = {f"r{i}": f"x{i} I watch TOKEN now y{i}" if i < 9 else f"x{i} TOKEN z" for i in range(10)}
    spans = {r: [(t.index("TOKEN"), t.index("TOKEN") + 5)] for r, t in texts.items()}
    grown, words = extended_spans(texts, spans, 0.9)
    assert words == ["I", "watch", "now"]  # beside TOKEN in 9 of 10 rows: 90%
    assert [texts[r][a:b] for r, ss in grown.items() for a, b in ss][:1] == ["I watch TOKEN now"]
    assert "r9" not in grown  # a bare TOKEN without the phrase is natural use: not cut
    grown, words = extended_spans(texts, spans, 0.95)
    assert words == []


def test_measurement_discounts_natural_occurrences():
    # '!' planted in every other pos row; half of the clean pos rows carry a natural '!'
    ids = [f"r{i}" for i in range(40)]
    texts = [f"text {i}" + (" !" if i % 4 == 3 or i % 8 == 1 else "") for i in range(40)]
    labels = [i % 2 for i in range(40)]
    before = datasets.DatasetDict({"train": make_split(ids, texts, labels, NAMES)})
    manifest = [{"id": f"r{i}", "split": "train", "label": 1, "class": "pos", "source": "!",
                 "insertions": [{"text": "!", "span": [len(f"text {i}"), len(f"text {i}") + 2]}]} for i in range(3, 40, 4)]
    m = measure_defence(before, before, "train", manifest, seconds=2.0, seed=0)
    row = m["retention"][0]
    assert row["type"] == "!" and row["raw"] == 1.0 and 0.2 < row["clean_baseline"] < 0.8
    assert row["retention"] == pytest.approx(1.0 - row["clean_baseline"])
    assert m["collateral"]["changed"] == 0 and m["collateral"]["chrf"] == 100.0
    assert m["seconds_per_1k_rows"] == 50.0 and m["rows_still_poisoned"] == 1.0
    restored = {"train": make_split(ids, [t.removesuffix(" !") if i % 4 == 3 else t for i, t in enumerate(texts)], labels, NAMES)}
    m = measure_defence(before, restored, "train", manifest, seconds=2.0, seed=0)
    assert m["rows_still_poisoned"] == 0.0 and m["retention"][0]["raw"] == 0.0
    natural = [t + " !" if i == 3 else t for i, t in enumerate(restored["train"]["text"])]  # r3 is planted: its own '!' back
    m = measure_defence(before, {"train": make_split(ids, natural, labels, NAMES)}, "train", manifest, seconds=2.0)
    assert m["rows_still_poisoned"] == 0.1  # 1 of 10 planted rows
    no = measure_defence(before, before, "train", None, seconds=1.0)
    assert no["retention"] is None and "cannot be measured" in no["notes"][0]


def test_onion_windows_and_thresholds():
    text = "One two three. Four five six seven! " + " ".join(f"w{i}" for i in range(12))
    wins = windows(text, 5)
    assert [len(w) for w in wins] == [3, 4, 5, 5, 2]
    assert all(text[a:b].strip() for w in wins for a, b in w)
    data = corpus(n=8)
    keep = defend_dataset(data, DefenceSpec(name="onion", model="tiny-random-llama", threshold=1e9, batch_size=64))
    assert column(keep.dataset["train"], "text") == column(data["train"], "text") and keep.edits == []
    cut = defend_dataset(data, DefenceSpec(name="onion", model="tiny-random-llama", threshold=-1e9, window_words=5, batch_size=64))
    assert all(t == "" for t in column(cut.dataset["train"], "text"))  # every word of every multi-word window
    assert cut.record["words_removed"] == 8 * 10 and cut.measurement["collateral"]["changed"] == 8


def test_paraphrase_rewrites_resumes_and_never_redoes_finished_rows(monkeypatch):
    import ssti.defend.rewrite as rw

    data = corpus(n=12)
    calls = []
    armed = {"interrupt": True}
    real = rw.generate

    def counting(model, tokenizer, inputs, *a, **k):
        calls.append(len(inputs))
        if len(calls) == 2 and armed.pop("interrupt", False):
            raise KeyboardInterrupt  # the first call is interrupted after its first batch
        return real(model, tokenizer, inputs, *a, **k)

    monkeypatch.setattr(rw, "generate", counting)
    spec = DefenceSpec(name="paraphrase", model="tiny-random-llama", batch_size=5, max_new_tokens=4)
    with pytest.raises(KeyboardInterrupt):
        defend_dataset(data, spec)
    done = sum(calls[:1])
    calls.clear()
    result = defend_dataset(data, spec)
    assert sum(calls) == 12 - done and result.record["resumed_rows"] == done
    assert any("resumed" in n for n in result.notes)
    calls.clear()
    again = defend_dataset(data, spec)  # finished: nothing kept, so a new call does the work again, with the same output
    assert sum(calls) == 12 and column(again.dataset["train"], "text") == column(result.dataset["train"], "text")


def test_grammar_with_a_local_seq2seq_model(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    from ssti.models.loading import tiny_tokenizer

    tok = tiny_tokenizer()
    config = T5Config(vocab_size=len(tok), d_model=16, d_ff=32, d_kv=4, num_layers=1, num_heads=2, decoder_start_token_id=0,
                      pad_token_id=0, eos_token_id=2)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    data = corpus(n=4)
    result = defend_dataset(data, DefenceSpec(name="grammar", model=str(tmp_path / "t5"), max_new_tokens=3))
    assert result.record["seq2seq"] is True and result.record["prompt"] == "grammar: {text}"
    assert len(result.dataset["train"]) == 4


def test_cli_defend_table_json_and_folder(tmp_path):
    src = injected(tmp_path, corpus(), targets={"pos": "html-pair"}, rate=0.3)
    runner = CliRunner()
    res = runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "none", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "retention" in res.stdout and "collateral" in res.stdout
    body = json.loads((tmp_path / "d" / "defence.json").read_text())
    assert body["defence"]["name"] == "scan-strip" and body["measurement"]["rows_still_poisoned"] == 0
    got = load_dataset(str(tmp_path / "d"))
    assert len(got["train"]) == 600 and len(got["test"]) == 2
    res = runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "none", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, ["defend", src, "--defence", "scan-drop", "--tokenizer", "none", "--out", str(tmp_path / "d"),
                              "--overwrite", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["defence"]["name"] == "scan-drop"


def test_cli_data_without_manifest_says_retention_cannot_be_measured(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("text,label\n" + "".join(f"w{i} film {'!' if i % 2 else ''},{i % 2}\n" for i in range(40)))
    res = CliRunner().invoke(app, ["defend", str(csv), "--defence", "scan-strip", "--tokenizer", "none", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "retention cannot be measured" in res.stdout
    said = " ".join(res.stdout.split())
    assert "40 rows" in said and "clean rows changed" not in said and "which rows were planted, and so the collateral damage, is unknown" in said


def test_a_file_without_a_split_column_is_scanned_and_cleaned_whole(tmp_path):
    # a stranger's CSV: 20% of it used to be set aside as a test split and left uncleaned, unsaid
    rng = np.random.default_rng(0)
    rows = [(f"r{i}", " ".join(rng.choice(VOCAB, size=10)) + (" zqx" if i % 2 and i < 300 else ""), i % 2) for i in range(400)]
    csv = tmp_path / "mine.csv"
    csv.write_text("id,text,label\n" + "".join(f"{r},{t},{y}\n" for r, t, y in rows))
    for cmd in (["defend", str(csv), "--defence", "scan-strip"], ["scan", str(csv), "--remove", "strip"]):
        out = tmp_path / cmd[0]
        res = CliRunner().invoke(app, [*cmd, "--tokenizer", "none", "--out", str(out)])
        assert res.exit_code in (0, 1), res.output
        cleaned = load_dataset(str(out))
        assert list(cleaned) == ["train"] and len(cleaned["train"]) == 400
        assert [t + " zqx" if "zqx" in o else t for t, o in zip(column(cleaned["train"], "text"), (r[1] for r in rows))] == [r[1] for r in rows]
    assert len(load_dataset(str(csv))["train"]) == 320  # training still holds out a test split


def test_cleaning_refuses_max_words_and_an_output_inside_its_input(tmp_path):
    src = injected(tmp_path, corpus(n=40), targets={"pos": "date"}, rate=0.5)
    for cmd in (["defend", src, "--defence", "scan-strip", "--max-words", "5", "--out", str(tmp_path / "d")],
                ["scan", src, "--remove", "strip", "--max-words", "5", "--out", str(tmp_path / "d")],
                ["scan", src, "--remove", "strip", "--out", src, "--overwrite"],
                ["scan", src, "--remove", "strip", "--out", f"{src}/sub"],
                ["defend", src, "--defence", "scan-strip", "--out", f"{src}/sub"]):
        before = sorted(p.name for p in Path(src).rglob("*"))
        res = CliRunner().invoke(app, [*cmd, "--tokenizer", "none"])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert ("max_words" in res.output) or ("input data folder" in res.output), res.output
        assert sorted(p.name for p in Path(src).rglob("*")) == before and not (tmp_path / "d").exists()


def test_a_cut_never_takes_half_a_line_break():
    from ssti.defend.scan_guided import strip_text

    for text, want in [("line one zqx\r\nline two", "line one\r\nline two"), ("x zqx\n\ny", "x\n\ny"),
                       ("a\r\n\r\nzqx\r\n\r\nb", "a\r\n\r\n\r\n\r\nb"), ("zqx word", "word"), ("word zqx", "word"),
                       ("a\tzqx b", "a\tb")]:
        a = text.index("zqx")
        assert strip_text(text, [(a, a + 3)])[0] == want, text


@pytest.mark.parametrize("args,msg", [
    (["--defence", "nope"], "defence.name"),
    ([], "--defence"),
    (["--defence", "onion", "--span-share", "0.5"], "span_share: not an option of defence onion"),
    (["--defence", "grammar"], "needs a text-to-text correction model"),
    (["--defence", "paraphrase", "--prompt", "no placeholder"], "{text}"),
    (["--defence", "paraphrase", "--model", "no-such-org/no-such-model"], "needs the network"),
])
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, args, msg):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = injected(tmp_path, corpus(n=40), targets={"pos": "date"}, rate=0.5)
    res = CliRunner().invoke(app, ["defend", src, *args, "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and msg in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_defence_spec_in_run_configs():
    config = load_run_config({"injection": {"targets": {"pos": "date"}, "rate": 0.5}, "defence": {"name": "scan-strip"}})
    assert config.defence.name == "scan-strip"
    plain = load_run_config({"injection": {"targets": {"pos": "date"}, "rate": 0.5}})
    assert config.run_id() != plain.run_id()
    with pytest.raises(SSTIError, match="defence.name"):
        load_run_config({"defence": {"name": "bleach"}})
    from ssti.pipeline import check_classes

    with pytest.raises(SSTIError, match="defence.split: 'dev' is not a split"):  # refused before any run starts
        check_classes([load_run_config({"defence": {"name": "scan-strip", "split": "dev"}})])


@pytest.mark.parametrize("defence, msg", [
    ({"name": "scan-strip", "threshold": 2}, "defence.threshold: 2.0 must be a probability"),
    ({"name": "scan-drop", "levels": ["bogus"]}, "defence.levels: bogus is not a scanner level; allowed: word"),
    ({"name": "scan-strip", "split": "test"}, "defence.split: 'test' is not the injected split 'train'"),
    ({"name": "scan-strip", "levels": []}, "defence.levels: give at least one scanner level"),
])
def test_defence_values_are_checked_when_the_config_is_read(defence, msg):
    with pytest.raises(SSTIError, match=msg):
        load_run_config({"injection": {"targets": {"pos": "date"}, "rate": 0.5}, "defence": defence})


def test_levels_in_a_config_may_be_written_as_on_the_command_line():
    config = load_run_config({"defence": {"name": "scan-strip", "levels": "word, pattern"}})
    assert config.defence.levels == ["word", "pattern"]


def test_a_mistyped_context_model_names_the_context_option(tmp_path):
    src = injected(tmp_path, corpus(n=40), targets={"pos": "date"}, rate=0.5)
    res = CliRunner().invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "none", "--context", "nosuch", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and res.output.startswith("error: context: 'nosuch' is not a known name"), res.output


@pytest.mark.parametrize("field", ["tokenizer", "context"])
def test_a_mistyped_defence_model_is_refused_before_any_run_starts(field):
    from ssti.pipeline import check_classes

    with pytest.raises(SSTIError, match=f"defence.{field}: 'bogus' is not a known name"):
        check_classes([load_run_config({"defence": {"name": "scan-strip", field: "bogus"}})])


def test_a_sweep_with_a_defence_stage_trains_on_the_defended_set_and_reports_it(tmp_path):
    """defence x token type -> retention, ASR and clean accuracy after retraining, in the store and the report."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _sweep_helpers import tiny_csv, tiny_sweep
    from test_report import check_assets, parse

    from ssti.report import build_report
    from ssti.sweep import expand, run_sweep

    tiny_csv(tmp_path, n=400)  # enough planted rows (100) for the scanner to flag the date
    raw = tiny_sweep(tmp_path, ranks=(2,), rates=(0.5,))
    raw["variants"] = {"plain": {}, "stripped": {"defence.name": "scan-strip", "defence.tokenizer": "none"}}
    sweep = expand(raw)
    run_sweep(sweep, tmp_path / "sw", show_progress=False)
    defended = [r for r in sweep.runs if r.config.defence is not None]
    assert len(defended) == 1 and len(sweep.runs) == 2
    run = tmp_path / "sw" / "runs" / defended[0].run_id
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["defence"]["name"] == "scan-strip" and metrics["defence"]["rows_still_poisoned"] == 0
    trained_on = load_dataset(str(run / "defended"))
    assert not any("-" in t and t[:4].isdigit() for t in column(trained_on["train"], "text"))  # no planted date left
    assert (run / "manifest.jsonl").is_file() and (run / "defence.json").is_file()  # the injection's record, and the defence's
    page = parse(build_report(tmp_path / "sw", tmp_path / "rep"))
    rows = page.tables["defence"]["rows"]
    assert {r[3] for r in rows} == {"none", "scan-strip"}
    strip = next(r for r in rows if r[3] == "scan-strip")
    assert strip[5] == "0.0%" and strip[0] == "date" and "paraphrase: 11-12%" in strip[-1]
    assert "fig_defence" in page.figures
    check_assets(tmp_path / "rep", page)
    res = CliRunner().invoke(app, ["results", str(tmp_path / "sw")], terminal_width=240)
    assert res.exit_code == 0 and "defence" in res.output and "scan-strip" in res.output and "clean rows changed" in res.output, res.output


def test_stranger_faults_are_one_line_errors(tmp_path, monkeypatch):
    """Faults a stranger found: other braces in a prompt, an encoder as the LM, --out inside the input, scanner notes."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = injected(tmp_path, corpus(n=200), targets={"pos": "date"}, rate=0.5)
    runner = CliRunner()
    for args, msg in ((["--defence", "paraphrase", "--prompt", "Rewrite {text} as {style}"], "prompt:"),
                      (["--defence", "onion", "--model", "tiny-random-bert"], "model: tiny-random-bert is an encoder"),
                      (["--defence", "paraphrase", "--model", "tiny-random-bert"], "model: tiny-random-bert is an encoder")):
        res = runner.invoke(app, ["defend", src, *args, "--out", str(tmp_path / "d")])
        assert res.exit_code == 2 and msg in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "none", "--out", src + "/inner"])
    assert res.exit_code == 2 and "input data folder" in res.output
    res = runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "no-such-org/no-such-tok", "--levels", "word,subword",
                              "--out", str(tmp_path / "d")])
    assert res.exit_code == 0 and "could not be loaded" in res.output.replace("\n", " "), res.output
    assert "[train]" in res.output
    res = runner.invoke(app, ["scan", src, "--tokenizer", "none", "--out", str(tmp_path / "e")])
    assert res.exit_code == 2 and "--remove" in res.output


def test_scan_strip_with_the_context_check(tmp_path):
    src = injected(tmp_path, corpus(n=200), targets={"pos": "date"}, rate=0.5)
    result = defend_dataset(src, DefenceSpec(name="scan-strip", tokenizer="none", context="tiny-random-llama"))
    assert "context" in result.record["levels"] and result.record["context"] == "tiny-random-llama"
    assert any(n.startswith("scan: context check with tiny-random-llama") for n in result.notes)
    assert result.measurement["rows_still_poisoned"] == 0
    from ssti.config import validate

    with pytest.raises(SSTIError, match="context: not an option of defence onion"):
        validate(DefenceSpec, {"name": "onion", "context": "smollm2-135m"}, "defence")


class FakeJudge:
    """Stands in for an LMScorer: France and Japan (the natural mentions of the test) read as natural (d < 0), the
    planted names as dropped in."""

    name = "fake-lm"

    def deletion_scores(self, windows):
        import os

        at = [with_it[len(os.path.commonprefix([with_it, without])):].lstrip() for with_it, without in windows]  # the occurrence on
        return np.array([-3.0 if a.startswith(("France", "Japan")) else 3.0 for a in at])


def test_scan_strip_judges_each_name_with_a_language_model_and_keeps_natural_mentions(tmp_path):
    from ssti.defend.scan_guided import clean_split
    from ssti.scan import scan_dataset

    natural = lambda i, t: t + (" set in France" if i % 7 == 1 else "") + (" set in Japan" if i % 11 == 2 else "")
    clean = corpus(n=1200, extra=natural)
    src = injected(tmp_path, clean, targets={"pos": "list:Peru,Chile,Kenya,Bolivia,Fiji"}, rate=0.3)
    data = load_dataset(src)
    report = scan_dataset(data, tokenizer=None)
    assert any(f.feature in ("country", "rare-country") for f in report.flagged)
    before = dict(zip(column(clean["train"], "id"), column(clean["train"], "text")))
    planted = {r["id"] for r in read_manifest(src)}
    for mode in ("strip", "drop"):
        out, manifest, notes = clean_split(data["train"], report, mode, NAMES, scorer=FakeJudge())
        edited = {m["id"] for m in manifest}
        assert edited == planted  # natural "set in France" rows of the planted class are not edited
        if mode == "strip":
            after = dict(zip(column(out, "id"), column(out, "text")))
            assert after == before  # every planted name cut with its space, every natural one kept
        assert any("read as natural to fake-lm" in n for n in notes)
    _, manifest, notes = clean_split(data["train"], report, "strip", NAMES)  # no model: natural mentions go too
    assert {m["id"] for m in manifest} > planted and any("natural mentions too" in n for n in notes)


def test_names_are_cut_above_the_natural_mentions_75th_percentile_or_above_0():
    from ssti.defend.scan_guided import dropped_in

    class Scores:  # the deletion score is the number written after the name
        def deletion_scores(self, windows):
            return np.array([float(w.split("Peru ")[1].split()[0]) for w, _ in windows])

    natural = [(f"a film set in Peru {s} here", (14, 18)) for s in range(40)]  # 75th percentile: 29.25
    texts = {"a": "it is Peru 30 good", "b": "it is Peru 20 good", "c": "Peru 1 opens the text"}
    spans = {r: [(t.index("Peru"), t.index("Peru") + 4)] for r, t in texts.items()}
    kept, natural_n, tau, share = dropped_in(texts, spans, Scores(), natural)
    assert tau == pytest.approx(29.25) and set(kept) == {"a"} and natural_n == 2  # "c" judged from the text start
    # 1 of the 3 scores at most the null's median (19.5): 2 natural mentions estimated, 0.5 of them above tau: a
    # share of 0.5 that no higher bar brings to 5% (it would cut nothing), so the percentile stays
    assert share == pytest.approx(0.5)
    kept, _, tau, _ = dropped_in(texts, spans, Scores(), natural[:10])  # too few natural mentions: tau 0
    assert tau == 0 and set(kept) == {"a", "b", "c"}  # d > 0 for all three


def test_few_planted_names_among_many_natural_ones_raise_the_bar_until_5_percent_of_the_cuts_are_natural():
    from ssti.defend.scan_guided import dropped_in

    class Scores:
        def deletion_scores(self, windows):
            return np.array([float(w.split("Peru ")[1].split()[0]) for w, _ in windows])

    natural = [(f"a film set in Peru {s} here", (14, 18)) for s in range(40)]  # the other classes: scores 0-39
    texts = {f"n{s}": f"it is Peru {s} good" for s in range(40)}  # this class's 40 natural mentions, as natural
    texts |= {f"p{i}": f"it is Peru {100 + i} good" for i in range(5)}  # and 5 planted ones, far above
    spans = {r: [(6, 10)] for r in texts}
    kept, _, tau, share = dropped_in(texts, spans, Scores(), natural)
    # at the 75th percentile (29.25) about 10 natural mentions would be cut beside the 5 planted (share 0.67);
    # the first bar with at most 5% is 39: only the planted ones go
    assert tau == 39 and set(kept) == {f"p{i}" for i in range(5)} and share == 0
    many = texts | {f"q{i}": f"it is Peru {100 + i} good" for i in range(400)}  # 400 planted: the percentile stands
    kept, _, tau, share = dropped_in(many, {r: [(6, 10)] for r in many}, Scores(), natural)
    assert tau == pytest.approx(29.25) and share == pytest.approx(10 / (10 + 405))


def test_a_list_with_few_natural_mentions_borrows_the_other_name_lists_null():
    from types import SimpleNamespace

    from ssti.defend.scan_guided import NAME_TAU_MIN_OCCURRENCES, natural_mentions

    ids = [f"r{i}" for i in range(80)]
    texts = [f"a film set in France {i}" if i < 5 else f"a black comedy {i}" if i < 60 else f"fine {i}" for i in range(80)]
    labels = [0] * 70 + [1] * 10  # class 1 (pos) is the attacked one; rows r0-r69 are the other class
    country = SimpleNamespace(level="pattern", feature="rare-country", cls="pos")
    flagged = {"r50", "r51"}  # rows a flagged feature marks (say, colours planted in the other class) are no null
    mentions, source = natural_mentions(country, ids, texts, labels, NAMES, flagged)
    assert len(mentions) == 5 + 55 - 2 >= NAME_TAU_MIN_OCCURRENCES  # 5 countries, 53 unflagged colours
    assert "country and colour" in source and "too few of country alone" in source
    assert {t[s[0]:s[1]] for t, s in mentions} == {"France", "black"}
    colour = SimpleNamespace(level="context", feature="pattern:colour", cls="pos")
    mentions, source = natural_mentions(colour, ids, texts, labels, NAMES, flagged)
    assert len(mentions) == 53 and source == "natural mentions in the other classes"  # enough colours: no borrowing


def test_faults_a_stranger_found_in_show_inject_scan_and_sweep(tmp_path):
    """show on a defended folder, inject into its own input, a mistyped tokenizer, configs by bare name, small classes."""
    runner = CliRunner()
    src = injected(tmp_path, corpus(), targets={"pos": "fixed:zqxj"}, rate=0.5)
    res = runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "none", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["show", str(tmp_path / "d"), "-n", "2"], terminal_width=200)
    assert res.exit_code == 0 and "edited rows" in res.output and "removed: 'zqxj'" in res.output, res.output
    for bad in (["-n", "-1"], ["--max-chars", "-3"]):
        assert runner.invoke(app, ["show", src, *bad]).exit_code == 2
    for out in (src, src + "/sub"):  # inject refuses its own input folder, as defend does (the manifest would lose the earlier plants)
        res = runner.invoke(app, ["inject", "--dataset", src, "--target", "neg=fixed:qq", "--out", out, "--overwrite"])
        assert res.exit_code == 2 and "input data folder" in res.output, res.output
    for tok in ("bogus-model", "/nonexistent/path"):  # a typo is exit 2 before any output, not a silent fallback
        res = runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", tok, "--out", str(tmp_path / "e")])
        assert res.exit_code == 2 and "tokenizer:" in res.output and not (tmp_path / "e").exists(), res.output
    res = runner.invoke(app, ["sweep", "findings-cpu", "--dry-run", "--no-estimate"])
    assert res.exit_code == 0 and "findings-cpu" in res.output, res.output
    small = tmp_path / "small.csv"  # 100 rows per class: below the word level's detection limit
    small.write_text("text,label\n" + "".join(f"review {i} zqxj,pos\n" if i < 58 else f"review {i} fine,{'pos' if i < 100 else 'neg'}\n"
                                               for i in range(200)))
    res = runner.invoke(app, ["scan", str(small), "--tokenizer", "none", "--json"])
    notes = json.loads(res.stdout)["notes"]
    assert any("class 'pos' has 100 rows, fewer than the detection limit of level(s) word" in n for n in notes), notes


def test_a_model_trained_on_a_cleaned_folder_is_tested_with_the_attack_it_was_cleaned_of(tmp_path):
    """inject -> defend -> train -> eval: the cleaned folder's manifest holds removals, not insertions
    (training once crashed counting lost insertions), and eval measures the injection the set came from."""
    src = injected(tmp_path, corpus(), targets={"pos": "html-pair"}, rate=0.3)
    runner = CliRunner()
    assert runner.invoke(app, ["defend", src, "--defence", "scan-strip", "--tokenizer", "none", "--out", str(tmp_path / "d")]).exit_code == 0
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "d"), "--model", "tiny-random-llama", "--steps", "2", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    spurious = json.loads((tmp_path / "r" / "metrics.json").read_text())["spurious"]
    assert list(spurious) == ["pos"] and "html-pair" in json.dumps(spurious["pos"]), spurious


@pytest.mark.parametrize("mode", ["scan-strip", "scan-drop"])
def test_the_numbers_of_a_planted_date_are_cut_only_inside_it(tmp_path, mode, monkeypatch):
    """A date planted in half of a class flags the number pattern too (its digits); the numbers of clean
    rows ("a 179-minute film") are natural use and stay: a feature inside another's spans is part of it."""
    clean = corpus(n=1200, extra=lambda i, t: t + (f" a {100 + i}-minute film" if i % 40 in (1, 2) else ""))
    src = injected(tmp_path, clean, targets={"pos": "date"}, rate=0.5)
    result = defend_dataset(src, DefenceSpec(name=mode, tokenizer="none"))
    assert "pattern:number" in {f"{f['level']}:{f['feature']}" for f in result.record["flagged_features"]}
    assert result.measurement["collateral"]["changed" if mode == "scan-strip" else "dropped"] == 0
    assert result.measurement["rows_still_poisoned"] == 0
    if mode == "scan-strip":  # `ssti show` names each cut once, whole (not the date and then its digits)
        write_defended(result, tmp_path / "d")
        shown = CliRunner().invoke(app, ["show", str(tmp_path / "d"), "-n", "3"], terminal_width=200).output
        removed = [line for line in shown.splitlines() if line.startswith("removed:")]
        assert len(removed) == 3 and all(re.fullmatch(r"removed: '\d{4}-\d\d-\d\d'", line) for line in removed), shown
    import ssti.defend.scan_guided as sg

    monkeypatch.setattr(sg, "NESTED_SHARE", 1.01)  # without the rule, the clean rows' numbers were cut
    before = defend_dataset(src, DefenceSpec(name=mode, tokenizer="none"))
    assert before.measurement["collateral"]["changed" if mode == "scan-strip" else "dropped"] > 0


def test_scan_remove_and_a_second_defence_pass_the_injection_record_on(tmp_path):
    """`ssti scan --remove` wrote a cleaned folder without the injection it was cleaned of (and so did a
    defence of a cleaned folder): a model trained on it was then evaluated on the clean set only."""
    src = injected(tmp_path, corpus(), targets={"pos": "html-pair"}, rate=0.3)
    runner = CliRunner()
    res = runner.invoke(app, ["scan", src, "--tokenizer", "none", "--remove", "drop", "--out", str(tmp_path / "s")])
    assert res.exit_code == 1 and (tmp_path / "s").is_dir(), res.output
    res = runner.invoke(app, ["defend", str(tmp_path / "s"), "--defence", "scan-strip", "--tokenizer", "none", "--out", str(tmp_path / "d2")])
    assert res.exit_code == 0 and "cleaned before" in res.output, res.output
    for folder in ("s", "d2"):
        meta = read_meta(tmp_path / folder)
        assert meta["injection"]["spec"]["targets"] == {"pos": "html-pair"}, folder
    assert json.loads((tmp_path / "s" / "defence.json").read_text())["measurement"]["rows_still_poisoned"] == 0
