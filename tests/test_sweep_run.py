"""Running sweeps: local (sequential and worker processes), resume after kill -9, failures, Ray."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from ssti.errors import SSTIError
from ssti.sweep import ResultsStore, expand, run_sweep, store_path
from ssti.sweep.executors import check_address

from _sweep_helpers import tiny_sweep


def _rows(out):
    with ResultsStore(store_path(out)) as s:
        return s.rows()


def test_local_sweep_writes_rows_and_skips_finished_runs(tmp_path):
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2), scan=True))
    out = tmp_path / "sw"
    counts = run_sweep(sweep, out, show_progress=False)
    assert counts == {"total": 2, "skipped": 0, "done": 2, "failed": 0}
    rows = _rows(out)
    assert sorted(r["run_id"] for r in rows) == sorted(r.run_id for r in sweep.runs)
    for r in rows:
        assert r["status"] == "done" and r["finished"] >= r["started"]
        assert set(r["metrics"]) >= {"train", "clean", "spurious"}
        assert r["config"]["lora"]["rank"] == r["labels"]["lora.rank"]
        assert (out / "runs" / r["run_id"] / "metrics.json").exists() and r["run_dir"].endswith(r["run_id"])
        assert r["scan"]["verdict"] in ("clean", "suspicious") and "flagged_rows" not in r["scan"]
    assert (out / "sweep.yaml").exists()
    before = {r["run_id"]: r["finished"] for r in rows}
    again = run_sweep(sweep, out, show_progress=False)
    assert again["skipped"] == 2 and again["done"] == 0
    assert {r["run_id"]: r["finished"] for r in _rows(out)} == before
    # a grown grid runs only the new run
    bigger = expand(tiny_sweep(tmp_path, ranks=(1, 2, 4)))
    assert run_sweep(bigger, out, show_progress=False)["done"] == 1
    assert len(_rows(out)) == 3


def test_failed_run_is_recorded_and_retried(tmp_path, monkeypatch):
    raw = tiny_sweep(tmp_path, ranks=(1, 2))
    sweep = expand(raw)
    bad = sweep.runs[1]
    import ssti.pipeline

    real = ssti.pipeline.run_pipeline

    def flaky(config, out, **kw):
        if str(out).endswith(bad.run_id):
            raise SSTIError("simulated failure")
        return real(config, out, **kw)

    monkeypatch.setattr(ssti.pipeline, "run_pipeline", flaky)
    counts = run_sweep(sweep, tmp_path / "sw", show_progress=False)
    assert counts["done"] == 1 and counts["failed"] == 1
    status = {r["run_id"]: (r["status"], r["error"]) for r in _rows(tmp_path / "sw")}
    assert status[bad.run_id] == ("failed", "simulated failure")
    monkeypatch.setattr(ssti.pipeline, "run_pipeline", real)
    counts = run_sweep(sweep, tmp_path / "sw", show_progress=False)
    assert counts == {"total": 2, "skipped": 1, "done": 1, "failed": 0}
    assert {r["status"] for r in _rows(tmp_path / "sw")} == {"done"}


def test_ctrl_c_leaves_no_run_marked_running(tmp_path, monkeypatch):
    """Every run is marked running when handed to the executor; a Ctrl-C after the first finished left the
    queued ones "running" for good. Now only finished rows stay; the rerun does the rest."""
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2, 4)))
    import ssti.sweep.executors as ex

    real = ex.run_local

    def interrupted(tasks, done, audits, **kw):
        real(list(tasks)[:1], done, audits, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "run_local", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, tmp_path / "sw", show_progress=False)
    assert [r["status"] for r in _rows(tmp_path / "sw")] == ["done"]
    monkeypatch.setattr(ex, "run_local", real)
    assert run_sweep(sweep, tmp_path / "sw", show_progress=False) == {"total": 3, "skipped": 1, "done": 2, "failed": 0}


def test_a_run_folder_holding_the_users_files_is_refused_before_any_run(tmp_path):
    run_sweep(expand(tiny_sweep(tmp_path, ranks=(1,))), tmp_path / "sw", show_progress=False)
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2, 4)))  # the grid grows; the user left a file in one new run's folder
    blocked = tmp_path / "sw" / "runs" / sweep.runs[2].run_id
    blocked.mkdir(parents=True)
    (blocked / "mine.txt").write_text("mine")
    with pytest.raises(SSTIError, match="not written by ssti"):
        run_sweep(sweep, tmp_path / "sw", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "sw" / "runs").iterdir()) == sorted([sweep.runs[0].run_id, sweep.runs[2].run_id])
    assert (blocked / "mine.txt").read_text() == "mine" and len(_rows(tmp_path / "sw")) == 1


def test_kill_9_mid_sweep_then_rerun_redoes_only_unfinished(tmp_path):
    """A sweep process killed with SIGKILL after its first finished run: the rerun keeps that row and
    completes the rest, with exactly one row per run."""
    raw = tiny_sweep(tmp_path, ranks=(1, 2, 4, 8))
    raw["base"]["train"]["steps"] = 8
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "sw"
    ssti = [sys.executable, "-m", "ssti", "sweep", str(path), "--out", str(out)]
    proc = subprocess.Popen(ssti, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        done = []
        while time.time() < deadline and not done:
            time.sleep(0.2)
            if store_path(out).exists():
                try:
                    done = [r for r in _rows(out) if r["status"] == "done"]
                except (SSTIError, Exception):
                    done = []
        assert done, "the sweep finished no run within the deadline"
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rows = _rows(out)
    n_done = sum(r["status"] == "done" for r in rows)
    assert 1 <= n_done < 4 and len(rows) == 4  # the killed sweep had registered every run
    kept = {r["run_id"]: r["finished"] for r in rows if r["status"] == "done"}
    res = subprocess.run(ssti, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = _rows(out)
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 4
    assert {r["status"] for r in rows} == {"done"}
    assert {r["run_id"]: r["finished"] for r in rows if r["run_id"] in kept} == kept  # finished runs not redone
    assert f"{n_done} of 4 runs already done" in res.stderr
    assert sorted(p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")) == sorted(r["run_id"] for r in rows)


def test_local_worker_processes(tmp_path):
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2)))
    counts = run_sweep(sweep, tmp_path / "sw", workers=2, show_progress=False)
    assert counts["done"] == 2
    assert {r["status"] for r in _rows(tmp_path / "sw")} == {"done"}


def test_dead_ray_address_fails_fast_with_a_clear_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free port: nothing listens there once closed
    t0 = time.time()
    with pytest.raises(SSTIError, match="no Ray cluster answers") as e:
        check_address(f"127.0.0.1:{port}", timeout=2)
    assert time.time() - t0 < 10 and "\n" not in str(e.value)
    with pytest.raises(SSTIError, match="HOST:PORT"):
        check_address("nonsense")


def test_ray_executor_on_a_local_instance(tmp_path):
    pytest.importorskip("ray")
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 2)))
    counts = run_sweep(sweep, tmp_path / "sw", executor="ray", workers=2, show_progress=False)
    assert counts == {"total": 2, "skipped": 0, "done": 2, "failed": 0}
    rows = _rows(tmp_path / "sw")
    assert {r["status"] for r in rows} == {"done"} and all(r["metrics"]["clean"]["n"] == 12 for r in rows)
    # the rerun on Ray skips both
    assert run_sweep(sweep, tmp_path / "sw", executor="ray", workers=2, show_progress=False)["skipped"] == 2


def test_ray_dead_address_via_run_sweep(tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SSTIError, match="no Ray cluster answers"):
        run_sweep(expand(tiny_sweep(tmp_path)), tmp_path / "sw", executor="ray", address=f"127.0.0.1:{port}", timeout=2,
                  show_progress=False)
    assert not (tmp_path / "sw").exists()  # refused before anything was written: no run left marked running


def test_killing_the_driver_of_a_multi_worker_sweep_leaves_no_orphans(tmp_path):
    """kill -9 of the driver only (not its process group): the spawned workers die with it."""
    import psutil

    raw = tiny_sweep(tmp_path, ranks=(1, 2, 4, 8))
    raw["base"]["train"]["steps"] = 200
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "ssti", "sweep", str(path), "--out", str(tmp_path / "sw"), "--workers", "2", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.time() + 120, []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(2)
        proc.kill()  # SIGKILL to the driver alone
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, [p.pid for p in alive]
    finally:
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                p.kill()
