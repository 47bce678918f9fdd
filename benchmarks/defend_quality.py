"""What each dataset defence removes and damages, measured against the injection manifest (issue 15).

Part `scan` (model-free, the default): for rotten-tomatoes and bbc-news, the 9 built-in token types plus a
planted 4-word phrase and a frequent ordinary word, at 1%, 5% and 25% of class 1 (one token per sample,
random location, seed 0), it injects, runs the `scan-strip` defence with its defaults, and prints per case:
whether the scanner flagged the planted type, row recall and flagged-row precision of the rows the
defence edited (against the planted rows), retention of the planted insertions, rows still poisoned,
clean rows changed (collateral) with their chrF, and seconds per 1,000 rows. `scan-drop` runs too with
`--drop`. Targets: retention <= 1% for every flagged case, collateral <= 0.5% of clean rows; on
rotten-tomatoes at 1% (59 rows) every type and the phrase flagged with row recall >= 0.99 and
precision >= 0.95.

Part `models`: `onion` and `paraphrase` (embedded SmolLM2-135M) on `--rows` planted + `--rows` clean rows
of rotten-tomatoes injected at 5% (types date, html, country, exclamation): retention, collateral and
rows/s beside the paper's v2 paraphrasing figures. `grammar` needs a hub model (none is embedded): pass
`--grammar-model NAME` where one is available.

    .venv/bin/python benchmarks/defend_quality.py                          # part scan, about 15 minutes on 2 cores
    .venv/bin/python benchmarks/defend_quality.py --part models --rows 40  # about 15 minutes
    .venv/bin/python benchmarks/defend_quality.py --datasets rotten-tomatoes --rates 0.01 \
        --sources 'country;colour;fixed:cf' --context smollm2-135m          # the types that need the context check
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import datasets

from ssti.config import DefenceSpec
from ssti.data import load_dataset
from ssti.data.common import column
from ssti.defend import defend_dataset
from ssti.inject import InjectionSpec, inject_dataset

SOURCES = ["date", "country", "html", "html-pair", "html-single", "colour", "exclamation", "double-exclamation", "fixed:cf",
           "fixed:I watch this 3D movie", "fixed:just"]
RATES = [0.01, 0.05, 0.25]
DATASETS = ["rotten-tomatoes", "bbc-news"]
TARGET = 1
MODEL_SOURCES = ["date", "html", "country", "exclamation"]
PAPER = {"html": "3-7%", "date": "11-12%", "country": "19-21%", "exclamation": "! / !! attack broken (1.6-4.4% manipulation)"}


def case(ds, src: str, rate: float, defence: str, context: str | None = None) -> dict:
    res = inject_dataset(ds, InjectionSpec(targets={str(TARGET): src}, rate=rate, tokens=1, location="random", seed=0, split="train"))
    planted = {m["id"] for m in res.manifest}
    out = defend_dataset(res.dataset, DefenceSpec(name=defence, context=context), manifest=res.manifest)
    m = out.measurement
    edited = {e["id"] for e in out.edits}
    tp = len(edited & planted)
    flagged = [f for f in out.record["flagged_features"] if f["class"] == ds["train"].features["label"].names[TARGET]]
    return {"source": src, "rate": rate, "planted_rows": len(planted), "flagged": bool(flagged),
            "flagged_features": [f"{f['level']}:{f['feature']}" for f in flagged][:3],
            "recall": tp / len(planted) if planted else None, "precision": tp / len(edited) if edited else None,
            "retention": m["retention"][-1]["retention"], "raw_retention": m["retention"][-1]["raw"],
            "rows_still_poisoned": m["rows_still_poisoned"], "collateral": m["collateral"]["changed_share"],
            "collateral_rows": m["collateral"]["changed"], "chrf": m["collateral"]["chrf"], "s_per_1k": m["seconds_per_1k_rows"],
            "rescan": out.record["rescan"]["verdict"], "notes": out.notes}


def part_scan(args) -> list[dict]:
    rows = []
    for name in args.datasets.split(","):
        ds = load_dataset(name)
        for defence in ["scan-strip"] + (["scan-drop"] if args.drop else []):
            for src in args.sources.split(";"):
                for rate in [float(r) for r in args.rates.split(",")]:
                    row = {"dataset": name, "defence": defence, "context": args.context, **case(ds, src, rate, defence, args.context)}
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    f = lambda v, pct=False: "-" if v is None else (f"{v:.1%}" if pct else f"{v:.3f}")
    print("| dataset | defence | token type | rate | planted rows | flagged | row recall | precision | retention | rows still poisoned "
          "| clean rows changed | chrF clean | s / 1k rows | rescan |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['defence']} | `{r['source']}` | {r['rate']:.0%} | {r['planted_rows']} | {'yes' if r['flagged'] else 'no'} "
              f"| {f(r['recall'])} | {f(r['precision'])} | {f(r['retention'], True)} | {f(r['rows_still_poisoned'], True)} "
              f"| {f(r['collateral'], True)} ({r['collateral_rows']}) | {r['chrf']:.2f} | {r['s_per_1k']:.1f} | {r['rescan']} |")
    flagged = [r for r in rows if r["flagged"] and r["defence"] == "scan-strip"]
    print(f"\nscan-strip, flagged cases: {len(flagged)}/{sum(r['defence'] == 'scan-strip' for r in rows)}; retention <= 1%: "
          f"{sum(r['retention'] <= 0.01 for r in flagged)}/{len(flagged)}; collateral <= 0.5%: "
          f"{sum(r['collateral'] <= 0.005 for r in flagged)}/{len(flagged)}")
    rt1 = [r for r in rows if r["dataset"] == "rotten-tomatoes" and r["rate"] == 0.01 and r["defence"] == "scan-strip"]
    if rt1:
        print(f"rotten-tomatoes at 1%: flagged {sum(r['flagged'] for r in rt1)}/{len(rt1)}; row recall >= 0.99: "
              f"{sum((r['recall'] or 0) >= 0.99 for r in rt1)}/{len(rt1)}; precision >= 0.95: {sum((r['precision'] or 0) >= 0.95 for r in rt1)}/{len(rt1)}")
    return rows


def part_models(args) -> list[dict]:
    ds = load_dataset("rotten-tomatoes")
    defences = [("onion", {}), ("paraphrase", {"batch_size": 8})] + ([("grammar", {"model": args.grammar_model})] if args.grammar_model else [])
    rows = []
    for src in MODEL_SOURCES:
        res = inject_dataset(ds, InjectionSpec(targets={str(TARGET): src}, rate=0.05, tokens=1, location="random", seed=0, split="train"))
        planted = [m["id"] for m in res.manifest][:args.rows]
        planted_set = set(planted)
        ids = column(res.dataset["train"], "id")
        clean = [i for i, r in enumerate(ids) if r not in planted_set][: 5 * args.rows: 5]
        pick = sorted([i for i, r in enumerate(ids) if r in planted_set] + clean)
        sub = datasets.DatasetDict({"train": res.dataset["train"].select(pick)})
        for name, options in defences:
            t = time.perf_counter()
            out = defend_dataset(sub, DefenceSpec(name=name, **options), manifest=res.manifest, resume=False)
            m = out.measurement
            rows.append({"source": src, "defence": name, "rows": len(pick), "retention": m["retention"][-1]["retention"],
                         "raw": m["retention"][-1]["raw"], "rows_still_poisoned": m["rows_still_poisoned"],
                         "collateral": m["collateral"]["changed_share"], "chrf": m["collateral"]["chrf"],
                         "rows_per_s": len(pick) / (time.perf_counter() - t), "paper": PAPER.get(src, "")})
            print(json.dumps(rows[-1]), file=sys.stderr)
    print("| defence | token type | rows | retention | rows still poisoned | clean rows changed | chrF clean | rows/s | paper v2 (paraphrase) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['defence']} | `{r['source']}` | {r['rows']} | {r['retention']:.1%} | {r['rows_still_poisoned']:.1%} | "
              f"{r['collateral']:.1%} | {r['chrf']:.1f} | {r['rows_per_s']:.2f} | {r['paper']} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["scan", "models"], default="scan")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--sources", default=";".join(SOURCES), help="';'-separated token sources")
    ap.add_argument("--drop", action="store_true", help="also measure scan-drop")
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="comma-separated shares of class 1 to inject")
    ap.add_argument("--context", help="part scan: run the scanner's context check with this causal LM (slow: minutes per case)")
    ap.add_argument("--rows", type=int, default=40, help="part models: planted rows (and as many clean rows) per type")
    ap.add_argument("--grammar-model", help="part models: a grammar-correction model to measure too")
    ap.add_argument("--json", help="save every row as JSON here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = part_scan(args) if args.part == "scan" else part_models(args)
    print(f"\n{len(rows)} cases in {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
