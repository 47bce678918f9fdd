"""The paper's findings as tests stated before the data: each a statistic, an interval, and a verdict.

Every interval resamples both sources of noise at once (a two-level bootstrap, `BOOT` draws from a
seeded `numpy.random.Generator`): the runs of each setting (seeds, with replacement) and the test items
(with replacement; all runs of a comparison share one draw, because they were evaluated on the same
items). Per finding (PAPER.md section 5), per model and dataset:

- F1, one token is enough: light SSTI (one token per sample). Statistic: the mean ASR lift (ASR
  minus the share of non-target samples the model already calls the target without a token) over the
  LoRA ranks, per proportion injected. Reproduced when its interval lies above `F1_STEERS` (most
  other-class samples steered); not reproduced when below `F1_FAILS`; else inconclusive.
- F2, light SSTI: reliance grows with LoRA rank. Statistic: the least-squares slope of mean ASR on
  log2(rank) over the LoRA ranks (full fine-tuning excluded), per proportion. Reproduced when its
  interval lies above 0; not reproduced when it lies below `FLAT` (flat or falling); else
  inconclusive. ASR at the ceiling (>= `CEILING`) or floor at every rank cannot show a trend: inconclusive.
  So is a token that steers nothing: when the mean ASR lift (as in F1) is at most `NO_LIFT` at every
  rank, ASR is the no-token rate, and its trend says how the model errs without the token, not how it
  relies on it (added after the SmolLM2 BBC News grid, where ASR fell 0.039 -> 0.009 with rank on lifts
  of 0.003-0.009, and the rule above alone called finding 3 reproduced).
- F3, aggressive SSTI: larger ranks are more robust. The same slope for aggressive SSTI; reproduced
  when its interval lies below 0; not reproduced when above -`FLAT`; else inconclusive (same ceiling rule).
- Figure 1, degradation grows with the proportion injected (rank 1, light SSTI). Statistic: the slope
  of mean accuracy degradation on the proportion (0 = trained without SSTI). Reproduced when its
  interval lies above 0; not reproduced when below `FLAT`; else inconclusive.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ssti.report.data import group_by

BOOT = 2000
LEVEL = 0.95
F1_STEERS, F1_FAILS = 0.5, 0.1
FLAT = 0.02  # per doubling of the rank (F2/F3: 0.12 of ASR from rank 1 to 64) or per unit of proportion (Figure 1): a smaller slope is no trend
CEILING = 0.98
NO_LIFT = 0.02  # mean ASR lift at or below this at every rank: the token steers nothing, so an ASR trend is the no-token rate's
MAX_LOST = 0.05  # a setting whose test-time tokens were cut off by max_length more often than this cannot be judged


def _items(rec: dict[str, Any]) -> dict[str, np.ndarray] | None:
    raw = rec.get("items_json")
    if not raw:
        return None
    items = json.loads(raw) if isinstance(raw, str) else raw
    if "spurious" not in items or rec.get("target_class") is None:
        return None
    return {k: np.asarray(v) for k, v in items.items()}


def _per_item(recs: list[dict[str, Any]], metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(numerators [runs, items], denominators [items]) of `metric` per run and item, or None when the runs
    were not evaluated on one shared item list.

    asr: hit = non-target item predicted as the target with the token; denominator = non-target items.
    lift: ASR minus the clean target rate, per item (hit with token minus hit without).
    degradation: correct clean minus correct with the token; denominator = every item.
    """
    items = [_items(r) for r in recs]
    if any(i is None for i in items) or len({i["y_true"].tobytes() for i in items}) != 1:
        return None
    y = items[0]["y_true"]
    rows = []
    if metric in ("asr", "lift"):
        targets = {int(r["target_class"]) for r in recs}
        if len(targets) != 1:
            return None
        t = targets.pop()
        other = (y != t).astype(float)
        for i in items:
            hit = (i["spurious"] == t).astype(float)
            if metric == "lift":
                hit = hit - (i["clean"] == t).astype(float)
            rows.append(hit * other)
        return np.asarray(rows), other
    for i in items:
        rows.append((i["clean"] == y).astype(float) - (i["spurious"] == y).astype(float))
    return np.asarray(rows), np.ones(len(y))


