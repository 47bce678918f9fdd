"""The injection transform: pick rows of each target class, insert drawn tokens, record every insertion.

`inject_texts` is the pure core on Python lists; `inject_dataset` applies an `InjectionSpec` to one
split of a contract-shaped DatasetDict. Rows keep their order and ids, labels never change, and each
target class has its own RNG derived from the seed, so adding a class never changes another's draws.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import datasets

from ssti.data.common import class_names_of, column, make_split
from ssti.errors import SSTIError, check_choice
from ssti.inject.placement import LOCATIONS, apply_insertions, draw_position
from ssti.inject.sources import TokenSource, get_source, recorded_name
from ssti.inject.spec import ALL_CLASSES, InjectionSpec


@dataclass
class InjectedDataset:
    """The result of `inject_dataset`: every split (only `spec.split` modified) and its provenance."""

    dataset: datasets.DatasetDict
    manifest: list[dict]
    spec: InjectionSpec
    class_names: list[str]
    source_dataset: str | None = None

    def injected_counts(self) -> dict[str, int]:
        """Rows injected per class name (every class listed, zeros included)."""
        counts = dict.fromkeys(self.class_names, 0)
        for row in self.manifest:
            counts[row["class"]] += 1
        return counts


def insertion_count(length: int, tokens: int, token_fraction: float | None) -> int:
    """Insertions for one text: `tokens`, or max(1, floor(length * token_fraction))."""
    return tokens if token_fraction is None else max(1, int(length * token_fraction))


def inject_texts(
    texts: Sequence[str],
    source: TokenSource,
    rng: random.Random,
    tokens: int = 1,
    token_fraction: float | None = None,
    location: str = "random",
    length_fn: Callable[[str], int] | None = None,
    lengths: Sequence[int] | None = None,
) -> tuple[list[str], list[list[dict]]]:
    """Inject into every text of `texts`; return the new texts and each one's insertion records.

    Per text: the number of insertions (`tokens`, or a fraction of its length from `lengths[i]`,
    `length_fn(text)` or its word count), then per insertion a drawn string and a word position (an
    HTML pair's close tag at a position >= its open tag's). All randomness comes from `rng`, in order.
    Records: {"text", "start", "end", "span": [a, b], "group"} in new-text order (see placement).
    """
    check_choice("location", location, LOCATIONS)
    if tokens < 1:
        raise SSTIError(f"tokens: {tokens} is below 1 (insertions per sample must be >= 1)")
    source = get_source(source)
    draw, rand = source.draw, rng.random
    new_texts: list[str] = []
    records: list[list[dict]] = []
    for row, text in enumerate(texts):
        n_words = len(text.split())
        if token_fraction is None:
            k = tokens
        else:
            length = lengths[row] if lengths is not None else (length_fn(text) if length_fn else n_words)
            k = insertion_count(length, tokens, token_fraction)
        placed = []
        for group in range(k):
            strings = draw(rng)
            i = draw_position(location, n_words, rand)
            placed.append((i, 2 * group, strings[0], group))
            if len(strings) == 2:
                j = i + int(rand() * (n_words - i + 1))
                placed.append((j, 2 * group + 1, strings[1], group))
        new, recs = apply_insertions(text, n_words, placed)
        new_texts.append(new)
        records.append(recs)
    return new_texts, records


def resolve_targets(targets: dict[str, str], class_names: Sequence[str]) -> list[tuple[int, str]]:
    """Map each target key (index, name or `*`) to a class index; returns (index, key) sorted by index."""
    allowed = ", ".join(f"{i}={n}" for i, n in enumerate(class_names))
    resolved: dict[int, str] = {}
    for key in targets:
        if key == ALL_CLASSES:
            indices = list(range(len(class_names)))
        elif key.isdigit():
            if int(key) >= len(class_names):
                raise SSTIError(f"targets: class index {key} is out of range (classes: {allowed})")
            indices = [int(key)]
        elif key in class_names:
            indices = [list(class_names).index(key)]
        else:
            raise SSTIError(f"targets: unknown class {key!r} (classes: {allowed})")
        for k in indices:
            if k in resolved:
                raise SSTIError(f"targets: class {class_names[k]!r} is targeted twice ({resolved[k]!r} and {key!r})")
            resolved[k] = key
    return sorted(resolved.items())


def token_lengths(tokenizer, texts: Sequence[str]) -> list[int]:
    """Length of each text in model tokens (no special tokens), tokenizing the batch in one call."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def load_length_tokenizer(name: str, trust_remote_code: bool = False):
    """Load the tokenizer that measures lengths in model tokens (imported lazily: it pulls in transformers)."""
    try:
        from ssti.models import load_tokenizer
    except ImportError:
        raise SSTIError(f"tokenizer: cannot load {name!r}: ssti.models.load_tokenizer is unavailable") from None
    return load_tokenizer(name, trust_remote_code=trust_remote_code)


