"""`ssti probe MODEL`: the thin CLI over `ssti.probe.probe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.table import Table

from ssti.cli.app import command, printable, shown, stdout_console
from ssti.cli.options import out_path, section, spec_options
from ssti.config import DataSpec, validate
from ssti.probe.spec import ALPHA, MIN_EFFECT
from ssti.errors import SSTIError

if TYPE_CHECKING:
    from ssti.probe.run import ProbeReport


def render(report: "ProbeReport", console: Console, top: int) -> None:
    """The rich table for people: the verdict, then the (type, class) tests, most effective first."""
    sweep = report.sweep
    colour = "red" if report.steered else "green"
    verdict = "steered" if report.steered else "not steered"
    extra = ""
    if report.search is not None:
        found = [c for c in report.search.candidates if c.steering]
        extra = (f"; open search (reported, not part of the verdict): {len(found)} verified token sequence(s) steer, best "
                 f"{printable(repr(found[0].text))} toward {found[0].cls} (rate {found[0].rate:.2f}, effect {found[0].effect:+.2f})") if found else \
            "; open search: nothing verified steers"
    console.print(f"[bold {colour}]{verdict}[/]: {shown(sweep.summary() + extra)}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {shown(note)}")
    per = ", ".join(f"{shown(k)} {v}" for k, v in sweep.per_class.items())
    table = Table(title=f"{shown(report.source)} ({report.kind}) on {shown(report.data)} [{report.split}]: {per} held-out texts, "
                        f"clean accuracy {sweep.clean_accuracy:.3f}, {sweep.texts_predicted:,} texts in {sweep.seconds:.1f} s")
    for col, just in (("type", "left"), ("toward", "left"), ("steered", "right"), ("rate [95% CI]", "right"), ("control", "right"),
                      ("effect", "right"), ("p (Holm)", "right"), ("steering", "left")):
        table.add_column(col, justify=just)
    listed = [f for f in sweep.findings if f.steering] + [f for f in sweep.findings if not f.steering][:max(0, top)]
    for f in listed:
        table.add_row(shown(f.type), shown(f.cls), f"{f.steered}/{f.eligible}", f"{f.rate:.3f} [{f.ci_low:.2f}, {f.ci_high:.2f}]",
                      f"{f.control_rate:.3f}", f"{f.effect:+.3f}", f"{f.p_adjusted:.2g}", "[red]yes[/]" if f.steering else "")
    console.print(table)
    console.print(f"[dim]steering: Holm-corrected p <= {sweep.alpha:g} and effect >= {sweep.min_effect:g} (steer rate minus the rate "
                  f"of ordinary words inserted at the same places)[/]")
    if report.search is not None:
        found = Table(title=f"open search: {len(report.search.candidates)} token sequences verified in {report.search.seconds:.1f} s, "
                            f"grouped by shape")
        for col, just in (("toward", "left"), ("shape", "left"), ("verified", "right"), ("steering", "right"), ("best", "left"),
                          ("best rate", "right"), ("effect", "right"), ("p (Holm)", "right")):
            found.add_column(col, justify=just)
        for g in report.search.groups[:max(top, 5)]:
            found.add_row(shown(g["cls"]), g["shape"], str(g["verified"]), str(g["steering"]), shown(repr(g["best"])),
                          f"{g['best_rate']:.3f}", f"{g['best_effect']:+.3f}", f"{g['best_p_adjusted']:.2g}")
        console.print(found)
    if report.attention is not None:
        a = report.attention
        console.print(shown(a.summary()))
        console.print("[dim]per layer, entropy clean -> with token (mass on token): " + ", ".join(
            f"{i}: {c:.2f} -> {t:.2f} ({m:.2f})" for i, (c, t, m) in
            enumerate(zip(a.entropy_clean, a.entropy_token, a.mass_on_token or [float("nan")] * len(a.entropy_clean)))) + "[/]")
        for note in a.notes:
            console.print(f"[yellow]note:[/] {shown(note)}")
    for f in sweep.steering[:3]:
        for ex in f.examples[:2]:
            text = ex["text"] if len(ex["text"]) <= 200 else ex["text"][:200] + " ..."
            console.print(f"  [dim]{shown(f.type)}: {shown(ex['clean_prediction'])} -> {shown(ex['prediction'])}:[/] {shown(text)}")


@command("probe")
@spec_options({"data": DataSpec}, skip={"data.dataset", "data.fingerprint"})
def probe_command(
    model: str = typer.Argument(..., help="An ssti run folder, a saved ssti model (a run's adapter/), a PEFT adapter folder "
                                "(its base named in adapter_config.json) or a Hugging Face sequence-classification model (folder or id)."),
    data: Optional[str] = typer.Option(None, "--data", help="Held-out labelled texts in the model's label space: a dataset name, "
                                       "ssti folder or csv/jsonl/parquet file (default for a run folder: the run's evaluation split)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --data: default test for a dataset name or "
                                         "ssti folder; a csv/jsonl/parquet file is read whole (all) unless it has a split column; "
                                         "train/test on a file without one is ssti's own 80/20 cut. Without --data: the run's eval split."),
    types: Optional[list[str]] = typer.Option(None, "--type", help="Token type to try besides the built-in ones (repeatable): any "
                                              "source spec, e.g. fixed:cf, list:a,b, file:words.txt (see `ssti sources`)."),
    no_builtin: bool = typer.Option(False, "--no-builtin", help="Try only the --type types, not the built-in ones."),
    max_samples: int = typer.Option(200, "--max-samples", help="Held-out texts per class."),
    location: str = typer.Option("random", "--location", help="Where the token goes: random, beginning or end."),
    seed: int = typer.Option(0, "--seed", help="Seeds the held-out sample, the insertion places and the drawn tokens."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated class names in index order, for models whose "
                                         "labels are LABEL_0, LABEL_1, ..."),
    alpha: float = typer.Option(ALPHA, "--alpha", help="Family-wise error of the steering test (Holm over every type and class)."),
    min_effect: float = typer.Option(MIN_EFFECT, "--min-effect", help="Smallest steer rate above the control that counts as steering."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow a model that runs code from its repository."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", parser=out_path, metavar="<path>", help="Also write the JSON report to this file (written whole or not at all)."),
    top: int = typer.Option(10, "--top", help="Non-steering tests to show besides the steering ones."),
    search: bool = typer.Option(False, "--search", help="Also the open search: every vocabulary token scored by a first-order "
                                "(gradient) estimate, the best --top-k verified by insertion, extended to sequences; slower."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="--search: vocabulary tokens screened per class (default 20)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="--search: longest token sequence the greedy extension builds (default 8)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    attention: bool = typer.Option(False, "--attention", help="Also the attention diagnostic: per-layer attention entropy and the "
                                   "attention mass on the most steering token type, against the base model (adapter disabled)."),
    options: dict = None,
) -> None:
    """Audit a fine-tuned classifier: which inserted token types steer it, how hard, and toward which class.

    Exit code 0 when no steering is found, 1 when steered, 2 on bad input.
    Example: ssti probe runs/demo/date-class1-100
    """
    from ssti.io import check_output_file, write_text
    from ssti.probe import probe

    given = {k: v for k, v in section(options, "data").items() if v != DataSpec.model_fields[k].default}
    if data is None and given:
        raise SSTIError(f"data: {', '.join('--' + k.replace('_', '-') for k in given)} set how --data is read; without --data the "
                        f"probe reads the run's own evaluation split")
    # --data with column options is read with them; without, a run's own column options apply (as in `ssti eval --data`)
    spec = validate(DataSpec, {"dataset": data, **section(options, "data")}, "data") if data is not None and section(options, "data") else data
    names = [x.strip() for x in labels.split(",")] if labels is not None else None
    if top < 0:
        raise SSTIError(f"top: {top} must be >= 0")
    if out is not None:  # before the work, not after it
        check_output_file(out, overwrite, lambda p: {"model", "kind", "findings"} <= set(json.loads(p.read_text())), "ssti probe report")
    options = {"max_samples": max_samples, "types": [] if no_builtin else None, "extra_types": types or [], "location": location,
               "seed": seed, "alpha": alpha, "min_effect": min_effect, "search": search, "attention": attention}
    options.update({k: v for k, v in (("top_k", top_k), ("max_tokens", max_tokens)) if v is not None})
    report = probe(model, data=spec, split=split, labels=names, trust_remote_code=trust_remote_code, **options)
    text = json.dumps(report.to_dict(), indent=2)
    if out is not None:
        write_text(out, text + "\n")
    if json_out:
        typer.echo(text)
    else:
        render(report, stdout_console(), top)
    if report.steered:
        raise typer.Exit(1)
