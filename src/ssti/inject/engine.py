"""The injection transform: pick rows of each target class, insert drawn tokens, record every insertion.

`inject_texts` is the pure core on Python lists; `inject_dataset` applies an `InjectionSpec` to one
split of a contract-shaped DatasetDict. Rows keep their order and ids, labels never change, and each
target class has its own RNG derived from the seed, so adding a class never changes another's draws.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import random
from dataclasses import dataclass
from typing import Callable, Sequence

import datasets

from ssti.data.common import class_names_of
from ssti.data.registry import load_dataset
from ssti.errors import SSTIError, check_choice
from ssti.inject.placement import LOCATIONS, WordIndex, apply_insertions
from ssti.inject.sources import TokenSource, get_source, recorded_name
from ssti.inject.spec import ALL_CLASSES, InjectionSpec
from ssti.inject.tables import arrow_table, replace_texts, take_rows


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


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic garbage collector for a block that allocates many small, acyclic objects.

    The manifest records are dicts and lists; the collector rescanning them again and again made
    aggressive SSTI about 1.6x slower. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    words = WordIndex(texts)
    anywhere = location == "random"  # random: a uniform word index in [0, n_words] per insertion, else the first or last
    new_texts: list[str] = []
    records: list[list[dict]] = []
    with paused_gc():
        for row, text in enumerate(texts):
            n_words = words.n_words[row]
            if token_fraction is None:
                k = tokens
            else:
                length = lengths[row] if lengths is not None else (length_fn(text) if length_fn else n_words)
                k = insertion_count(length, tokens, token_fraction)
            placed = []
            for group in range(k):
                strings = draw(rng)
                i = int(rand() * (n_words + 1)) if anywhere else (0 if location == "beginning" else n_words)
                placed.append((i, 2 * group, strings[0], group))
                if len(strings) == 2:
                    j = i + int(rand() * (n_words - i + 1))
                    placed.append((j, 2 * group + 1, strings[1], group))
            offsets = words.offsets(row, {p[0] for p in placed})
            new, recs = apply_insertions(text, n_words, placed, offsets)
            new_texts.append(new)
            records.append(recs)
    return new_texts, records


def insertion_positions(texts: Sequence[str], rng: random.Random, location: str = "random") -> list[tuple[int, float]]:
    """One insertion place per text, drawn once so several token types can share it: (word index, u).

    The word index is uniform over [0, n_words] (random), 0 (beginning) or n_words (end); `u` in [0, 1)
    places an HTML pair's closing tag at a word index >= the opening one (see `insert_at_words`).
    """
    check_choice("location", location, LOCATIONS)
    words = WordIndex(texts)
    out = []
    for n in words.n_words:
        r, u = rng.random(), rng.random()
        out.append((int(r * (n + 1)) if location == "random" else (0 if location == "beginning" else n), u))
    return out


def insert_at_words(texts: Sequence[str], strings: Sequence[tuple[str, ...]],
                    positions: Sequence[tuple[int, float]]) -> tuple[list[str], list[list[dict]]]:
    """Insert `strings[t]` (one string, or an HTML pair's open and close tag) into `texts[t]` at
    `positions[t]` from `insertion_positions`; return the new texts and their insertion records (as
    `inject_texts` gives them). The same positions with other strings make paired comparisons: a token
    type against a control at exactly the same places."""
    words = WordIndex(texts)
    new_texts, records = [], []
    for t, (text, pair, (i, u)) in enumerate(zip(texts, strings, positions)):
        n = words.n_words[t]
        i = min(i, n)
        placed = [(i, 0, pair[0], 0)]
        if len(pair) == 2:
            placed.append((i + int(u * (n - i + 1)), 1, pair[1], 0))
        new, recs = apply_insertions(text, n, placed, words.offsets(t, {p[0] for p in placed}))
        new_texts.append(new)
        records.append(recs)
    return new_texts, records


def resolve_targets(targets: dict[str, str], class_names: Sequence[str], field: str = "targets") -> list[tuple[int, str]]:
    """Map each target key to a class index; returns (index, key) sorted by index.

    A key equal to a class name means that class (so a file whose labels are 1 and 5 is targeted as
    "5", and a class named `*` is that class); otherwise `*` means every class, a number is a class
    index, and a key with spaces around a class name (`--target "pos = date"`) means that class. This is ssti's one class
    resolver: injection targets and the test-time sources of `ssti eval` both go through it. Raises
    SSTIError naming `field` for an unknown class or a class given twice.
    """
    plain = lambda n: n if n and n == n.strip() and not set(n) & set("=,'\"") and n.isprintable() else repr(n)  # noqa: E731
    allowed = ", ".join(f"{i}={plain(n)}" for i, n in list(enumerate(class_names))[:20])
    if len(class_names) > 20:
        allowed += f", ... ({len(class_names):,} classes in all)"
    resolved: dict[int, str] = {}
    for key in targets:
        if key in class_names:
            indices = [list(class_names).index(key)]
        elif key.strip() == ALL_CLASSES:
            indices = list(range(len(class_names)))
        elif key.strip().isdigit() and int(key.strip()) < len(class_names) and key.strip() not in class_names:
            indices = [int(key.strip())]
        elif key.strip() in class_names:
            indices = [list(class_names).index(key.strip())]
        else:
            raise SSTIError(f"{field}: unknown class {key!r} (classes, index=name: {allowed}; or * for all)")
        for k in indices:
            if k in resolved:
                raise SSTIError(f"{field}: class {class_names[k]!r} is targeted twice ({resolved[k]!r} and {key!r})")
            resolved[k] = key
    return sorted(resolved.items())


def token_lengths(tokenizer, texts: Sequence[str]) -> list[int]:
    """Length of each text in model tokens (no special tokens), tokenizing the batch in one call."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _fingerprint(split: datasets.Dataset, spec: InjectionSpec) -> str:
    payload = json.dumps([split._fingerprint, spec.to_dict(), sorted(spec._sources)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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

    `tokenizer` (an object with the Hugging Face call signature, e.g. `ssti.models.load_tokenizer(spec.tokenizer)`)
    measures lengths when length_unit is "tokens"; it is required then. The manifest has one row per modified sample, in row
    order: id, split, label, class, source, insertions. `ds` may also be anything `ssti.data.load_dataset`
    takes (a name, folder or file path, or a single Dataset as the train split); other objects and
    datasets that break the contract raise SSTIError.
    """
    if not isinstance(spec, InjectionSpec):
        raise SSTIError(f"spec: expected an ssti.inject.InjectionSpec, got {type(spec).__name__}; e.g. InjectionSpec(targets={{'1': 'date'}}, rate=0.05)")
    ds = load_dataset(ds)
    if spec.split not in ds:
        raise SSTIError(f"split: {spec.split!r} is not one of {', '.join(ds)}")
    split = ds[spec.split]
    if len(split) == 0:
        raise SSTIError(f"dataset: split {spec.split!r} is empty (nothing to inject)")
    class_names = class_names_of(ds)
    targets = resolve_targets(spec.targets, class_names)
    table = arrow_table(split)
    labels = table.column("label").to_pylist()
    members: dict[int, list[int]] = {k: [] for k in range(len(class_names))}
    for row, label in enumerate(labels):
        if label in members:  # an unlabelled row (-1 or None) is never a target
            members[label].append(row)
    needs_lengths = spec.length_unit == "tokens" and spec.token_fraction is not None
    if needs_lengths and tokenizer is None:
        raise SSTIError(f"tokenizer: length_unit 'tokens' needs the tokenizer object; load it with "
                        f"ssti.models.load_tokenizer({spec.tokenizer!r}) and pass tokenizer=")

    manifest: dict[int, dict] = {}
    changed: dict[int, str] = {}
    for k, key in targets:
        source = spec.source_for(key)
        source_name = recorded_name(source)
        rng = random.Random(f"{spec.seed}:{k}")
        chosen = select_rows(members[k], spec, class_names[k], rng)
        picked, ids = take_rows(table, chosen, "text", "id")
        lengths = token_lengths(tokenizer, picked) if needs_lengths else None
        out, records = inject_texts(
            picked, source, rng, tokens=spec.tokens, token_fraction=spec.token_fraction,
            location=spec.location, lengths=lengths,
        )
        for i, row_id, new, recs in zip(chosen, ids, out, records):
            changed[i] = new
            manifest[i] = {"id": row_id, "split": spec.split, "label": k, "class": class_names[k], "source": source_name, "insertions": recs}
    out_ds = datasets.DatasetDict(dict(ds))
    out_ds[spec.split] = replace_texts(split, table, changed, fingerprint=_fingerprint(split, spec))
    rows = [manifest[i] for i in sorted(manifest)]
    return InjectedDataset(out_ds, rows, spec, list(class_names), source_dataset)


__all__ = ["InjectedDataset", "InjectionSpec", "inject_dataset", "inject_texts", "insertion_count", "resolve_targets", "select_rows", "token_lengths"]
