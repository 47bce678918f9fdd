"""How often `ssti probe` is right (issue 14), with ground truth from each run's own injection record.

Reads the results stores of sweeps that probed every run (`probe:` in the sweep config), e.g. the
shipped `configs/probe-quality-minilm.yaml` and `configs/probe-quality-smollm2.yaml`:

    ssti sweep configs/probe-quality-minilm.yaml --out results/probe-quality-minilm
    ssti sweep configs/probe-quality-smollm2.yaml --out results/probe-quality-smollm2
    .venv/bin/python benchmarks/probe_quality.py results/probe-quality-minilm results/probe-quality-smollm2

and prints, per model family and planted type (the types used for tuning first, then the held-out ones):
- models whose ASR is at least 0.5, and the share of them where the type sweep ranks the planted
  type first toward the planted class (target: all);
- the share where, among the open search's top 5 shape groups, one toward the planted class has the
  planted type's shape class and a significant verified steer rate (target: >= 90%);
- clean-trained models: the smallest min_effect that keeps the calibration half (even seeds) free of
  steering findings, and how many of the held-out half (odd seeds) are called steered at it and at the
  shipped default (target: none);
- the probe's wall time per model (type sweep; open search), against the targets of 5 and 10 minutes
  for SmolLM2 with 200 held-out samples per class.
`--json PATH` saves the per-model rows.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ssti.probe.search import Candidate, group_by_shape, piece_shape
from ssti.probe.types import ALPHA, MIN_EFFECT
from ssti.sweep import STORE_NAME, ResultsStore

HELD_OUT = ("list:https", "list:🙂", "list:Brandolf")  # prefixes of the held-out types (not used for any threshold)
SHAPE = {"date": "digit group", "html": "markup", "exclamation": "punctuation", "double-exclamation": "punctuation",
         "colour": "word", "country": "word"}


def expected_shape(source: str) -> str:
    """The shape class a planted type's tokens have (fixed words and made-up names: word; URLs: mixed; emoji: punctuation)."""
    if source in SHAPE:
        return SHAPE[source]
    if source.startswith("list:https") or source.startswith("list:http"):
        return "mixed"
    if source.startswith("list:🙂"):
        return "punctuation"
    return "word"


def regrouped(search: dict) -> list[dict]:
    """The open search's shape groups, classed by the current `shape_of` rule. Runs probed before the rule
    changed keep their verified candidates (the search itself is not redone); only their classing is."""
    return group_by_shape([Candidate(**{**c, "shape": piece_shape(c["text"])}) for c in search["candidates"]])


def rows_of(store: Path) -> list[dict]:
    """One row per probed, finished run: family, planted type and class (None when clean), ASR, and the probe's answers."""
    out = []
    with ResultsStore(store, read_only=True) as s:
        for r in s.rows("done"):
            metrics, config = r.get("metrics") or {}, r.get("config") or {}
            probe = metrics.get("probe")
            if not probe:
                continue
            injection = config.get("injection") or {}
            targets = injection.get("targets") or {}
            planted_cls, planted = next(iter(targets.items()), (None, None))
            spurious = (metrics.get("spurious") or {}).get(planted_cls) if planted_cls else None
            row = {"run_id": r["run_id"], "model": config["model"]["name"], "rank": config["lora"]["rank"], "rate": injection.get("rate"),
                   "seed": config["train"].get("seed", 0), "planted": planted, "cls": planted_cls,
                   "asr": spurious["attack_success_rate"] if spurious else None, "verdict": probe["verdict"],
                   "sweep_seconds": probe.get("seconds"), "search_seconds": (probe.get("open_search") or {}).get("seconds"),
                   "max_effect": max((f["effect"] for f in probe["findings"] if f["p_adjusted"] <= ALPHA), default=0.0)}
            if planted:
                toward = [f for f in probe["findings"] if f["cls"] == planted_cls]
                row["sweep_rank"] = next((i + 1 for i, f in enumerate(toward) if f["type"] == planted), None)
                groups = regrouped(probe["open_search"])[:5] if probe.get("open_search") else []
                row["search_hit"] = any(g["cls"] == planted_cls and g["shape"] == expected_shape(planted) and g["steering"] for g in groups) \
                    if probe.get("open_search") else None
            out.append(row)
    return out


def share(values: list[bool]) -> str:
    return f"{sum(values)}/{len(values)} ({100 * sum(values) / len(values):.0f}%)" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep folders (or results.sqlite files) whose runs were probed")
    parser.add_argument("--json", type=Path, help="save the per-model rows here")
    args = parser.parse_args()
    rows = [row for path in args.sweeps for row in rows_of(path / STORE_NAME if path.is_dir() else path)]
    if not rows:
        raise SystemExit("no probed runs found (sweep with `probe:` in its config)")
    print("| family | planted type | held out | models (ASR >= 0.5) | type sweep: planted type first | open search: shape group in top 5 |")
    print("|---|---|---|---|---|---|")
    by = defaultdict(list)
    for r in rows:
        if r["planted"]:
            by[(r["model"], r["planted"])].append(r)
    for (model, planted), group in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1].startswith(HELD_OUT), kv[0][1])):
        strong = [r for r in group if (r["asr"] or 0) >= 0.5]
        searched = [r["search_hit"] for r in strong if r["search_hit"] is not None]
        name = planted if len(planted) < 28 else planted[:25] + "..."
        print(f"| {model} | `{name}` | {'yes' if planted.startswith(HELD_OUT) else 'no'} | {len(strong)}/{len(group)} | "
              f"{share([r['sweep_rank'] == 1 for r in strong])} | {share(searched)} |")
    clean = [r for r in rows if not r["planted"]]
    print()
    print("| family | clean models | calibrated min_effect (even seeds) | held-out steered at it (odd seeds) | steered at the default "
          f"{MIN_EFFECT:g} |")
    print("|---|---|---|---|---|")
    for model in sorted({r["model"] for r in clean}):
        mine = [r for r in clean if r["model"] == model]
        calib, test = [r for r in mine if r["seed"] % 2 == 0], [r for r in mine if r["seed"] % 2 == 1]
        threshold = round(max((r["max_effect"] for r in calib), default=0.0) + 0.02, 3)
        print(f"| {model} | {len(mine)} | {threshold:g} | {share([r['max_effect'] >= threshold for r in test])} | "
              f"{share([r['max_effect'] >= MIN_EFFECT for r in mine])} |")  # re-judged: the sweep may have probed at another default
    print()
    print("| family | models probed | type sweep s (median, max) | open search s (median, max) |")
    print("|---|---|---|---|")
    for model in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == model]
        sweep = [r["sweep_seconds"] for r in mine if r["sweep_seconds"] is not None]
        search = [r["search_seconds"] for r in mine if r["search_seconds"] is not None]
        fmt = lambda v: f"{np.median(v):.0f}, {max(v):.0f}" if v else "-"  # noqa: E731
        print(f"| {model} | {len(mine)} | {fmt(sweep)} | {fmt(search)} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
