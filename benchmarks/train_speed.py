"""Training and inference speed of ssti vs plain Hugging Face Trainer + PEFT (smollm2-135m, or --model minilm-l6).

Each mode runs in its own subprocess (clean peak memory, no shared caches), on the same machine in
the same invocation, so the ratios are comparable even though absolute speeds drift between sessions.

    .venv/bin/python benchmarks/train_speed.py [--steps 20] [--modes ssti,hf-best] [--repeats 3]

Modes (LoRA r=8 on q/v, batch 16, rotten-tomatoes train split):
  ssti          ssti.train: length-grouped dynamic padding, frozen base in bf16, no LM head
  hf-padded     Trainer, every sample padded to 128 tokens, fp32 (the reference harness's way)
  hf-best       Trainer, dynamic padding + group_by_length + bf16 autocast (the best plain setup)
  ssti-infer    ssti.evaluate.predict: adapters merged (as `ssti eval` does), inference_mode, bf16,
                length-sorted, batch 32
  plain-infer   the same merged model, batch 32 in split order (no sorting)
MFU = (4 x non-embedding params x real tokens/s for training, 2 x for inference) / the machine's best
matmul peak (the faster of fp32 and bf16, as nanoGPT's estimate_mfu divides by the hardware peak):
a bf16 run on a machine whose fp32 path is faster is measured against the fp32 peak. Every mode is
divided by one peak: the best of those measured in this invocation (here and inside each mode's own
process, before and after its work) and the best `ssti.models.precision` has cached for this machine.
Peaks measured beside single modes varied 2.5x on an AMX CPU (745 vs 1,851 GFLOP/s), which made equal
speeds look like MFU 0.12 vs 0.05; the printed per-run peaks show that spread. Each mode runs
at its own best precision (ssti: `auto`, measured; the Trainer: bf16 only when bf16 is the faster path).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

MODES = ["ssti", "hf-padded", "hf-best", "ssti-infer", "plain-infer"]
MODEL = "smollm2-135m"  # --model: any decoder or encoder of the registry (minilm-l6 for the paper's Arctic family)
N_INFER = 1024


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """Measured matmul FLOP/s for `dtype` on this CPU (best of reps)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def non_embedding_params() -> int:
    from ssti.models import load_backbone, resolve_model

    from ssti.models.precision import non_embedding_parameters

    return non_embedding_parameters(load_backbone(resolve_model(MODEL)))


def texts_and_labels():
    from ssti.data import column, load_dataset

    ds = load_dataset("rotten-tomatoes")
    return column(ds["train"], "text"), column(ds["train"], "label"), column(ds["test"], "text")[:N_INFER]


def run_ssti(steps: int) -> dict:
    import tempfile

    from ssti.config import LoraSpec, ModelSpec, RunConfig, TrainSpec
    from ssti.train import train

    out = tempfile.mkdtemp() + "/run"
    train(RunConfig(model=ModelSpec(name=MODEL, max_length=128), lora=LoraSpec(rank=8, targets="qv"),
                    train=TrainSpec(steps=steps, batch_size=16, checkpoint_every=0)), out, show_progress=False)
    log = [json.loads(line) for line in open(f"{out}/train_log.jsonl")][2:]  # skip warm-up steps
    return {"real_tokens": sum(r["real_tokens"] for r in log), "seconds": sum(r["seconds"] for r in log), "steps": len(log)}


def run_hf(steps: int, best: bool) -> dict:
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    from ssti.models import load_tokenizer
    from ssti.models.loading import _weights_folder
    from ssti.models.precision import auto_dtype
    from ssti.models.registry import resolve_model

    texts, labels, _ = texts_and_labels()
    entry = resolve_model(MODEL)
    tok = load_tokenizer(MODEL)
    folder = _weights_folder(entry)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    model.config.pad_token_id = tok.pad_token_id
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.05, target_modules=list(entry.qv_targets), task_type="SEQ_CLS"))
    n = steps * 16 * 2
    if best:
        enc = tok(texts[:n], truncation=True, max_length=128)
    else:
        enc = tok(texts[:n], truncation=True, max_length=128, padding="max_length")
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels[:n]})
    timings: list[tuple[float, int]] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            timings.append(time.perf_counter() - self.t)

    real_tokens: list[int] = []
    collator = DataCollatorWithPadding(tok)

    def collate(rows):
        batch = collator(rows)
        real_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    args = TrainingArguments(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=16, learning_rate=1e-3,
                             bf16=best and auto_dtype(torch.device("cpu")) == torch.bfloat16, use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
                             dataloader_num_workers=0, **({"train_sampling_strategy": "group_by_length"} if best else {}))
    Trainer(model=model, args=args, train_dataset=ds, data_collator=collate, callbacks=[Timer()]).train()
    return {"real_tokens": sum(real_tokens[2:steps]), "seconds": sum(timings[2:]), "steps": len(timings) - 2}


