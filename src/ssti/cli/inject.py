"""`ssti inject` and `ssti show`: the thin CLI over the injection API (options built from `InjectionSpec`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ssti.cli.app import command, shown
from ssti.cli.options import out_path, section, spec_options
from ssti.config import DataSpec, InjectionSpec, validate
from ssti.errors import SSTIError
from ssti.inject.sources import SOURCE_HELP
from ssti.io import check_output


def parse_targets(values: list[str], field: str = "target") -> dict[str, str]:
    """`CLASS=SOURCE` strings (of option --`field`) -> {class: source}; a malformed one is a one-line SSTIError.

    CLASS is kept as typed (`resolve_targets` matches it exactly first, then without surrounding spaces). It
    ends at the first `=` after which a valid SOURCE follows, so a class named `a=b` is `a=b=date` and a
    fixed text may hold `=` (`1=fixed:x=y`).
    """
    from ssti.inject.sources import get_source

    out: dict[str, str] = {}
    for value in values:
        cls, sep, src = value.partition("=")
        at = value.find("=")
        while at != -1:  # the first split whose right side is a source
            try:
                get_source(value[at + 1:].strip())
            except SSTIError:
                at = value.find("=", at + 1)
                continue
            cls, sep, src = value[:at], "=", value[at + 1:]
            break
        if not sep or not cls.strip() or not src.strip():
            raise SSTIError(f"{field}: {value!r} is not CLASS=SOURCE (CLASS an index, a name or *; SOURCE one of {SOURCE_HELP})")
        if cls in out:
            raise SSTIError(f"{field}: class {cls!r} is given twice")
        out[cls] = src.strip()
    if not out:
        raise SSTIError(f"{field}: give at least one --{field} CLASS=SOURCE, e.g. --{field} 1=date")
    return out


@command("inject")
@spec_options({"injection": InjectionSpec, "data": DataSpec}, rename={"data.dataset": "--dataset"},
              skip={"injection.targets", "data.fingerprint"})
def inject_command(
    out: Path = typer.Option(..., "--out", parser=out_path, metavar="<path>", help="Output folder (data/<split>.parquet, manifest.jsonl, injection.yaml)."),
    target: list[str] = typer.Option(
        [], "--target", "-t",
        help=f"CLASS=SOURCE, repeatable. CLASS: a class name, a class index (a name wins when both match), or * for every class. SOURCE: {SOURCE_HELP}.",
    ),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow the tokenizer's own Python code from the hub (off by default: it is arbitrary code)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output folder if it exists."),
    options: dict = None,
) -> None:
    """Inject spurious tokens into a dataset split and write the dataset, manifest and spec to a folder.

    Example: ssti inject --dataset rotten-tomatoes --target 1=date --rate 0.5 --out runs/rt-date
    """
    from ssti.data import load_dataset
    from ssti.inject.engine import inject_dataset, resolve_targets
    from ssti.inject.store import refuse_reinjection, write_injected

    spec = InjectionSpec(targets=parse_targets(target), **section(options, "injection"))
    data = validate(DataSpec, section(options, "data"), "data")
    if check_output(out, "dataset", source=data.dataset) == "ours" and not overwrite:
        raise SSTIError(f"out: {out} already exists (pass --overwrite to replace it)")
    refuse_reinjection(data.dataset, "dataset")
    ds = load_dataset(data.dataset, **data.load_options())
    tok = None
    if spec.length_unit == "tokens" and spec.token_fraction is not None:
        from ssti.models import load_tokenizer

        tok = load_tokenizer(spec.tokenizer, trust_remote_code=trust_remote_code)
    result = inject_dataset(ds, spec, tokenizer=tok, source_dataset=data.dataset)
    path = write_injected(result, out, overwrite=overwrite)
    console = Console(highlight=False)
    n_split = len(result.dataset[spec.split])
    targeted = {k for k, _ in resolve_targets(spec.targets, result.class_names)}
    for k, name in enumerate(result.class_names):
        n = result.injected_counts()[name]
        if k in targeted and not n:
            has_rows = any(label == k for label in result.dataset[spec.split]["label"])
            why = (f"--rate {spec.rate} selects none of its rows" if spec.rate is not None and has_rows else
                   f"--count {spec.count} selects none of its rows" if spec.count is not None and has_rows else
                   f"has no rows in split {shown(spec.split)!r}")
            Console(stderr=True).print(f"[yellow]note:[/] class {k} {shown(name)!r}: nothing injected ({why})")
        if n:
            src = next(r["source"] for r in result.manifest if r["class"] == name)
            console.print(f"class {k} {shown(name)!r}: injected {n:,} rows with {shown(src)}")
    console.print(f"{len(result.manifest):,} of {n_split:,} {shown(spec.split)} rows injected -> {shown(str(path))}")


def highlight(text: str, insertions: list[dict], style: str = "bold black on yellow") -> str:
    """Rich markup of `text` with each inserted string highlighted (everything else escaped)."""
    parts, pos = [], 0
    for rec in sorted(insertions, key=lambda r: r["start"]):
        parts.append(shown(text[pos:rec["start"]]))
        parts.append(f"[{style}]{shown(text[rec['start']:rec['end']])}[/]")
        pos = rec["end"]
    parts.append(shown(text[pos:]))
    return "".join(parts)


@command("show")
def show_command(
    folder: Path = typer.Argument(..., help="An ssti dataset folder written by `ssti inject`, `ssti defend` or `ssti scan --remove`."),
    n: int = typer.Option(5, "-n", "--n", min=0, help="How many injected or edited samples to print."),
    split: Optional[str] = typer.Option(None, "--split", help="Only samples of this split (default: the injected or cleaned split)."),
    max_chars: int = typer.Option(1000, "--max-chars", min=0, help="Cut each sample's text after this many characters (0: no limit)."),
) -> None:
    """Print a few injected samples with the inserted tokens highlighted, or a few rows a defence edited
    (what it removed, dropped or rewrote)."""
    from ssti.data.common import column
    from ssti.data.folder import read_dataset_folder, read_manifest, read_meta

    meta = read_meta(folder)
    ds = read_dataset_folder(folder)
    split = split or (meta.get("spec") or meta.get("defence") or {}).get("split", "train")
    if split not in ds:
        raise SSTIError(f"split: {split!r} is not one of {', '.join(ds)}")
    rows = [r for r in read_manifest(folder) if r["split"] == split]
    index = {i: t for i, t in zip(column(ds[split], "id"), column(ds[split], "text"))}
    console = Console(highlight=False)
    edited = not isinstance(meta.get("spec"), dict)  # a cleaned or defended folder, not an injection
    console.print(f"{len(rows):,} {'edited' if edited else 'injected'} rows in split {shown(split)} of {shown(str(folder))}; "
                  f"showing {min(n, len(rows))}")

    def cut(text: str) -> str:
        return shown(text[:max_chars]) + ("…" if max_chars and len(text) > max_chars else "") if max_chars else shown(text)

    for row in rows[:n]:
        if "insertions" in row:
            text, insertions = index[row["id"]], row["insertions"]
            if max_chars and len(text) > max_chars:
                insertions = [r for r in insertions if r["end"] <= max_chars]
            console.rule(f"{shown(row['id'])}  class {shown(row['class'])}  source {shown(row['source'])}")
            console.print(highlight(text[:max_chars] if max_chars else text, insertions) + ("…" if max_chars and len(text) > max_chars else ""))
            continue
        action = row.get("action", "edit")
        console.rule(f"{shown(row['id'])}  class {shown(row['class'])}  {shown(action)}")
        if action == "drop":
            console.print(f"dropped (flagged by {shown(', '.join(row.get('features') or []))})")
        elif action == "rewrite":
            console.print(f"[dim]before:[/] {cut(row['before'])}\n[dim]after:[/]  {cut(row['after'])}")
        else:
            cuts = row.get("removals") or []  # one cut, flagged by several features ('2495-06-23' and its digits): shown once, whole
            outer = [r for r in cuts if not any(o["start"] <= r["start"] and r["end"] <= o["end"] and o["end"] - o["start"] > r["end"] - r["start"]
                                                for o in cuts)]
            removed = ", ".join(repr(r["text"]) for r in outer)
            console.print(f"{cut(index.get(row['id'], ''))}\n[dim]removed:[/] {shown(removed)}")
