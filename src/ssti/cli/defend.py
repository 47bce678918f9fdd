"""`ssti defend DATA --defence NAME --out DIR`: the thin CLI over `ssti.defend.defend_dataset`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from ssti.cli.app import command, shown, stdout_console
from ssti.cli.options import out_path, section, spec_options
from ssti.config import DataSpec, DefenceSpec, validate
from ssti.errors import SSTIError
from ssti.io import check_output

if TYPE_CHECKING:
    from ssti.defend.run import DefenceResult

# the paper's v2 paraphrasing results (PAPER.md section 8): share of planted tokens left after an LLM paraphrase
PAPER_RETENTION = {"html": "3-7%", "date": "11-12%", "country": "19-21%"}


def render(result: "DefenceResult", console: Console) -> None:
    """The measurement table for people: retention per token type and class, then the damage and the speed."""
    m = result.measurement
    changed = m["rows_changed"] - m["rows_dropped"]
    console.print(f"[bold]{result.spec.name}[/] on {shown(result.source or 'dataset')} {shown('[' + m['split'] + ']')}: {m['rows']:,} rows, "
                  f"{changed:,} edited, {m['rows_dropped']:,} dropped, {m['seconds']:.1f} s "
                  f"({m['seconds_per_1k_rows']:.1f} s per 1,000 rows)")
    if m["retention"] is not None:
        table = Table(title="retention of the planted insertions (present after the defence, minus the rate in matched clean rows)")
        paper = result.spec.name in ("paraphrase", "grammar")  # the paper's figures are for LLM paraphrasing
        for col, just in (("type", "left"), ("class", "left"), ("insertions", "right"), ("present", "right"),
                          ("clean baseline", "right"), ("retention", "right")) + ((("paper v2, paraphrase", "right"),) if paper else ()):
            table.add_column(col, justify=just)
        for r in m["retention"]:
            table.add_row(shown(r["type"]), shown(r["class"]), f"{r['insertions']:,}", f"{r['raw']:.1%}", f"{r['clean_baseline']:.1%}",
                          f"[bold]{r['retention']:.1%}[/]", *([PAPER_RETENTION.get(r["type"], "")] if paper else []))
        console.print(table)
        console.print(f"rows still poisoned: {m['rows_still_poisoned']:.1%} of {m['rows_poisoned']:,} planted rows")
    c = m["collateral"]
    chrf = f"{c['chrf']:.2f}" if c["chrf"] is not None else "-"
    changed = f"; chrF of the changed ones {c['chrf_changed_rows']:.2f}" if c["chrf_changed_rows"] is not None else ""
    if c.get("clean_rows_known", True):
        console.print(f"collateral: {c['changed']:,} of {c['clean_rows']:,} clean rows changed ({c['changed_share']:.2%}), "
                      f"{c['dropped']:,} dropped; chrF of the clean rows after vs before {chrf}{changed}")
    else:  # no injection record: the edited rows may be the planted ones, so none of this is "damage"
        console.print(f"rows changed: {c['changed']:,} of {c['clean_rows']:,} ({c['changed_share']:.2%}), {c['dropped']:,} dropped; "
                      f"chrF after vs before {chrf}{changed} (no injection record: which rows were planted, and so the "
                      f"collateral damage, is unknown)")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {shown(note)}")


@command("defend")
@spec_options({"data": DataSpec, "": DefenceSpec}, rename={"name": "--defence"}, skip={"data.dataset", "data.fingerprint"})
def defend_command(
    data: str = typer.Argument(..., help="An injected ssti folder (retention is measured against its manifest), a dataset name or a "
                                         "local csv/jsonl/parquet file."),
    out: Path = typer.Option(..., "--out", parser=out_path, metavar="<path>", help="Folder for the defended dataset (an ssti dataset folder with defence.json)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if ssti wrote it."),
    json_out: bool = typer.Option(False, "--json", help="Print the measurement as JSON instead of the table."),
    options: dict = None,
) -> None:
    """Clean a dataset with one defence and measure what it removed and what it damaged.

    Defences: scan-strip, scan-drop, onion, paraphrase, grammar (`--defence`). The table: retention of
    the planted tokens per type and class, rows still poisoned, clean rows changed and their chrF, and
    seconds per 1,000 rows; written with the data as defence.json.
    Example: ssti defend runs/rt-date --defence scan-strip --out runs/rt-date-stripped
    """
    from ssti.defend import defend_dataset, write_defended

    own = section(options, "")
    if "name" not in own:
        raise SSTIError("defence: pick one with --defence (scan-strip, scan-drop, onion, paraphrase, grammar)")
    if own.get("levels"):  # comma-separated or repeated, 'all' for every level: as `ssti scan --levels`
        from ssti.cli.scan import parse_levels

        own["levels"] = parse_levels(",".join(own["levels"]))
    spec = validate(DefenceSpec, own, "defence")
    load = validate(DataSpec, {"dataset": data, **section(options, "data")}, "data")
    if load.max_words:
        raise SSTIError("max_words: a defence writes whole texts and measures every change it makes; cut the texts "
                        "first (ssti inject DATA --max-words N --out DIR ...), then defend that folder")
    if check_output(out, "dataset", source=data) == "ours" and not overwrite:
        raise SSTIError(f"out: {out} already exists (pass --overwrite to replace it)")
    result = defend_dataset(data, spec, show_progress=not json_out, **load.load_options())
    path = write_defended(result, out, overwrite=overwrite)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        render(result, stdout_console())
        Console(stderr=True, highlight=False).print(f"written: {shown(str(path))} (defence.json holds this table)")
