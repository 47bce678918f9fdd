"""Where a result came from: library versions, the device, the git commit of the ssti checkout, times.

Stamped into every `metrics.json` (as lm-evaluation-harness stamps its results), so a number can be
traced to the code and stack that produced it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

PACKAGES = ("ssti", "torch", "transformers", "peft", "datasets", "accelerate")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def git_commit() -> str | None:
    """The commit of the git checkout ssti runs from (with "-dirty" when it has uncommitted changes), else None."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str | None = None, started: float | None = None) -> dict[str, Any]:
    """Versions of ssti and its ML stack, Python, the platform, `device`, the git commit and the wall time.

    `started` (a `time.time()` value) adds the start time and the wall seconds up to now.
    """
    now = time.time()
    out: dict[str, Any] = {
        "versions": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "device": device,
        "git_commit": git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }
    if started is not None:
        out["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        out["wall_seconds"] = round(now - started, 3)
    return out


def peak_rss_gb() -> float | None:
    """The peak resident memory of this process so far, in GB (10^9 bytes), from `getrusage` (KiB on Linux, bytes on
    macOS); None where it is not available (Windows). A sweep worker's figure covers every run it did so far."""
    try:
        import resource
        import sys
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak * (1 if sys.platform == "darwin" else 1024) / 1e9, 2)


def machine_memory_gb() -> float | None:
    """This machine's physical memory in GB (10^9 bytes), or None where the OS does not say."""
    import os

    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (AttributeError, ValueError, OSError):  # pragma: no cover
        return None