def select_rows(members: Sequence[int], spec: InjectionSpec, class_name: str, rng: random.Random) -> list[int]:
    """Exactly round(n_class * rate) or `count` of `members`, drawn with `rng`, in row order."""
    n_class = len(members)
    if spec.count is not None:
        if spec.count > n_class:
            raise SSTIError(f"count: {spec.count} is more than the {n_class} rows of class {class_name!r} (allowed 0..{n_class})")
        n = spec.count
    else:
        n = round(n_class * spec.effective_rate)
    return sorted(rng.sample(list(members), n))


def inject_dataset(
    ds: datasets.DatasetDict, spec: InjectionSpec, tokenizer=None, *, source_dataset: str | None = None
) -> InjectedDataset:
    """Apply `spec` to split `spec.split` of `ds`; other splits pass through unchanged.

    `tokenizer` (an object with the Hugging Face call signature) is used when length_unit is "tokens";
    without it `spec.tokenizer` is loaded lazily. The manifest has one row per modified sample, in row
    order: id, split, label, class, source, insertions.
    """
    if spec.split not in ds:
        raise SSTIError(f"split: {spec.split!r} is not one of {', '.join(ds)}")
    split = ds[spec.split]
    if len(split) == 0:
        raise SSTIError(f"dataset: split {spec.split!r} is empty (nothing to inject)")
    class_names = class_names_of(ds)
    targets = resolve_targets(spec.targets, class_names)
    ids, texts, labels = column(split, "id"), column(split, "text"), column(split, "label")
    members: dict[int, list[int]] = {k: [] for k in range(len(class_names))}
    for row, label in enumerate(labels):
        members[label].append(row)
    needs_lengths = spec.length_unit == "tokens" and spec.token_fraction is not None
    if needs_lengths and tokenizer is None:
        tokenizer = load_length_tokenizer(spec.tokenizer)

    new_texts = list(texts)
    manifest: dict[int, dict] = {}
    for k, key in targets:
        source = spec.source_for(key)
        source_name = recorded_name(source)
        rng = random.Random(f"{spec.seed}:{k}")
        chosen = select_rows(members[k], spec, class_names[k], rng)
        picked = [texts[i] for i in chosen]
        lengths = token_lengths(tokenizer, picked) if needs_lengths else None
        out, records = inject_texts(
            picked, source, rng, tokens=spec.tokens, token_fraction=spec.token_fraction,
            location=spec.location, lengths=lengths,
        )
        for i, new, recs in zip(chosen, out, records):
            new_texts[i] = new
            manifest[i] = {"id": ids[i], "split": spec.split, "label": k, "class": class_names[k], "source": source_name, "insertions": recs}
    out_ds = datasets.DatasetDict(dict(ds))
    out_ds[spec.split] = make_split(ids, new_texts, labels, class_names)
    rows = [manifest[i] for i in sorted(manifest)]
    return InjectedDataset(out_ds, rows, spec, list(class_names), source_dataset)


__all__ = ["InjectedDataset", "InjectionSpec", "inject_dataset", "inject_texts", "insertion_count", "load_length_tokenizer", "resolve_targets", "select_rows", "token_lengths"]
