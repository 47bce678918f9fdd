"""`ssti sources` and `ssti configs`: cheap listings (nothing heavy is imported)."""

from __future__ import annotations

import random
from importlib import resources

from rich.console import Console
from rich.table import Table

from ssti.cli.app import command, shown

SOURCE_EXAMPLES = ("date", "date:1900-2100", "country", "html", "html-pair", "html-single", "colour", "exclamation",
                   "double-exclamation", "fixed:cf", "list:alpha,beta")


@command("sources")
def sources_command() -> None:
    """List the token sources (the SSTI token types) with a few drawn examples each.

    Use them as SOURCE in `--target CLASS=SOURCE`, `injection.targets` and `eval.sources`; `file:PATH`
    reads one token per line from a file.
    """
    from ssti.inject.sources import get_source

    table = Table(title="ssti token sources")
    for col in ("source", "examples (seed 0)"):
        table.add_column(col)
    for spec in SOURCE_EXAMPLES:
        src, rng = get_source(spec), random.Random(0)
        table.add_row(spec, shown("  ".join(" ... ".join(src.draw(rng)) for _ in range(4))))
    table.add_row("file:PATH", "one token per line of a UTF-8 text file")
    Console().print(table)


def first_sentence(text: str) -> str:
    """The first sentence of a config file's leading comment (its prose lines joined; it was cut at the first line end)."""
    import re

    prose = []
    for line in text.splitlines():
        if not line.startswith("#") or line.startswith("#  "):  # the comment ends, or an indented command example starts
            break
        prose.append(line.lstrip("#").strip())
    joined = " ".join(p for p in prose if p)
    match = re.search(r"(?<=[.!?])\s", joined)
    sentence = joined[:match.start()] if match else joined
    return sentence[:-1] + "." if sentence.endswith(":") else sentence  # the colon introduced the commands left out


@command("configs")
def configs_command() -> None:
    """List the configs shipped with ssti (run them with `ssti run` or `ssti sweep`; in a checkout they are under configs/)."""
    import yaml

    table = Table(title="ssti configs")
    for col in ("file", "kind", "what"):
        table.add_column(col)
    for entry in sorted(resources.files("ssti.configs").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        text = entry.read_text()
        data = yaml.safe_load(text) or {}
        kind = "sweep" if {"axes", "zip", "grids"} & set(data) else "runs" if "runs" in data else "run"
        table.add_row(f"configs/{entry.name}", kind, shown(first_sentence(text)))
    Console().print(table)
    from ssti.config import shipped_config

    folder = shipped_config("configs/demo.yaml").parent.resolve()
    Console().print(f"ssti run / ssti sweep find these by name anywhere (configs/NAME.yaml); the files: {folder}")
