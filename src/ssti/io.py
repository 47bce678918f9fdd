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
    except IsADirectoryError:
        raise SSTIError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise SSTIError(f"{path}: not UTF-8 text (is it a YAML file?)") from None
    except yaml.YAMLError as e:
        raise SSTIError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


# ---------------------------------------------------------------- output folders: one rule for every command

MARKER = ".ssti.json"  # written into every folder ssti creates: its kind and the entries ssti wrote there
KINDS = ("run", "dataset", "sweep", "report")


def read_marker(folder: str | Path) -> dict | None:
    """The marker of a folder ssti wrote ({"format": "ssti-<kind>/1", "kind", "entries"}), or None."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and str(data.get("format", "")).startswith("ssti-") else None


def write_marker(folder: str | Path, kind: str, entries: list[str]) -> None:
    """Record that ssti wrote `entries` (names directly inside `folder`) as a folder of `kind`."""
    old = read_marker(folder) or {}
    names = sorted(set(old.get("entries") or []) | set(entries))
    write_json(Path(folder) / MARKER, {"format": f"ssti-{kind}/1", "kind": kind, "entries": names})


def check_output(out: str | Path, kind: str) -> str:
    """The one rule for output folders, checked before any work: "new" (missing or empty: used),
    "ours" (an ssti folder of the same kind: the caller resumes, refuses, or with --overwrite replaces
    only what the marker lists). Anything else is refused with a one-line SSTIError: ssti never
    deletes, moves or overwrites what it did not write."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SSTIError(f"out: {out} is a file, not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SSTIError(f"out: {parent} is a file, so {out} cannot be a folder")
            break
    if not out.exists() or not any(out.iterdir()):
        return "new"
    marker = read_marker(out)
    if marker is None:
        raise SSTIError(f"out: {out} is not empty and was not written by ssti; choose a new or empty folder "
                        f"(ssti never deletes or overwrites files it did not write)")
    if marker.get("kind") != kind:
        raise SSTIError(f"out: {out} holds an ssti {marker.get('kind')} folder, not a {kind} folder; choose another folder")
    return "ours"


def remove_entries(folder: Path, names: list[str] | tuple[str, ...]) -> None:
    """Delete the entries `names` directly inside `folder` (only names ssti wrote are ever passed)."""
    for name in names:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, kind: str | None = None) -> Iterator[Path]:
    """Build a folder in a temp sibling and move it into place only when the block succeeds.

    With `kind` (a user-facing output folder), `check_output`'s rule applies: a missing or empty
    `out` is used; an ssti folder of that kind is replaced only with `overwrite`, entry by entry, and
    only the entries its marker lists (other files in it stay); anything else is refused. Without
    `kind` (a sub-folder ssti owns, e.g. a run's adapter/), an existing `out` is replaced whole when
    `overwrite`. A failure at any point leaves the old folder (or nothing) behind.
    """
    out = Path(out)
    state = check_output(out, kind) if kind else ("ours" if out.exists() else "new")
    if state == "ours" and not overwrite:
        raise SSTIError(f"out: {out} already exists (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if kind:
            write_marker(tmp, kind, [p.name for p in tmp.iterdir() if p.name != MARKER])
        public_modes(tmp)
        if state == "new" or not kind:
            if out.exists() and not kind:
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
                os.replace(out, old / "x")
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                if out.exists():
                    out.rmdir()  # empty (check_output said so)
                os.replace(tmp, out)
        else:
            previous = (read_marker(out) or {}).get("entries") or []
            new = [p.name for p in tmp.iterdir()]
            remove_entries(out, [n for n in previous if n not in new and n != MARKER])
            for name in new:
                remove_entries(out, [name])
                os.replace(tmp / name, out / name)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
