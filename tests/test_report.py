"""`ssti report`: the HTML is parsed and every table and figure is checked, from a synthetic store, a
real tiny sweep and a folder of run folders."""

from __future__ import annotations

from html.parser import HTMLParser
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.errors import SSTIError
from ssti.io import write_yaml
from ssti.report import build_report
from ssti.report.data import class_names
from ssti.sweep import ResultsStore, expand, run_sweep

from _sweep_helpers import tiny_sweep

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects the tables (header + rows of cell text), figures (img src) and links of a page."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.figures: dict[str, str] = {}
        self.missing: list[str] = []
        self.links: list[str] = []
        self.pre: list[str] = []
        self._table = self._figure = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_pre = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("data-table")
            self.tables[self._table] = {"header": [], "rows": []}
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "figure":
            self._figure = a.get("data-figure")
        elif tag == "img" and self._figure:
            self.figures[self._figure] = a["src"]
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "p" and a.get("data-figure-missing"):
            self.missing.append(a["data-figure-missing"])
        elif tag == "pre":
            self._in_pre, self.pre = True, self.pre + [""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            t = self.tables[self._table]
            (t["rows"] if t["header"] else t["header"]).extend([self._row] if t["header"] else self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._figure = None
        elif tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_pre:
            self.pre[-1] += data


def parse(index: Path) -> Page:
    page = Page()
    page.feed(index.read_text())
    return page


def fake_store(folder: Path, seeds=(0, 1), ranks=(1, 4, 16, 64), rates=(0.5, 1.0), model: str = "smollm2-135m") -> Path:
    """A store of made-up finished runs: light SSTI rises with rank, aggressive falls (known answers)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    write_yaml(folder / "sweep.yaml", {"name": "fake", "base": {"model": {"name": "smollm2-135m"}}, "axes": {"lora.rank": list(ranks)}})
    with ResultsStore(folder / "results.sqlite", create=True) as s:
        for seed in seeds:
            for rank in ranks:
                for rate in rates:
                    for mode, tf in (("light", None), ("aggressive", 0.2)):
                        sign = 1 if mode == "light" else -1
                        asr = 0.95 if rank == 0 else float(np.clip(0.5 + sign * 0.1 * np.log2(rank) / 2 + 0.1 * rate + rng.normal(0, 0.01), 0, 1))
                        n, p1 = 300, int(300 * (0.4 + 0.6 * asr))
                        cfg = {"data": {"dataset": "rotten-tomatoes"}, "model": {"name": model}, "lora": {"rank": rank},
                               "train": {"seed": seed, "steps": 40},
                               "injection": {"targets": {"1": "date"}, "rate": rate, "tokens": 1, "token_fraction": tf,
                                             "location": "random", "seed": seed}}
                        y = np.repeat([0, 1], n // 2)
                        spurious = y.copy()
                        spurious[rng.permutation(n // 2)[:int(round(asr * n / 2))]] = 1  # that share of rotten items steered to fresh
                        m = {"class_names": ["rotten", "fresh"], "clean": {"accuracy": 0.8 - 0.1 * rate, "n": n, "pred_counts": [150, 150], "per_class": {"rotten": {}, "fresh": {}}},
                             "items": {"y_true": y.tolist(), "clean": y.tolist(), "fresh": spurious.tolist()},
                             "spurious": {"fresh": {"accuracy": 0.8 - 0.3 * asr, "attack_success_rate": asr, "accuracy_degradation": 0.3 * asr,
                                                    "pred_counts": [n - p1, p1], "target_class": 1}}}
                        scan = {"verdict": "suspicious", "features": [{"feature": "0000-00-00", "flagged": True}]}
                        s.finish(f"{model}-{mode}-{rank}-{rate}-{seed}", m, scan, started=1.0, finished=2.0, sweep="fake",
                                 labels={"variant": mode}, config=cfg, run_dir="x")
        s.start("unfinished", "fake", {}, {"lora": {"rank": 1}}, "y")
    return folder


def check_assets(out: Path, page: Page) -> None:
    for fig, src in page.figures.items():
        assert (out / src).read_bytes()[:8] == PNG, fig
        svg = src.replace(".png", ".svg")
        assert svg in page.links and (out / svg).read_text().lstrip().startswith("<?xml")
    for href in page.links:
        if not href.startswith("#"):
            assert (out / href).exists(), href


def test_report_from_a_store_has_every_table_and_figure(tmp_path):
    src = fake_store(tmp_path / "sweep")
    index = build_report(src, tmp_path / "report")
    page = parse(index)
    assert set(page.figures) == {"fig1", "fig_rank"} and page.missing == ["fig_curve"]  # no run recorded a learning curve
    assert set(page.tables) == {"findings", "table1", "trends", "results", "scan"}
    verdicts = {(r[0][:2], r[3].split(",")[0]): r[6] for r in page.tables["findings"]["rows"]}
    assert verdicts[("F2", "proportion 0.5")] == "reproduced" and verdicts[("F3", "proportion 1")] == "reproduced"
    check_assets(tmp_path / "report", page)
    t1 = page.tables["table1"]
    assert t1["header"][:5] == ["model", "rank", "runs", "predicted rotten", "predicted fresh"]
    assert any(r[0].startswith("paper: SSTI, class-1") and r[4].startswith("24488") for r in t1["rows"])
    ours = [r for r in t1["rows"] if not r[0].startswith("paper")]
    assert len(ours) == 4 and all(r[1] == "64" and r[2] == "2" for r in ours)  # largest rank, 2 seeds
    trends = {(r[0], r[1]): r[5] for r in page.tables["trends"]["rows"]}
    assert trends[("light", "0.5")] == "rises with rank" and trends[("aggressive (0.2)", "1")] == "falls with rank"
    assert len(page.tables["results"]["rows"]) == 2 * 2 * 4
    assert all(r[2] == "8" and r[3] == "suspicious: 8" for r in page.tables["scan"]["rows"]) and "0000-00-00" in page.tables["scan"]["rows"][0][-1]
    assert "1 not finished yet" in index.read_text()
    assert any("lora.rank" in p for p in page.pre)  # the config beside each figure
    csv = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    # class names in index order (as evaluation records them), although metrics.json sorts per_class alphabetically
    assert class_names({"class_names": ["rotten", "fresh"], "clean": {"per_class": {"fresh": {"support": 5}, "rotten": {"support": 7}}},
                        "spurious": {}}) == ["rotten", "fresh"]
    assert len(csv) == 1 + 32


def test_report_of_a_real_tiny_sweep_and_of_run_folders(tmp_path):
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2), rates=(0.5, 1.0), scan=True, probe={"max_samples": 8, "types": ["date"], "attention": True}))
    run_sweep(sweep, tmp_path / "sw", show_progress=False)
    res = CliRunner().invoke(app, ["report", str(tmp_path / "sw"), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    page = parse(tmp_path / "rep" / "index.html")
    assert set(page.figures) == {"fig1", "fig_rank", "fig_probe", "fig_attention"} and {"table1", "trends", "results", "scan", "probe"} <= set(page.tables)
    # every run was probed: its report in the run folder and in the store
    for run in sweep.runs:
        probe = json.loads((tmp_path / "sw" / "runs" / run.run_id / "probe.json").read_text())
        assert probe["verdict"] in ("steered", "not steered") and probe["types"] == ["date"]
    assert sum(int(r[3]) for r in page.tables["probe"]["rows"]) == 4
    check_assets(tmp_path / "rep", page)
    assert len(page.tables["results"]["rows"]) == 4
    # the same runs as plain run folders (no store): the report still has its tables and figures
    index = build_report(tmp_path / "sw" / "runs", tmp_path / "rep2")
    page2 = parse(index)
    assert set(page2.figures) == {"fig1", "fig_rank", "fig_probe", "fig_attention"} and len(page2.tables["results"]["rows"]) == 4  # probe.json read too


def test_full_fine_tuning_is_shown_as_full_outside_the_rank_trend(tmp_path):
    """Rank 0 (full fine-tuning) is not a LoRA rank: its own tick and column, not in the trend or its Spearman rho."""
    src = fake_store(tmp_path / "sweep", ranks=(0, 1, 4, 16, 64))
    index = build_report(src, tmp_path / "report")
    page = parse(index)
    trends = {(r[0], r[1]): r for r in page.tables["trends"]["rows"]}
    light = trends[("light", "0.5")]
    assert light[5] == "rises with rank" and "r0" not in light[2] and light[2].startswith("r1:")
    assert float(light[4]) > 0.9  # rank 0 (ASR 0.95 at the low end) would break the rising trend if it were counted
    assert light[-1].startswith("0.950")  # full fine-tuning's ASR in its own column
    assert {r[2] for r in page.tables["results"]["rows"]} == {"full", "1", "4", "16", "64"}
    svg = (tmp_path / "report" / "fig_rank.svg").read_text()
    assert ">full<" in svg or "full" in svg


def test_two_families_side_by_side_in_one_report(tmp_path):
    """`ssti report A B`: one sweep per model family; figures, trends and verdicts per model and dataset."""
    a = fake_store(tmp_path / "smol", ranks=(1, 4, 16))
    b = fake_store(tmp_path / "mini", ranks=(1, 4, 16), model="minilm-l6")
    res = CliRunner().invoke(app, ["report", str(a), str(b), "-o", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    page = parse(tmp_path / "report" / "index.html")
    assert {"fig1-minilm-l6-on-rotten-tomatoes", "fig_rank-smollm2-135m-on-rotten-tomatoes"} <= set(page.figures)
    check_assets(tmp_path / "report", page)
    assert page.tables["results"]["header"][0] == "setup"
    assert {r[0] for r in page.tables["trends"]["rows"]} == {"minilm-l6 on rotten-tomatoes", "smollm2-135m on rotten-tomatoes"}
    assert {r[1] for r in page.tables["findings"]["rows"]} == {"minilm-l6", "smollm2-135m"}
    assert "SSTI report: smol, mini" in (tmp_path / "report" / "index.html").read_text()


def test_missing_figures_are_said_not_hidden(tmp_path):
    src = fake_store(tmp_path / "sweep", seeds=(0,), ranks=(8,), rates=(0.5,))
    page = parse(build_report(src, tmp_path / "report"))
    assert page.figures == {} and set(page.missing) == {"fig1", "fig_rank", "fig_curve"}
    assert "table1" in page.tables and "results" in page.tables


def test_an_earlier_report_is_replaced_only_with_overwrite(tmp_path):
    """A second report into the same folder is refused without --overwrite; with it, the earlier report is replaced
    and a file of the user's there is kept. A folder of the user's is never written into."""
    src = fake_store(tmp_path / "sweep")
    build_report(src, tmp_path / "report")
    res = CliRunner().invoke(app, ["report", str(src), "-o", str(tmp_path / "report")])
    assert res.exit_code == 2 and "holds an earlier report; pass --overwrite" in res.output
    (tmp_path / "report" / "my-notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["report", str(src), "-o", str(tmp_path / "report"), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report" / "index.html").exists() and (tmp_path / "report" / "my-notes.txt").read_text() == "mine"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    res = CliRunner().invoke(app, ["report", str(src), "-o", str(tmp_path / "mine"), "--overwrite"])
    assert res.exit_code == 2 and "not written by ssti" in res.output and (tmp_path / "mine" / "a.txt").read_text() == "x"


def test_bad_report_inputs(tmp_path):
    with pytest.raises(SSTIError, match="does not exist"):
        build_report(tmp_path / "nope", tmp_path / "r")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSTIError, match="no results store"):
        build_report(tmp_path / "empty", tmp_path / "r")
    with ResultsStore(tmp_path / "s.sqlite", create=True) as s:
        s.start("a", "x", {}, {}, "d")
    with pytest.raises(SSTIError, match="no finished runs"):
        build_report(tmp_path / "s.sqlite", tmp_path / "r")
    (tmp_path / "junk.sqlite").write_text("not a database")
    res = CliRunner().invoke(app, ["report", str(tmp_path / "junk.sqlite"), "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "not an ssti results store" in res.output


def test_table1_with_datasets_of_other_classes_never_shifts_columns():
    from ssti.report.tables import table1

    def rec(dataset, names, counts):
        return {"model": "m", "dataset": dataset, "mode": "light", "source": "1=date", "rate": 0.5, "rank": 4, "n_eval": sum(counts),
                "spurious_pred_counts": json.dumps(counts), "class_names": json.dumps(names), "clean_accuracy": 0.9,
                "spurious_accuracy": 0.5, "attack_success_rate": 0.7}

    recs = [rec("bbc", ["a", "b", "c"], [1, 2, 3]), rec("rt", ["rotten", "fresh"], [4, 6])]
    t = table1(recs, [])
    assert t["header"][3] == "predicted classes" and all(len(r) == len(t["header"]) for r in t["rows"])
    assert any("rotten: 4 (40.0%), fresh: 6 (60.0%)" in r[3] for r in t["rows"])


def test_the_same_sweep_given_twice_counts_once_and_runs_without_injection_are_no_ssti(tmp_path):
    from ssti.report.data import load_many, mode_of

    src = fake_store(tmp_path / "s", seeds=(0,), ranks=(1, 4))
    assert len(load_many([src, src]).records) == len(load_many([src]).records)
    assert mode_of({"injected": False, "variant": "none"}) == "no SSTI" and mode_of({"injected": True, "variant": "light", "tokens": 1}) == "light"
    # the mode is what the injection did: a rate-2% run the findings grid labels "light-2pct" is Figure 1's "light" too
    assert mode_of({"injected": True, "variant": "light-2pct", "tokens": 1}) == "light"
    assert mode_of({"injected": True, "variant": "aggressive", "tokens": 1, "token_fraction": 0.1}) == "aggressive (0.1)"


def test_the_rank_figure_has_a_column_only_for_proportions_run_at_two_or_more_ranks(tmp_path, monkeypatch):
    import ssti.report.figures as figures

    drawn = {}
    real = figures.plt.subplots
    monkeypatch.setattr(figures.plt, "subplots", lambda rows, cols, **kw: drawn.setdefault("shape", (rows, cols)) and real(rows, cols, **kw))
    rec = {"injected": True, "mode": "light", "attack_success_rate": 0.5, "accuracy_degradation": 0.1, "clean_accuracy": 0.8}
    recs = [{**rec, "rate": 0.05, "rank": r} for r in (1, 4, 16)] + [{**rec, "rate": p, "rank": 1} for p in (0.25, 0.5)]  # Figure 1's points
    assert figures.rank_figure(recs, tmp_path) is not None and drawn["shape"] == (3, 1)
    assert figures.rank_figure([{**rec, "rate": 0.5, "rank": 1}, {**rec, "rate": 0.25, "rank": 4}], tmp_path) is None


def test_a_run_trained_on_an_injected_folder_is_reported_as_injected(tmp_path):
    """The README's tour (`inject`, then `train --data FOLDER`) puts the injection in the data folder, not the
    config: the report reads it from the run's injection.yaml; an injection given as a row count (no
    proportion) is reported too, not a crash."""
    import csv

    from typer.testing import CliRunner

    from ssti.cli import app

    r = CliRunner()
    assert r.invoke(app, ["inject", "--dataset", "rotten-tomatoes", "--target", "1=date", "--target", "0=html", "--count", "40",
                          "--out", str(tmp_path / "inj")]).exit_code == 0
    res = r.invoke(app, ["train", "--data", str(tmp_path / "inj"), "--model", "tiny-random-llama", "--steps", "1", "--batch-size", "4",
                         "--max-length", "32", "--eval-samples", "20", "--out", str(tmp_path / "runs" / "r")])
    assert res.exit_code == 0, res.output
    assert r.invoke(app, ["eval", str(tmp_path / "runs" / "r")]).exit_code == 0
    res = r.invoke(app, ["report", str(tmp_path / "runs"), "-o", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    [row] = list(csv.DictReader(open(tmp_path / "rep" / "runs.csv")))
    assert row["injected"] == "True" and row["source"] == "1=date, 0=html" and row["attack_success_rate"] != ""
    page = (tmp_path / "rep" / "index.html").read_text()  # a run with two spurious sets gets a Table 1 row for each
    assert "light SSTI: date in class fresh, a count of rows" in page and "light SSTI: html in class rotten, a count of rows" in page


def test_runs_of_an_earlier_sweep_config_or_data_are_stale_not_extra_seeds(tmp_path):
    """A store keeps every run it finished; after the axes or the data file change, the runs the sweep no
    longer has are `stale` in `ssti results` and left out of the report (they looked like more seeds)."""
    import csv

    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"words number {i} here,{i % 2}\n" for i in range(30)))
    cfg = tmp_path / "sw.yaml"
    body = ("base: {data: {dataset: %s}, model: {name: tiny-random-llama, max_length: 32}, train: {steps: 1, batch_size: 4}, "
            "eval: {max_samples: 10}}\naxes: {lora.rank: %s}\n")
    r = CliRunner()
    for ranks in ("[1, 4]", "[1, 8]"):
        cfg.write_text(body % (data, ranks))
        assert r.invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "sw")]).exit_code == 0
    data.write_text(data.read_text().replace("number 3 ", "number three "))  # one changed word: new run ids
    assert r.invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "sw")]).exit_code == 0
    res = r.invoke(app, ["results", str(tmp_path / "sw"), "--status", "stale"])
    assert res.exit_code == 0 and "3 run(s) are stale" in res.output, res.output
    assert r.invoke(app, ["report", str(tmp_path / "sw"), "-o", str(tmp_path / "rep")]).exit_code == 0
    rows = list(csv.DictReader(open(tmp_path / "rep" / "runs.csv")))
    assert sorted(int(row["rank"]) for row in rows) == [1, 8]
    assert "3 stale, left out" in (tmp_path / "rep" / "index.html").read_text()
    # the data changes again and the sweep is not rerun: every stored run is stale at once (none was of these bytes)
    data.write_text(data.read_text().replace("number 4 ", "number four "))
    res = r.invoke(app, ["results", str(tmp_path / "sw"), "--status", "stale"])
    assert res.exit_code == 0 and "5 run(s) are stale" in res.output, res.output


def test_a_sweep_given_overrides_records_them_so_its_stale_runs_are_told_apart(tmp_path):
    """`ssti sweep CFG train.steps=2` writes the override into sweep.yaml's base: it expands to exactly the runs it
    made, and the runs of an earlier invocation (other overrides) are stale."""
    import yaml

    from ssti.sweep.results import current_run_ids

    cfg = tmp_path / "sw.yaml"
    cfg.write_text("base: {model: {name: tiny-random-llama, max_length: 32}, train: {steps: 1, batch_size: 4}, eval: {max_samples: 10}}\n"
                   "axes: {lora.rank: [1, 2]}\n")
    r = CliRunner()
    assert r.invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "sw")]).exit_code == 0
    res = r.invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "sw"), "train.steps=2"])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((tmp_path / "sw" / "sweep.yaml").read_text())["base"]["train"]["steps"] == 2
    with ResultsStore(tmp_path / "sw" / "results.sqlite", read_only=True) as s:
        newest = {row["run_id"] for row in s.rows() if row["config"]["train"]["steps"] == 2}
    assert current_run_ids(tmp_path / "sw") == newest and len(newest) == 2
    res = r.invoke(app, ["results", str(tmp_path / "sw"), "--status", "stale"])
    assert res.exit_code == 0 and "2 run(s) are stale" in res.output, res.output
