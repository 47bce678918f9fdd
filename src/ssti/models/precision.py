"""Which precision is fastest on this machine, measured rather than assumed, and the peak MFU is taken against.

CPUs differ: on one machine kind here bf16 matmuls ran 2.4x faster than fp32 (AMD EPYC, AVX-512 BF16),
on another half as fast (an Intel Xeon with AVX-512 BF16 but no AMX). So `precision: auto` measures
matmul throughput of each candidate dtype at shapes like the work's (a training-sized and an
inference-sized matmul), caches the figures per machine and torch version in the ssti cache folder,
and picks bf16 only when it is clearly faster (by `MARGIN`), so the choice does not flip with noise.
On CUDA, auto is bf16 where the card supports it.

MFU (model FLOPs utilisation, as in nanoGPT's `estimate_mfu`) is reported against the best peak the
machine offers, whichever dtype that is: a bf16 run on a machine whose fp32 path is twice as fast is
at half the MFU it would claim against its own bf16 peak.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time

import torch

from ssti.assets import cache_dir

MARGIN = 1.15  # bf16 must beat fp32 by 15% to be chosen on a CPU
SHAPES = {"train": (512, 1024, 1024), "infer": (2048, 1024, 1024)}  # (tokens, in, out) of a typical linear layer
CANDIDATES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CACHE_FILE = "matmul_peaks.json"


def machine_key(device: torch.device) -> str:
    """What the measurement depends on: device type and model, cores, torch version."""
    if device.type == "cuda":
        model = torch.cuda.get_device_name(device)
    else:
        model = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
        except OSError:
            pass
    return f"{device.type}|{model}|{os.cpu_count()} cores|{torch.get_num_threads()} threads|torch {torch.__version__}"


def matmul_flops(dtype: torch.dtype, shape: tuple[int, int, int], device: torch.device, seconds: float = 0.3) -> float:
    """Measured matmul FLOP/s of `dtype` for an (m x k) @ (k x n) product on `device` (best of repeated runs)."""
    m, k, n = shape
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    best, end = float("inf"), time.perf_counter() + seconds
    a @ b  # warm-up
    while time.perf_counter() < end or best == float("inf"):
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n / best


def measured_peaks(device: torch.device, refresh: bool = False) -> dict[str, dict[str, float]]:
    """{"train": {"fp32": FLOP/s, "bf16": FLOP/s}, "infer": {...}} for this machine, from the cache (measured on
    first use), or measured again with `refresh`. The cache keeps the best figure ever seen for each entry: a
    peak is what the hardware can do, and a measurement on a busy machine only ever comes out lower."""
    key = machine_key(device)
    path = cache_dir() / CACHE_FILE
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    old = cache.get(key) if isinstance(cache.get(key), dict) else None
    if old is not None and not refresh:
        return old
    peaks = {purpose: {name: max(matmul_flops(dtype, shape, device), ((old or {}).get(purpose) or {}).get(name, 0.0))
                       for name, dtype in CANDIDATES.items()}
             for purpose, shape in SHAPES.items()}
    cache[key] = peaks
    try:
        from ssti.io import write_json

        write_json(path, cache)
    except OSError:  # a read-only cache only costs measuring again next time
        pass
    return peaks


def best_peak(device: torch.device, purpose: str = "train", refresh: bool = False) -> float:
    """The fastest matmul FLOP/s this machine offers for `purpose` (the denominator of an honest MFU)."""
    return max(measured_peaks(device, refresh)[purpose].values())


def auto_dtype(device: torch.device, purpose: str = "train") -> torch.dtype:
    """What `precision: auto` resolves to here: bf16 on CUDA with bf16 support; on a CPU bf16 only when its
    measured matmul peak beats fp32's by MARGIN, else fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type != "cpu":
        return torch.float32
    peaks = measured_peaks(device)[purpose]
    return torch.bfloat16 if peaks.get("bf16", 0.0) >= MARGIN * peaks["fp32"] else torch.float32


def compute_dtype(precision: str, device: torch.device, purpose: str = "train") -> torch.dtype:
    """The dtype of the frozen base weights for a precision setting ('auto', 'bf16', 'fp32') on `device`."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return auto_dtype(device, purpose)


def non_embedding_parameters(backbone: torch.nn.Module) -> int:
    """Parameters of a backbone outside its embedding tables and LoRA adapters: N in the 2N (inference), 4N
    (LoRA training: no weight gradients for the frozen base) and 6N (full fine-tuning) FLOPs per token of MFU."""
    skip = {id(p) for m in backbone.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for n, p in backbone.named_parameters() if id(p) not in skip and "lora_" not in n)


ACHIEVED_FILE = "achieved_mfu.json"
ACHIEVED_KEEP = 20


def record_mfu(device: torch.device, model: str, purpose: str, mfu: float) -> None:
    """Remember an MFU a run achieved here (`purpose` "train" or "infer"), the last ACHIEVED_KEEP per
    machine and model, in the cache folder: what `ssti sweep --dry-run` estimates new runs with."""
    if not mfu or mfu <= 0 or mfu != mfu:
        return
    from ssti.io import read_json, write_json

    path = cache_dir() / ACHIEVED_FILE
    try:
        cache = read_json(path, {})
        key = f"{machine_key(device)}|{model}|{purpose}"
        cache[key] = (list(cache.get(key) or []) + [float(f"{mfu:.4g}")])[-ACHIEVED_KEEP:]
        write_json(path, cache)
    except Exception:  # noqa: BLE001 - a damaged or read-only cache only costs a default estimate later
        pass


def achieved_mfu(device: torch.device, model: str, purpose: str) -> float | None:
    """The median MFU runs of `model` recorded on this machine for `purpose` (None if none ran here): those
    at this process's thread count, else those at any (a sweep's workers run at `--threads 1` while its
    `--dry-run` runs at all cores; each MFU is against its own thread count's peak)."""
    from ssti.io import read_json

    try:
        recorded = read_json(cache_dir() / ACHIEVED_FILE, {})
    except Exception:  # noqa: BLE001
        return None
    key = machine_key(device)
    values = recorded.get(f"{key}|{model}|{purpose}") or []
    if not values:
        other = re.sub(r"\|\d+ threads\|", "|", key)
        values = [v for k, vs in recorded.items() if re.sub(r"\|\d+ threads\|", "|", k) == f"{other}|{model}|{purpose}" for v in vs]
    return float(sorted(values)[len(values) // 2]) if values else None


def dtype_name(dtype: torch.dtype) -> str:
    """'fp32' or 'bf16' (the names of the precision setting)."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(dtype, str(dtype).replace("torch.", ""))


__all__ = ["MARGIN", "achieved_mfu", "auto_dtype", "record_mfu", "best_peak", "compute_dtype", "dtype_name", "machine_key", "matmul_flops", "measured_peaks", "non_embedding_parameters"]
