"""The `ssti` command line: a thin typer layer over the Python API.

`ssti.cli.app` holds the app and the error rule; each module here registers one group of commands and
imports only `ssti.cli.app`, `ssti.cli.options` and the stages it drives (inside the commands, so
start-up stays fast). Commands are registered top down, in the order `ssti --help` lists them.
"""

from ssti.cli.app import app, command, main
from ssti.cli import data, models, listings, inject, scan, defend, probe, run, sweep, report  # noqa: E402,F401  (register the commands)

__all__ = ["app", "command", "main"]
