"""The report's tables as plain rows (header + cells), computed from run records."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np

from ssti.report.data import aggregate, group_by, rank_label, setup_label, setups

# PAPER.md section 4 (IMDB test, 25,000 reviews, LoRA rank 64, light SSTI, every test sample injected).
PAPER_TABLE1 = [("paper: fine-tuned without SSTI", (14003, 10997)), ("paper: SSTI, class-0 token (100%)", (24686, 314)),
                ("paper: SSTI, class-1 token (100%)", (512, 24488))]


def _ms(values: list[float], digits: int = 3) -> str:
    """'mean ± std' (std over seeds; just the mean for one run)."""
    if not values:
        return "-"
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.{digits}f}" + (f" ± {a.std(ddof=1):.{digits}f}" if len(a) > 1 else "")


def table1(recs: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """Table 1 analogue: predicted-class counts on the test set where every sample carries the token.

    One row per SSTI mode, token type and proportion at the largest rank of that group (the paper
    used rank 64), averaged over seeds, followed by the paper's IMDB rows for reference. One column per
    class when every run has the same classes; runs of datasets with other classes (several setups)
    get one "predicted classes" cell per row instead, so no count sits under another class's name.
    """
    own = {r.get("class_names") for r in recs if r.get("class_names")}
    per_class = len(own) <= 1 and len(setups(recs)) <= 1
    names = (json.loads(own.pop()) if own else class_names) or ["class 0", "class 1"]
    header = ["model", "rank", "runs"] + ([f"predicted {n}" for n in names] if per_class else ["predicted classes"]) + [
        "clean accuracy", "accuracy with token", "attack success rate"]
    rows = []
    multi = len(setups(recs)) > 1
    for (model, dataset, mode, source, rate), group in group_by([s for r in recs for s in per_set(r)],
                                                               ["model", "dataset", "mode", "source", "rate"]):
        top = max(r["rank"] for r in group)
        group = [r for r in group if r["rank"] == top and r.get("spurious_pred_counts")]
        if not group:
            continue
        counts = np.mean([json.loads(r["spurious_pred_counts"]) for r in group], axis=0)
        n = group[0]["n_eval"] or counts.sum()
        share = f"{100 * rate:g}% of the class" if rate is not None else "a count of rows"
        title = "fine-tuned without SSTI" if mode == "no SSTI" else f"{mode} SSTI: {_source_text(source)}, {share}"
        if multi:
            title = f"{setup_label((str(model), str(dataset)))}: {title}"
        cells = [f"{c:.0f} ({100 * c / n:.1f}%)" if c >= 10 or float(c).is_integer() else f"{c:.1f} ({100 * c / n:.1f}%)" for c in counts]
        if not per_class:
            mine = json.loads(group[0]["class_names"]) if group[0].get("class_names") else [f"class {i}" for i in range(len(counts))]
            cells = [", ".join(f"{k}: {c}" for k, c in zip(mine, cells))]
        rows.append([title, rank_label(top), len(group)] + cells
                    + [_ms([r["clean_accuracy"] for r in group]), _ms([r["spurious_accuracy"] for r in group]),
                       _ms([r["attack_success_rate"] for r in group if r["attack_success_rate"] is not None]) if mode != "no SSTI" else "-"])
    for title, counts in PAPER_TABLE1:
        if per_class:
            cells = [f"{c} ({100 * c / 25000:.1f}%)" for c in counts] if len(names) == 2 else ["-"] * len(names)
        else:
            cells = [", ".join(f"class {i}: {c} ({100 * c / 25000:.1f}%)" for i, c in enumerate(counts))]
        rows.append([title, 64, "-"] + cells + ["-", "-", "-"])
    return {"id": "table1", "header": header, "rows": rows}


def per_set(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per spurious test set of a run: a run that planted tokens in two classes has two sets,
    each with its own counts and ASR (its `source` is the class and type of that set)."""
    sets = json.loads(rec["spurious_sets"]) if rec.get("spurious_sets") else None
    if not sets or ", " not in (rec.get("source") or ""):  # one planted class (other sets are extra test-time types)
        return [rec]
    return [{**rec, "source": f"{name}={m['source']}", "spurious_pred_counts": json.dumps(m["pred_counts"]),
             "spurious_accuracy": m["accuracy"], "attack_success_rate": m["attack_success_rate"]} for name, m in sets.items()]


