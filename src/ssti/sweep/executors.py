"""Executors: where the runs of a sweep execute. Results always come back to the driver's store.

- `local`: in this process one after another, or in N worker processes (spawned, not forked: torch
  and fork do not mix), each with its share of the CPU threads.
- `ray`: one Ray task per run with its CPU/GPU needs, on a cluster at `address` or on a local Ray
  instance started here.
"""

from __future__ import annotations

import os
import socket
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, Iterable

from ssti.errors import SSTIError
from ssti.sweep.worker import execute

# A task: (run_id, config dict, run folder); `done(run_id, result)` records a finished one.
Task = tuple[str, dict, str]
Done = Callable[[str, dict], None]


def run_local(tasks: Iterable[Task], done: Done, audits: dict, workers: int = 1, threads: int | None = None) -> None:
    """Run tasks in this process (workers=1) or in `workers` spawned processes; call `done` per result.

    `audits` ({"scan": bool, "probe": options or None}) says what each run is audited with (see `execute`).

    `threads` caps torch's CPU threads per run (default: all cores, shared out among the workers).
    """
    tasks = list(tasks)
    if workers <= 1:
        for rid, config, run_dir in tasks:
            done(rid, execute(config, run_dir, audits, threads))
        return
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=die_with_parent) as pool:
        futures = {pool.submit(execute, config, run_dir, audits, threads): rid for rid, config, run_dir in tasks}
        for future in as_completed(futures):
            done(futures[future], future.result())


def die_with_parent() -> None:
    """In a worker process: be killed when the sweep driver dies, even by kill -9 (Linux PR_SET_PDEATHSIG),
    so no orphaned worker goes on training (and holding memory) after its driver is gone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the driver died before the call above
        os._exit(1)


def check_address(address: str, timeout: float = 10.0) -> None:
    """Refuse a Ray address whose host:port does not accept a connection within `timeout` seconds.

    ray.init can wait minutes on a dead address; a plain TCP connect answers quickly and clearly.
    """
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise SSTIError(f"--address: {address!r} is not HOST:PORT (or ray://HOST:PORT, or 'auto')")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as e:
        raise SSTIError(f"--address: no Ray cluster answers at {address} within {timeout:g} s ({e.strerror or e}); "
                        f"check the address, or leave it out to start a local Ray instance") from None


def run_ray(tasks: Iterable[Task], done: Done, audits: dict, address: str | None = None, cpus: float = 1, gpus: float = 0,
            timeout: float = 10.0, local_cpus: int | None = None) -> None:
    """Run each task as a Ray task needing `cpus`/`gpus`; collect results on the driver as they finish."""
    try:
        import ray
    except ImportError:
        raise SSTIError("executor: ray is not installed; pip install 'ssti[ray]'") from None
    if address and address != "auto":
        check_address(address, timeout)
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = local_cpus or os.cpu_count() or 1
            kwargs["num_gpus"] = _local_gpus()
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, TimeoutError) as e:
            raise SSTIError(f"--address: could not connect to Ray at {address or 'a local instance'}: {str(e).splitlines()[0]}") from None
    try:
        remote = ray.remote(execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=1)
        threads = max(1, int(cpus))
        pending = {remote.remote(config, run_dir, audits, threads): rid for rid, config, run_dir in tasks}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            rid = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # the worker process died (OOM, node lost): record, go on
                result = {"metrics": None, "scan": None, "error": f"ray task failed: {type(e).__name__}: {str(e).splitlines()[0]}"}
            done(rid, result)
    finally:
        if started_here:
            ray.shutdown()


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover
        return 0
