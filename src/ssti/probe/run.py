"""`probe`: load the model (`target`), find its held-out labelled texts, run the type sweep (`types`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssti.config import DataSpec, is_local, read_run_config
from ssti.data import class_names_of, column, load_dataset
from ssti.errors import SSTIError
from ssti.probe.target import GENERIC_LABEL, ProbeTarget, load_target
from ssti.probe.attention import AttentionDiagnostic
from ssti.probe.search import OpenSearch
from ssti.probe.types import TypeSweep, held_out, type_sweep
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
    notes: list[str] = field(default_factory=list)  # what the reader should know about how the data was read or cut

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
               **self.sweep.to_dict(), "notes": list(self.notes)}
        if self.attention is not None:
            out["attention"] = self.attention.to_dict()
        if self.search is not None:
            out["open_search"] = self.search.to_dict()
        return out


def held_out_data(target: ProbeTarget, data: str | DataSpec | None, split: str | None
                  ) -> tuple[list[str], list[int], str, str, list[str]]:
    """(texts, labels in the model's class indices, data name, split, notes) the probe uses: `data` (its `split`), else
    the run's own evaluation split. Default split: `test` for a named dataset or an ssti folder; a file of yours
    is read whole (split `all`), or its `test` rows when it has a `split` column. `--split train|test` on a file
    without a split column picks ssti's own stratified cut of it (the one `ssti train` holds out; a note says so).
    Classes are matched by name. Raises SSTIError when no data is given for a model that is not a run, for a
    missing split, and for classes that are not the model's (naming --labels as the fix for LABEL_0, LABEL_1,
    ... models)."""
    notes = []
    if data is None:
        if target.run_dir is None:
            kind = {"ssti-model": "saved ssti model", "peft-adapter": "PEFT adapter", "hf-model": "Hugging Face classifier"}[target.kind]
            raise SSTIError(f"data: {target.source} is a {kind}, not an ssti run: give held-out labelled texts "
                            f"with --data (a dataset name, an ssti folder or a csv/jsonl/parquet file)")
        from ssti.evaluate import evaluation_data

        config = read_run_config(target.run_dir)
        dataset = evaluation_data(target.run_dir, config)
        split, name = split or config.eval.split, config.data.dataset
        if config.injection is not None:  # what evaluation_data read: the run's own copy, not the source named in its config
            from ssti.config import INJECTED_DATA

            name = f"{target.run_dir / INJECTED_DATA} (the run's copy of {config.data.dataset})"
    else:
        if isinstance(data, DataSpec):
            spec = data
        elif target.run_dir is not None:  # a name or path is read with the run's own column options, as `ssti eval --data` does
            spec = read_run_config(target.run_dir).data.model_copy(update={"dataset": str(data), "fingerprint": None})
        else:
            spec = DataSpec(dataset=str(data))
        name = spec.dataset
        file = is_local(spec.dataset) and not Path(spec.dataset).is_dir()
        dataset = load_dataset(spec.dataset, **spec.load_options(), **({"whole_file": True} if file else {}))
        own_splits = list(dataset) != ["train"]  # a file without a split column comes back whole, as one train split
        if file and not own_splits:
            if split in (None, "all"):
                split = "all"  # a file of yours is held out whole
            else:
                dataset = load_dataset(spec.dataset, **spec.load_options())
                notes.append(f"{Path(name).name} has no split column: split {split!r} is ssti's own stratified "
                             f"{'20% test' if split == 'test' else '80% train'} cut of it (the one `ssti train` holds out); "
                             f"leave --split out to probe on every row")
        split = split or ("test" if "test" in dataset else "train")
    if split != "all" and split not in dataset:
        raise SSTIError(f"split: {split!r} is not a split of {name} (allowed: {', '.join(dataset)}"
                        f"{', all' if data is not None else ''})")
    names = class_names_of(dataset)
    model_names = target.clf.class_names
    if set(names) != set(model_names):
        generic = all(GENERIC_LABEL.fullmatch(n) for n in model_names)
        hint = "; name the model's classes in index order with --labels" if generic and len(names) == len(model_names) else ""
        raise SSTIError(f"data: the classes of {name} ({', '.join(names)}) are not the model's ({', '.join(model_names)}){hint}")
    parts = list(dataset.values()) if split == "all" else [dataset[split]]
    texts = [t for part in parts for t in column(part, "text")]
    # labels by class name, in the model's index order (the data may order its classes differently)
    to_model = [model_names.index(n) for n in names]
    labels = [to_model[y] for part in parts for y in column(part, "label")]
    if not texts:
        raise SSTIError(f"split: the {split!r} split of {name} is empty")
    return texts, labels, str(name), split, notes


def probe(model: str | Path, data: str | DataSpec | None = None, split: str | None = None, labels: list[str] | None = None,
          trust_remote_code: bool = False, batch_size: int = 32, **options: Any) -> ProbeReport:
    """Audit `model` (an ssti run folder, a saved ssti model, a PEFT adapter folder or a Hugging Face
    sequence-classification model) on held-out labelled texts.

    `options` are the fields of `ssti.probe.spec.ProbeSpec` (max_samples, types, extra_types, location,
    seed, alpha, min_effect, search, top_k, max_tokens, attention), checked before anything loads. The type
    sweep always runs (`ssti.probe.types`); `search` adds the open search over the vocabulary
    (`ssti.probe.search`), `attention` the attention diagnostic (`ssti.probe.attention`) for the most
    steering type. Raises SSTIError (one line) for bad input.
    """
    from ssti.config import validate
    from ssti.probe.spec import ProbeSpec

    spec = validate(ProbeSpec, options, "probe")
    target = load_target(model, labels=labels, trust_remote_code=trust_remote_code)
    texts, y, name, split, notes = held_out_data(target, data, split)
    texts, cut = fit_to_model(target.clf, texts)
    if target.kind in ("run", "ssti-model") and not spec.attention:
        target.clf.merge_adapters()  # the probe only reads the model: one matmul per adapted layer
    rows = held_out(y, spec.max_samples, np.random.default_rng(spec.seed))  # the held-out sample both searches use
    texts, y = [texts[i] for i in rows], [y[i] for i in rows]
    sweep = type_sweep(target.clf, texts, y, spec.all_types(), location=spec.location, seed=spec.seed, alpha=spec.alpha,
                       min_effect=spec.min_effect, batch_size=batch_size)
    sweep.texts_cut = int(sum(cut[i] for i in rows))
    found = None
    if spec.search:
        from ssti.probe.search import open_search

        found = open_search(target.clf, texts, y, top_k=spec.top_k or 20, max_tokens=spec.max_tokens or 8, seed=spec.seed,
                            alpha=spec.alpha, min_effect=spec.min_effect, batch_size=batch_size)
    diagnostic = None
    if spec.attention:
        from ssti.probe.attention import attention_diagnostic

        diagnostic = attention_diagnostic(target.clf, texts, sweep.findings[0].type, seed=spec.seed, location=spec.location,
                                          batch_size=min(batch_size, 16))
    notes += [f"{t}: the model reads {target.clf.model_spec.max_length} tokens, and the inserted token is cut off (in part or whole) "
              f"in {n} of {len(texts)} held-out texts, so its steer rate is understated" for t, n in sweep.insertions_cut.items() if n]
    return ProbeReport(target.source, target.kind, name, split, sweep, found, diagnostic, notes)


ROOM = 16  # model tokens kept free after a held-out text for what the probe inserts


def fit_to_model(clf, texts: list[str]) -> tuple[list[str], list[bool]]:
    """Each text cut to what the model reads with `ROOM` tokens to spare (`Classifier.kept_chars`), so an
    inserted token is never truncated away (a token placed past max_length would make a steered model look
    clean); and which were cut. Texts stay as they are when the tokenizer gives no character offsets."""
    kept = clf.kept_chars(list(texts), room=ROOM)
    if kept is None:
        return list(texts), [False] * len(texts)
    return [t[:k] for t, k in zip(texts, kept)], [k < len(t) for t, k in zip(texts, kept)]
