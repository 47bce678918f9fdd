"""How fast is the injection engine? Prints texts/s and a table of times vs the authors' library.

The workload of issue 2: 25,000 IMDB-length texts (about 230 words each, with newlines; generated here
with a fixed seed), 50/50 labels; one random date at a random location into 50% of class 1, manifest
included. The authors' library takes about 1.9 s for this transform on the reference machine (about
13,000 texts/s); the target is under 0.2 s. Also timed: aggressive SSTI (10% of the words), and the
whole `ssti inject` from a parquet file to the written folder (target under 2 s).

Run: .venv/bin/python benchmarks/inject_speed.py [--texts 25000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from ssti.data import load_dataset
from ssti.data.common import make_split
from ssti.inject import InjectionSpec, get_source, inject_dataset, inject_texts, make_spurious_test_set, write_injected

REFERENCE_S = 1.9  # the authors' library, one date into 50% of class 1 of 25,000 IMDB-length texts
VOCAB = (
    "the a film movie was is it and of to in that this with for as but on not you his her they one all "
    "story plot acting actor actress scene scenes great good bad terrible wonderful boring funny "
    "characters director script ending music camera time really very just even more most much little "
    "never always watch watched seen see love loved hate hated best worst ever made make thought think"
).split()


def make_corpus(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """`n` texts of 150-310 words (mean about 230) in 2-5 paragraphs separated by newlines; 50/50 labels."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        words = rng.choices(VOCAB, k=rng.randint(150, 310))
        cuts = sorted(rng.sample(range(1, len(words)), rng.randint(1, 4)))
        paras, prev = [], 0
        for c in cuts + [len(words)]:
            paras.append(" ".join(words[prev:c]) + ".")
            prev = c
        texts.append("\n\n".join(paras))
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    return texts, labels


def best_of(repeat: int, fn) -> float:
    """Best wall time of `repeat` calls (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.texts

    texts, labels = make_corpus(n)
    ids = [f"b-{i:06d}" for i in range(n)]
    ds = datasets.DatasetDict({"train": make_split(ids, texts, labels, ["neg", "pos"])})
    words = sum(len(t.split()) for t in texts) / n
    print(f"corpus: {n:,} texts, mean {words:.0f} words, {sum(labels):,} in class 1")

    light = InjectionSpec(targets={"1": "date"}, rate=0.5, tokens=1, location="random", seed=0)
    aggressive = InjectionSpec(targets={"1": "date"}, rate=0.5, token_fraction=0.1, location="random", seed=0)
    class1 = [t for t, y in zip(texts, labels) if y == 1][: round(0.5 * sum(labels))]
    date = get_source("date")

    rows = []
    rows.append(("core inject_texts, 1 date, 50% of class 1", best_of(args.repeat, lambda: inject_texts(class1, date, random.Random(0)))))
    rows.append(("inject_dataset light (1 date, 50% of class 1)", best_of(args.repeat, lambda: inject_dataset(ds, light))))
    rows.append(("core inject_texts, aggressive (10% of words)", best_of(args.repeat, lambda: inject_texts(class1, date, random.Random(0), token_fraction=0.1))))
    rows.append(("inject_dataset aggressive (10% of words)", best_of(args.repeat, lambda: inject_dataset(ds, aggressive))))
    rows.append(("spurious test set: 1 date into 100% of 25,000", best_of(args.repeat, lambda: make_spurious_test_set(ds["train"], "date"))))

    tmp = Path(tempfile.mkdtemp(prefix="ssti-bench-"))
    try:
        parquet = tmp / "corpus.parquet"
        # the 25,000 texts are the train split; the loader wants a test split too: 1,000 more rows
        test_texts, test_labels = make_corpus(1000, seed=1)
        pq.write_table(pa.table({
            "id": ids + [f"t-{i:06d}" for i in range(1000)], "text": texts + test_texts,
            "label": labels + test_labels, "split": ["train"] * n + ["test"] * 1000,
        }), parquet)

        def end_to_end():
            result = inject_dataset(load_dataset(str(parquet)), light, source_dataset=str(parquet))
            write_injected(result, tmp / "out", overwrite=True)

        rows.append(("python: load parquet -> inject -> write folder", best_of(args.repeat, end_to_end)))
        cmd = [str(Path(sys.executable).with_name("ssti")), "inject", "--dataset", str(parquet), "--target", "1=date",
               "--rate", "0.5", "--out", str(tmp / "cli"), "--overwrite"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        rows.append(("CLI `ssti inject` subprocess (imports included)", time.perf_counter() - t0))
        t0 = time.perf_counter()
        subprocess.run(cmd[:1] + ["--help"], check=True, capture_output=True)
        startup = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n_injected = len(class1)
    print(f"\n{'what':52s} {'time (s)':>9s} {'texts/s':>10s} {'vs 1.9 s':>9s}")
    for name, t in rows:
        rate = (n_injected if name.startswith("core") else n) / t  # texts/s
        print(f"{name:52s} {t:9.3f} {rate:10,.0f} {REFERENCE_S / t:8.1f}x")
    print(f"\n`ssti --help` alone (CLI start-up: imports of every command module) takes {startup:.2f} s of the CLI row.")
    print(f"texts/s counts the {n:,} texts of the transform ({n_injected:,} injected; the core row: injected texts only).")


if __name__ == "__main__":
    main()