def bootstrap_means(groups: list[list[dict[str, Any]]], metric: str, rng: np.random.Generator,
                    boot: int = BOOT) -> tuple[np.ndarray, np.ndarray] | None:
    """Point estimates [groups] and bootstrap draws [boot, groups] of each group's mean `metric` over its runs,
    resampling runs within each group and test items shared by all groups. None without per-item predictions."""
    runs = [r for g in groups for r in g]
    per_item = _per_item(runs, metric)
    if per_item is None or any(not g for g in groups):
        return None
    num, den = per_item
    n = num.shape[1]
    point_run = num.sum(1) / den.sum()
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=boot).astype(float)  # [boot, items]
    per_run = (counts @ num.T) / np.maximum(counts @ den, 1e-12)[:, None]  # [boot, runs]
    points, draws, start = [], [], 0
    for g in groups:
        idx = np.arange(start, start + len(g))
        start += len(g)
        points.append(point_run[idx].mean())
        pick = rng.integers(0, len(g), size=(boot, len(g)))
        draws.append(per_run[np.arange(boot)[:, None], idx[pick]].mean(1))
    return np.asarray(points), np.stack(draws, 1)


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y on x; y may be [..., len(x)] (one slope per row)."""
    xc = x - x.mean()
    return (y - y.mean(-1, keepdims=True)) @ xc / (xc @ xc)


def _interval(draws: np.ndarray) -> tuple[float, float]:
    a = (1 - LEVEL) / 2
    return float(np.quantile(draws, a)), float(np.quantile(draws, 1 - a))


def _verdict(lo: float, hi: float, above: float, below: float) -> str:
    """reproduced when the interval lies above `above`; not reproduced when it lies below `below`."""
    if lo > above:
        return "reproduced"
    if hi < below:
        return "not reproduced"
    return "inconclusive"


def findings(recs: list[dict[str, Any]], rng: np.random.Generator | None = None) -> list[dict[str, Any]]:
    """One row per finding, model, dataset and setting: the statistic, its interval, the verdict and why.

    `recs` are flat run records (`ssti.sweep.results.flatten`) with `mode` set; `rng` seeds the bootstrap
    (default: `numpy.random.default_rng(0)`, so a report is reproducible).
    """
    rng = rng or np.random.default_rng(0)
    rows = []
    scored = [r for r in recs if r.get("attack_success_rate") is not None]
    for (model, dataset), group in group_by(scored, ["model", "dataset"]):
        light = [r for r in group if _light(r)]
        aggressive = [r for r in group if _aggressive(r)]
        for rate, runs in group_by(light, ["rate"]):
            lora = [r for r in runs if r["rank"] != 0]
            rows.append(_f1(model, dataset, rate[0], lora, rng))
            rows.append(_rank_trend("F2: light SSTI, reliance grows with LoRA rank", model, dataset, rate[0], lora, +1, rng))
        for rate, runs in group_by(aggressive, ["rate"]):
            lora = [r for r in runs if r["rank"] != 0]
            rows.append(_rank_trend("F3: aggressive SSTI, larger ranks are more robust", model, dataset, rate[0], lora, -1, rng))
        rows.append(_figure1(model, dataset, group, rng))
    return [r for r in rows if r is not None]


def _cut_off(runs: list[dict[str, Any]]) -> str | None:
    """Why a verdict cannot be given when max_length cut off the test-time tokens of some runs, else None."""
    lost = max((r.get("test_insertions_lost") or 0.0 for r in runs), default=0.0)
    return f"max_length cut off up to {100 * lost:.0f}% of the test-time tokens (raise model.max_length)" if lost > MAX_LOST else None


def _light(rec: dict[str, Any]) -> bool:
    """Light SSTI, by what the run did (one token per injected sample, no defence), whatever its variant is called."""
    return bool(rec.get("injected")) and not rec.get("defence") and rec.get("tokens") == 1 and not rec.get("token_fraction")


def _aggressive(rec: dict[str, Any]) -> bool:
    """Aggressive SSTI: a fraction of the words per injected sample, no defence."""
    return bool(rec.get("injected")) and not rec.get("defence") and bool(rec.get("token_fraction"))


def _row(finding: str, model: str, dataset: str, setting: str, statistic: str, value: float | None, lo: float | None,
         hi: float | None, verdict: str, why: str, runs: int) -> dict[str, Any]:
    return {"finding": finding, "model": model, "dataset": dataset, "setting": setting, "statistic": statistic,
            "value": value, "low": lo, "high": hi, "verdict": verdict, "why": why, "runs": runs}


def _share(rate: float | None) -> str:
    """How much of the target class was injected: a proportion, or a row count (`injection.count`) when it has none."""
    return f"proportion {rate:g}" if rate is not None else "a count of rows"


def _f1(model, dataset, rate, lora, rng) -> dict[str, Any] | None:
    if not lora:
        return None
    est = bootstrap_means([lora], "lift", rng)
    setting = f"light, {_share(rate)}, LoRA rank{'s' if len({r['rank'] for r in lora}) > 1 else ''} {_ranks(lora)}"
    if est is None:
        return _row("F1: one token is enough", model, dataset, setting, "mean ASR lift", None, None, None, "inconclusive",
                    "no per-item predictions recorded (re-evaluate the runs)", len(lora))
    point, draws = est
    lo, hi = _interval(draws[:, 0])
    if _cut_off(lora):
        return _row("F1: one token is enough", model, dataset, setting, "mean ASR lift", float(point[0]), lo, hi, "inconclusive",
                    _cut_off(lora), len(lora))
    verdict = _verdict(lo, hi, F1_STEERS, F1_FAILS)
    why = {"reproduced": f"interval above {F1_STEERS}: one token steers most other-class samples",
           "not reproduced": f"interval below {F1_FAILS}: one token barely steers",
           "inconclusive": f"interval reaches between {F1_FAILS} and {F1_STEERS}"}[verdict]
    return _row("F1: one token is enough", model, dataset, setting, "mean ASR lift", float(point[0]), lo, hi, verdict, why, len(lora))


def _rank_trend(finding, model, dataset, rate, lora, sign, rng) -> dict[str, Any] | None:
    by_rank = dict(group_by(lora, ["rank"]))
    ranks = sorted(k[0] for k in by_rank)
    setting = f"{_share(rate)}, LoRA ranks {', '.join(map(str, ranks))}"
    if len(ranks) < 2:
        return None
    est = bootstrap_means([by_rank[(k,)] for k in ranks], "asr", rng)
    if est is None:
        return _row(finding, model, dataset, setting, "slope of ASR per doubling of rank", None, None, None, "inconclusive",
                    "no per-item predictions recorded (re-evaluate the runs)", len(lora))
    point, draws = est
    x = np.log2(np.asarray(ranks, dtype=float))
    value, (lo, hi) = float(slope(x, point)), _interval(slope(x, draws))
    means = ", ".join(f"r{k}: {m:.3f}" for k, m in zip(ranks, point))
    if _cut_off(lora):
        return _row(finding, model, dataset, setting, "slope of ASR per doubling of rank", value, lo, hi, "inconclusive", _cut_off(lora), len(lora))
    if np.all(point >= CEILING) or np.all(point <= 1 - CEILING):
        return _row(finding, model, dataset, setting, "slope of ASR per doubling of rank", value, lo, hi, "inconclusive",
                    f"ASR at the {'ceiling' if point[0] >= CEILING else 'floor'} at every rank ({means}): no room for a trend", len(lora))
    lift = _mean_lift(ranks, by_rank)
    if lift is not None and np.all(lift <= NO_LIFT):
        lifts = ", ".join(f"r{k}: {m:+.3f}" for k, m in zip(ranks, lift))
        return _row(finding, model, dataset, setting, "slope of ASR per doubling of rank", value, lo, hi, "inconclusive",
                    f"the token steers nothing beyond the no-token rate at any rank (ASR lift {lifts}; ASR {means}): "
                    "a trend of the no-token rate, not of reliance on the token", len(lora))
    if sign > 0:
        verdict = _verdict(lo, hi, 0.0, FLAT)
        why = {"reproduced": "interval above 0", "not reproduced": f"interval below +{FLAT}: flat or falling",
               "inconclusive": "interval spans 0"}[verdict]
    else:
        verdict = "reproduced" if hi < 0 else ("not reproduced" if lo > -FLAT else "inconclusive")
        why = {"reproduced": "interval below 0", "not reproduced": f"interval above -{FLAT}: flat or rising",
               "inconclusive": "interval spans 0"}[verdict]
    return _row(finding, model, dataset, setting, "slope of ASR per doubling of rank", value, lo, hi, verdict, f"{why} ({means})", len(lora))


def _mean_lift(ranks: list[int], by_rank: dict) -> np.ndarray | None:
    """Mean ASR lift per rank [len(ranks)] over each rank's runs (point estimates; no resampling), or None."""
    out = []
    for k in ranks:
        per_item = _per_item(by_rank[(k,)], "lift")
        if per_item is None:
            return None
        num, den = per_item
        out.append(float((num.sum(1) / den.sum()).mean()))
    return np.asarray(out)


