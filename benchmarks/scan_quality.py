"""Detection quality of `ssti scan` against the injection manifest (issue 5).

For each embedded dataset (rotten-tomatoes, bbc-news), each built-in token type and each rate of one
class (0.5%, 1%, 5%, 25% of class 1; one token per sample, random location, seed 0) it injects with
the engine, scans the train split with the default settings and scores:
- rank1: the top-ranked feature is skewed to the target class and carries >= 90% of the injected rows;
- verdict, and precision/recall of the flagged rows against the manifest.
It prints the clean scans' detection limits too: the fewest rows of class 1 a feature absent from the
other classes must be in to be flagged, per level (a planted feature below them cannot be flagged).
It also scans both clean datasets (false alarms) and, with `--clean-subsamples N`, N random 30% and N
random 60% subsets of each clean training split (seeds 0..N-1), a check that the calibrated rules do
not hinge on the exact corpus. Prints markdown tables; `--json PATH` saves rows.

    .venv/bin/python benchmarks/scan_quality.py                        # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/scan_quality.py --clean-subsamples 10  # plus 40 clean scans, about 1 minute
    .venv/bin/python benchmarks/scan_quality.py --clean-subsamples 10 --context smollm2-135m  # with the context check, about 20 minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ssti.data import load_dataset
from ssti.inject import InjectionSpec, inject_dataset
from ssti.scan import scan_dataset
from ssti.scan.context import LMScorer
from ssti.scan.scanner import DEFAULT_TOKENIZER, resolve_tokenizer

SOURCES = ["date", "country", "html", "html-pair", "html-single", "colour", "exclamation", "double-exclamation", "fixed:cf"]
RATES = [0.005, 0.01, 0.05, 0.25]
DATASETS = ["rotten-tomatoes", "bbc-news"]
TARGET = 1


def score(report, injected: set[str], target_class: str) -> dict:
    """Rank-1 hit, verdict and flagged-row precision/recall of one scan against the injected ids."""
    top = report.features[0]
    top_rows = set(top.rows)
    rank1 = top.cls == target_class and len(top_rows & injected) >= 0.9 * len(injected)
    flagged = set(report.flagged_rows)
    tp = len(flagged & injected)
    return {
        "rank1": rank1, "top": f"{top.level}:{top.feature}", "verdict": report.verdict,
        "precision": tp / len(flagged) if flagged else None, "recall": tp / len(injected) if injected else None,
        "top_p": top.p_value, "seconds": round(report.seconds, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="save every row as JSON here")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--clean-subsamples", type=int, default=0, help="scan N random 30%% and 60%% subsets of each clean split")
    ap.add_argument("--context", help="run the context check with this causal LM (one scorer, its cache shared by every scan)")
    args = ap.parse_args(argv)
    notes: list[str] = []
    tok, _ = resolve_tokenizer(DEFAULT_TOKENIZER, notes)
    context = LMScorer(args.context) if args.context else None
    rows, t0 = [], time.perf_counter()
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        classes = ds["train"].features["label"].names
        rep = scan_dataset(ds, tokenizer=tok, context=context)
        rows.append({"dataset": name, "source": "(clean)", "rate": 0.0, "n_injected": 0, "verdict": rep.verdict,
                     "top": f"{rep.features[0].level}:{rep.features[0].feature}", "top_p": rep.features[0].p_value,
                     "rank1": None, "precision": None, "recall": None, "seconds": round(rep.seconds, 2),
                     "class_size": rep.class_sizes[TARGET],
                     "detection_limits": {lv: v[classes[TARGET]] for lv, v in rep.detection_limits.items()}})
        print(f"{name} clean: {rep.verdict} (top {rows[-1]['top']}, p={rep.features[0].p_value:.3g})", file=sys.stderr)
        for src in args.sources.split(","):
            for rate in RATES:
                res = inject_dataset(ds, InjectionSpec(targets={str(TARGET): src}, rate=rate, tokens=1, location="random", seed=0, split="train"))
                injected = {m["id"] for m in res.manifest}
                rep = scan_dataset(res.dataset, tokenizer=tok, context=context)
                row = {"dataset": name, "source": src, "rate": rate, "n_injected": len(injected), **score(rep, injected, classes[TARGET])}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(f"\n{len(rows)} scans in {time.perf_counter() - t0:.0f} s; tokenizer {DEFAULT_TOKENIZER if tok else 'none (word features)'} {notes}; "
          f"context check: {args.context or 'off'}\n")
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    print("| dataset | token type | rate | rows | rank 1 | verdict | flagged precision | flagged recall | top feature |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['source']} | {r['rate']:.1%} | {r['n_injected']} | {fmt(r['rank1'])} | {r['verdict']} | "
              f"{fmt(r['precision'])} | {fmt(r['recall'])} | `{r['top']}` |")
    inj = [r for r in rows if r["rate"] > 0]
    print("\n| dataset | rate | rank 1 | suspicious verdict | mean flagged recall |")
    print("|---|---|---|---|---|")
    for name in args.datasets.split(","):
        for rate in RATES:
            rs = [r for r in inj if r["dataset"] == name and r["rate"] == rate]
            rec = [r["recall"] or 0.0 for r in rs]
            print(f"| {name} | {rate:.1%} | {sum(r['rank1'] for r in rs)}/{len(rs)} | {sum(r['verdict'] == 'suspicious' for r in rs)}/{len(rs)} | {sum(rec) / len(rec):.3f} |")
    clean = [r for r in rows if r["source"] == "(clean)"]
    levels = list(clean[0]["detection_limits"])
    print(f"\nDetection limit of the clean scans: rows of class {TARGET} a planted feature must be in, with none outside it, to be flagged")
    print("| dataset | class size | " + " | ".join(levels) + " |")
    print("|---|---|" + "---|" * len(levels))
    for r in clean:
        print(f"| {r['dataset']} | {r['class_size']} | " + " | ".join(str(r["detection_limits"][lv]) for lv in levels) + " |")
    if args.clean_subsamples:
        sub = clean_subsamples(args.datasets.split(","), args.clean_subsamples, tok, context)
        rows.extend(sub)
        print("\n| clean dataset | subsets scanned | suspicious | smallest top-feature p | features flagged |")
        print("|---|---|---|---|---|")
        for name in args.datasets.split(","):
            rs = [r for r in sub if r["dataset"] == name]
            flagged = sorted({t for r in rs for t in r["flagged"]})
            print(f"| {name} | {len(rs)} | {sum(r['verdict'] == 'suspicious' for r in rs)} | {min(r['top_p'] for r in rs):.3g} | "
                  f"{', '.join(flagged) or '-'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def clean_subsamples(names: list[str], n: int, tok, context=None) -> list[dict]:
    """Scan n random 30% and n random 60% subsets (seeded) of each clean training split: false alarms."""
    out = []
    for name in names:
        train = load_dataset(name)["train"]
        for seed in range(n):
            rng = np.random.default_rng(seed)
            for frac in (0.3, 0.6):
                idx = sorted(rng.choice(len(train), size=int(frac * len(train)), replace=False).tolist())
                rep = scan_dataset(train.select(idx), tokenizer=tok, context=context)
                out.append({"dataset": name, "source": "(clean subset)", "rate": 0.0, "seed": seed, "fraction": frac,
                            "verdict": rep.verdict, "top": f"{rep.features[0].level}:{rep.features[0].feature}",
                            "top_p": rep.features[0].p_value, "flagged": [f"{f.level}:{f.feature}" for f in rep.flagged]})
                print(json.dumps(out[-1]), file=sys.stderr)
    return out


if __name__ == "__main__":
    sys.exit(main())
