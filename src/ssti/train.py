"""The fine-tuning loop, readable top to bottom.

Texts are tokenised once; batches are length-grouped and padded only to their own longest row; the
frozen base weights sit in bf16 where the hardware has fast bf16 (only LoRA and the head keep fp32
master weights); every step is seeded by its index, so a run resumed from a checkpoint ends with
exactly the weights of an uninterrupted one. Data parallel across processes (`accelerate launch`)
needs no code change: each process takes its share of every global batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ssti.config import DEFENDED_DATA, INJECTED_DATA, RunConfig, TrainSpec, from_preset, read_run_config, resolve_data
from ssti.data import class_names_of, column, load_dataset, stratified_sample
from ssti.data.folder import is_dataset_folder
from ssti.errors import SSTIError
from ssti.inject import resolve_targets
from ssti.io import MARKER, atomic_dir, check_clash, check_output, move_back, move_written, read_json, remove_written, write_json, write_marker, write_yaml
from ssti.provenance import provenance
from ssti.models.batching import pad_batch
from ssti.models.build import Classifier, build_classifier, lost_insertions, save_classifier
from ssti.models.inference import predict
from ssti.models.registry import resolve_model
from ssti.models.precision import best_peak, compute_dtype, dtype_name, measured_peaks, non_embedding_parameters, record_mfu

GROUP_CHUNK = 50  # length grouping sorts windows of this many micro-batches


@dataclass
class TrainResult:
    """What a finished training run reports (also written to metrics.json under "train")."""

    run_dir: Path
    steps: int
    final_loss: float
    real_tokens: int
    seconds: float
    tokens_per_second: float
    trainable_parameters: int


class length_grouped_batches:
    """The micro-batches of every optimizer step, as row-index arrays: `schedule[step]` is a list of
    `per_step` arrays of `micro` rows.

    Each epoch shuffles the rows (seeded by epoch), sorts windows of GROUP_CHUNK micro-batches by
    length so rows of similar length share a batch (little padding), then shuffles the step order.
    Epochs are built when a step first needs them (one epoch in memory), so a huge step count costs
    nothing up front and the schedule of step k never depends on how many steps the run has.
    """

    def __init__(self, lengths: np.ndarray, micro: int, per_step: int, steps: int, seed: int):
        self.lengths, self.micro, self.per_step, self.steps, self.seed = lengths, micro, per_step, steps, seed
        self._epoch, self._batches, self._start = -1, [], 0

    def _epoch_batches(self, epoch: int) -> list[list[np.ndarray]]:
        n, micro, per_step = len(self.lengths), self.micro, self.per_step
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        window = micro * GROUP_CHUNK
        for start in range(0, n, window):
            chunk = order[start:start + window]
            order[start:start + window] = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
        micro_batches = [order[i:i + micro] for i in range(0, n - micro + 1, micro)] or [order]
        step_batches = [micro_batches[i:i + per_step] for i in range(0, len(micro_batches) - per_step + 1, per_step)] or [micro_batches]
        return [step_batches[i] for i in rng.permutation(len(step_batches))]

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> list[np.ndarray]:
        if not 0 <= step < self.steps:
            raise IndexError(step)
        if step < self._start:  # going back (never in training): start over
            self._epoch, self._batches, self._start = -1, [], 0
        while step >= self._start + len(self._batches):
            self._start += len(self._batches)
            self._epoch += 1
            self._batches = self._epoch_batches(self._epoch)
        return self._batches[step - self._start]

    def __iter__(self):
        return (self[i] for i in range(self.steps))


def make_optimizer(params: list[torch.nn.Parameter], spec: TrainSpec) -> torch.optim.Optimizer:
    """AdamW or Adafactor (the paper's) over the trainable parameters."""
    if spec.optimizer == "adafactor":
        return torch.optim.Adafactor(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def lr_factor(step: int, total: int, spec: TrainSpec) -> float:
    """Linear warm-up to the peak, then cosine decay to zero (or constant)."""
    warmup = int(round(spec.warmup_ratio * total))
    if step < warmup:
        return (step + 1) / warmup
    if spec.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def check_classes(configs: list[RunConfig]) -> None:
    """Refuse, before any work, injection targets and eval sources that name no class of the data, an
    injection, defence or evaluation split the data does not have, an empty evaluation split (each distinct dataset is loaded once),
    and a defence model (tokenizer, context, model) that is no known name, local folder or hub id."""
    seen: dict[str, tuple[list[str], list[str]]] = {}
    for config in configs:
        key = config.data.model_dump_json()
        if key not in seen:
            ds = load_dataset(config.data.dataset, **config.data.load_options())
            seen[key] = (class_names_of(ds), {k: len(v) for k, v in ds.items()})
        names, splits = seen[key]
        if config.injection is not None:
            resolve_targets(config.injection.targets, names, "injection.targets")
            if config.injection.split not in splits:
                raise SSTIError(f"injection.split: {config.injection.split!r} is not a split of {config.data.dataset} ({', '.join(splits)})")
        if config.defence is not None and config.defence.split not in splits:
            raise SSTIError(f"defence.split: {config.defence.split!r} is not a split of {config.data.dataset} ({', '.join(splits)})")
        for field in ("tokenizer", "context", "model"):  # a mistyped model name, before any run starts
            name = getattr(config.defence, field, None) if config.defence is not None else None
            if name and not (field == "tokenizer" and name == "none"):
                resolve_model(name, f"defence.{field}")
        if config.eval.sources:
            resolve_targets(config.eval.sources, names, "eval.sources")
        if config.eval.split not in splits:
            raise SSTIError(f"eval.split: {config.eval.split!r} is not a split of {config.data.dataset} ({', '.join(splits)}); give the "
                            f"data a {config.eval.split!r} split (a csv/jsonl file without a split column is split 80/20), or set eval.split")
        if not splits[config.eval.split]:  # found now, not after the training
            raise SSTIError(f"eval.split: the {config.eval.split!r} split of {config.data.dataset} is empty; set eval.split to one "
                            f"with rows ({', '.join(k for k, n in splits.items() if n)})")


def train(config: RunConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
          show_progress: bool = True) -> TrainResult:
    """Fine-tune the classifier `config` describes and write the run folder `out`.

    The folder gets config.yaml (the resolved `config`: rerunnable as it is), data/ (the injected
    training set, when `config.injection` is set), adapter/ (PEFT adapter + head), train_log.jsonl,
    metrics.json and the injection record and manifest it trained on, so it evaluates on its own.
    With `resume`, training picks up from the last checkpoint of the same config; another config, a
    corrupt checkpoint or a folder that is not an ssti run are refused (SSTIError) rather than
    silently started over, and a failed fresh run removes only what it wrote.
    """
    from accelerate import Accelerator

    config = resolve_data(config)
    check_classes([config])  # eval.sources naming no class fails here, not after the training it would waste
    if config.injection is not None:
        from ssti.inject.store import refuse_reinjection

        refuse_reinjection(config.data.dataset)
    model, lora, spec = config.model, config.lora, config.train
    out = Path(out)
    started = time.time()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process  # with several processes only the main one writes the folder
    created, resume = prepare_run_dir(out, config, resume, overwrite) if main else (None, resume)
    accelerator.wait_for_everyone()
    try:
        if main:
            data = training_data(config, out, show_progress=show_progress)
        accelerator.wait_for_everyone()
        data = training_data(config, out, write=False)
        device, world = accelerator.device, accelerator.num_processes
        dtype = training_dtype(spec.precision, device, out if resume else None)
        # the run's injected (or defended) copy was made from the windowed source: read it as it is
        dataset = load_dataset(data, **(config.data.load_options() if data == config.data.dataset else {}))
        if spec.batch_size > len(dataset["train"]):
            raise SSTIError(f"train.batch_size: {spec.batch_size} is more than the {len(dataset['train'])} rows of the training split "
                            f"(allowed: 1..{len(dataset['train'])})")
        class_names = class_names_of(dataset)
        clf = build_classifier(model, lora, class_names, seed=spec.seed, base_dtype=dtype,
                               max_length_from_preset=from_preset(config, "model.max_length"))
        clf.module.to(device)
        if device.type == "cpu":
            clf.use_attention("eager")
            clf.use_fast_dropout()
        peak = best_peak(device, "train", refresh=True)  # measured next to the work; the cache keeps the best seen
        flops_per_token = (6 if lora.rank == 0 else 4) * non_embedding_parameters(clf.module.backbone)
        if main:
            formula = f" (LoRA formula: {clf.expected_trainable:,})" if lora.rank > 0 else " (full fine-tuning)"
            print(f"trainable parameters: {clf.trainable:,}{formula}; "
                  f"base weights {dtype_name(dtype)} on {device}; MFU against the best matmul peak here, {peak / 1e9:.0f} GFLOP/s")

        texts, labels = column(dataset["train"], "text"), np.asarray(column(dataset["train"], "label"))
        token_ids = clf.encode(texts)
        # a defence moved or removed the planted tokens: the manifest's positions are not the texts' any more
        truncation = training_truncation(clf, dataset["train"], texts, out) if main and config.defence is None else None
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=len(token_ids))
        micro = min(spec.micro_batch_size or max(spec.batch_size // world, 1), spec.batch_size)  # default: one pass per process
        if spec.batch_size % (micro * world):
            raise SSTIError(f"train.batch_size: {spec.batch_size} is not a multiple of micro_batch_size x processes = {micro * world}")
        per_step = spec.batch_size // micro  # micro-batches per step, over all processes
        total = spec.total_steps(len(texts))
        schedule = length_grouped_batches(lengths, micro, per_step, total, spec.seed)

        params = [p for p in clf.module.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, spec)
        module, optimizer = accelerator.prepare(clf.module, optimizer)
        start = _load_checkpoint(out, clf, optimizer) if resume else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, spec), last_epoch=start - 1)

        curve_texts, curve_labels = learning_curve_set(dataset, config) if spec.eval_every and main else ([], None)
        pad_id = clf.tokenizer.pad_token_id
        log_path = out / "train_log.jsonl"
        if main:
            _truncate_log(log_path, start)
        real_tokens, seconds, loss_value = 0, 0.0, float("nan")
        module.train()
        if main:
            write_marker(out, "run", [log_path.name])
        with _progress(show_progress and main, total, start) as (bar, task), log_path.open("a") as log:
            for step in range(start, total):
                t0 = time.perf_counter()
                mine = schedule[step][accelerator.process_index::world]
                step_loss, step_tokens = torch.zeros((), device=device), 0
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(spec.seed * 1_000_003 + step)  # dropout draws depend on the step only
                    for k, rows in enumerate(mine):
                        ids, mask = pad_batch(token_ids, rows, pad_id, device)
                        target = torch.as_tensor(labels[rows], device=device)
                        sync = accelerator.no_sync(module) if k < len(mine) - 1 else contextlib.nullcontext()
                        with sync, clf.autocast(device, dtype):
                            logits = module(ids, mask)
                        loss = F.cross_entropy(logits.float(), target, reduction="sum") * (world / spec.batch_size)
                        accelerator.backward(loss)
                        step_loss += loss.detach() / world
                        step_tokens += int(lengths[rows].sum())  # from the CPU lengths: no device sync
                if spec.grad_clip:
                    accelerator.clip_grad_norm_(params, spec.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step_loss = step_loss.item()  # the step's one device sync
                dt = time.perf_counter() - t0
                real_tokens, seconds, loss_value = real_tokens + step_tokens * world, seconds + dt, step_loss
                if main:
                    mfu = flops_per_token * step_tokens * world / max(dt, 1e-9) / (peak * world)
                    log.write(json.dumps({"step": step + 1, "loss": round(step_loss, 6), "lr": scheduler.get_last_lr()[0],
                                          "real_tokens": step_tokens * world, "seconds": round(dt, 4), "mfu": float(f"{mfu:.3g}"),
                                          "precision": dtype_name(dtype)}) + "\n")
                    log.flush()
                    tps = real_tokens / max(seconds, 1e-9)
                    bar.update(task, advance=1, loss=step_loss, tps=tps, mfu=flops_per_token * tps / (peak * world))
                    if curve_texts and ((step + 1) % spec.eval_every == 0 or step + 1 == total):
                        accuracy = float((predict(clf, curve_texts, batch_size=config.eval.batch_size, device=device,
                                                  precision=dtype_name(dtype)) == curve_labels).mean())
                        module.train()
                        log.write(json.dumps({"step": step + 1, "clean_accuracy": round(accuracy, 5), "curve_samples": len(curve_texts)}) + "\n")
                        log.flush()
                    if spec.checkpoint_every and (step + 1) % spec.checkpoint_every == 0 and step + 1 < total:
                        _save_checkpoint(out, clf, optimizer, step + 1, dtype)

        if start:  # a resumed run: tokens and seconds of the steps before the interruption are in the log
            real_tokens, seconds = _log_totals(log_path) if main else (real_tokens, seconds)
        result = TrainResult(out, total, loss_value, real_tokens, seconds, real_tokens / max(seconds, 1e-9), clf.trainable)
        if main:
            module.eval()
            write_marker(out, "run", ["adapter/", "metrics.json"])
            with atomic_dir(out / "adapter", overwrite=True) as tmp:
                save_classifier(clf, tmp)
            metrics = read_json(out / "metrics.json", {})
            metrics["train"] = {"run_id": config.run_id(), "steps": total, "final_loss": loss_value, "real_tokens": real_tokens, "seconds": round(seconds, 3),
                                "tokens_per_second": round(result.tokens_per_second, 2), "trainable_parameters": clf.trainable,
                                "resumed_from_step": start, "precision": dtype_name(dtype),
                                "matmul_peaks_gflops": {purpose: {k: round(v / 1e9, 1) for k, v in p.items()}
                                                        for purpose, p in measured_peaks(device).items()},
                                "mfu": float(f"{flops_per_token * result.tokens_per_second / (peak * world):.3g}"),
                                "flops_per_token": flops_per_token, "peak_flops": peak,
                                "max_length": clf.model_spec.max_length, "truncation": truncation,
                                "curve": learning_curve(log_path)}
            metrics["provenance"] = provenance(str(device), started)
            write_json(out / "metrics.json", metrics)
            record_mfu(device, model.name, "train", metrics["train"]["mfu"])  # what `ssti sweep --dry-run` estimates with
            remove_written(out / "checkpoint")
            with contextlib.suppress(OSError):
                (out / "checkpoint").rmdir()  # gone when empty (a file the user left there stays, and so does the folder)
            shutil.rmtree(out / PREVIOUS, ignore_errors=True)  # the overwritten run is gone only now
        accelerator.wait_for_everyone()
        return result
    except BaseException:
        if created is not None and not resume and not (out / "checkpoint" / "state.json").exists():
            remove_run_files(out, created)  # nothing worth resuming: leave nothing of ours half-written
        raise




def prepare_run_dir(out: Path, config: RunConfig, resume: bool, overwrite: bool) -> tuple[bool, bool]:
    """Create the run folder with config.yaml, or check that a resumed one holds the same run.

    Returns whether the folder itself was created by this call (so a failure can remove it again) and
    whether training resumes (a `resume` with no run in the folder starts fresh, with a note).
    The output rule of every command applies (`ssti.io.check_output`): a folder that holds files
    ssti did not write is refused, never emptied; `overwrite` replaces only what ssti wrote.
    """
    if resume and overwrite:
        raise SSTIError("resume/overwrite: give one: --resume continues the run in the folder, --overwrite starts it over "
                        "(in Python resume=True or overwrite=True)")
    existed = out.exists()
    if check_output(out, "run") == "ours":
        check_clash(out, list(RUN_NAMES))  # a user file named like one of ours is refused before anything moves
        old = read_run_config(out) if (out / "config.yaml").exists() else None
        if resume and old is not None:
            if old.run_id() != config.run_id():
                raise SSTIError(f"resume: {out} holds a run of another config ({describe_difference(old, config)}); use a new --out")
            if (out / "adapter" / "model.json").exists() and not (out / "checkpoint" / "state.json").exists():
                raise SSTIError(f"resume: {out} already finished training; nothing to resume")
            if (out / "checkpoint").exists():
                read_checkpoint_state(out / "checkpoint")  # a damaged checkpoint is refused now, before the model loads
            return False, True
        if old is not None and not overwrite:
            raise SSTIError(f"out: {out} already holds a run (pass --resume to continue it or --overwrite to start over; in Python resume=True or overwrite=True)")
        if old is not None:
            set_aside(out)  # the previous run comes back if this one fails or is interrupted
    if resume:  # e.g. Ctrl-C before the first checkpoint, which leaves nothing behind
        print(f"note: {out} holds no run to resume (no checkpoint was written); starting from step 0", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    try:
        write_yaml(out / "config.yaml", config.dump())
        write_marker(out, "run", ["config.yaml"])  # each later write adds what it wrote
    except BaseException:
        (out / "config.yaml").unlink(missing_ok=True)
        (out / MARKER).unlink(missing_ok=True)
        if not existed:
            out.rmdir()
        raise
    return not existed, False


def remove_run_files(out: Path, created: bool) -> None:
    """Delete what ssti wrote in a run folder (what its marker lists), put back a previous run that
    --overwrite set aside, and remove the folder itself if this call created it and nothing else is left:
    no other file in it is ever deleted, moved or overwritten."""
    remove_written(out)
    restore_previous(out)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


PREVIOUS = ".ssti-previous"  # where --overwrite keeps the replaced run until the new one is complete
RUN_NAMES = ("config.yaml", "train_log.jsonl", "metrics.json", "manifest.jsonl", "injection.yaml", "adapter/", "checkpoint/",
             f"{INJECTED_DATA}/", f"{DEFENDED_DATA}/", "defence.json")


def set_aside(out: Path) -> None:
    """Move what the previous run wrote (by its marker) into out/.ssti-previous/; the user's files stay put."""
    keep = out / PREVIOUS
    if keep.exists():
        shutil.rmtree(keep)  # left by an earlier overwrite that completed but could not clean up
    move_written(out, keep)


def restore_previous(out: Path) -> None:
    """Put back the run set aside by `set_aside` (after a failed or interrupted overwrite)."""
    if (out / PREVIOUS).is_dir():
        move_back(out / PREVIOUS, out)


def describe_difference(old: RunConfig, new: RunConfig) -> str:
    """Which fields differ between two run configs, e.g. "differs in: lora.rank, train.lr"; data bytes named as such."""
    a, b = old.canonical(), new.canonical()
    changed = []
    for section in sorted(set(a) | set(b)):
        x, y = a.get(section), b.get(section)
        if isinstance(x, dict) or isinstance(y, dict):
            x, y = x or {}, y or {}
            changed += [f"{section}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            changed.append(section)
    if changed == ["data.fingerprint"]:
        return "data changed since this run was made"
    return "differs in: " + ", ".join(changed)


def training_data(config: RunConfig, out: Path, write: bool = True, show_progress: bool = True) -> str:
    """What the run trains on: its injected copy in out/data (written when missing and `write`), else the
    configured data; then, with a defence, its defended copy in out/defended. The injection record and
    manifest it was made with (and the defence's measurement, defence.json) are copied beside the run."""
    source = config.data.dataset
    if config.injection is not None:
        folder = out / INJECTED_DATA
        if write and not is_dataset_folder(folder):
            write_marker(out, "run", [f"{INJECTED_DATA}/"])
            inject_into(config, folder)
        source = str(folder)
    if write and Path(source).is_dir():
        for name in ("manifest.jsonl", "injection.yaml"):
            if (Path(source) / name).exists() and not (out / name).exists():
                write_marker(out, "run", [name])
                shutil.copyfile(Path(source) / name, out / name)
    if config.defence is not None:
        folder = out / DEFENDED_DATA
        if write and not is_dataset_folder(folder):
            write_marker(out, "run", [f"{DEFENDED_DATA}/"])
            defend_into(config, source, folder, show_progress)
        if write and not (out / "defence.json").exists():
            write_marker(out, "run", ["defence.json"])
            shutil.copyfile(folder / "defence.json", out / "defence.json")
        source = str(folder)
    return source


def defend_into(config: RunConfig, source: str, folder: Path, show_progress: bool = True) -> None:
    """Apply `config.defence` to the training data `source` (the run's injected copy, or its data) and write
    the defended folder the run trains on, measured against the injection manifest when there is one."""
    from ssti.defend import defend_dataset, write_defended

    load = {} if config.injection is not None else config.data.load_options()
    write_defended(defend_dataset(source, config.defence, show_progress=show_progress, **load), folder, overwrite=True)


def inject_into(config: RunConfig, folder: Path) -> None:
    """Inject `config.injection` into `config.data` and write the dataset folder the run trains on."""
    from ssti.inject import inject_dataset, write_injected
    from ssti.models import load_tokenizer

    spec, d = config.injection, config.data
    dataset = load_dataset(d.dataset, **d.load_options())
    tokenizer = None
    if spec.length_unit == "tokens" and spec.token_fraction is not None:
        tokenizer = load_tokenizer(spec.tokenizer, trust_remote_code=config.model.trust_remote_code)
    write_injected(inject_dataset(dataset, spec, tokenizer=tokenizer, source_dataset=d.dataset), folder, overwrite=True)


def training_dtype(precision: str, device: torch.device, resumed_run: Path | None) -> torch.dtype:
    """The base-weight dtype of a run: `precision` resolved here (`auto` measured, see ssti.models.precision);
    a resumed run keeps the dtype it started with, saying so when `auto` would now pick another."""
    dtype = compute_dtype(precision, device, "train")
    state = resumed_run / "checkpoint" / "state.json" if resumed_run else None
    if state and state.exists():
        try:
            started = read_json(state).get("dtype")
        except (SSTIError, AttributeError):
            started = None  # a damaged checkpoint is refused by _load_checkpoint, with the full story
        if started and started != dtype_name(dtype):
            print(f"note: precision {precision} resolves to {dtype_name(dtype)} on this machine; the run started in "
                  f"{started} and keeps it", file=sys.stderr)
            dtype = torch.bfloat16 if started == "bf16" else torch.float32
    return dtype


def training_truncation(clf: Classifier, split, texts: list[str], out: Path) -> dict | None:
    """Planted insertions of the training split that max_length cuts off (from the run's manifest), with a
    warning on stderr when any is lost: the model cannot learn a token it never sees."""
    if not (out / "manifest.jsonl").exists():
        return None
    from ssti.data.folder import read_manifest

    manifest = [r for r in read_manifest(out / "manifest.jsonl") if r.get("split", "train") == "train" and r.get("insertions")]
    counts = lost_insertions(clf, texts, manifest, {rid: i for i, rid in enumerate(column(split, "id"))})
    if counts and counts["lost"]:
        print(f"warning: max_length {clf.model_spec.max_length} cuts off {counts['lost']:,} of {counts['insertions']:,} planted "
              f"insertions of the training set ({counts['rows_all_lost']:,} rows lose all of theirs); raise model.max_length "
              f"or place tokens nearer the start", file=sys.stderr)
    return counts


def learning_curve_set(dataset, config: RunConfig) -> tuple[list[str], np.ndarray]:
    """The texts and labels the learning curve is measured on: `train.eval_samples` stratified rows of
    the eval split (seeded by `eval.seed`), clean (an injection only touches the training split)."""
    split = config.eval.split
    if split not in dataset:
        raise SSTIError(f"eval.split: {split!r} is not a split of {config.data.dataset} ({', '.join(dataset)}); the learning curve "
                        f"(train.eval_every) is measured on it")
    rows = stratified_sample(column(dataset[split], "label"), config.train.eval_samples, config.eval.seed)
    part = dataset[split].select(rows)
    return column(part, "text"), np.asarray(column(part, "label"))


def learning_curve(log_path: Path) -> list[dict[str, float]]:
    """The clean-accuracy points of train_log.jsonl ([{step, clean_accuracy}], by step; empty without eval_every)."""
    points = {}
    for line in log_path.read_text().splitlines():
        row = json.loads(line) if line.strip() else {}
        if "clean_accuracy" in row:
            points[row["step"]] = row["clean_accuracy"]
    return [{"step": k, "clean_accuracy": v} for k, v in sorted(points.items())]


def _log_totals(path: Path) -> tuple[int, float]:
    """(real tokens, seconds) summed over every training step in train_log.jsonl (all sessions of a resumed run)."""
    tokens, seconds = 0, 0.0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "real_tokens" in row:
            tokens, seconds = tokens + int(row["real_tokens"]), seconds + float(row["seconds"])
    return tokens, seconds


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def _save_checkpoint(out: Path, clf: Classifier, optimizer: torch.optim.Optimizer, step: int, dtype: torch.dtype = torch.float32) -> None:
    """Trainable weights and optimizer state as safetensors + JSON, written atomically."""
    names = [n for n, p in clf.module.named_parameters() if p.requires_grad]
    weights = {n: p.detach().float().contiguous() for n, p in clf.module.named_parameters() if p.requires_grad}
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value.detach().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    write_marker(out, "run", ["checkpoint/"])
    with atomic_dir(out / "checkpoint", overwrite=True) as tmp:
        save_file(weights, tmp / "weights.safetensors")
        if tensors:
            save_file(tensors, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps({"step": step, "names": names, "param_groups": state["param_groups"], "scalars": scalars,
                                                    "dtype": dtype_name(dtype)}))


def read_checkpoint_state(folder: Path) -> dict:
    """state.json of a checkpoint folder, checked against the tensor names in its safetensors headers
    (cheap: no tensor is read); a damaged checkpoint raises SSTIError."""
    from safetensors import safe_open

    try:
        meta = json.loads((folder / "state.json").read_text())
        with safe_open(folder / "weights.safetensors", "pt") as f:
            names = set(f.keys())
        if names != set(meta["names"]) or int(meta["step"]) < 1:
            raise ValueError("state.json does not match weights.safetensors")
        if (folder / "optimizer.safetensors").exists():
            with safe_open(folder / "optimizer.safetensors", "pt") as f:
                f.keys()
    except Exception as e:  # noqa: BLE001 - missing, unreadable, not JSON, a damaged safetensors header (its own error type)
        raise SSTIError(f"resume: the checkpoint in {folder} is corrupt ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); "
                        f"refusing to start over silently") from None
    return meta


def _load_checkpoint(out: Path, clf: Classifier, optimizer: torch.optim.Optimizer) -> int:
    """Restore weights, optimizer and schedule from out/checkpoint; the step to continue from."""
    folder = out / "checkpoint"
    if not folder.exists():
        if (out / "adapter").exists():
            raise SSTIError(f"resume: {out} already finished training; nothing to resume")
        return 0
    meta = read_checkpoint_state(folder)
    try:
        weights = load_file(folder / "weights.safetensors")
        params = dict(clf.module.named_parameters())
        if set(weights) != set(meta["names"]) or any(weights[n].shape != params[n].shape for n in weights):
            raise ValueError("weights do not match the model")
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value)
        tensors = load_file(folder / "optimizer.safetensors") if (folder / "optimizer.safetensors").exists() else {}
        state: dict[int, dict] = {}
        for flat, value in list(tensors.items()) + list(meta["scalars"].items()):
            idx, key = flat.split(".", 1)
            state.setdefault(int(idx), {})[key] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        step = int(meta["step"])
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise SSTIError(f"resume: the checkpoint in {folder} is corrupt ({str(e).splitlines()[0][:120]}); refusing to start over silently") from None
    return step


class _progress:
    """A rich progress bar with loss and real tokens/s (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int):
        self.enabled, self.total, self.start = enabled, total, start

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                            TextColumn("{task.fields[tps]:.0f} tok/s"), TextColumn("MFU {task.fields[mfu]:.2f}"), TimeElapsedColumn(),
                            TimeRemainingColumn(), disable=not self.enabled)
        self.bar.__enter__()
        task = self.bar.add_task("train", total=self.total, completed=self.start, loss=float("nan"), tps=0.0, mfu=0.0)
        return self.bar, task

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)
