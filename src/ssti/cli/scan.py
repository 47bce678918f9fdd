"""`ssti scan DATA`: the thin CLI over `scan_dataset` (and, with --remove, the scan-strip / scan-drop defence of `ssti.defend`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from ssti.cli.app import command, shown, stdout_console
from ssti.cli.options import out_path, section, spec_options
from ssti.config import DataSpec, validate
from ssti.errors import SSTIError
from ssti.io import check_output
from ssti.scan.defaults import ALL_LEVELS, DEFAULT_THRESHOLD, DEFAULT_TOKENIZER

if TYPE_CHECKING:
    from ssti.scan.scanner import ScanReport


def parse_levels(value: str) -> list[str]:
    """'word,shape' -> ['word', 'shape']; 'all' -> every level; unknown names are a one-line error."""
    if value.strip() == "all":
        return list(ALL_LEVELS)
    levels = [v.strip() for v in value.split(",") if v.strip()]
    for lv in levels:
        if lv not in ALL_LEVELS:
            raise SSTIError(f"levels: {lv!r} is not one of {', '.join(ALL_LEVELS)} (or all)")
    if not levels:
        raise SSTIError(f"levels: pick at least one of {', '.join(ALL_LEVELS)}")
    return levels


def render(report: "ScanReport", console: Console, top: int) -> None:
    """The rich table for people: verdict, ranked features, flagged rows."""
    colour = "red" if report.verdict == "suspicious" else "green"
    console.print(f"[bold {colour}]{report.verdict}[/]: {len(report.flagged)} feature(s) flagged at family-wise p <= {report.threshold:g}; "
                  f"{len(report.flagged_rows):,} row(s) carry them")
    table = Table(title=f"{shown(report.source or 'dataset')} [{shown(report.split)}]: {report.n_docs:,} rows, {report.n_features:,} features, "
                        f"{report.seconds:.1f} s ({report.tokens_per_s:,.0f} tokens/s)")
    for col, just in (("#", "right"), ("feature", "left"), ("level", "left"), ("class", "left"), ("support", "right"),
                      ("outside", "right"), ("H(y|t)", "right"), ("p (leak)", "right"), ("p (skew)", "right"),
                      ("PMI", "right"), ("log OR", "right"), ("flag", "left")):
        table.add_column(col, justify=just)
    listed = report.features[: max(top, len(report.flagged))]
    for i, f in enumerate(listed, 1):
        table.add_row(str(i), shown(repr(f.feature)[1:-1]), f.level, shown(f.cls), f"{f.support:,}", f"{f.leakage:,}",
                      f"{f.entropy:.3f}", f"{f.p_value:.2g}", f"{f.skew_p_value:.2g}", f"{f.pmi:.2f}", f"{f.log_odds:.2f}",
                      "[red]yes[/]" if f.flagged else "")
    console.print(table)
    if report.allowances:
        console.print("[dim]natural-leakage allowance per level: " + shown(", ".join(f"{k} {v}" for k, v in report.allowances.items())) + "[/]")
    if report.detection_limits:
        console.print("[dim]detection limit, rows of one class a planted feature must be in (none outside it) to be flagged: "
                      + shown(", ".join(f"{lv} {_span(per_class.values())}" for lv, per_class in report.detection_limits.items())) + "[/]")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {shown(note)}")
    if report.flagged_rows:
        head = ", ".join(report.flagged_rows[:10])
        more = f" ... (+{len(report.flagged_rows) - 10:,}; --json lists them all)" if len(report.flagged_rows) > 10 else ""
        console.print(f"flagged rows: {shown(head)}{shown(more)}")


def _span(values) -> str:
    """'14' or '14-17': the range of a level's detection limits over the classes."""
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


