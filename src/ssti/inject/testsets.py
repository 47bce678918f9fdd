"""Test-time spurious sets (the Table 1 protocol): a class's token type injected into 100% of a split.

Every row of every class gets the tokens, so the counts of predicted classes show how far the token
alone steers the model. The seed is derived per source so the sets are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Callable, Sequence

import datasets

from ssti.data.common import class_names_of
from ssti.inject.engine import inject_texts, resolve_targets
from ssti.inject.sources import TokenSource, get_source, recorded_name
from ssti.inject.spec import InjectionSpec
from ssti.inject.tables import arrow_table, replace_texts


def make_spurious_test_set(
    split: datasets.Dataset,
    source: str | TokenSource | Callable[[random.Random], str],
    location: str = "random",
    tokens: int = 1,
    seed: int = 0,
    token_fraction: float | None = None,
) -> tuple[datasets.Dataset, list[dict]]:
    """Inject `source` into every row of `split` (all classes); return the new split and its manifest.

    Rows, ids and labels are unchanged; the manifest has one row per sample (id, split, label, class,
    source, insertions). Lengths for `token_fraction` are counted in words.
    """
    source = get_source(source)
    name = recorded_name(source)
    class_names = class_names_of(split)
    table = arrow_table(split)
    ids, texts, labels = (table.column(c).to_pylist() for c in ("id", "text", "label"))
    rng = random.Random(f"{seed}:spurious:{name}")
    new_texts, records = inject_texts(texts, source, rng, tokens=tokens, token_fraction=token_fraction, location=location)
    split_name = str(split.split) if split.split is not None else "test"
    manifest = [
        {"id": i, "split": split_name, "label": y, "class": class_names[y] if y is not None and 0 <= y < len(class_names) else None, "source": name, "insertions": r}
        for i, y, r in zip(ids, labels, records)
    ]
    key = json.dumps([split._fingerprint, name, location, tokens, token_fraction, seed])
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return replace_texts(split, table, dict(enumerate(new_texts)), fingerprint), manifest


def spurious_test_sets(
    split: datasets.Dataset, spec: InjectionSpec, class_names: Sequence[str]
) -> dict[str, tuple[datasets.Dataset, list[dict]]]:
    """One spurious set per class targeted by `spec`, keyed by class name, with the spec's location,
    tokens (or token fraction, in words) and seed."""
    out = {}
    for k, key in resolve_targets(spec.targets, class_names):
        out[class_names[k]] = make_spurious_test_set(
            split, spec.source_for(key), location=spec.location, tokens=spec.tokens,
            seed=spec.seed, token_fraction=spec.token_fraction,
        )
    return out


__all__ = ["make_spurious_test_set", "spurious_test_sets"]
