"""How long a sweep will take on this machine, before it runs (`ssti sweep --dry-run`).

A run's cost is its model FLOPs (as in MFU: 4 x non-embedding parameters per training token with
LoRA, 6 x with full fine-tuning, 2 x per inference token) over the machine's best measured matmul
peak (`ssti.models.precision.best_peak`) times an achieved MFU, plus a fixed start-up cost:

    seconds = train_flops / (peak_train x mfu_train) + infer_flops / (peak_infer x mfu_infer) + startup

Tokens are counted, not guessed: for each distinct data + injection + tokenizer the training split is
injected as the run would inject it and a sample of rows is tokenized (capped at max_length).
Inference covers the learning curve (`train.eval_every`), the evaluation (clean set plus one spurious
set per target class) and, when the sweep probes its runs, `ssti probe`'s predictions (the open
search's verifications counted as about half their upper bound: extensions stop early). The achieved MFUs come from the sweep's finished runs of the same
model (training MFU, evaluation FLOPs per second), else from what runs of that model recorded on this
machine (`ssti.models.precision.achieved_mfu`), else `DEFAULT_MFU`; so the estimate sharpens as work is
done. It is an estimate: runs here vary by about +-30%.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np

from ssti.sweep.grid import Sweep, SweepRun

DEFAULT_MFU = {"train": 0.3, "infer": 0.35}
STARTUP_SECONDS = 8.0  # process start, imports, loading the model and the data
SAMPLE_ROWS = 512


@dataclass
class RunCost:
    """The estimated work and wall time of one run."""

    run_id: str
    train_tokens: float
    infer_tokens: float
    flops: float
    seconds: float


@dataclass
class SweepEstimate:
    """Per-run costs, the total of the runs still to do, and the assumptions behind them."""

    runs: dict[str, RunCost]
    to_do_seconds: float
    done: int
    mfu: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> {"train": x, "infer": y} used
    peaks: dict[str, float] = field(default_factory=dict)
    memory_gb: dict[str, float] = field(default_factory=dict)  # model -> the largest peak memory a finished run's process recorded

    def memory_warning(self, workers: int, machine_gb: float | None) -> str:
        """A line on memory per worker: what finished runs used, and a warning when `workers` of the largest would
        not fit in `machine_gb` (with 10% left for the system); without a finished run, that it is not known yet."""
        models = {run_model for run_model in self.mfu}
        unknown = sorted(models - set(self.memory_gb))
        line = "; ".join(f"{m}: up to {gb:.1f} GB per worker" for m, gb in sorted(self.memory_gb.items()))
        if unknown:
            line = "; ".join(filter(None, [line, f"{', '.join(unknown)}: not measured yet (each finished run records it)"]))
        line = f"memory: {line}" if line else ""
        need = max(self.memory_gb.values(), default=0.0) * workers
        if machine_gb and need > 0.9 * machine_gb:
            fit = max(1, int(0.9 * machine_gb // max(self.memory_gb.values())))
            line += (f"\nwarning: {workers} workers need about {need:.0f} GB, more than this machine's {machine_gb:.0f} GB allows; "
                     f"use --workers {fit} (a worker out of memory is killed by the system and its run restarts)")
        return line

    def summary(self) -> str:
        """One line: runs to do, CPU hours, and the assumptions."""
        n = len(self.runs) - self.done
        mfus = "; ".join(f"{m}: train MFU {v['train']:.2f}, inference MFU {v['infer']:.2f}" for m, v in self.mfu.items())
        return (f"estimate: {n} runs to do, about {self.to_do_seconds / 3600:.1f} hours on this machine "
                f"(best matmul peaks {self.peaks.get('train', 0) / 1e9:.0f}/{self.peaks.get('infer', 0) / 1e9:.0f} GFLOP/s "
                f"train/inference; {mfus}; about +-30%)")


def estimate_sweep(sweep: Sweep, finished: list[dict[str, Any]] | None = None) -> SweepEstimate:
    """Estimate every run of `sweep` on this machine; `finished` are store rows (with metrics) of done runs.

    Raises SSTIError when a run's data or model cannot be loaded (as the sweep itself would).
    """
    import torch

    from ssti.models.precision import achieved_mfu, best_peak

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peaks = {"train": best_peak(device, "train"), "infer": best_peak(device, "infer")}
    finished = finished or []
    done_ids = {row["run_id"] for row in finished}
    tokens, params = _TokenCounts(), _ParameterCounts()
    mfu = _achieved_mfu(finished)
    costs = {}
    for run in sweep.runs:
        c = run.config
        if c.model.name not in mfu:  # no finished run of this sweep: what runs of the model achieved on this machine
            mfu[c.model.name] = {k: achieved_mfu(device, c.model.name, k) or v for k, v in DEFAULT_MFU.items()}
        model_mfu = mfu[c.model.name]
        train_mean, test_mean = tokens.means(run)
        n_test = tokens.test_rows(run)
        sets = _spurious_sets(run)
        steps = c.train.total_steps(tokens.train_rows(run))
        train_tokens = steps * c.train.batch_size * train_mean
        curve_points = (steps // c.train.eval_every + (steps % c.train.eval_every > 0)) if c.train.eval_every else 0
        infer_tokens = test_mean * (n_test * (1 + sets) + curve_points * min(c.train.eval_samples, n_test) + _probe_texts(sweep, tokens, run))
        p = params.count(c.model.name, c.model.trust_remote_code)
        train_flops = (6 if c.lora.rank == 0 else 4) * p * train_tokens
        infer_flops = 2 * p * infer_tokens
        seconds = (train_flops / (peaks["train"] * model_mfu["train"]) + infer_flops / (peaks["infer"] * model_mfu["infer"])
                   + STARTUP_SECONDS)
        costs[run.run_id] = RunCost(run.run_id, train_tokens, infer_tokens, train_flops + infer_flops, seconds)
    to_do = sum(cost.seconds for rid, cost in costs.items() if rid not in done_ids)
    memory: dict[str, float] = {}
    for row in finished:
        model, gb = ((row.get("config") or {}).get("model") or {}).get("name"), (row.get("metrics") or {}).get("peak_rss_gb")
        if model and isinstance(gb, (int, float)):
            memory[model] = max(memory.get(model, 0.0), float(gb))
    return SweepEstimate(costs, to_do, len(done_ids & set(costs)), mfu, peaks, memory)


def _achieved_mfu(finished: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median training MFU and evaluation MFU per model over the finished runs that recorded them."""
    out: dict[str, dict[str, list[float]]] = {}
    for row in finished:
        metrics = row.get("metrics") or {}
        model = ((row.get("config") or {}).get("model") or {}).get("name")
        train, cost = metrics.get("train") or {}, metrics.get("eval_cost") or {}
        if not model:
            continue
        slot = out.setdefault(model, {"train": [], "infer": []})
        if train.get("mfu"):
            slot["train"].append(float(train["mfu"]))
        if cost.get("flops") and cost.get("seconds") and train.get("peak_flops"):
            slot["infer"].append(cost["flops"] / cost["seconds"] / train["peak_flops"])
    return {m: {k: (median(v) if v else DEFAULT_MFU[k]) for k, v in slot.items()} for m, slot in out.items()}