@command("scan")
@spec_options({"data": DataSpec}, skip={"data.dataset", "data.fingerprint"})
def scan_command(
    data: str = typer.Argument(..., help="An ssti folder (injected or cleaned), a dataset name (see `ssti datasets`) or a local csv/jsonl/parquet file."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON (verdict, features most suspicious first, rows)."),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, "--threshold", help="Family-wise error for flagging a feature (Bonferroni-corrected leakage test)."),
    levels: str = typer.Option(",".join(ALL_LEVELS), "--levels", help=f"Comma-separated feature levels: {', '.join(ALL_LEVELS)}, or all."),
    tokenizer: str = typer.Option(DEFAULT_TOKENIZER, "--tokenizer", help="Model whose tokenizer gives the sub-word level; 'none' skips that level."),
    context: Optional[str] = typer.Option(None, "--context", help="Also run the context check with this causal LM (e.g. smollm2-135m): "
                                          "flags token types whose occurrences read as dropped into the text. Slow on a CPU (about 0.1 s per occurrence)."),
    remove: Optional[str] = typer.Option(None, "--remove", help="Write a cleaned dataset (the scan-strip / scan-drop defence of `ssti defend`): strip (cut flagged features, with the words planted beside them, out of the rows of their class) or drop (remove those rows)."),
    out: Optional[Path] = typer.Option(None, "--out", parser=out_path, metavar="<path>", help="Folder for the cleaned dataset (with --remove)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    split: str = typer.Option("train", "--split", help="The split to scan (and clean)."),
    top: int = typer.Option(20, "--top", help="Features to report besides the flagged ones."),
    options: dict = None,
) -> None:
    """Find tokens and token types that predict the labels far better than language does.

    Exit code 0 when clean, 1 when suspicious, 2 on bad input.
    Example: ssti scan runs/rt-date --remove strip --out runs/rt-date-clean
    """
    from ssti.data import load_dataset
    from ssti.scan.scanner import scan_dataset

    if out is not None and remove is None:
        raise SSTIError("out: --out is where --remove writes the cleaned dataset; add --remove strip|drop (or ssti defend)")
    if remove is not None:
        if remove not in ("strip", "drop"):
            raise SSTIError(f"remove: {remove!r} is not one of strip, drop")
        if out is None:
            raise SSTIError("out: --remove needs --out DIR for the cleaned dataset")
        if check_output(out, "dataset", source=data) == "ours" and not overwrite:
            raise SSTIError(f"out: {out} already exists (pass --overwrite to replace it)")
    if top < 0:
        raise SSTIError(f"top: {top} must be >= 0")
    lv = parse_levels(levels)
    tok = None if tokenizer.lower() == "none" else tokenizer
    if tok is None:
        lv = [x for x in lv if x != "subword"] or ["word"]
    spec = validate(DataSpec, {"dataset": data, **section(options, "data")}, "data")
    if remove is not None and spec.max_words:
        raise SSTIError("max_words: --remove writes whole texts; cut the texts first (ssti inject DATA --max-words N --out DIR ...), "
                        "or scan without --remove")
    ds = load_dataset(data, **spec.load_options(), whole_file=True)  # a file without a split column: every row scanned
    report = scan_dataset(ds, split=split, levels=lv, tokenizer=tok, threshold=threshold, top=top, source=data, context=context)
    err = Console(stderr=True, highlight=False)
    if json_out:
        typer.echo(report.to_json())
        for note in report.notes:
            err.print(f"[yellow]note:[/] {shown(note)}")
    else:
        render(report, stdout_console(), top)
    if remove is not None:  # the scan-strip / scan-drop defence, on the report just made (ssti defend runs the same)
        from ssti.config import DefenceSpec
        from ssti.defend import defend_dataset, write_defended

        defence = DefenceSpec(name=f"scan-{remove}", split=split, threshold=threshold, levels=[lv for lv in report.levels if lv != "context"], tokenizer=tok or "none",
                              context=context)  # the model also judges each flagged name
        result = defend_dataset(ds, defence, report=report, source=data)  # the injection's manifest and record, as ssti defend reads them
        path = write_defended(result, out, overwrite=overwrite)
        err.print(f"cleaned ({remove}): {result.record['rows_changed']:,} row(s) of the flagged features' own classes -> {shown(str(path))}")
        for note in result.notes:
            err.print(f"[yellow]note:[/] {shown(note)}")
    if report.verdict == "suspicious":
        raise typer.Exit(1)
