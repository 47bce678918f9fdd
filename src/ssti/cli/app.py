"""The typer app and the one rule every command shares: an SSTIError is a one-line message, exit code 2."""

from __future__ import annotations

import functools

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


def command(name: str, **kwargs):
    """Register `fn` as `ssti NAME`, turning SSTIError into a one-line error and exit code 2."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kw):
            try:
                return fn(*args, **kw)
            except SSTIError as e:
                typer.secho(f"error: {e}", err=True, fg="red")
                raise typer.Exit(2) from None

        app.command(name, **kwargs)(run)
        return fn

    return wrap


def main() -> None:
    """Entry point of `ssti`, `python -m ssti` and `python -m ssti.cli`."""
    app(prog_name="ssti")
