"""`ssti models`: list the named backbones."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ssti.cli.app import command


@command("models")
def models_command() -> None:
    """List the named backbones: where the weights come from, architecture and default LoRA targets.

    Any other Hugging Face id (owner/name) or local model folder works too.
    """
    from ssti.models import MODELS

    table = Table(title="ssti models")
    for col in ("name", "kind", "arch", "attention targets", "description"):
        table.add_column(col)
    for e in MODELS.values():
        table.add_row(e.name, e.kind, e.arch, ",".join(e.attention_targets), e.description + (" [remote code]" if e.needs_remote_code else ""))
    Console().print(table)
