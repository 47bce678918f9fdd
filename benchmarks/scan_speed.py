"""Speed of `ssti scan`: 25,000 generated IMDB-length documents (~230 words), every feature level.

The corpus is generated with a seeded numpy Generator: Zipf-distributed words from a 30,000-word
synthetic vocabulary, capitalised sentence starts, punctuation, some numbers and dates. The tokenizer
(sub-word level) is loaded before the clock starts and its load time is printed separately.

    .venv/bin/python benchmarks/scan_speed.py
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ssti.data.common import make_split
from ssti.scan import scan_dataset
from ssti.scan.scanner import ALL_LEVELS, DEFAULT_TOKENIZER, resolve_tokenizer


def generate(n: int, words: int, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """n texts of about `words` words each and balanced labels."""
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    vocab = ["".join(rng.choice(letters, size=int(rng.integers(2, 10)))) for _ in range(30000)]
    ranks = np.minimum(rng.zipf(1.3, size=n * words), len(vocab)) - 1
    lengths = rng.integers(int(words * 0.6), int(words * 1.4), size=n)
    texts, pos = [], 0
    for i in range(n):
        ws = [vocab[r] for r in ranks[pos:pos + lengths[i]]]
        pos = (pos + lengths[i]) % (len(ranks) - 2 * words)
        for j in range(0, len(ws), 17):
            ws[j] = ws[j].capitalize()
            if j:
                ws[j - 1] += "."
        if i % 7 == 0:
            ws.insert(len(ws) // 2, str(int(rng.integers(1, 2000))))
        texts.append(" ".join(ws) + ".")
    return texts, [i % 2 for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=25000)
    ap.add_argument("--words", type=int, default=230)
    ap.add_argument("--levels", default=",".join(ALL_LEVELS), help="comma-separated feature levels (default: all)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    texts, labels = generate(args.docs, args.words, rng)
    split = make_split([f"d{i}" for i in range(len(texts))], texts, labels, ["neg", "pos"])
    t = time.perf_counter()
    notes: list[str] = []
    tok, _ = resolve_tokenizer(DEFAULT_TOKENIZER, notes)
    load_s = time.perf_counter() - t
    rep = scan_dataset(split, levels=args.levels.split(","), tokenizer=tok)
    print("| docs | words/doc | levels | features | scan s | tokens/s | tokenizer load s |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {rep.n_docs:,} | {rep.n_tokens / rep.n_docs:.0f} | {', '.join(rep.levels)} | {rep.n_features:,} | {rep.seconds:.1f} | "
          f"{rep.tokens_per_s:,.0f} | {load_s:.1f} |")
    print(f"verdict on random text: {rep.verdict}; notes: {rep.notes + notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