def run_infer(sort: bool) -> dict:
    import tempfile

    import numpy as np

    from ssti.config import LoraSpec, ModelSpec
    from ssti.evaluate import predict
    from ssti.models.batching import pad_batch
    from ssti.models.build import build_classifier
    from ssti.models.precision import compute_dtype

    _, _, test = texts_and_labels()
    dtype = compute_dtype("auto", torch.device("cpu"), "infer")
    clf = build_classifier(ModelSpec(name=MODEL, max_length=128), LoraSpec(rank=8, targets="qv"), ["rotten", "fresh"], base_dtype=dtype)
    clf.merge_adapters()  # as `ssti eval` does
    tokens = sum(len(t) for t in clf.encode(test))
    predict(clf, test[:64])  # warm-up
    t = time.perf_counter()
    if sort:
        predict(clf, test, batch_size=32)
    else:
        ids = clf.encode(test)
        clf.module.eval()
        with torch.inference_mode(), clf.autocast(torch.device("cpu"), dtype):
            for b in range(0, len(ids), 32):
                x, m = pad_batch(ids, np.arange(b, min(b + 32, len(ids))), clf.tokenizer.pad_token_id, torch.device("cpu"))
                clf.module(x, m).argmax(-1)
    _ = tempfile
    return {"real_tokens": tokens, "seconds": time.perf_counter() - t}


def best_peak() -> tuple[float, str]:
    """The faster matmul path here: (FLOP/s, dtype name)."""
    return max((matmul_peak(torch.bfloat16), "bf16"), (matmul_peak(torch.float32), "fp32"))


def child(mode: str, steps: int) -> None:
    peak_before = best_peak()
    result = {"ssti": lambda: run_ssti(steps), "hf-padded": lambda: run_hf(max(6, steps // 2), best=False),
              "hf-best": lambda: run_hf(steps, best=True), "ssti-infer": lambda: run_infer(sort=True),
              "plain-infer": lambda: run_infer(sort=False)}[mode]()
    result["peak"], result["peak_dtype"] = max(peak_before, best_peak())
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print("RESULT " + json.dumps(result))


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default=MODEL, help="registry name: smollm2-135m (default) or minilm-l6 (the Arctic family)")
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=1, help="cycles through the modes (interleaved, so drift hits all alike); means reported")
    args = parser.parse_args()
    MODEL = args.model
    if args.mode:
        return child(args.mode, args.steps)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    params = non_embedding_params()
    print(f"{MODEL}: matmul peak: bf16 {peak_bf16 / 1e9:.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:.0f} GFLOP/s; non-embedding params {params / 1e6:.1f}M")
    best = max(peak_bf16, peak_fp32)
    print(f"ceilings at the best peak ({'bf16' if peak_bf16 >= peak_fp32 else 'fp32'}): training {best / (4 * params):.0f} tokens/s, "
          f"inference {best / (2 * params):.0f} tokens/s")
    runs: dict[str, list[dict]] = {}
    for cycle in range(args.repeats):
        for mode in args.modes.split(","):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(args.steps), "--model", MODEL],
                                 capture_output=True, text=True)
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if not line:
                print(f"{mode}: failed\n{out.stderr[-2000:]}")
                continue
            r = json.loads(line[0][7:])
            r["tps"] = r["real_tokens"] / r["seconds"]
            runs.setdefault(mode, []).append(r)
            print(f"{mode:12s} {r['tps']:8.0f} real tokens/s   (peak measured beside it {r['peak'] / 1e9:.0f} GFLOP/s, {r['peak_dtype']})   "
                  f"peak RSS {r['peak_rss_gb']:.2f} GB   [cycle {cycle + 1}]", flush=True)
    # One denominator for every mode: the best peak seen in this invocation or ever cached for this machine
    # (ssti.models.precision keeps the best figure); a peak measured beside one mode varies 2.5x on AMX CPUs.
    from ssti.models.precision import best_peak as cached_best_peak

    cpu = torch.device("cpu")
    peak = max([best, cached_best_peak(cpu, "train"), cached_best_peak(cpu, "infer")] + [r["peak"] for rs in runs.values() for r in rs])
    for mode, rs in runs.items():
        for r in rs:
            r["mfu"] = (2 if "infer" in mode else 4) * params * r["tps"] / peak
    mean = {mode: {k: sum(r[k] for r in rs) / len(rs) for k in ("tps", "mfu", "peak_rss_gb")} for mode, rs in runs.items()}
    print(f"\n{'means over ' + str(args.repeats) + ' cycles' if args.repeats > 1 else 'results'}, MFU against the best peak {peak / 1e9:.0f} GFLOP/s:")
    for mode, m in mean.items():
        print(f"{mode:12s} {m['tps']:8.0f} real tokens/s   MFU {m['mfu']:.2f}   peak RSS {m['peak_rss_gb']:.2f} GB")
    if "ssti" in mean:
        for base in ("hf-padded", "hf-best"):
            if base in mean:
                print(f"ssti training vs {base}: {mean['ssti']['tps'] / mean[base]['tps']:.2f}x")
    if "ssti-infer" in mean and "plain-infer" in mean:
        print(f"sorted vs split-order inference: {mean['ssti-infer']['tps'] / mean['plain-infer']['tps']:.2f}x")


if __name__ == "__main__":
    main()
