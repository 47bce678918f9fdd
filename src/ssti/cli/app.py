"""The typer app and the one rule every command shares: an SSTIError is a one-line message, exit code 2."""

from __future__ import annotations

import functools
import os
import sys

import typer

from ssti.errors import SSTIError

app = typer.Typer(
    help="Stress-test and audit LoRA fine-tuning against spurious-token shortcuts (SSTI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[mean; last]" and "[default: 8]" are shown as written
)


@app.callback()
def _root() -> None:
    """Stress-test and audit LoRA fine-tuning against spurious-token shortcuts (SSTI)."""


def one_line(e: BaseException) -> str | None:
    """`_one_line`, with control characters shown as escapes (a message may quote a user's text or path)."""
    line = _one_line(e)
    return printable(line) if line is not None else None


def _one_line(e: BaseException) -> str | None:
    """The one-line message of an error users cause (bad input, unusable paths, damaged files), else None.

    SSTIError carries its own message; an OSError (missing, unreadable or unwritable path, full disk,
    permission) names the path and the reason; parse errors of YAML, JSON and safetensors files name
    the kind of file. Anything else is a bug and keeps its traceback.
    """
    if isinstance(e, SSTIError):
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, OSError):
        where = e.filename if e.filename is not None else "path"
        extra = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
        return f"{where}{extra}: {e.strerror or type(e).__name__} (a path that cannot be read or written)"
    kind = type(e).__module__.split(".")[0]
    if type(e).__name__ == "SafetensorError" or kind == "safetensors":
        return f"a safetensors file is damaged ({str(e).splitlines()[0][:160]}); re-create the run"
    if kind == "yaml":
        return f"a YAML file is damaged ({str(e).splitlines()[0][:160]})"
    if type(e).__name__ == "JSONDecodeError":
        return f"a JSON file is damaged ({str(e).splitlines()[0][:160]})"
    return None


def printable(text) -> str:
    """`text` with control characters (a terminal escape sequence planted in a dataset, a raw byte) shown as
    Python escapes; newlines and tabs kept."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in str(text))


def shown(text) -> str:
    """`text` (a user's text, id, class name or path) made safe to print with rich: `printable`, and `[`
    markup escaped."""
    from rich.markup import escape

    return escape(printable(text))


def stdout_console():
    """A rich Console on stdout for a command whose exit code carries a verdict (probe, scan): when the
    reader of a pipe leaves (`| head`), printing stops quietly and the verdict's exit code stands (rich's
    own handling exits 1, which reads as "steered" / "suspicious")."""
    from rich.console import Console

    class Quiet(Console):
        def on_broken_pipe(self) -> None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return Quiet(highlight=False)


def command(name: str, **kwargs):
    """Register `fn` as `ssti NAME`: errors users cause become one line on stderr and exit code 2 (see
    `one_line`); Ctrl-C is one line and exit code 130."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kw):
            try:
                return fn(*args, **kw)
            except BrokenPipeError:  # `ssti ... | head`: the reader left; nothing to say
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(0) from None
            except KeyboardInterrupt:
                typer.secho("interrupted: finished work is kept (a run resumes from its last checkpoint); an output folder is "
                            "either complete or as it was before, never half-written", err=True, fg="yellow")
                raise typer.Exit(130) from None
            except Exception as e:  # noqa: BLE001  (only the kinds `one_line` knows; the rest re-raised)
                message = one_line(e)
                if message is None:
                    raise
                typer.secho(f"error: {message}", err=True, fg="red")
                raise typer.Exit(2) from None

        app.command(name, **kwargs)(run)
        return fn

    return wrap


def main() -> None:
    """Entry point of `ssti`, `python -m ssti` and `python -m ssti.cli`.

    A usage error (an unknown option, a value of the wrong type, a missing argument) is one line and
    exit code 2, like every other bad input, instead of click's usage box.
    """
    from typer.main import get_command

    try:
        from typer._click import exceptions as click_errors  # typer >= 0.2x carries its own click
        from typer.exceptions import Abort  # ... whose Abort (Ctrl-C at a prompt) lives in typer.exceptions
    except ImportError:  # pragma: no cover
        from click import exceptions as click_errors
        from click.exceptions import Abort
    try:
        code = get_command(app).main(prog_name="ssti", standalone_mode=False)
    except click_errors.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # plain `ssti`: the help, as with --help
            typer.echo(e.format_message() if hasattr(e, "format_message") else str(e))
            sys.exit(0)
        hint = f" (see `ssti {e.ctx.info_name} --help`)" if e.ctx is not None and e.ctx.info_name != "ssti" else " (see `ssti --help`)"
        typer.secho(f"error: {' '.join(e.format_message().split())}{hint}", err=True, fg="red")
        sys.exit(2)
    except Abort:
        typer.secho("interrupted", err=True, fg="yellow")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