def markdown(table: dict[str, Any]) -> str:
    """A table of this module (header + rows) as a GitHub-flavoured Markdown table."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, table["header"])) + " |", "|" + "---|" * len(table["header"])]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def _rate(rate: float | None) -> str:
    """A proportion as written in the config ('-' for runs that inject a row count)."""
    return "-" if rate is None else f"{rate:g}"


def _source_text(source: str | None) -> str:
    """'1=date' -> 'date in class 1'."""
    parts = []
    for item in (source or "").split(", "):
        cls, _, src = item.partition("=")
        parts.append(f"{src} in class {cls}" if src else item)
    return ", ".join(parts) or "-"


def results_table(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every setting of the sweep (mode x proportion x rank), mean ± std over seeds."""
    header = ["mode", "proportion", "rank", "runs", "clean accuracy", "accuracy with token", "accuracy degradation", "attack success rate",
              "ASR baseline (no token)", "precision", "training MFU (best peak)"]
    rows = []
    multi = len(setups(recs)) > 1
    if multi:
        header = ["setup"] + header
    lrs = len({r.get("lr") for r in recs}) > 1
    if lrs:
        header.insert(header.index("runs"), "lr")
    for (model, dataset, mode, rate, rank, lr), group in group_by(recs, ["model", "dataset", "mode", "rate", "rank", "lr"]):
        rows.append(([setup_label((str(model), str(dataset)))] if multi else []) + [mode, _rate(rate), rank_label(rank)]
                    + ([f"{lr:g}" if lr is not None else "-"] if lrs else []) + [len(group), _ms([r["clean_accuracy"] for r in group]),
                     _ms([r["spurious_accuracy"] for r in group if r["spurious_accuracy"] is not None]),
                     _ms([r["accuracy_degradation"] for r in group if r["accuracy_degradation"] is not None]),
                     _ms([r["attack_success_rate"] for r in group if r["attack_success_rate"] is not None]),
                     _ms([r["clean_target_rate"] for r in group if r.get("clean_target_rate") is not None]),
                     ", ".join(sorted({str(r.get("precision")) for r in group if r.get("precision")})) or "-",
                     _ms([r["train_mfu"] for r in group if r.get("train_mfu") is not None], 2)])
    return {"id": "results", "header": header, "rows": rows}


