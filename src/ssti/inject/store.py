"""The injected-dataset folder: `data/<split>.parquet`, `manifest.jsonl`, `injection.yaml`.

Written atomically (built in a temp sibling, renamed into place) and deterministically: the same spec
and seed give the same bytes. Read back as a contract-shaped DatasetDict by `ssti.data.load_dataset`.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

import ssti
from ssti.data.common import features
from ssti.errors import SSTIError
from ssti.inject.engine import InjectedDataset
from ssti.inject.spec import InjectionSpec
from ssti.io import atomic_dir, read_yaml, write_yaml

SPEC_FILE = "injection.yaml"
MANIFEST_FILE = "manifest.jsonl"
DATA_DIR = "data"
FORMAT = "ssti-injected-dataset/1"
# Plain Arrow types, no schema metadata: the bytes depend only on the rows (class names live in the YAML).
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.int64())])


def _plain_table(split: datasets.Dataset) -> pa.Table:
    table = split.data.table.select(["id", "text", "label"])
    cols = [table.column(n).cast(SCHEMA.field(n).type) for n in SCHEMA.names]
    return pa.table(cols, schema=SCHEMA).combine_chunks()


def manifest_bytes(rows: list[dict]) -> bytes:
    """JSON Lines, one manifest row per line, unicode kept as is."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_injected(result: InjectedDataset, out: str | Path, overwrite: bool = False) -> Path:
    """Write `result` as an ssti dataset folder at `out` (refused if it exists, unless `overwrite`)."""
    out = Path(out)
    meta = {
        "format": FORMAT,
        "ssti_version": ssti.__version__,
        "source_dataset": result.source_dataset,
        "seed": result.spec.seed,
        "class_names": list(result.class_names),
        "splits": {name: len(split) for name, split in result.dataset.items()},
        "injected": result.injected_counts(),
        "spec": result.spec.to_dict(),
    }
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / DATA_DIR).mkdir()
        for name, split in result.dataset.items():
            # snappy, dictionary-encoding only the labels: about 2x faster to write than zstd
            pq.write_table(_plain_table(split), tmp / DATA_DIR / f"{name}.parquet", compression="snappy", use_dictionary=["label"])
        (tmp / MANIFEST_FILE).write_bytes(manifest_bytes(result.manifest))
        write_yaml(tmp / SPEC_FILE, meta)
    return out


def is_dataset_folder(path: str | Path) -> bool:
    """True if `path` looks like a folder written by `write_injected`."""
    path = Path(path)
    return (path / SPEC_FILE).is_file() and (path / DATA_DIR).is_dir()


def read_meta(path: str | Path) -> dict:
    """The parsed injection.yaml of an ssti dataset folder."""
    path = Path(path)
    if not is_dataset_folder(path):
        raise SSTIError(f"dataset: {path} is not an ssti dataset folder (it needs {SPEC_FILE} and {DATA_DIR}/)")
    meta = read_yaml(path / SPEC_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("class_names"), list):
        raise SSTIError(f"dataset: {path / SPEC_FILE} has no class_names list (not written by ssti inject?)")
    return meta


def read_dataset_folder(path: str | Path) -> datasets.DatasetDict:
    """Load an ssti dataset folder as a contract-shaped DatasetDict (class names from injection.yaml)."""
    path = Path(path)
    meta = read_meta(path)
    names = list(meta.get("splits") or [p.stem for p in sorted((path / DATA_DIR).glob("*.parquet"))])
    out = {}
    for name in names:
        file = path / DATA_DIR / f"{name}.parquet"
        if not file.is_file():
            raise SSTIError(f"dataset: {file} is missing (the folder lists split {name!r})")
        table = pq.read_table(file)
        missing = {"id", "text", "label"} - set(table.column_names)
        if missing:
            raise SSTIError(f"dataset: {file} lacks columns {sorted(missing)}")
        feats = features(meta["class_names"])
        out[name] = datasets.Dataset(table.select(["id", "text", "label"]).cast(feats.arrow_schema), info=datasets.DatasetInfo(features=feats))
    return datasets.DatasetDict(out)


def read_manifest(path: str | Path) -> list[dict]:
    """The manifest rows of a folder (or of a manifest.jsonl file), in row order."""
    path = Path(path)
    file = path / MANIFEST_FILE if path.is_dir() else path
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SSTIError(f"manifest: {file} not found (is {path} an ssti dataset folder?)") from None
    return [json.loads(line) for line in lines if line.strip()]


def read_spec(path: str | Path) -> InjectionSpec:
    """The InjectionSpec a folder was written with (Python-object sources come back as recorded names)."""
    return InjectionSpec.from_dict(read_meta(path)["spec"])


__all__ = ["is_dataset_folder", "read_dataset_folder", "read_manifest", "read_meta", "read_spec", "write_injected"]
