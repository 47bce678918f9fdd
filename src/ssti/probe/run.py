"""`probe`: load the model (`target`), find its held-out labelled texts, run the type sweep (`types`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ssti.config import DataSpec, read_run_config
from ssti.data import class_names_of, column, load_dataset
from ssti.errors import SSTIError
from ssti.probe.target import ProbeTarget, load_target
from ssti.probe.attention import AttentionDiagnostic
from ssti.probe.search import OpenSearch
from ssti.probe.types import ALPHA, BUILT_IN_TYPES, MIN_EFFECT, TypeSweep, held_out, type_sweep
from ssti.version import __version__


@dataclass
class ProbeReport:
    """What `ssti probe` found: the model audited, the held-out data and the type sweep."""

    source: str
    kind: str
    data: str
    split: str
    sweep: TypeSweep
    search: OpenSearch | None = None
    attention: AttentionDiagnostic | None = None

    @property
    def steered(self) -> bool:
        """The verdict: whether a token type of the type sweep steers the model.

        The open search's verified sequences are reported beside it, not counted: a greedy search over
        the vocabulary also finds adversarial sequences that steer models trained on clean data
        (universal triggers, Wallace et al. 2019), and its threshold is not yet calibrated on clean models.
        """
        return bool(self.sweep.steering)

    def to_dict(self) -> dict[str, Any]:
        out = {"model": self.source, "kind": self.kind, "data": self.data, "split": self.split, "ssti_version": __version__,
               **self.sweep.to_dict()}
        if self.attention is not None:
            out["attention"] = self.attention.to_dict()
        if self.search is not None:
            out["open_search"] = self.search.to_dict()
        return out


def held_out_data(target: ProbeTarget, data: str | DataSpec | None, split: str | None) -> tuple[list[str], list[int], str, str]:
    """(texts, labels, data name, split) the probe uses: `data` (its `split`, default test), else the run's own
    evaluation split. Raises SSTIError when no data is given for a model that is not a run, for a missing
    split, and for classes that do not match the model's (naming --labels as the fix)."""
    if data is None:
        if target.run_dir is None:
            raise SSTIError(f"data: {target.source} is a {target.kind.replace('-', ' ')}, not an ssti run: give held-out labelled texts "
                            f"with --data (a dataset name, an ssti folder or a csv/jsonl/parquet file)")
        from ssti.evaluate import evaluation_data

        config = read_run_config(target.run_dir)
        dataset = evaluation_data(target.run_dir, config)
        split, name = split or config.eval.split, config.data.dataset
    else:
        spec = data if isinstance(data, DataSpec) else DataSpec(dataset=str(data))
        dataset = load_dataset(spec.dataset, **spec.load_options())
        split, name = split or ("test" if "test" in dataset else "train"), spec.dataset
    if split not in dataset:
        raise SSTIError(f"split: {split!r} is not a split of {name} ({', '.join(dataset)})")
    names = class_names_of(dataset)
    model_names = target.clf.class_names
    if names != model_names:
        hint = f"; name the model's classes with --labels {','.join(names)}" if len(names) == len(model_names) else ""
        raise SSTIError(f"data: the classes of {name} ({', '.join(names)}) are not the model's ({', '.join(model_names)}){hint}")
    part = dataset[split]
    if len(part) == 0:
        raise SSTIError(f"split: the {split!r} split of {name} is empty")
    return column(part, "text"), column(part, "label"), str(name), split


def probe(model: str | Path, data: str | DataSpec | None = None, split: str | None = None, types: Sequence[str] | None = None,
          extra_types: Sequence[str] = (), max_per_class: int = 200, location: str = "random", seed: int = 0,
          labels: list[str] | None = None, alpha: float = ALPHA, min_effect: float = MIN_EFFECT,
          trust_remote_code: bool = False, batch_size: int = 32, search: bool = False, top_k: int = 20,
          max_tokens: int = 8, attention: bool = False) -> ProbeReport:
    """Audit `model` (an ssti run folder, a saved ssti model, a PEFT adapter folder or a Hugging Face
    sequence-classification model) with the type sweep on held-out labelled texts.

    `types` defaults to the built-in token types; `extra_types` adds source specs (fixed:TEXT, list:...,
    file:PATH). See `ssti.probe.types` for the statistics. `search` adds the open search over the
    vocabulary (`ssti.probe.search`: `top_k` tokens verified per class, sequences up to `max_tokens`);
    `attention` the attention diagnostic (`ssti.probe.attention`) for the most steering type found.
    Raises SSTIError (one line) for bad input.
    """
    from ssti.errors import check_choice
    from ssti.inject import LOCATIONS

    check_choice("location", location, LOCATIONS)
    if max_per_class < 1:
        raise SSTIError(f"max_samples: {max_per_class} is below 1 (held-out samples per class)")
    if not 0 < alpha < 1:
        raise SSTIError(f"alpha: {alpha} is not between 0 and 1 (family-wise error of the steering test)")
    all_types = list(dict.fromkeys(list(BUILT_IN_TYPES if types is None else types) + list(extra_types)))
    if search and (top_k < 1 or not 1 <= max_tokens <= 32):
        raise SSTIError(f"top_k/max_tokens: {top_k}/{max_tokens} not allowed (top_k >= 1, max_tokens 1..32)")
    if not all_types:
        raise SSTIError("types: no token type to try; give --types or keep the built-in ones")
    from ssti.inject import get_source

    for t in all_types:
        get_source(t)  # an unknown type is refused before the model loads
    target = load_target(model, labels=labels, trust_remote_code=trust_remote_code)
    texts, y, name, split = held_out_data(target, data, split)
    if target.kind in ("run", "ssti-model") and not attention:
        target.clf.merge_adapters()  # the probe only reads the model: one matmul per adapted layer
    rows = held_out(y, max_per_class, np.random.default_rng(seed))  # the held-out sample both searches use
    texts, y = [texts[i] for i in rows], [y[i] for i in rows]
    sweep = type_sweep(target.clf, texts, y, all_types, max_per_class=max_per_class, location=location, seed=seed, alpha=alpha,
                       min_effect=min_effect, batch_size=batch_size)
    found = None
    if search:
        from ssti.probe.search import open_search

        found = open_search(target.clf, texts, y, top_k=top_k, max_tokens=max_tokens, seed=seed, alpha=alpha, min_effect=min_effect,
                            batch_size=batch_size)
    diagnostic = None
    if attention:
        from ssti.probe.attention import attention_diagnostic

        steering = [c for c in (found.candidates if found else []) if c.steering]
        if sweep.findings and (sweep.steering or not steering):
            chosen = sweep.findings[0].type  # the most effective type of the sweep (steering or not)
        else:
            chosen = f"fixed:{steering[0].text.strip()}"
        diagnostic = attention_diagnostic(target.clf, texts, chosen, seed=seed, location=location, batch_size=min(batch_size, 16))
    return ProbeReport(target.source, target.kind, name, split, sweep, found, diagnostic)
