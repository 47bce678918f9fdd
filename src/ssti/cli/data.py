"""`ssti datasets`: list the named datasets."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ssti.cli.app import command


@command("datasets")
def datasets_command() -> None:
    """List the named datasets: where they come from, splits with sizes, and classes (embedded ones are loaded)."""
    from ssti.data import DATASETS, class_names_of

    table = Table(title="ssti datasets")
    for col in ("name", "kind", "splits", "classes", "description"):
        table.add_column(col)
    for entry in DATASETS.values():
        splits = classes = "needs network"
        if entry.kind == "embedded":
            ds = entry.loader()
            splits = ", ".join(f"{k} {len(v):,}" for k, v in ds.items())
            classes = ", ".join(class_names_of(ds))
        table.add_row(entry.name, entry.kind, splits, classes, entry.description)
    Console().print(table)
