"""Detection quality of `ssti scan` against the injection manifest (issue 5).

For each embedded dataset (rotten-tomatoes, bbc-news), each built-in token type and each rate of one
class (0.5%, 1%, 5%, 25% of class 1; one token per sample, random location, seed 0) it injects with
the engine, scans the train split with the default settings and scores:
- rank1: the top-ranked feature is skewed to the target class and carries >= 90% of the injected rows;
- verdict, and precision/recall of the flagged rows against the manifest.
It also scans both clean datasets (false alarms). Prints markdown tables; `--json PATH` saves rows.

    .venv/bin/python benchmarks/scan_quality.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ssti.data import load_dataset
from ssti.inject import InjectionSpec, inject_dataset
from ssti.scan import scan_dataset
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
    args = ap.parse_args(argv)
    notes: list[str] = []
    tok, _ = resolve_tokenizer(DEFAULT_TOKENIZER, notes)
    rows, t0 = [], time.perf_counter()
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        classes = ds["train"].features["label"].names
        rep = scan_dataset(ds, tokenizer=tok)
        rows.append({"dataset": name, "source": "(clean)", "rate": 0.0, "n_injected": 0, "verdict": rep.verdict,
                     "top": f"{rep.features[0].level}:{rep.features[0].feature}", "top_p": rep.features[0].p_value,
                     "rank1": None, "precision": None, "recall": None, "seconds": round(rep.seconds, 2)})
        print(f"{name} clean: {rep.verdict} (top {rows[-1]['top']}, p={rep.features[0].p_value:.3g})", file=sys.stderr)
        for src in args.sources.split(","):
            for rate in RATES:
                res = inject_dataset(ds, InjectionSpec(targets={str(TARGET): src}, rate=rate, tokens=1, location="random", seed=0, split="train"))
                injected = {m["id"] for m in res.manifest}
                rep = scan_dataset(res.dataset, tokenizer=tok)
                row = {"dataset": name, "source": src, "rate": rate, "n_injected": len(injected), **score(rep, injected, classes[TARGET])}
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    print(f"\n{len(rows)} scans in {time.perf_counter() - t0:.0f} s; tokenizer {DEFAULT_TOKENIZER if tok else 'none (word features)'} {notes}\n")
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
