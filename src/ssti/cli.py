"""The `ssti` command line: a thin typer layer over the Python API.

Each command lives beside the code it drives and is registered here. An SSTIError becomes a one-line
message on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import sys

import typer

from ssti.errors import SSTIError

app = typer.Typer(
    help="Stress-test and audit LoRA fine-tuning against spurious-token shortcuts (SSTI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Stress-test and audit LoRA fine-tuning against spurious-token shortcuts (SSTI)."""


def command(name: str):
    """Register `fn` as `ssti NAME`, turning SSTIError into a one-line error and exit code 2."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except SSTIError as e:
                typer.secho(f"error: {e}", err=True, fg="red")
                raise typer.Exit(2) from None

        app.command(name)(run)
        return fn

    return wrap


def main() -> None:
    """Entry point for `python -m ssti`."""
    app(prog_name="ssti")


# Command modules register themselves on import.
from ssti import commands  # noqa: E402,F401

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
