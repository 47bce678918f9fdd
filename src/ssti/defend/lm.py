"""The language models the model-based defences run: loading (causal or seq2seq), a rows/s progress bar."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def load_lm(name: str, purpose: str = "infer"):
    """(model, tokenizer, seq2seq) of model `name` (registry name, Hugging Face id or folder), in eval mode,
    in the faster inference dtype measured on this machine (`ssti.models.precision`).

    A hub model that cannot be reached offline is a one-line SSTIError (`ssti.models.loading`)."""
    from ssti.models.loading import load_generator
    from ssti.models.precision import compute_dtype

    model, tokenizer, seq2seq = load_generator(name, dtype=compute_dtype("auto", torch.device("cpu"), purpose))
    return model.eval(), tokenizer, seq2seq


@contextlib.contextmanager
def row_progress(label: str, total: int, show: bool, done: int = 0) -> Iterator:
    """A rich progress bar over rows with their rate; yields `advance(n)` (a no-op when not shown)."""
    if not show:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(label, total=total, completed=done, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:.2f} rows/s" if speed else "")

        yield advance
