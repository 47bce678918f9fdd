"""The injected-dataset folder: an ssti dataset folder (`ssti.data.folder`) whose `injection.yaml`
records the exact `InjectionSpec`, its seed, the source dataset and the package version.

The same spec and seed give the same bytes. Read back as a contract-shaped DatasetDict by
`ssti.data.load_dataset`.
"""

from __future__ import annotations

from pathlib import Path

from ssti.version import __version__
from ssti.data.folder import (META_FILE, is_dataset_folder, read_dataset_folder, read_manifest, read_meta, read_record,
                              write_dataset_folder)
from ssti.errors import SSTIError
from ssti.inject.engine import InjectedDataset
from ssti.inject.spec import InjectionSpec

SPEC_FILE = META_FILE
FORMAT = "ssti-injected-dataset/1"


def injection_record(result: InjectedDataset) -> dict:
    """What `injection.yaml` says of an injection: format, version, source, seed, classes, counts, spec."""
    return {
        "format": FORMAT,
        "ssti_version": __version__,
        "source_dataset": result.source_dataset,
        "seed": result.spec.seed,
        "class_names": list(result.class_names),
        "splits": None,  # filled in by the writer
        "injected": result.injected_counts(),
        "spec": result.spec.to_dict(),
    }


def write_injected(result: InjectedDataset, out: str | Path, overwrite: bool = False) -> Path:
    """Write `result` as an ssti dataset folder at `out` (refused if it exists, unless `overwrite`)."""
    return write_dataset_folder(result.dataset, result.manifest, injection_record(result), out, overwrite=overwrite)


def refuse_reinjection(dataset: str, field: str = "data.dataset") -> None:
    """Raise SSTIError when `dataset` is an ssti folder that already carries an injection (an injected
    folder, or a defended one cleaned of an injection): a second injection's record and manifest would
    replace the first's, so `ssti defend` would count the earlier planted rows as clean ones it damaged
    and `ssti eval` would test only the second attack. Anything else passes."""
    path = Path(dataset)
    if not is_dataset_folder(path):
        return
    record = read_record(path / SPEC_FILE)
    planted = record.get("spec") if isinstance(record.get("spec"), dict) else (record.get("injection") or {}).get("spec")
    if not isinstance(planted, dict):
        return
    what = ", ".join(f"{v} into class {k}" for k, v in (planted.get("targets") or {}).items())
    source = record.get("source_dataset") or (record.get("injection") or {}).get("source_dataset")
    raise SSTIError(f"{field}: {path} already carries an injection ({what}); injecting into it again would replace its record "
                    f"of what was planted. Inject into its source{f' ({source})' if source else ''} instead, with one "
                    f"--target per class")


def read_spec(path: str | Path) -> InjectionSpec:
    """The InjectionSpec recorded in a dataset folder, or in an `injection.yaml` file (a run folder keeps
    a copy). Python-object sources come back as recorded names."""
    path = Path(path)
    record = read_record(path / SPEC_FILE if path.is_dir() else path)
    if not isinstance(record.get("spec"), dict):
        raise SSTIError(f"dataset: {path} records no injection spec (it was not written by ssti inject)")
    return InjectionSpec.from_dict(record["spec"])


__all__ = ["injection_record", "refuse_reinjection", "is_dataset_folder", "read_dataset_folder", "read_manifest", "read_meta", "read_spec", "write_injected"]
