"""The ssti dataset folder, one format for every stage that writes a dataset: `data/<split>.parquet`,
`manifest.jsonl` (one JSON row per changed sample) and `injection.yaml` (the class names, the split
sizes and the record of what made the folder: an injection spec, a cleaning, ...).

Written atomically (built in a temp sibling, renamed into place) and deterministically: the same rows,
manifest and record give the same bytes. `ssti inject` and `ssti scan --remove` both write it through
`write_dataset_folder`; `load_dataset` reads it back through `read_dataset_folder`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from ssti.data.common import features
from ssti.errors import SSTIError
from ssti.io import atomic_dir, read_marker, read_yaml, write_yaml

META_FILE = "injection.yaml"
MANIFEST_FILE = "manifest.jsonl"
DATA_DIR = "data"
# Plain Arrow types, no schema metadata: the bytes depend only on the rows (class names live in the YAML).
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("label", pa.int64())])


def _plain_table(split: datasets.Dataset) -> pa.Table:
    from ssti.data.common import arrow_table

    table = arrow_table(split).select(["id", "text", "label"])
    cols = [table.column(n).cast(SCHEMA.field(n).type) for n in SCHEMA.names]
    return pa.table(cols, schema=SCHEMA).combine_chunks()


def manifest_bytes(rows: list[dict]) -> bytes:
    """JSON Lines, one manifest row per line, unicode kept as is."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_dataset_folder(dataset: datasets.DatasetDict, manifest: list[dict], meta: dict[str, Any], out: str | Path,
                         overwrite: bool = False, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write `dataset` (contract-shaped), its `manifest` rows and `meta` as an ssti dataset folder at `out`.

    `meta` must hold `class_names`; `splits` (name -> rows) is filled in. An existing `out` is refused
    unless `overwrite` (then replaced only once the new folder is complete), and a folder ssti did
    not write is refused (`ssti.io.check_output`). `extra_files` (name -> bytes) are written beside
    (a defended folder's defence.json). Returns `out`.
    """
    out = Path(out)
    meta = {**meta, "splits": {name: len(split) for name, split in dataset.items()}}
    with atomic_dir(out, overwrite=overwrite, kind="dataset") as tmp:
        (tmp / DATA_DIR).mkdir()
        for name, split in dataset.items():
            # snappy, dictionary-encoding only the labels: about 2x faster to write than zstd
            pq.write_table(_plain_table(split), tmp / DATA_DIR / f"{name}.parquet", compression="snappy", use_dictionary=["label"])
        (tmp / MANIFEST_FILE).write_bytes(manifest_bytes(manifest))
        write_yaml(tmp / META_FILE, meta)
        for name, body in (extra_files or {}).items():
            (tmp / name).write_bytes(body)
    return out


def is_dataset_folder(path: str | Path) -> bool:
    """True if `path` looks like a folder written by `write_dataset_folder`."""
    path = Path(path)
    return (path / META_FILE).is_file() and (path / DATA_DIR).is_dir() and not _run_folder(path)


def _run_folder(path: Path) -> bool:
    """A run, runs or sweep folder (a run keeps a copy of its data's injection.yaml beside its own data/)."""
    return (read_marker(path) or {}).get("kind") in ("run", "runs", "sweep")


def read_record(file: str | Path) -> dict:
    """The parsed `injection.yaml` record (of a dataset folder, or the copy a run folder keeps)."""
    file = Path(file)
    meta = read_yaml(file)
    if not isinstance(meta, dict) or not isinstance(meta.get("class_names"), list):
        raise SSTIError(f"dataset: {file} has no class_names list (not written by ssti?)")
    return meta


def read_meta(path: str | Path) -> dict:
    """The parsed injection.yaml of an ssti dataset folder."""
    path = Path(path)
    if _run_folder(path):
        inside = [str(path / d) for d in ("defended", DATA_DIR) if is_dataset_folder(path / d)]
        if not inside and (path / "config.yaml").is_file():  # trained on data as it was given: its config names it
            config = read_yaml(path / "config.yaml")
            data = config.get("data") if isinstance(config, dict) else None
            inside = [str(data["dataset"])] if isinstance(data, dict) and data.get("dataset") else []
        where = f"; the data it trained on is {inside[0]}" if inside else ""
        raise SSTIError(f"dataset: {path} is an ssti {read_marker(path)['kind']} folder, not a dataset{where}")
    if not is_dataset_folder(path):
        raise SSTIError(f"dataset: {path} is not an ssti dataset folder (it needs {META_FILE} and {DATA_DIR}/)")
    return read_record(path / META_FILE)


def read_dataset_folder(path: str | Path) -> datasets.DatasetDict:
    """Load an ssti dataset folder as a contract-shaped DatasetDict (class names from injection.yaml)."""
    path = Path(path)
    meta = read_meta(path)
    names = list(meta.get("splits") or [p.stem for p in sorted((path / DATA_DIR).glob("*.parquet"))])
    feats = features(meta["class_names"])
    out = {}
    for name in names:
        file = path / DATA_DIR / f"{name}.parquet"
        if not file.is_file():
            raise SSTIError(f"dataset: {file} is missing (the folder lists split {name!r})")
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException) as e:
            raise SSTIError(f"dataset: {file} is not a readable parquet file ({str(e).splitlines()[0][:120]})") from None
        missing = {"id", "text", "label"} - set(table.column_names)
        if missing:
            raise SSTIError(f"dataset: {file} lacks columns {sorted(missing)}")
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
    rows = []
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise SSTIError(f"manifest: {file} line {n} is not valid JSON (the folder is damaged; re-create it)") from None
    return rows


__all__ = ["DATA_DIR", "MANIFEST_FILE", "META_FILE", "is_dataset_folder", "read_dataset_folder", "read_manifest", "read_meta",
           "read_record", "write_dataset_folder"]
