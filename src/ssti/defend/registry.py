"""One registry entry per dataset defence: its name, what it does and the function that applies it.

Every `apply` takes (data: DatasetDict, spec: DefenceSpec, show_progress: bool, work: Path | None) and
returns (defended DatasetDict, manifest rows of its edits, notes, record). `work` is a folder the
defence may keep resumable progress in (the rewriting defences do). The names must equal
`ssti.config.DEFENCES` (the config validates them without importing this module; a test checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Defence:
    name: str
    description: str
    apply: Callable


def _scan(data, spec, show_progress, work, report=None):
    from ssti.defend.scan_guided import scan_clean

    return scan_clean(data, spec, report=report)  # the scanner is fast: no progress bar


def _onion(data, spec, show_progress, work):
    from ssti.defend.onion import onion

    return onion(data, spec, show_progress=show_progress)


def _rewrite(data, spec, show_progress, work):
    from ssti.defend.rewrite import rewrite

    return rewrite(data, spec, show_progress=show_progress, work=work)


DEFENCES: dict[str, Defence] = {}


def register(defence: Defence) -> None:
    DEFENCES[defence.name] = defence


register(Defence("scan-strip", "cut the scanner's flagged tokens (and the words planted with them) out of the rows of their class", _scan))
register(Defence("scan-drop", "drop the rows of a class that carry a token the scanner flags for it", _scan))
register(Defence("onion", "ONION (Qi et al. 2021): remove the words whose deletion lowers a causal LM's perplexity most", _onion))
register(Defence("paraphrase", "an instruction-following LM rewrites every text (embedded SmolLM2-135M-Instruct by default)", _rewrite))
register(Defence("grammar", "a text-to-text grammar-correction model rewrites every text (a hub model by name)", _rewrite))