def _probe_texts(sweep: Sweep, tokens: "_TokenCounts", run: SweepRun) -> float:
    """Texts `ssti probe` predicts for one run when the sweep probes (`probe:`): the held-out sample times
    the sets of the type sweep (clean, control, each type) and, with the open search, its verifications."""
    if sweep.probe is None:
        return 0.0
    from ssti.probe.types import BUILT_IN_TYPES

    options = sweep.probe
    classes = tokens.classes(run)
    texts = min(options.get("max_samples", 200) * classes, tokens.split_rows(run, run.config.eval.split))
    sets = 2 + len(options.get("types", BUILT_IN_TYPES)) + len(options.get("extra_types", []))
    if options.get("search"):  # screening on 64 texts, then about 8 full verifications per class (ssti.probe.search)
        sets += classes * (8 + (options.get("top_k", 20) + 3 * 3 * (options.get("max_tokens", 8) - 1) // 2) * 64 / max(texts, 1))
    if options.get("attention"):
        sets += 4
    return float(texts * sets)


def _spurious_sets(run: SweepRun) -> int:
    """How many spurious test sets the run evaluates (one per target class)."""
    c = run.config
    if c.eval.sources:
        return len(c.eval.sources)
    return len(c.injection.targets) if c.injection is not None else 0


class _TokenCounts:
    """Mean model tokens per training row (as injected) and per test row, per distinct data/injection/tokenizer."""

    def __init__(self):
        self._data: dict[str, Any] = {}
        self._means: dict[str, tuple[float, float]] = {}
        self._tokenizers: dict[str, Any] = {}

    def _dataset(self, run: SweepRun):
        key = run.config.data.model_dump_json()
        if key not in self._data:
            from ssti.data import load_dataset

            self._data[key] = load_dataset(run.config.data.dataset, **run.config.data.load_options())
        return self._data[key]

    def train_rows(self, run: SweepRun) -> int:
        return len(self._dataset(run)[run.config.injection.split if run.config.injection else "train"])

    def classes(self, run: SweepRun) -> int:
        from ssti.data import class_names_of

        return len(class_names_of(self._dataset(run)))

    def split_rows(self, run: SweepRun, split: str) -> int:
        ds = self._dataset(run)
        return len(ds[split]) if split in ds else 0

    def test_rows(self, run: SweepRun) -> int:
        n = self.split_rows(run, run.config.eval.split)
        return min(n, run.config.eval.max_samples) if run.config.eval.max_samples else n

    def means(self, run: SweepRun) -> tuple[float, float]:
        c = run.config
        injection = c.injection.model_dump_json(exclude={"seed"}) if c.injection is not None else "none"
        key = json.dumps([c.data.model_dump_json(), injection, c.model.name, c.model.max_length, c.eval.split])
        if key not in self._means:
            self._means[key] = self._measure(run)
        return self._means[key]

    def _measure(self, run: SweepRun) -> tuple[float, float]:
        from ssti.data import column
        from ssti.inject import inject_dataset
        from ssti.models import load_tokenizer

        c = run.config
        ds = self._dataset(run)
        if c.model.name not in self._tokenizers:
            self._tokenizers[c.model.name] = load_tokenizer(c.model.name, trust_remote_code=c.model.trust_remote_code)
        tok = self._tokenizers[c.model.name]
        if c.injection is not None:
            length_tok = load_tokenizer(c.injection.tokenizer) if c.injection.length_unit == "tokens" and c.injection.token_fraction else None
            ds = inject_dataset(ds, c.injection, tokenizer=length_tok).dataset
        rng = np.random.default_rng(0)

        def mean_tokens(split) -> float:
            texts = column(split, "text")
            if not texts:
                return 0.0
            pick = rng.choice(len(texts), size=min(SAMPLE_ROWS, len(texts)), replace=False)
            ids = tok([texts[i] for i in pick], truncation=True, max_length=c.model.max_length)["input_ids"]
            return float(np.mean([len(x) for x in ids]))

        train = ds[c.injection.split if c.injection else "train"]
        test = ds[c.eval.split] if c.eval.split in ds else train
        return mean_tokens(train), mean_tokens(test)


class _ParameterCounts:
    """Non-embedding parameters per model (loaded once; embedded models load in about a second)."""

    def __init__(self):
        self._counts: dict[str, int] = {}

    def count(self, name: str, trust_remote_code: bool) -> int:
        if name not in self._counts:
            from ssti.models import load_backbone, resolve_model
            from ssti.models.precision import non_embedding_parameters

            self._counts[name] = non_embedding_parameters(load_backbone(resolve_model(name), trust_remote_code=trust_remote_code))
        return self._counts[name]
