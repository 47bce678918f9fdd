"""Content fingerprints of local data: a run is identified by its data's bytes, not by the path.

A local file is hashed whole (sha256); an ssti dataset folder by the names and hashes of the files
that make it (`injection.yaml`, `manifest.jsonl`, `data/*.parquet`). Big files are hashed once: a
per-file cache (in the ssti cache folder) is trusted only while size, mtime_ns, ctime_ns and inode
are all unchanged, and otherwise the bytes are hashed again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ssti.assets import cache_dir
from ssti.errors import SSTIError

CACHE_FILE = "fingerprints.json"
CHUNK = 1 << 20


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _read_cache() -> dict[str, dict]:
    try:
        data = json.loads(_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict[str, dict]) -> None:
    from ssti.io import write_text

    try:
        write_text(_cache_path(), json.dumps(cache, sort_keys=True))
    except OSError:  # a read-only cache only costs re-hashing next time
        pass


def file_digest(path: Path, cache: dict[str, dict]) -> str:
    """sha256 of one file's bytes, from `cache` when its size, mtime_ns and inode are unchanged."""
    try:
        st = path.stat()
    except OSError as e:
        raise SSTIError(f"data.dataset: cannot read {path} ({e.strerror or e})") from None
    key = str(path.resolve())
    # ctime too: it cannot be set back by hand (os.utime), so an edit that restores size and mtime is still seen
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}
    hit = cache.get(key)
    if hit and all(hit.get(k) == v for k, v in stamp.items()):
        return hit["sha256"]
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    except OSError as e:
        raise SSTIError(f"data.dataset: cannot read {path} ({e.strerror or e})") from None
    cache[key] = {**stamp, "sha256": h.hexdigest()}
    return cache[key]["sha256"]


def folder_files(path: Path) -> list[Path]:
    """The files that make an ssti dataset folder's content, in a fixed order."""
    files = [path / name for name in ("injection.yaml", "manifest.jsonl") if (path / name).is_file()]
    return files + sorted((path / "data").glob("*.parquet"))


def fingerprint(path: str | Path) -> str:
    """sha256 (hex) identifying the bytes of a local data file or ssti dataset folder.

    Raises SSTIError when the path cannot be read.
    """
    path = Path(path)
    cache = _read_cache()
    before = dict(cache)
    if path.is_dir():
        files = folder_files(path)
        if not files:
            raise SSTIError(f"data.dataset: {path} is a folder without ssti dataset files (injection.yaml, data/*.parquet)")
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.relative_to(path).as_posix()}\0{file_digest(f, cache)}\n".encode())
        digest = h.hexdigest()
    else:
        digest = file_digest(path, cache)
    if cache != before:
        _write_cache(cache)
    return digest


__all__ = ["fingerprint", "folder_files"]
