"""The SQLite results store: round trip, statuses, export, and refusing files that are not stores."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.errors import SSTIError
from ssti.sweep import ResultsStore, export, records

CONFIG = {"data": {"dataset": "rotten-tomatoes"}, "lora": {"rank": 4}, "train": {"seed": 1, "steps": 3},
          "model": {"name": "tiny-random-llama"},
          "injection": {"targets": {"1": "date"}, "rate": 0.5, "tokens": 1, "token_fraction": None, "location": "random", "seed": 1}}
METRICS = {"clean": {"accuracy": 0.8, "balanced_accuracy": 0.75, "f1_macro": 0.7, "n": 10, "pred_counts": [4, 6], "per_class": {"a": {}, "b": {}}},
           "spurious": {"b": {"accuracy": 0.5, "attack_success_rate": 0.9, "accuracy_degradation": 0.3, "pred_counts": [1, 9], "target_class": 1}}}


def test_round_trip_statuses_and_wal(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsStore(path, create=True) as s:
        s.start("a", "sw", {"lora.rank": 4}, CONFIG, "runs/a")
        s.start("b", "sw", {"lora.rank": 8}, CONFIG, "runs/b")
        assert s.done_ids() == set()
        s.finish("a", METRICS, {"verdict": "suspicious", "features": [{"feature": "0000-00-00", "flagged": True}]}, started=10.0, finished=20.0)
        s.finish("b", None, error="boom")
        s.start("a", "sw", {}, {}, "elsewhere")  # a done row is never reset by a later start
    with ResultsStore(path) as s:
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = {r["run_id"]: r for r in s.rows()}
        assert s.done_ids() == {"a"}
    a, b = rows["a"], rows["b"]
    assert a["status"] == "done" and a["metrics"] == METRICS and a["config"] == CONFIG and a["labels"] == {"lora.rank": 4}
    assert a["started"] == 10.0 and a["finished"] == 20.0 and a["run_dir"] == "runs/a" and a["scan"]["verdict"] == "suspicious"
    assert b["status"] == "failed" and b["error"] == "boom" and b["metrics"] is None and b["run_dir"] == "runs/b"


def test_flat_records_and_export(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsStore(path, create=True) as s:
        for i, rank in enumerate((1, 4, 16)):
            s.finish(f"r{i}", METRICS, started=1.0, finished=3.5, sweep="sw", labels={"variant": "light"},
                     config={**CONFIG, "lora": {"rank": rank}}, run_dir=f"runs/r{i}")
    recs = records(path)
    assert [r["rank"] for r in recs] == [1, 4, 16]
    r = recs[0]
    assert (r["clean_accuracy"], r["attack_success_rate"], r["spurious_set"], r["rate"], r["tokens"], r["variant"], r["seconds"]) == \
        (0.8, 0.9, "b", 0.5, 1, "light", 2.5)
    export(recs, tmp_path / "out.csv")
    export(recs, tmp_path / "out.parquet")
    with (tmp_path / "out.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and rows[2]["rank"] == "16" and float(rows[0]["attack_success_rate"]) == 0.9
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 3 and table.column("rank").to_pylist() == [1, 4, 16]
    with pytest.raises(SSTIError, match=r"\.csv or \.parquet"):
        export(recs, tmp_path / "out.xlsx")
    export([], tmp_path / "none.csv")  # an empty selection (--status failed, none failed) is still a table: the header
    export([], tmp_path / "none.parquet")
    assert (tmp_path / "none.csv").read_text().split("\n")[0].split(",") == list(recs[0])
    assert pq.read_table(tmp_path / "none.parquet").column_names == list(recs[0])


def test_results_cli_table_and_export(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultsStore(path, create=True) as s:
        s.finish("r0", METRICS, started=1.0, finished=2.0, sweep="sw", labels={}, config=CONFIG, run_dir="x")
    res = CliRunner().invoke(app, ["results", str(tmp_path), "--csv", str(tmp_path / "x.csv"), "--parquet", str(tmp_path / "x.parquet")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "x.csv").read_text().count("\n") == 2 and (tmp_path / "x.parquet").exists()
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["results", str(path)])
    assert res.exit_code == 0 and "r0" in res.output and "0.900" in res.output
    res = CliRunner().invoke(app, ["results", str(path), "--status", "nope"])
    assert res.exit_code == 2 and "--status" in res.output


def test_files_that_are_not_stores_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    for path, words in [(text, "not an SQLite file"), (other, "tables: t"), (empty, "not an SQLite file"),
                        (tmp_path / "missing.sqlite", "does not exist"), (tmp_path, "folder")]:
        with pytest.raises(SSTIError, match=words) as e:
            ResultsStore(path)
        assert "\n" not in str(e.value)
    assert text.read_text() == "hello"  # never touched
    res = CliRunner().invoke(app, ["results", str(other)])
    assert res.exit_code == 2 and "not an ssti results store" in res.output


def test_asr_baseline_from_the_clean_confusion_matrix():
    from ssti.sweep.results import clean_target_rate

    # rows = true class, columns = predicted; 2 of the 10 non-target (class 0) samples predicted 1
    assert clean_target_rate({"confusion_matrix": [[8, 2], [3, 7]]}, 1) == 0.2
    assert clean_target_rate({"confusion_matrix": [[5, 1, 4], [0, 9, 1], [2, 2, 6]]}, 2) == 5 / 20
    assert clean_target_rate({}, 1) is None and clean_target_rate({"confusion_matrix": [[1]]}, 3) is None


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path):
    """Two `ssti sweep` processes into one folder would run the same runs twice into one store."""
    import sys

    from ssti.sweep.run import sweep_lock

    sys.path.insert(0, str(Path(__file__).parent))
    from _sweep_helpers import tiny_sweep
    from ssti.sweep import expand, run_sweep

    out = tmp_path / "sw"
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2)))
    assert run_sweep(sweep, out, show_progress=False)["done"] == 2
    held = sweep_lock(out)  # another sweep holds it (flock: per open file, so this process counts as another)
    try:
        with pytest.raises(SSTIError, match=r"another ssti sweep \(pid \d+\) is running into"):
            run_sweep(sweep, out, show_progress=False)
    finally:
        held.close()
    assert run_sweep(sweep, out, show_progress=False)["skipped"] == 2  # released: it runs (nothing left to do)


def test_a_finished_run_is_in_the_main_file_while_the_store_is_open(tmp_path):
    # the findings stores are committed to git while their sweeps run, without the (ignored) WAL file
    path = tmp_path / "results.sqlite"
    with ResultsStore(path, create=True) as s:
        s.start("a", "sw", {}, CONFIG, "runs/a")
        s.finish("a", METRICS)
        copy = tmp_path / "copy.sqlite"
        copy.write_bytes(path.read_bytes())  # the main file alone, as git would see it
        conn = sqlite3.connect(copy)
        assert conn.execute("SELECT run_id, status FROM runs").fetchall() == [("a", "done")]
        conn.close()


def test_results_shows_runs_of_a_killed_sweep_as_stopped(tmp_path):
    """A sweep marks every run running when it hands it out; after kill -9 no sweep holds the folder's lock,
    so `results` shows those rows as stopped (and says the same command resumes them)."""
    from ssti.sweep.run import sweep_lock

    with ResultsStore(tmp_path / "results.sqlite", create=True) as s:
        s.start("r0", "sw", {}, CONFIG, "runs/r0")
    res = CliRunner().invoke(app, ["results", str(tmp_path)], terminal_width=240)
    assert res.exit_code == 0 and "stopped" in res.output and "no sweep is running" in res.output, res.output
    lock = sweep_lock(tmp_path)  # a live sweep: its rows are running
    try:
        res = CliRunner().invoke(app, ["results", str(tmp_path)], terminal_width=240)
        assert "running" in res.output and "stopped" not in res.output, res.output
    finally:
        lock.close()


def test_a_read_only_open_of_a_quiet_store_leaves_no_files_beside_it(tmp_path):
    """`ssti results`/`report` on a committed store (no -wal beside it) must not leave -wal/-shm files."""
    from ssti.sweep.store import ResultsStore

    path = tmp_path / "results.sqlite"
    with ResultsStore(path, create=True) as s:
        s.start("r1", "tiny", {}, {"lora": {"rank": 1}}, "x")
    before = sorted(p.name for p in tmp_path.iterdir())
    with ResultsStore(path, read_only=True) as s:
        assert s.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["results.sqlite"]
