"""`ssti report`: a thin layer over ssti.report.build_report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ssti.cli.app import command
from ssti.cli.options import out_path


@command("report")
def report_command(
    runs: list[Path] = typer.Argument(..., help="a sweep folder (with results.sqlite), a results.sqlite, or a folder of run "
                                      "folders; several side by side (e.g. one sweep per model family)"),
    out: Path = typer.Option(..., "--out", "-o", parser=out_path, metavar="<path>", help="folder for index.html, the figures (PNG + SVG) and runs.csv"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier report in --out (never anything else)."),
) -> None:
    """Write a static HTML report: Table 1 analogue, Figure 1 analogue, rank curves, scanner verdicts."""
    from ssti.report import build_report

    index = build_report(list(runs), out, overwrite=overwrite)
    Console().print(f"report: {index}")
