"""Costs that must grow linearly: `ssti scan --remove drop|strip` in the number of flagged rows, and
`ssti inject --tokens N` in the number of insertions (time and peak Python memory per unit, side by side).

A planted word in half of class 1 of a synthetic corpus is scanned once (word level only); then the
cleaning is timed at 50k, 100k and 200k rows. Injection is timed at 10, 100 and 1,000 tokens per row on
1,000 rows. Flat per-unit columns mean linear cost.

    .venv/bin/python benchmarks/cost_scaling.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc

import datasets

from ssti.data.common import make_split
from ssti.inject import InjectionSpec, inject_dataset
from ssti.defend.scan_guided import clean_split
from ssti.scan.scanner import scan_dataset


def corpus(n: int, seed: int = 0) -> datasets.DatasetDict:
    """n short two-class texts; 'zqx' planted in half of class 1 (ids r0..)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        ws = rng.choices(words, k=12)
        if y == 1 and i % 4 == 1:
            ws.insert(rng.randrange(len(ws) + 1), "zqx")
        texts.append(" ".join(ws))
        labels.append(y)
    return datasets.DatasetDict({"train": make_split([f"r{i}" for i in range(n)], texts, labels, ["a", "b"])})


def timed(fn):
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200000)
    args = ap.parse_args(argv)
    print("| cleaning | rows | flagged rows | seconds | µs per flagged row |")
    print("|---|---|---|---|---|")
    for n in (args.rows // 4, args.rows // 2, args.rows):
        data = corpus(n)
        report = scan_dataset(data, levels=["word"], tokenizer=None)
        for mode in ("drop", "strip"):
            _, seconds, _ = timed(lambda: clean_split(data["train"], report, mode, data["train"].features["label"].names))
            flagged = len(report.flagged_rows)
            print(f"| {mode} | {n:,} | {flagged:,} | {seconds:.2f} | {1e6 * seconds / max(flagged, 1):.1f} |")
    print()
    print("| inject --tokens | rows | insertions | seconds | µs per insertion | peak MB | bytes per insertion |")
    print("|---|---|---|---|---|---|---|")
    data = corpus(2000)
    for tokens in (10, 100, 1000):
        spec = InjectionSpec(targets={"1": "date"}, tokens=tokens, seed=0)
        result, seconds, peak = timed(lambda: inject_dataset(data, spec))
        n = sum(len(r["insertions"]) for r in result.manifest)
        print(f"| {tokens:,} | {len(result.manifest):,} | {n:,} | {seconds:.2f} | {1e6 * seconds / n:.2f} | {peak / 1e6:.0f} | {peak / n:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
