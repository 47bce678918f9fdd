"""Atomic file and folder writes: a reader never sees half a file, a crash leaves no debris."""

from __future__ import annotations

import collections.abc
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


def check_writable(path: str | Path, field: str = "out") -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or a parent folder that is
    missing or not writable (SSTIError naming `field`)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise SSTIError(f"{field}: {path} is a folder; give a file name")
    if not parent.is_dir():
        blocking = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise SSTIError(f"{field}: {blocking} is a file, so {path} cannot be written (give a file in a folder)")
        raise SSTIError(f"{field}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SSTIError(f"{field}: cannot write into {parent} (permission denied)")


def check_output_file(path: str | Path, overwrite: bool, is_ours, what: str, field: str = "out") -> None:
    """The output-file twin of `check_output`, checked before any work: a new file is written; an existing one
    is replaced only with `overwrite`, only when `is_ours(path)` says it is an earlier output of the same kind
    (`what`, e.g. "ssti probe report"), and never when it belongs to a folder ssti wrote (a run's config.yaml
    or adapter weights). Otherwise a one-line SSTIError naming `field`."""
    path = Path(path)
    check_writable(path, field)
    if not path.exists():
        return
    if not overwrite:
        raise SSTIError(f"{field}: {path} already exists (pass --overwrite, in Python overwrite=True, to replace an earlier {what})")
    owner = next((p for p in path.resolve().parents if (p / MARKER).is_file()), None)
    if owner is not None and not (owner / MARKER).samefile(path):
        raise SSTIError(f"{field}: {path} lies inside {owner}, a folder ssti wrote (a run or dataset); write the {what} elsewhere")
    try:
        ours = bool(is_ours(path))
    except Exception:  # noqa: BLE001 - unreadable, binary, damaged: not ours
        ours = False
    if not ours:
        raise SSTIError(f"{field}: {path} is not an earlier {what}; --overwrite replaces only those (ssti never overwrites "
                        f"files it did not write)")


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON (sorted keys, indented, trailing newline) atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_yaml(path: str | Path, obj: Any) -> None:
    """Write YAML (keys in insertion order) atomically."""
    write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def read_json(path: str | Path, default: Any = None) -> Any:
    """Read a JSON file (`default` when it does not exist), turning a damaged file into a one-line SSTIError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if default is not None:
            return default
        raise SSTIError(f"{path}: file not found") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise SSTIError(f"{path}: damaged, not valid JSON ({str(e).splitlines()[0][:120]}); delete it or re-create the run") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last one silently:
    `lora.rank: [1, 4]` then `lora.rank: [16]` would be one run), and reading every plain key as the text
    written (a class `007` or `true` in `injection.targets` is that class, not 7 or True)."""

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep)  # (raises PyYAML's own error)
        self.flatten_mapping(node)  # `<<:` merge keys
        mapping = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key_node, yaml.ScalarNode) and not isinstance(key, str):
                key = key_node.value  # a key as written: `007:` is "007", `true:` "true", `null:` "null" (class names, run names)
            if not isinstance(key, collections.abc.Hashable):
                raise yaml.constructor.ConstructorError(None, None, f"a key that is a list or mapping (line {key_node.start_mark.line + 1})",
                                                        key_node.start_mark)
            if key in mapping:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1})",
                                                        key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def load_yaml_text(text: str) -> Any:
    """Parse YAML text with the safe loader, a key given twice being an error (yaml.YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, turning a missing or unparsable file (or a key given twice) into a one-line SSTIError
    with the line it is on."""
    path = Path(path)
    try:
        return load_yaml_text(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SSTIError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SSTIError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise SSTIError(f"{path}: not UTF-8 text (is it a YAML file?)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None and "line" not in what else ""
        raise SSTIError(f"{path}: not valid YAML ({what}{where})") from None


# ---------------------------------------------------------------- output folders: one rule for every command

MARKER = ".ssti.json"  # in every folder ssti writes: its kind and exactly what ssti wrote there


def read_marker(folder: str | Path) -> dict | None:
    """The marker of a folder ssti wrote ({"format": "ssti-<kind>/1", "kind", "entries"}), or None.

    `entries` are paths relative to the folder: files ssti wrote, and "name/" for a sub-folder ssti
    wrote that carries a marker of its own.
    """
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and str(data.get("format", "")).startswith("ssti-") else None


def write_marker(folder: str | Path, kind: str, entries: list[str]) -> None:
    """Record that ssti wrote `entries` in `folder` (added to what it recorded before) as a folder of `kind`."""
    old = read_marker(folder) or {}
    names = sorted(set(old.get("entries") or []) | set(entries))
    write_json(Path(folder) / MARKER, {"format": f"ssti-{kind}/1", "kind": kind, "entries": names})


def written_files(folder: Path) -> list[str]:
    """Every file below `folder` as a relative posix path (what a freshly built folder records)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MARKER)


def remove_written(folder: str | Path) -> None:
    """Delete what ssti recorded writing in `folder` (recursing into sub-folders with their own marker),
    then the marker and the folders left empty; every other file stays where it is."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        return
    parents = set()
    for entry in marker.get("entries") or []:
        path = folder / entry.rstrip("/")
        if entry.endswith("/"):
            remove_written(path)
            parents.add(path)
        elif path.is_file() or path.is_symlink():
            path.unlink()
        parents.update(q for q in path.parents if folder in q.parents)
    (folder / MARKER).unlink(missing_ok=True)
    for d in sorted(parents, key=lambda q: len(q.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty


def move_written(folder: Path, dest: Path) -> None:
    """Move what ssti recorded writing in `folder` (files, sub-folders' own records, the markers) to the
    same relative places under `dest`; files ssti did not write stay where they are."""
    marker = read_marker(folder)
    if marker is None:
        return
    emptied = set()  # folders left empty by the move (an entry such as data/train.parquet lives in data/)
    for entry in marker.get("entries") or []:
        src = folder / entry.rstrip("/")
        if entry.endswith("/"):
            move_written(src, dest / entry.rstrip("/"))
            emptied.add(src)
        elif src.exists():
            (dest / entry).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest / entry)
        emptied.update(q for q in src.parents if folder in q.parents)
    dest.mkdir(parents=True, exist_ok=True)
    os.replace(folder / MARKER, dest / MARKER)
    for d in sorted(emptied, key=lambda q: len(q.parts), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()  # only when empty: the user's files keep their folders


def move_back(src: Path, folder: Path) -> None:
    """Undo `move_written`: every file under `src` back to its place under `folder`; `src` removed."""
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = folder / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(src, ignore_errors=True)


def check_output(out: str | Path, kind: str, source: str | Path | None = None) -> str:
    """The one rule for output folders, checked before any work: "new" (missing or empty: used),
    "ours" (an ssti folder of the same kind: the caller resumes, refuses, or with --overwrite replaces
    only what the marker lists). Anything else is refused with a one-line SSTIError: ssti never
    deletes, moves or overwrites what it did not write. An input folder `source` is never an output:
    `out` may not be it or lie inside it."""
    out = Path(out)
    if source is not None and Path(source).is_dir():
        src, dst = Path(source).resolve(), out.resolve()
        if dst == src or src in dst.parents:
            raise SSTIError(f"out: {out} is the input data folder (or inside it); write the output elsewhere")
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


def listed(folder: str | Path) -> set[str]:
    """What the marker of `folder` says ssti wrote there (empty when there is no marker)."""
    return set((read_marker(folder) or {}).get("entries") or [])


def check_clash(folder: str | Path, names: list[str]) -> None:
    """Refuse (one line) when any of `names`, about to be written in `folder`, exists but is not ssti's."""
    folder = Path(folder)
    ours = listed(folder)
    for name in names:
        if (folder / name.rstrip("/")).exists() and name not in ours and name.rstrip("/") + "/" not in ours:
            raise SSTIError(f"out: {folder / name.rstrip('/')} exists and was not written by ssti; move it away first "
                            f"(ssti never overwrites files it did not write)")


def _remove_stale_temps(out: Path) -> None:
    """Temp siblings of `out` left by a process killed with kill -9 (their pid is in the name and gone)."""
    for p in out.parent.glob(f".{out.name}.*.tmp"):
        pid = p.name[len(out.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, kind: str = "part", replace_unmarked: bool = False) -> Iterator[Path]:
    """Build a folder in a temp sibling and move it into place only when the block succeeds.

    `check_output`'s rule applies: a missing or empty `out` is used (`.` and a link to an empty folder
    included); a folder ssti wrote of this `kind` ("part": a sub-folder ssti owns, such as a run's
    adapter/) is replaced only with `overwrite`, and then only the files its marker lists (other files
    stay, and a new file that would land on one of them is refused before anything is removed); a
    "part" (or a sub-folder its parent's marker lists, such as a run's data/) holding only files the
    user left there gets ssti's files beside them; anything else is
    refused, except with `replace_unmarked` (caches ssti keeps in its own cache folder). The new folder
    carries a marker listing its files. A failure at any point leaves the old folder (or nothing)
    behind, and temp folders of killed processes are cleaned up by the next call.
    """
    out = Path(out)
    unmarked = out.is_dir() and any(out.iterdir()) and read_marker(out) is None
    if unmarked and replace_unmarked:
        state = "unmarked"
    elif unmarked and (kind == "part" or f"{out.name}/" in listed(out.parent)):
        state = "merge"  # a sub-folder of ours (a run's data/) where the user left files: ours go in beside them, theirs stay
    else:
        state = check_output(out, kind)
    if state == "ours" and not overwrite:
        raise SSTIError(f"out: {out} already exists (pass --overwrite, in Python overwrite=True, to replace it)")
    parent = out.resolve().parent if out.exists() else out.parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(parent / out.resolve().name if out.exists() else out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{(out.resolve() if out.exists() else out).name}.{os.getpid()}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        write_marker(tmp, kind, written_files(tmp))
        public_modes(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with deferred_interrupt():  # Ctrl-C now waits until the folder is in place: it is complete or as it was, never half
        _commit(tmp, out, state, parent)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt if one came: for the few
    renames that put a finished output in place. Outside the main thread it does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


def _commit(tmp: Path, out: Path, state: str, parent: Path) -> None:
    """Move a finished temp folder into place (see `atomic_dir`)."""
    try:
        if state == "new" and not out.exists():
            os.replace(tmp, out)
        elif state == "unmarked":
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:  # an existing folder (empty, ours or a part with the user's files): file by file
            check_clash(out, written_files(tmp))  # before anything of the old folder is removed
            remove_written(out)
            for rel in written_files(tmp) + [MARKER]:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / rel, out / rel)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