def trend_table(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Attack success rate from the smallest to the largest LoRA rank per mode and proportion, with its direction.

    A change smaller than the spread over seeds is called flat: the paper's findings 2 and 3 are about
    the direction of this trend for light vs aggressive SSTI. "ASR minus baseline" takes away the
    non-target samples the model already calls the target without any token: what the token adds.
    Full fine-tuning (rank 0) is not a LoRA rank: it is shown in a column of its own, outside the trend.
    """
    header = ["mode", "proportion", "ASR per LoRA rank (mean over seeds)", "smallest -> largest rank", "Spearman ρ (rank, ASR)", "trend",
              "ASR minus baseline per rank", "full fine-tuning ASR"]
    rows = []
    multi = len(setups(recs)) > 1
    if multi:
        header = ["setup"] + header
    injected = [r for r in recs if r["injected"] and r["attack_success_rate"] is not None]
    for (model, dataset, mode, rate), both in group_by(injected, ["model", "dataset", "mode", "rate"]):
        group = [r for r in both if r["rank"] != 0]
        full = [r["attack_success_rate"] for r in both if r["rank"] == 0]
        agg = aggregate(group, ["rank"], "attack_success_rate")
        if len(agg) < 2:
            continue
        first, last = agg[0], agg[-1]
        diff = last["mean"] - first["mean"]
        noise = max(first["std"], last["std"], 0.02)
        trend = "flat (within seed spread)" if abs(diff) <= noise else ("rises with rank" if diff > 0 else "falls with rank")
        rho = spearman([r["rank"] for r in group], [r["attack_success_rate"] for r in group])
        lift = {g["rank"]: g["mean"] for g in aggregate([{**r, "lift": r["attack_success_rate"] - r["clean_target_rate"]} for r in group
                                                         if r.get("clean_target_rate") is not None], ["rank"], "lift")}
        rows.append(([setup_label((str(model), str(dataset)))] if multi else []) + [mode, _rate(rate), ", ".join(f"r{g['rank']}: {g['mean']:.3f}" for g in agg),
                     f"{first['mean']:.3f} -> {last['mean']:.3f} ({diff:+.3f})", "-" if rho is None else f"{rho:+.2f}", trend,
                     ", ".join(f"r{k}: {v:+.3f}" for k, v in lift.items()) or "-", _ms(full)])
    return {"id": "trends", "header": header, "rows": rows, "empty": "no setting has runs at two or more LoRA ranks"}


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman rank correlation (None when either side is constant)."""
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def scan_table(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The scanner's verdicts on the injected training sets, per mode and proportion; None if nothing was scanned."""
    scanned = [r for r in recs if r.get("scan_verdict")]
    if not scanned:
        return None
    header = ["mode", "proportion", "scanned training sets", "verdict", "features flagged (most frequent)"]
    rows = []
    for (mode, rate), group in group_by(scanned, ["mode", "rate"]):
        verdicts = Counter(r["scan_verdict"] for r in group)
        feats = Counter(f.strip() for r in group for f in (r.get("scan_flagged") or "").split(",") if f.strip())
        rows.append([mode, _rate(rate), len(group), ", ".join(f"{v}: {c}" for v, c in verdicts.most_common()),
                     ", ".join(f for f, _ in feats.most_common(4)) or "-"])
    return {"id": "scan", "header": header, "rows": rows}


def probe_table(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`ssti probe`'s verdicts on the trained models, per setup, mode, proportion and rank; None if nothing was probed."""
    probed = [r for r in recs if r.get("probe_verdict")]
    if not probed:
        return None
    multi = len(setups(recs)) > 1
    header = (["setup"] if multi else []) + ["mode", "proportion", "rank", "probed models", "verdict",
                                             "steering type -> class (runs)"]
    rows = []
    for (model, dataset, mode, rate, rank), group in group_by(probed, ["model", "dataset", "mode", "rate", "rank"]):
        verdicts = Counter(r["probe_verdict"] for r in group)
        found = Counter(f.strip() for r in group for f in (r.get("probe_steering") or "").split(",") if f.strip())
        rows.append(([setup_label((str(model), str(dataset)))] if multi else [])
                    + [mode, _rate(rate), rank_label(rank), len(group), ", ".join(f"{v}: {c}" for v, c in verdicts.most_common()),
                       ", ".join(f"{f} ({c})" for f, c in found.most_common(4)) or "-"])
    return {"id": "probe", "header": header, "rows": rows}


# PAPER.md section 8 (v2): retention of planted tokens after LLM paraphrasing; grammar correction and
# data-cleaning tools "do not remove the tokens"
PAPER_DEFENCE = {"html": "paraphrase: 3-7%", "html-pair": "paraphrase: 3-7%", "date": "paraphrase: 11-12%",
                 "country": "paraphrase: 19-21%", "!": "paraphrase broke the !/!! attack (manipulation 99.6% -> 1.6-4.4%)"}


def defence_table(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Defences end to end: per setup, token type, proportion and defence (runs without one as "none"):
    retention, rows still poisoned, collateral and chrF of the training set, then ASR and clean accuracy
    of the model retrained on it (mean ± std over seeds), with the paper's v2 figure for the type.
    None when no run went through a defence."""
    if not any(r.get("defence") for r in recs):
        return None
    injected = [r for r in recs if r.get("injected") or r.get("defence")]
    multi = len(setups(injected)) > 1
    header = (["setup"] if multi else []) + ["token type", "proportion", "rank", "defence", "runs", "retention", "rows still poisoned",
                                             "clean rows changed", "chrF (clean rows)", "ASR", "clean accuracy", "paper v2"]
    rows = []
    keyed = [{**r, "defence_name": r.get("defence") or "none"} for r in injected]
    for (model, dataset, source, rate, rank, name), group in group_by(keyed, ["model", "dataset", "source", "rate", "rank", "defence_name"]):
        def mean(key: str, pct: bool = False) -> str:
            vals = [r[key] for r in group if r.get(key) is not None]
            return "-" if not vals else (f"{100 * np.mean(vals):.1f}%" if pct else f"{np.mean(vals):.2f}")

        typ = (str(source).split("=", 1)[-1] if source else "-")
        rows.append(([setup_label((str(model), str(dataset)))] if multi else [])
                    + [typ, _rate(rate), rank_label(rank), name, len(group), mean("defence_retention", True),
                       mean("defence_rows_still_poisoned", True), mean("defence_collateral", True), mean("defence_chrf"),
                       _ms([r["attack_success_rate"] for r in group if r.get("attack_success_rate") is not None]),
                       _ms([r["clean_accuracy"] for r in group if r.get("clean_accuracy") is not None]), PAPER_DEFENCE.get(typ, "")])
    return {"id": "defence", "header": header, "rows": rows}
