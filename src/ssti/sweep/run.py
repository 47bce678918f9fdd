"""Run a sweep into a folder: `runs/<run id>/` per run, `results.sqlite` beside them, `sweep.yaml`.

Runs whose row is `done` are skipped; every other run (never started, killed mid-way, failed) is
(re)done, resuming from its checkpoint where it has one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ssti.errors import SSTIError
from ssti.io import check_output, write_marker, write_yaml
from ssti.sweep.grid import Sweep
from ssti.sweep.store import ResultsStore

STORE_NAME = "results.sqlite"
RUNS_DIR = "runs"
LOCK_NAME = ".ssti-sweep.lock"  # held (flock) while a sweep runs into the folder: a second one is refused


def sweep_lock(out: Path):
    """Hold the sweep folder's lock (an open file, released when closed or when the process dies); a second
    sweep into the same folder is a one-line SSTIError naming the process that holds it."""
    import fcntl
    import os

    f = open(out / LOCK_NAME, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise SSTIError(f"out: another ssti sweep (pid {holder}) is running into {out}; wait for it to finish or stop it") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def sweep_running(out: str | Path) -> bool:
    """Whether a sweep holds the lock of folder `out` now. The lock dies with its process (even by
    kill -9), so rows still marked running in a folder no sweep holds were stopped, not running."""
    import fcntl

    try:
        f = open(Path(out) / LOCK_NAME)
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def store_path(out: str | Path) -> Path:
    """Where a sweep folder keeps its results store."""
    return Path(out) / STORE_NAME


def check_sweep_folder(out: Path, name: str) -> None:
    """Refuse (one line) a sweep folder `out` that `ssti sweep` may not write: anything `check_output` refuses,
    or a sweep folder holding another sweep (the same sweep may grow; another would mix its runs into this
    store). `--dry-run` checks the same, so it says what the real run would say."""
    check_output(out, "sweep")  # a new or empty folder, or a sweep folder of ours: nothing else is touched
    if (out / "sweep.yaml").is_file():
        from ssti.io import read_yaml

        earlier = read_yaml(out / "sweep.yaml")
        held = str((earlier or {}).get("name") or "") if isinstance(earlier, dict) else ""
        if held and held != name:
            raise SSTIError(f"out: {out} holds the sweep {held!r}, not {name!r}; give another --out")


def run_sweep(sweep: Sweep, out: str | Path, executor: str | None = None, workers: int | None = None,
              address: str | None = None, timeout: float = 10.0, show_progress: bool = True,
              retry_failed: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Execute the unfinished runs of `sweep` into `out` and record each in the store as it finishes.

    `threads` caps torch's CPU threads per local run (on a shared machine, 1 thread per run avoids
    the slowdown of oversubscribed cores). Returns counts: total, skipped (already done), done, failed.
    """
    out = Path(out)
    executor = executor or sweep.executor
    workers = workers or sweep.workers
    if executor not in ("local", "ray"):
        raise SSTIError(f"--executor: {executor!r} is not allowed; expected 'local' or 'ray'")
    check_sweep_folder(out, sweep.name)
    from ssti.pipeline import check_classes

    check_classes([r.config for r in sweep.runs])  # every run's classes, before anything is written
    if (out / RUNS_DIR).is_dir():
        for r in sweep.runs:  # a run folder holding the user's files is refused now, not after hours of other runs
            check_output(out / RUNS_DIR / r.run_id, "run")
    if executor == "ray" and address and address != "auto":
        from ssti.sweep.executors import check_address

        check_address(address, timeout)  # a dead cluster is refused before any run is marked as running
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    counts = {"total": len(sweep.runs), "skipped": 0, "done": 0, "failed": 0}
    with sweep_lock(out), ResultsStore(store_path(out), create=True) as store:  # a foreign store is refused before anything is written
        write_marker(out, "sweep", ["sweep.yaml", STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm", RUNS_DIR, LOCK_NAME])
        write_yaml(out / "sweep.yaml", {"name": sweep.name, **{k: v for k, v in sweep.raw.items() if k != "name"}})
        finished = store.done_ids() if retry_failed else {r["run_id"] for r in store.rows() if r["status"] in ("done", "failed")}
        todo = [r for r in sweep.runs if r.run_id not in finished]
        counts["skipped"] = len(sweep.runs) - len(todo)
        by_id = {r.run_id: r for r in todo}
        tasks = []
        for r in todo:
            run_dir = str(out / RUNS_DIR / r.run_id)
            store.start(r.run_id, sweep.name, r.labels, r.resolved, run_dir)
            tasks.append((r.run_id, r.resolved, run_dir))
        if counts["skipped"]:
            console.print(f"{counts['skipped']} of {len(sweep.runs)} runs already done; {len(todo)} to run")
        with Progress(TextColumn("[bold]sweep[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not show_progress) as progress:
            bar = progress.add_task(sweep.name, total=len(todo))

            def done(rid: str, result: dict) -> None:
                store.finish(rid, result.get("metrics"), result.get("scan"), result.get("error"),
                             started=result.get("started"), finished=result.get("finished") or time.time())
                ok = not result.get("error")
                counts["done" if ok else "failed"] += 1
                progress.advance(bar)
                label = ", ".join(f"{k}={v}" for k, v in by_id[rid].labels.items())
                if ok:
                    m = result["metrics"]
                    spur = next(iter(m.get("spurious", {}).values()), None)
                    extra = f", ASR {spur['attack_success_rate']:.3f}" if spur and spur.get("attack_success_rate") is not None else ""
                    progress.console.print(f"[green]done[/] {rid} {escape(f'[{label}]')}: clean acc {m['clean']['accuracy']:.3f}{extra}")
                else:
                    progress.console.print(f"[red]failed[/] {rid} {escape(f'[{label}]')}: {escape(result['error'].splitlines()[0])}")

            try:
                if executor == "ray":
                    from ssti.sweep.executors import run_ray

                    run_ray(tasks, done, sweep.audits, address=address, cpus=sweep.resources.get("cpus", 1),
                            gpus=sweep.resources.get("gpus", 0), timeout=timeout, local_cpus=workers if workers > 1 else None)
                else:
                    from ssti.sweep.executors import run_local

                    run_local(tasks, done, sweep.audits, workers=workers, threads=threads or sweep.threads)
            except SSTIError as e:  # the executor itself failed (no cluster, ...): no run is left marked running
                statuses = {r["run_id"]: r["status"] for r in store.rows()}
                for rid in by_id:
                    if statuses.get(rid) == "running":
                        store.finish(rid, None, None, f"not run: {e}")
                raise
            except BaseException:  # Ctrl-C or a crash: the runs it stopped are not running any more (a rerun resumes them)
                store.forget_unfinished(by_id)
                raise
    return counts
