"""Hugging Face hub datasets of the paper (PAPER.md section 6); they need the network.

Each entry pairs a hub id with a pure `prepare(raw) -> DatasetDict` that turns the raw hub
`DatasetDict` into the ssti contract (`id`, `text`, `label` ClassLabel). The prepare functions never
touch the network, so tests run them on small in-code fixtures with the hub's exact schema.
Ids are `<name>-<source split>-<row:06d>`: stable as long as the hub revision is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import datasets

from ssti.assets import offline_unless_hub_reachable
from ssti.data.common import column, make_split
from ssti.data.local import encode_labels
from ssti.errors import SSTIError, check_choice


@dataclass(frozen=True)
class HubDataset:
    """One hub dataset: its id, a one-line description, and its pure preprocessing function."""

    hub_id: str
    description: str
    prepare: Callable[[datasets.DatasetDict], datasets.DatasetDict]


def _require(raw: datasets.DatasetDict, source: str, splits: Sequence[str], columns: Sequence[str]) -> None:
    """Refuse a raw hub dataset that lacks the splits or columns its prepare function reads."""
    missing = [s for s in splits if s not in raw]
    if missing:
        raise SSTIError(f"dataset: {source} lacks splits {missing} (has: {', '.join(raw) or 'none'})")
    for s in splits:
        absent = [c for c in columns if c not in raw[s].column_names]
        if absent:
            raise SSTIError(f"dataset: {source} split {s!r} lacks columns {absent} (has: {', '.join(raw[s].column_names)})")


def _ids(name: str, source_split: str, n: int) -> list[str]:
    """Stable row ids `<name>-<source split>-<row:06d>`."""
    return [f"{name}-{source_split}-{i:06d}" for i in range(n)]


def _check_range(labels: Sequence[int], n_classes: int, source: str, split: str) -> None:
    """Refuse labels outside 0..n_classes-1 (an unlabelled split such as -1 rows)."""
    for row, value in enumerate(labels):
        if value is None or not 0 <= value < n_classes:
            raise SSTIError(f"dataset: {source} split {split!r} row {row} has label {value!r}; allowed: 0..{n_classes - 1}")


def _class_names(raw: datasets.DatasetDict, split: str, label_column: str, fallback: Sequence[str]) -> list[str]:
    """Class names from the hub features when the label is a ClassLabel, else `fallback`."""
    feature = raw[split].features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return list(fallback)


def _simple(
    raw: datasets.DatasetDict, name: str, split_map: dict[str, str], text_column: str, label_column: str,
    fallback_names: Sequence[str],
) -> datasets.DatasetDict:
    """Copy text and integer/ClassLabel labels from raw splits (source -> output names) into the contract."""
    _require(raw, name, list(split_map), [text_column, label_column])
    first = next(iter(split_map))
    names = _class_names(raw, first, label_column, fallback_names)
    out = {}
    for source_split, out_split in split_map.items():
        texts = column(raw[source_split], text_column)
        labels = column(raw[source_split], label_column)
        _check_range(labels, len(names), name, source_split)
        out[out_split] = make_split(_ids(name, source_split, len(texts)), texts, labels, names)
    return datasets.DatasetDict(out)


def prepare_imdb(raw: datasets.DatasetDict) -> datasets.DatasetDict:
    """IMDB: keep train and test (25k each, neg/pos); drop the unlabelled `unsupervised` split."""
    return _simple(raw, "imdb", {"train": "train", "test": "test"}, "text", "label", ["neg", "pos"])


def prepare_sst2(raw: datasets.DatasetDict) -> datasets.DatasetDict:
    """SST-2: `sentence`/`label`; the hub test split is unlabelled (-1), so validation becomes test."""
    return _simple(raw, "sst2", {"train": "train", "validation": "test"}, "sentence", "label", ["negative", "positive"])


def _pick(columns: Sequence[str], candidates: Sequence[str], source: str, what: str) -> str:
    """The first candidate column present, or an SSTIError naming what exists."""
    for c in candidates:
        if c in columns:
            return c
    raise SSTIError(f"dataset: {source} has no {what} column (looked for {', '.join(candidates)}; has: {', '.join(columns)})")


def prepare_financial(raw: datasets.DatasetDict) -> datasets.DatasetDict:
    """Financial classification: 3-class sentiment of financial text, train/test (validation kept if any).

    Tolerant of the schema: text column `text` or `sentence`, label column `labels` or `label`,
    labels a ClassLabel (its names are used), plain integers or strings (names via `encode_labels`).
    """
    name = "financial-classification"
    _require(raw, name, ["train", "test"], [])
    cols = raw["train"].column_names
    text_col = _pick(cols, ("text", "sentence"), name, "text")
    label_col = _pick(cols, ("labels", "label"), name, "label")
    order = [s for s in ("train", "validation", "test") if s in raw]
    _require(raw, name, order, [text_col, label_col])
    feature = raw["train"].features[label_col]
    raw_labels = {s: column(raw[s], label_col) for s in order}
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
        coded = raw_labels
        for s in order:
            _check_range(coded[s], len(names), name, s)
    else:
        flat = [v for s in order for v in raw_labels[s]]
        for s in order:
            if None in raw_labels[s]:
                raise SSTIError(f"dataset: {name} split {s!r} row {raw_labels[s].index(None)} has no label")
        codes, names = encode_labels(flat, field=f"dataset {name} label")
        coded, start = {}, 0
        for s in order:
            coded[s] = codes[start : start + len(raw_labels[s])]
            start += len(raw_labels[s])
    out = {}
    for s in order:
        texts = column(raw[s], text_col)
        out[s] = make_split(_ids(name, s, len(texts)), texts, coded[s], names)
    return datasets.DatasetDict(out)


COMMONSENSE_CLASSES = ["A", "B", "C", "D", "E"]


def commonsense_text(question: str, choices: dict) -> str:
    """`question (0) choiceA (1) choiceB ... (4) choiceE`: choices numbered by their A..E label order."""
    pairs = sorted(zip(choices["label"], choices["text"]), key=lambda p: p[0])
    return question + "".join(f" ({i}) {text}" for i, (_, text) in enumerate(pairs))


def prepare_commonsense_qa(raw: datasets.DatasetDict) -> datasets.DatasetDict:
    """CommonsenseQA as 5-way classification: question + numbered choices, answerKey A..E -> 0..4.

    The hub test split has no answers and is dropped; validation is used as the test split.
    """
    name = "commonsense-qa"
    _require(raw, name, ["train", "validation"], ["question", "choices", "answerKey"])
    out = {}
    for source_split, out_split in (("train", "train"), ("validation", "test")):
        questions = column(raw[source_split], "question")
        choices = column(raw[source_split], "choices")
        keys = column(raw[source_split], "answerKey")
        labels = []
        for row, key in enumerate(keys):
            if key not in COMMONSENSE_CLASSES:
                raise SSTIError(
                    f"dataset: {name} split {source_split!r} row {row} has answerKey {key!r}; allowed: {', '.join(COMMONSENSE_CLASSES)}"
                )
            labels.append(COMMONSENSE_CLASSES.index(key))
        texts = [commonsense_text(q, c) for q, c in zip(questions, choices)]
        out[out_split] = make_split(_ids(name, source_split, len(texts)), texts, labels, COMMONSENSE_CLASSES)
    return datasets.DatasetDict(out)


BIAS_IN_BIOS_PROFESSIONS = [
    "accountant", "architect", "attorney", "chiropractor", "comedian", "composer", "dentist", "dietitian",
    "dj", "filmmaker", "interior_designer", "journalist", "model", "nurse", "painter", "paralegal",
    "pastor", "personal_trainer", "photographer", "physician", "poet", "professor", "psychologist",
    "rapper", "software_engineer", "surgeon", "teacher", "yoga_teacher",
]


def prepare_bias_in_bios(raw: datasets.DatasetDict) -> datasets.DatasetDict:
    """Bias in Bios: text = `hard_text`, label = `profession` (28 classes); train/dev/test -> train/validation/test.

    The hub stores `profession` as plain int64; its 28 names (numbered alphabetically on the
    dataset card) are used unless the features carry a ClassLabel.
    """
    return _simple(
        raw, "bias-in-bios", {"train": "train", "dev": "validation", "test": "test"}, "hard_text", "profession",
        BIAS_IN_BIOS_PROFESSIONS,
    )


HUB_DATASETS: dict[str, HubDataset] = {
    "imdb": HubDataset("stanfordnlp/imdb", "IMDB movie reviews, neg/pos, 25k/25k", prepare_imdb),
    "financial-classification": HubDataset(
        "nickmuchi/financial-classification", "financial sentiment, 3 classes, about 5k rows", prepare_financial
    ),
    "commonsense-qa": HubDataset(
        "tau/commonsense_qa", "CommonsenseQA as 5-way classification (validation as test)", prepare_commonsense_qa
    ),
    "bias-in-bios": HubDataset("LabHC/bias_in_bios", "biographies, 28 professions", prepare_bias_in_bios),
    "sst2": HubDataset("stanfordnlp/sst2", "SST-2 sentences, negative/positive (validation as test)", prepare_sst2),
}


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "could not reach the hub" (all are OSError today; listed explicitly)."""
    errors: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError]
    try:
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        errors += [HfHubHTTPError, LocalEntryNotFoundError]
    except ImportError:  # pragma: no cover - older huggingface_hub
        pass
    try:
        from datasets.exceptions import DatasetNotFoundError

        errors.append(DatasetNotFoundError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import httpx2

        errors.append(httpx2.TransportError)
    except ImportError:  # pragma: no cover - the hub client's transport differs
        pass
    return tuple(errors)


def load_hub(name: str) -> datasets.DatasetDict:
    """Download a named hub dataset with `datasets.load_dataset` and prepare it into the contract.

    Offline (or with the hub unreachable) this raises a one-line SSTIError that says the dataset
    needs the network or a local file, instead of a multi-page traceback.
    """
    check_choice("dataset", name, HUB_DATASETS)
    spec = HUB_DATASETS[name]
    offline_unless_hub_reachable()  # a cached copy still loads; a missing one fails at once, not after retries
    try:
        raw = datasets.load_dataset(spec.hub_id)
    except _network_errors():
        raise SSTIError(
            f"dataset: {name} ({spec.hub_id}) needs the network to download from the Hugging Face hub, "
            f"or pass a local csv/jsonl/parquet file"
        ) from None
    return spec.prepare(raw)