def _figure1(model, dataset, group, rng) -> dict[str, Any] | None:
    rank1 = [r for r in group if r["rank"] == 1 and r.get("rate") is not None and (_light(r) or not r["injected"] and not r.get("defence"))]
    by_rate = dict(group_by(rank1, ["rate"]))
    rates = sorted(k[0] for k in by_rate)
    if len(rates) < 3:
        return None
    setting = f"rank 1, light SSTI, proportions {', '.join(f'{p:g}' for p in rates)}"
    est = bootstrap_means([by_rate[(p,)] for p in rates], "degradation", rng)
    finding = "Figure 1: degradation grows with the proportion injected"
    if est is None:
        return _row(finding, model, dataset, setting, "slope of accuracy degradation per unit proportion", None, None, None,
                    "inconclusive", "no per-item predictions recorded (re-evaluate the runs)", len(rank1))
    point, draws = est
    x = np.asarray(rates, dtype=float)
    value, (lo, hi) = float(slope(x, point)), _interval(slope(x, draws))
    verdict = _verdict(lo, hi, 0.0, FLAT)
    means = ", ".join(f"{p:g}: {m:+.3f}" for p, m in zip(rates, point))
    why = {"reproduced": "interval above 0", "not reproduced": f"interval below +{FLAT}", "inconclusive": "interval spans 0"}[verdict]
    clean = [np.mean([(i["clean"] == i["y_true"]).mean() for i in map(_items, by_rate[(p,)])]) for p in rates]
    collapse = ""
    if max(clean) - min(clean) > FLAT:  # degradation is against each run's own clean accuracy: say when that moves too
        collapse = "; clean accuracy " + ", ".join(f"{p:g}: {c:.3f}" for p, c in zip(rates, clean))
    return _row(finding, model, dataset, setting, "slope of accuracy degradation per unit proportion", value, lo, hi, verdict,
                f"{why} ({means}){collapse}", len(rank1))


def _ranks(recs: list[dict[str, Any]]) -> str:
    return ", ".join(map(str, sorted({r["rank"] for r in recs})))


def findings_table(recs: list[dict[str, Any]], rng: np.random.Generator | None = None) -> dict[str, Any]:
    """The findings as a report table (header + rows)."""
    header = ["finding", "model", "dataset", "setting", "statistic", "estimate [95% interval]", "verdict", "why", "runs"]
    rows = []
    for f in findings(recs, rng):
        est = "-" if f["value"] is None else f"{f['value']:+.3f} [{f['low']:+.3f}, {f['high']:+.3f}]"
        rows.append([f["finding"], f["model"], f["dataset"], f["setting"], f["statistic"], est, f["verdict"], f["why"], f["runs"]])
    return {"id": "findings", "header": header, "rows": rows,
            "empty": "the runs hold no light/aggressive SSTI settings at two or more LoRA ranks or three proportions"}
