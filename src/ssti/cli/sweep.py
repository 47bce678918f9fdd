"""`ssti sweep` and `ssti results`: thin layers over ssti.sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ssti.cli.app import command
from ssti.cli.options import out_path
from ssti.errors import SSTIError


@command("sweep")
def sweep_command(
    config: Path = typer.Argument(..., help="sweep YAML: base run config + axes (+ zip, variants, scan, executor)"),
    overrides: Optional[list[str]] = typer.Argument(None, help="dotted KEY=VALUE overrides of the base run config, e.g. train.steps=20", show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", "-o", parser=out_path, metavar="<path>", help="sweep folder (runs/ + results.sqlite); default runs/<config name>"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the runs (and which are done) without running anything"),
    executor: Optional[str] = typer.Option(None, "--executor", help="local | ray (default: the config's, else local)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="local: worker processes; ray without --address: CPUs of the local instance"),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address HOST:PORT, ray://HOST:PORT or auto (default: start a local instance)"),
    timeout: float = typer.Option(10.0, "--timeout", help="ray: seconds to wait for --address to answer"),
    threads: Optional[int] = typer.Option(None, "--threads", help="local: torch CPU threads per run (1 on a busy shared machine)"),
    no_estimate: bool = typer.Option(False, "--no-estimate", help="--dry-run: list the runs without estimating their time (which "
                                     "loads each model and dataset once)"),
) -> None:
    """Run a grid of runs; finished runs are skipped, interrupted ones resumed, results go to results.sqlite."""
    from ssti.config import parse_overrides
    from ssti.sweep import load_sweep, run_sweep, store_path
    from ssti.sweep.store import ResultsStore

    sweep = load_sweep(config, parse_overrides(overrides))
    out = out or Path("runs") / sweep.name
    if workers is not None and workers < 1:
        raise SSTIError(f"--workers: {workers} is not a positive integer")
    if threads is not None and threads < 1:
        raise SSTIError(f"--threads: {threads} is not a positive integer")
    if dry_run:
        from ssti.sweep.run import check_sweep_folder

        check_sweep_folder(out, sweep.name)
        finished = []
        if store_path(out).exists():
            with ResultsStore(store_path(out), read_only=True) as store:
                finished = store.rows("done")
        done = {row["run_id"] for row in finished}
        cost = None
        if not no_estimate:
            from ssti.sweep.estimate import estimate_sweep

            cost = estimate_sweep(sweep, finished)
        table = Table(title=f"{sweep.name}: {len(sweep.runs)} runs -> {out}")
        table.add_column("run id", no_wrap=True)
        keys = list(dict.fromkeys(k for r in sweep.runs for k in r.labels))
        for k in keys:
            table.add_column(k)
        table.add_column("status")
        if cost:
            table.add_column("est. minutes", justify="right")
        for r in sweep.runs:
            cells = [r.run_id, *(str(r.labels.get(k, "")) for k in keys), "done" if r.run_id in done else "to run"]
            table.add_row(*cells, *([f"{cost.runs[r.run_id].seconds / 60:.1f}"] if cost else []))
        Console().print(table)
        if cost:
            from ssti.provenance import machine_memory_gb

            Console().print(cost.summary())
            memory = cost.memory_warning(workers or sweep.workers, machine_memory_gb())
            if memory:
                Console().print(memory)
        return
    counts = run_sweep(sweep, out, executor=executor, workers=workers, address=address, timeout=timeout, threads=threads)
    Console().print(f"{counts['done']} runs done, {counts['failed']} failed, {counts['skipped']} already done "
                    f"(of {counts['total']}); results: {store_path(out)}")
    if counts["failed"]:
        raise typer.Exit(1)


@command("results")
def results_command(
    store: Path = typer.Argument(..., help="a results.sqlite, the sweep folder holding it, or a folder of run folders "
                                 "(e.g. runs/demo)"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="export every run as CSV"),
    parquet: Optional[Path] = typer.Option(None, "--parquet", help="export every run as parquet"),
    status: Optional[str] = typer.Option(None, "--status", help="only runs of this status: done | running | failed | stale (finished under an earlier version of the sweep config or its data)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --csv/--parquet file"),
) -> None:
    """Show (or export) the runs of a sweep's results store: settings, clean accuracy, ASR, scan verdict."""
    from ssti.sweep import STORE_NAME, export, records, sweep_running

    if status not in (None, "done", "running", "failed", "stale"):
        raise SSTIError(f"--status: {status!r} is not allowed; expected done, running, failed or stale")
    from ssti.io import check_output_file

    def exported(path: Path) -> bool:  # an earlier export of a results store: its first column is run_id
        if path.suffix.lower() == ".csv":
            return path.read_text(encoding="utf-8").partition("\n")[0].split(",")[0] == "run_id"
        import pyarrow.parquet as pq

        return pq.read_schema(path).names[:1] == ["run_id"]

    for out, suffix in ((csv, ".csv"), (parquet, ".parquet")):  # both checked before either is written
        if out is not None and (out.suffix.lower() != suffix or out.is_dir()):
            raise SSTIError(f"--{suffix[1:]}: {out} is not a file name ending in {suffix}")
        if out is not None:
            check_output_file(out, overwrite, exported, "ssti results export", field=f"--{suffix[1:]}")
    runs = store.is_dir() and not (store / STORE_NAME).exists()  # a folder of run folders (no store)
    if runs:
        from ssti.io import read_marker

        kind = (read_marker(store) or {}).get("kind")
        if kind and kind not in ("sweep", "run"):
            raise SSTIError(f"store: {store} is an ssti {kind} folder, not a sweep folder or a folder of runs (it has no {STORE_NAME})")
        if kind == "sweep":
            raise SSTIError(f"store: {store} is a sweep folder with no {STORE_NAME} yet (no run has started)")
    path = store if runs else store / STORE_NAME if store.is_dir() else store
    recs = records(path, status)
    stale = [r for r in recs if r["status"] == "running"] if not runs and not sweep_running(path.parent) else []
    for r in stale:  # the sweep that marked them was killed (kill -9, a crash of the machine): none is running
        r["status"] = "stopped"
    for out in (csv, parquet):
        if out:
            export(recs, out)
            Console().print(f"wrote {len(recs)} rows to {out}")
    if csv or parquet:
        return
    cols = {"run_id": "run id", "status": "status", "grid": "grid", "dataset": "dataset", "variant": "variant", "rank": "rank", "rate": "rate", "tokens": "tokens",
            "token_fraction": "fraction", "train_seed": "seed", "clean_accuracy": "clean acc", "spurious_accuracy": "acc w/ token",
            "attack_success_rate": "ASR", "scan_verdict": "scan"}
    if any(r.get("defence") for r in recs):  # a sweep with a defence stage: what it removed and what it damaged
        cols |= {"defence": "defence", "defence_retention": "retention", "defence_collateral": "clean rows changed"}
    table = Table(title=f"{path}: {len(recs)} runs")
    for c, title in cols.items():
        table.add_column(title, no_wrap=c == "run_id")
    for r in recs:
        table.add_row(*(f"{r[c]:.3f}" if isinstance(r[c], float) and c not in ("rate", "token_fraction") else
                        "" if r.get(c) is None else str(r[c]) for c in cols))
    import sys

    Console(width=None if sys.stdout.isatty() else 240).print(table)  # piped (| head, > file): wide enough to read
    earlier = sum(r["status"] == "stale" for r in recs)
    if earlier:
        Console(stderr=True).print(f"[yellow]note:[/] {earlier} run(s) are stale: finished under an earlier version of "
                                   f"{path.parent / 'sweep.yaml'} or its data, they are not runs of the sweep as it is now "
                                   f"(reports leave them out)")
    if stale:
        Console(stderr=True).print(f"[yellow]note:[/] {len(stale)} run(s) are marked running but no sweep is running into {path.parent} "
                                   f"(it was killed): shown as stopped; the same `ssti sweep` command resumes them")
