"""Atomic file and folder writes: a reader never sees half a file, a crash leaves no debris."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from ssti.errors import SSTIError


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def public_modes(path: Path) -> None:
    """Give `path` (and a folder's contents) the usual umask modes: mkdtemp/mkstemp create them private."""
    umask = _umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically: a temp file in the same folder, fsynced, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        public_modes(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON (sorted keys, indented, trailing newline) atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | Path, obj: Any) -> None:
    """Write YAML (keys in insertion order) atomically."""
    write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning a missing or unparsable file into a one-line SSTIError."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SSTIError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise SSTIError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temp sibling and rename it into place only when the block succeeds.

    An existing `out` is refused unless `overwrite`; then it is replaced only after the new one is
    complete, so a failure at any point leaves the old folder (or nothing) behind.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise SSTIError(f"out: {out} already exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        public_modes(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
