"""ssti's training and inference loop on a CUDA GPU at the paper's scale, with MFU.

The model is shaped like Llama-3.2-1B (16 layers, hidden 2048, GQA 32/8, MLP 8192) with random
weights, because a GPU box without network cannot download the real one: throughput does not depend on
the weight values. Texts are Rotten Tomatoes (a parquet exported with `--export`), tokenised bytewise,
so sequences are about 5x longer than with a BPE tokenizer (median ~130 tokens).

    .venv/bin/python benchmarks/gpu_speed.py --export gpu_data/rt.parquet     # here, once
    python3 benchmarks/gpu_speed.py --data gpu_data/rt.parquet --out $OUT      # on the GPU machine

Prints real (non-pad) training tokens/s and MFU = 4 x non-embedding params x tokens/s / measured bf16
matmul peak; inference likewise with 2 x.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def export(path: str) -> None:
    """Write rotten-tomatoes (train+test, with a split column) as one parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ssti.data import column, load_dataset

    ds = load_dataset("rotten-tomatoes")
    cols = {"id": [], "text": [], "label": [], "split": []}
    for split in ("train", "test"):
        for key in ("id", "text"):
            cols[key] += column(ds[split], key)
        cols["label"] += [ds[split].features["label"].names[i] for i in column(ds[split], "label")]
        cols["split"] += [split] * len(ds[split])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)


def matmul_peak(n: int = 8192, reps: int = 10) -> float:
    """Measured bf16 matmul FLOP/s on the GPU (mean of reps after warm-up)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def random_llama_1b(folder: Path) -> int:
    """Save a Llama-3.2-1B-shaped model with random weights and a byte tokenizer; its non-embedding params."""
    from transformers import LlamaConfig, LlamaModel

    from ssti.models import tiny_tokenizer

    config = LlamaConfig(vocab_size=259, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=True, architectures=["LlamaForCausalLM"])
    with torch.device("cuda"):
        model = LlamaModel(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export")
    parser.add_argument("--data")
    parser.add_argument("--out", default=".")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.export:
        return export(args.export)
    from ssti.config import DataSpec, EvalSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec
    from ssti.data import column, load_dataset
    from ssti.evaluate import evaluate_run, predict
    from ssti.models.build import load_classifier
    from ssti.train import train

    work = Path(tempfile.mkdtemp())
    peak = matmul_peak()
    params = random_llama_1b(work / "model")
    print(f"{torch.cuda.get_device_name()}: bf16 matmul peak {peak / 1e12:.0f} TFLOP/s; non-embedding params {params / 1e6:.0f}M", flush=True)
    results = {"device": torch.cuda.get_device_name(), "peak_tflops": peak / 1e12, "params": params}
    for rank, targets in ((64, "attention"), (8, "qv")):
        run = work / f"run-r{rank}"
        train(RunConfig(data=DataSpec(dataset=args.data), model=ModelSpec(name=str(work / "model"), max_length=512),
                        lora=LoraSpec(rank=rank, targets=targets), train=TrainSpec(steps=args.steps, batch_size=args.batch, checkpoint_every=0)),
              run, show_progress=False)
        log = [json.loads(line) for line in open(run / "train_log.jsonl")][3:]
        tps = sum(r["real_tokens"] for r in log) / sum(r["seconds"] for r in log)
        mfu = 4 * params * tps / peak
        results[f"train_r{rank}_{targets}"] = {"tokens_per_s": tps, "mfu": mfu}
        print(f"train LoRA r={rank} on {targets}, batch {args.batch}: {tps:,.0f} real tokens/s, MFU {mfu:.2f}", flush=True)
    clf = load_classifier(run / "adapter", base_dtype=torch.bfloat16)
    texts = column(load_dataset(args.data)["train"], "text")[:8192]
    tokens = sum(len(t) for t in clf.encode(texts))
    predict(clf, texts[:256], batch_size=128)
    for bs in (128, 256):
        torch.cuda.synchronize()
        t = time.perf_counter()
        predict(clf, texts, batch_size=bs)
        torch.cuda.synchronize()
        tps = tokens / (time.perf_counter() - t)
        results[f"infer_b{bs}"] = {"tokens_per_s": tps, "mfu": 2 * params * tps / peak}
        print(f"inference batch {bs}: {tps:,.0f} real tokens/s, MFU {2 * params * tps / peak:.2f}", flush=True)
    m = evaluate_run(run, EvalSpec(sources={"1": "date"}, max_samples=500))
    print("eval on CUDA ok: clean accuracy", round(m["clean"]["accuracy"], 3), "(random weights, short training)")
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    Path(args.out, "gpu_speed.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
