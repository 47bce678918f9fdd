"""The registry of named datasets and the one entry point that loads any of them: `load_dataset`.

Every loader returns a `datasets.DatasetDict` with splits `train` and `test` (and `validation` where
the source has one) and columns `id` (stable string), `text` and `label` (ClassLabel).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import datasets

from ssti.data import embedded, hub, local
from ssti.data.common import check_contract, window_words
from ssti.data.folder import read_dataset_folder
from ssti.errors import SSTIError


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset: where it comes from and how to load it."""

    name: str
    kind: str  # "embedded" (ships in a PyPI package, offline) or "hub" (needs the network)
    description: str
    loader: Callable[[], datasets.DatasetDict]


DATASETS: dict[str, DatasetEntry] = {}


def register(entry: DatasetEntry) -> None:
    """Add a named dataset to the registry (names are unique)."""
    if entry.name in DATASETS:
        raise SSTIError(f"dataset: {entry.name!r} is already registered")
    DATASETS[entry.name] = entry


register(DatasetEntry("rotten-tomatoes", "embedded", "movie review snippets, rotten/fresh (stands in for IMDB)", embedded.load_rotten_tomatoes))
register(DatasetEntry("bbc-news", "embedded", "BBC News articles, 5 topics (a multi-class set)", embedded.load_bbc_news))
for _name, _spec in hub.HUB_DATASETS.items():
    register(DatasetEntry(_name, "hub", f"{_spec.description} [{_spec.hub_id}]", lambda _n=_name: hub.load_hub(_n)))

DEFAULT_DATASET = "rotten-tomatoes"
LOCAL_SUFFIXES = local.SUFFIXES


def load_dataset(source: str | os.PathLike | datasets.DatasetDict | datasets.Dataset, text_column: str = "text", label_column: str = "label", delimiter: str | None = None,
                 drop_unlabelled: bool = False, max_words: int | None = None, whole_file: bool = False,
                 id_column: str = "id") -> datasets.DatasetDict:
    """Load a dataset by registry name, injected/saved ssti folder, or local csv/jsonl/parquet file; a
    DatasetDict (or a single Dataset, taken as the `train` split) given in memory is checked the same way.

    `text_column`, `label_column`, `id_column`, `delimiter` and `drop_unlabelled` only apply to local files (see
    `ssti.data.local.load_local`; `whole_file`: a file without a `split` column is one `train` split, as
    scanning and cleaning a file want, instead of train/test); `max_words` cuts every text to its first
    N words (`window_words`).
    The result always follows the contract; anything else (a DataFrame, a list of rows) is an SSTIError
    saying how to convert it.
    """
    if isinstance(source, datasets.Dataset):
        source = datasets.DatasetDict({"train": source})
    if isinstance(source, datasets.DatasetDict):
        ds = check_contract(source, "the dataset given")
        return window_words(ds, max_words) if max_words else ds
    if not isinstance(source, (str, os.PathLike)):
        kind = type(source).__name__ if type(source).__module__ == "builtins" else f"{type(source).__module__.split('.')[0]}.{type(source).__name__}"
        raise SSTIError(f"dataset: got a {kind}; give a registry name, an ssti "
                        f"folder, a csv/jsonl/parquet file path, or a datasets.DatasetDict with columns id, text and label "
                        f"(a ClassLabel); a table of rows can be saved with df.to_csv(path, index=False) and loaded from there")
    source = os.fspath(source)
    if not str(source).strip():
        raise SSTIError(f"dataset: an empty name; give a registry name ({', '.join(DATASETS)}), an ssti folder or a file")
    if source in DATASETS:
        ds = DATASETS[source].loader()
    else:
        path = Path(source)
        if path.is_dir():
            if max_words and (path / "manifest.jsonl").is_file() and (path / "manifest.jsonl").stat().st_size:
                raise SSTIError(f"data.max_words: {source} is an injected dataset folder; cutting its texts would cut planted tokens "
                                f"out and leave its manifest wrong; cut the source before injecting (ssti inject --max-words N)")
            ds = read_dataset_folder(path)
        elif path.suffix.lower() in LOCAL_SUFFIXES:
            ds = local.load_local(path, text_column=text_column, label_column=label_column, delimiter=delimiter,
                                  drop_unlabelled=drop_unlabelled, whole=whole_file, id_column=id_column)
        else:
            raise SSTIError(
                f"dataset: {source!r} is not a known name ({', '.join(DATASETS)}), "
                f"an ssti folder, nor a {'/'.join(LOCAL_SUFFIXES)} file"
            )
    ds = check_contract(ds, source)
    return window_words(ds, max_words) if max_words else ds

