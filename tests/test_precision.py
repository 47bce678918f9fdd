"""precision: auto follows the measured matmul peaks (faked here), resumes keep their dtype, MFU uses the best peak."""

from __future__ import annotations

import json

import pytest
import torch

import ssti.models.precision as precision
from ssti.config import RunConfig


def fake_peaks(monkeypatch, fp32: float, bf16: float):
    peaks = {p: {"fp32": fp32, "bf16": bf16} for p in ("train", "infer")}
    monkeypatch.setattr(precision, "measured_peaks", lambda device, refresh=False: peaks)


@pytest.mark.parametrize("fp32, bf16, expected", [
    (371e9, 189e9, torch.float32),   # the Intel Xeon of this machine kind: bf16 half as fast
    (166e9, 395e9, torch.bfloat16),  # the AMD EPYC one: bf16 2.4x faster
    (300e9, 320e9, torch.float32),   # within the margin: no flip on noise
])
def test_auto_follows_the_measured_peaks(monkeypatch, fp32, bf16, expected):
    fake_peaks(monkeypatch, fp32, bf16)
    cpu = torch.device("cpu")
    assert precision.compute_dtype("auto", cpu) == expected
    assert precision.compute_dtype("fp32", cpu) == torch.float32 and precision.compute_dtype("bf16", cpu) == torch.bfloat16
    assert precision.best_peak(cpu) == max(fp32, bf16)


def test_peaks_are_measured_once_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("SSTI_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(precision, "matmul_flops", lambda dtype, shape, device: calls.append(dtype) or 1e9)
    first = precision.measured_peaks(torch.device("cpu"))
    again = precision.measured_peaks(torch.device("cpu"))
    assert first == again and len(calls) == 4  # 2 shapes x 2 dtypes, once
    assert precision.machine_key(torch.device("cpu")) in json.loads((tmp_path / precision.CACHE_FILE).read_text())


def test_a_run_records_its_precision_and_mfu_and_a_resume_keeps_its_dtype(monkeypatch, tmp_path, capsys):
    import ssti.train as train_module
    from ssti.train import train

    fake_peaks(monkeypatch, 100e9, 400e9)  # auto: bf16
    config = RunConfig.model_validate({"model": {"name": "tiny-random-llama", "max_length": 32}, "lora": {"rank": 2, "targets": "qv"},
                                       "train": {"steps": 4, "batch_size": 4, "checkpoint_every": 2}})
    real_save = train_module._save_checkpoint

    def save_then_die(out, clf, optimizer, step, *rest):
        real_save(out, clf, optimizer, step, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "r", show_progress=False)
    monkeypatch.setattr(train_module, "_save_checkpoint", real_save)
    fake_peaks(monkeypatch, 400e9, 100e9)  # the "other machine": auto now says fp32
    train(config, tmp_path / "r", resume=True, show_progress=False)
    assert "keeps it" in capsys.readouterr().err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())["train"]
    assert m["precision"] == "bf16" and m["peak_flops"] == 400e9 and m["mfu"] > 0
    log = [json.loads(line) for line in (tmp_path / "r" / "train_log.jsonl").read_text().splitlines()]
    assert all("mfu" in r and r["precision"] == "bf16" for r in log)


def test_the_cache_keeps_the_best_peak_seen(monkeypatch, tmp_path):
    monkeypatch.setenv("SSTI_CACHE", str(tmp_path))
    values = iter([4e9, 4e9, 4e9, 4e9, 1e9, 1e9, 1e9, 1e9])  # a quiet measurement, then a busy one
    monkeypatch.setattr(precision, "matmul_flops", lambda dtype, shape, device: next(values))
    precision.measured_peaks(torch.device("cpu"))
    assert precision.best_peak(torch.device("cpu"), refresh=True) == 4e9
