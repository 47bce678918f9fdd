"""`ssti defend`: apply one registered defence to a dataset, measure it, write the defended folder.

    from ssti.config import DefenceSpec
    from ssti.defend import defend_dataset
    result = defend_dataset("runs/rt-date", DefenceSpec(name="scan-strip"))
    print(result.measurement["retention"][-1])   # the "all" row

The defended folder is an ssti dataset folder (`data/<split>.parquet`, `manifest.jsonl` of the
defence's edits, `injection.yaml` with the class names, the defence spec and record, and the source's
injection record when it had one) plus `defence.json`: the measurement (`ssti.defend.measure`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from ssti.version import __version__
from ssti.assets import cache_dir
from ssti.config import DefenceSpec
from ssti.data import class_names_of, load_dataset
from ssti.data.common import column
from ssti.data.folder import is_dataset_folder, read_manifest, read_meta, write_dataset_folder
from ssti.defend.measure import measure_defence
from ssti.defend.registry import DEFENCES
from ssti.errors import SSTIError
from ssti.inject import InjectedDataset
from ssti.inject.store import injection_record

FORMAT = "ssti-defended-dataset/1"
RESULT_FILE = "defence.json"


@dataclass
class DefenceResult:
    """A defended dataset with what made it: `dataset` (DatasetDict), `edits` (manifest rows, one per
    changed or dropped row), `notes`, `record` (the defence's own account) and `measurement`."""

    spec: DefenceSpec
    dataset: datasets.DatasetDict
    edits: list[dict]
    notes: list[str]
    record: dict[str, Any]
    measurement: dict[str, Any]
    source: str | None = None
    source_record: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """What defence.json holds (and `ssti defend --json` prints)."""
        return {"format": FORMAT, "ssti_version": __version__, "source": self.source, "defence": self.spec.model_dump(mode="json"),
                "record": self.record, "notes": self.notes, "measurement": self.measurement}


def injection_of(source: str) -> tuple[list[dict] | None, dict | None]:
    """(manifest rows, injection record) of an injected ssti folder; (None, the injection record it was
    cleaned of) for a cleaned folder (its manifest holds removals, so retention cannot be measured
    again, but a model trained on it is still tested with that attack); (None, None) for any other data."""
    path = Path(source)
    if not is_dataset_folder(path):
        return None, None
    meta = read_meta(path)
    if isinstance(meta.get("spec"), dict):
        return read_manifest(path), meta
    cleaned_of = meta.get("injection")
    return None, (cleaned_of if isinstance(cleaned_of, dict) and isinstance(cleaned_of.get("spec"), dict) else None)


def defend_dataset(data: str | datasets.DatasetDict, spec: DefenceSpec, manifest: list[dict] | None = None,
                   show_progress: bool = False, resume: bool = True, report=None, source: str | None = None,
                   **load_options) -> DefenceResult:
    """Apply defence `spec` to `data` (a dataset name, folder or file, a DatasetDict, or an `InjectedDataset`
    straight from `inject_dataset`, whose manifest measures retention) and measure it. A
    file without a `split` column is cleaned whole: all its rows are one `train` split.

    `manifest`: the injection manifest to measure retention against (read from an injected folder
    when `data` is one); `report`: a ScanReport the scan-* defences use instead of scanning again;
    `resume`: the rewriting defences keep finished rows in the ssti cache folder, and an interrupted
    call with the same data and spec continues from them; `source`: where a DatasetDict `data` was
    loaded from (its injection record and manifest are read from there, as for a path).
    Raises SSTIError for a split the data does not have, or a model that cannot be loaded.
    """
    if not isinstance(spec, DefenceSpec):
        raise SSTIError(f"spec: expected an ssti.config.DefenceSpec, got {type(spec).__name__}; e.g. DefenceSpec(name='scan-strip')")
    record_given = None
    if isinstance(data, InjectedDataset):  # straight from inject_dataset: its manifest and record come with it
        manifest = data.manifest if manifest is None else manifest
        record_given = injection_record(data)
        data = data.dataset
    from_path = isinstance(data, (str, os.PathLike))
    if from_path:
        source = os.fspath(data)
    got_manifest, record_of_source = injection_of(source) if source is not None else (None, record_given)
    manifest = manifest if manifest is not None else got_manifest
    # a file without a split column is cleaned whole; a DatasetDict is checked against the contract
    data = load_dataset(source if from_path else data, whole_file=True, **load_options)
    if spec.split not in data:
        raise SSTIError(f"defence.split: {spec.split!r} is not a split of the data ({', '.join(data)})")
    work = work_folder(data[spec.split], spec) if resume else None
    start = time.perf_counter()
    extra = {"report": report} if report is not None else {}
    defended, edits, notes, record = DEFENCES[spec.name].apply(data, spec, show_progress, work, **extra)
    seconds = time.perf_counter() - start
    if work is not None and work.exists():
        shutil.rmtree(work, ignore_errors=True)  # the rows are in `defended` now; progress is only kept for an interrupted call
    if work is not None and record.get("resumed_rows"):
        notes = [*notes, f"resumed: {record['resumed_rows']:,} rows were rewritten by an earlier, interrupted call (their time is not counted)"]
    measurement = measure_defence(data, defended, spec.split, manifest, seconds, seed=spec.seed,
                                  rows_timed=len(data[spec.split]) - int(record.get("resumed_rows") or 0))
    notes = notes + measurement.pop("notes")
    if got_manifest is None and record_of_source is not None:
        notes.append("the data was cleaned before: its injection record is passed on (a model trained on the output is tested with "
                     "that attack), but retention is measured only against an injected folder: defend that one instead to measure it")
    return DefenceResult(spec, defended, edits, notes, record, measurement, source, record_of_source)


def write_defended(result: DefenceResult, out: str | Path, overwrite: bool = False) -> Path:
    """Write `result` as an ssti dataset folder at `out` (atomically; refused if it exists unless `overwrite`)."""
    meta = {"format": FORMAT, "ssti_version": __version__, "source_dataset": result.source, "class_names": class_names_of(result.dataset),
            "splits": None, "defence": result.spec.model_dump(mode="json"), "record": result.record, "notes": result.notes}
    if result.source_record:
        meta["injection"] = {k: v for k, v in result.source_record.items() if k != "splits"}
    body = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return write_dataset_folder(result.dataset, result.edits, meta, out, overwrite=overwrite, extra_files={RESULT_FILE: body.encode()})


def work_folder(split: datasets.Dataset, spec: DefenceSpec) -> Path:
    """The cache folder where a defence keeps resumable progress for this split's bytes and this spec."""
    h = hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode())
    for rid, text in zip(column(split, "id"), column(split, "text")):
        h.update(rid.encode() + b"\0" + text.encode() + b"\0")
    return cache_dir() / "defend" / h.hexdigest()[:20]
