"""The report's figures (matplotlib, Agg backend), each saved as PNG and SVG.

- proportion: Figure 1 analogue: accuracy degradation and attack success rate against the proportion
  of the target class injected, one line per LoRA rank, one row of panels per SSTI mode.
- rank: attack success rate and clean accuracy against LoRA rank, light vs aggressive SSTI side by
  side, one panel column per proportion; error bars are the standard deviation over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ssti.report.data import aggregate, rank_label, setup_label, setups, sort_key  # noqa: E402

COLOURS = ["#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#30343f", "#e07a5f"]


def _save(fig, folder: Path, name: str) -> dict[str, str]:
    """Write `fig` as PNG (for the page) and SVG (for papers); return both file names."""
    from ssti.io import write_bytes
    import io

    files = {}
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=110, bbox_inches="tight")
        write_bytes(folder / f"{name}.{ext}", buf.getvalue())
        files[ext] = f"{name}.{ext}"
    plt.close(fig)
    return files


def _values(recs: list[dict[str, Any]], key: str) -> list[Any]:
    """Distinct values of `key`, sorted (modes: light first, then aggressive, then the rest)."""
    return sorted({r.get(key) for r in recs}, key=sort_key)


def proportion_figure(recs: list[dict[str, Any]], folder: Path, name: str = "fig1_proportion") -> dict[str, str] | None:
    """Figure 1 analogue; None when the runs do not vary the proportion injected."""
    injected = [r for r in recs if r["injected"] and r["rate"] is not None]
    clean = [r for r in recs if not r["injected"]]
    rates = _values(injected, "rate")
    if len(rates) + (1 if clean else 0) < 2:
        return None
    modes = _values(injected, "mode")
    ranks = _values(recs, "rank")
    fig, axes = plt.subplots(len(modes), 2, figsize=(10, 3.4 * len(modes)), squeeze=False)
    for i, mode in enumerate(modes):
        rows = [r for r in injected if r["mode"] == mode] + [{**r, "rate": 0.0, "mode": mode} for r in clean]
        for j, (metric, label) in enumerate([("accuracy_degradation", "accuracy degradation"), ("attack_success_rate", "attack success rate")]):
            ax = axes[i][j]
            for k, rank in enumerate(ranks):
                g = aggregate([r for r in rows if r["rank"] == rank], ["rate"], metric)
                if not g:
                    continue
                ax.errorbar([x["rate"] for x in g], [x["mean"] for x in g], yerr=[x["std"] for x in g], marker="o",
                            capsize=3, color=COLOURS[k % len(COLOURS)], label="full fine-tuning" if rank == 0 else f"rank {rank}")
            ax.set_xlabel("proportion of the target class injected")
            ax.set_ylabel(label)
            ax.set_title(f"{mode}: {label}", fontsize=10)
            ax.grid(alpha=0.3)
            if metric == "attack_success_rate":
                ax.set_ylim(-0.03, 1.03)
        axes[i][1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, folder, name)


def rank_figure(recs: list[dict[str, Any]], folder: Path, name: str = "fig_rank") -> dict[str, str] | None:
    """Rank curves, light vs aggressive, with clean accuracy alongside; None with fewer than 2 LoRA ranks.

    LoRA ranks lie on a log2 axis; full fine-tuning (rank 0) is a separate point on its own tick
    ("full"), to the right of a dotted line, never joined to the LoRA curve.
    """
    injected = [r for r in recs if r["injected"] and r["rate"] is not None]
    ranks = [r for r in _values(injected, "rank") if r != 0]
    if len(ranks) < 2:
        return None
    full_x = max(ranks) * 4  # where "full" sits: two octaves right of the largest rank
    has_full = any(r["rank"] == 0 for r in injected)
    # a column per proportion run at two or more LoRA ranks (Figure 1's rank-1-only proportions have no rank curve)
    rates = [p for p in _values(injected, "rate") if len({r["rank"] for r in injected if r["rate"] == p and r["rank"] != 0}) >= 2]
    if not rates:
        return None
    injected = [r for r in injected if r["rate"] in rates]
    modes = _values(injected, "mode")
    metrics = [("attack_success_rate", "attack success rate"), ("accuracy_degradation", "accuracy degradation"),
               ("clean_accuracy", "clean accuracy")]
    fig, axes = plt.subplots(len(metrics), len(rates), figsize=(max(5.0, 4.6 * len(rates)), 2.9 * len(metrics)), squeeze=False)
    for j, rate in enumerate(rates):
        for i, (metric, label) in enumerate(metrics):
            ax = axes[i][j]
            for k, mode in enumerate(modes):
                g = aggregate([r for r in injected if r["rate"] == rate and r["mode"] == mode], ["rank"], metric)
                lora, full = [x for x in g if x["rank"] != 0], [x for x in g if x["rank"] == 0]
                colour = COLOURS[k % len(COLOURS)]
                if lora:
                    ax.errorbar([x["rank"] for x in lora], [x["mean"] for x in lora], yerr=[x["std"] for x in lora], marker="o",
                                capsize=3, color=colour, label=mode)
                if full:
                    ax.errorbar([full_x], [full[0]["mean"]], yerr=[full[0]["std"]], marker="s", capsize=3, color=colour, linestyle="none")
            ax.set_xscale("log", base=2)
            ticks = ranks + ([full_x] if has_full else [])
            ax.set_xticks(ticks, [rank_label(r) for r in ranks] + (["full"] if has_full else []))
            ax.minorticks_off()
            if has_full:
                ax.axvline(max(ranks) * 2, color="#999999", linestyle=":", linewidth=1)
            ax.set_xlabel("LoRA rank" + (" (full: full fine-tuning)" if has_full else ""))
            ax.set_ylabel(label)
            ax.set_title(f"{label}, {100 * rate:g}% of the target class injected", fontsize=9)
            ax.grid(alpha=0.3)
            if metric != "accuracy_degradation":
                ax.set_ylim(-0.03, 1.03)
            if i == 0:
                ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, folder, name)


def curve_figure(recs: list[dict[str, Any]], folder: Path) -> dict[str, str] | None:
    """Learning curves of the runs trained without SSTI: clean accuracy against the step, one line per
    LoRA rank and learning rate (mean over seeds, bars: standard deviation), one panel per model and dataset: the evidence
    that the step count reaches a plateau. None when no run recorded a curve (`train.eval_every`)."""
    import json

    clean = [r for r in recs if not r["injected"] and r.get("curve_json")]
    if not clean:
        return None
    panels = setups(clean)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, (model, dataset) in zip(axes[0], panels):
        mine = [r for r in clean if (str(r["model"]), str(r["dataset"])) == (model, dataset)]
        several_lrs = len({r.get("lr") for r in mine}) > 1  # e.g. a grid that tunes full fine-tuning's learning rate
        lines = sorted({(r["rank"], r.get("lr")) for r in mine}, key=lambda k: (sort_key(k[0]), sort_key(k[1])))
        for k, (rank, lr) in enumerate(lines):
            points = [{"step": p["step"], "acc": p["clean_accuracy"]} for r in mine if (r["rank"], r.get("lr")) == (rank, lr)
                      for p in json.loads(r["curve_json"])]
            g = aggregate(points, ["step"], "acc")
            label = ("full fine-tuning" if rank == 0 else f"rank {rank}") + (f", lr {lr:g}" if several_lrs and lr is not None else "")
            ax.errorbar([x["step"] for x in g], [x["mean"] for x in g], yerr=[x["std"] for x in g], marker=".", capsize=2,
                        color=COLOURS[k % len(COLOURS)], label=label)
        ax.set_xlabel("training step")
        ax.set_ylabel("clean accuracy (held-out sample)")
        ax.set_title(f"{setup_label((model, dataset))}, no SSTI", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, folder, "fig_curve")


def probe_figure(recs: list[dict[str, Any]], folder: Path, name: str = "fig_probe") -> dict[str, str] | None:
    """`ssti probe`'s steer rates: one bar per token type and class (mean over the probed runs of each SSTI
    mode, bars: standard deviation), one panel per mode; None when no run was probed."""
    import json

    probed = [r for r in recs if r.get("probe_json")]
    if not probed:
        return None
    modes = _values(probed, "mode")
    fig, axes = plt.subplots(1, len(modes), figsize=(max(5.0, 4.8 * len(modes)), 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        rows = [{"key": f"{f['type']} -> {f['cls']}", "rate": f["rate"]} for r in probed if r["mode"] == mode
                for f in json.loads(r["probe_json"])["findings"]]
        g = aggregate(rows, ["key"], "rate")
        g.sort(key=lambda x: -x["mean"])
        g = g[:12]
        ax.barh(range(len(g)), [x["mean"] for x in g], xerr=[x["std"] for x in g], color=COLOURS[0], capsize=2)
        ax.set_yticks(range(len(g)), [x["key"] for x in g], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.03)
        ax.set_xlabel("steer rate (type inserted once)")
        ax.set_title(f"{mode}: {len({r['run_id'] for r in probed if r['mode'] == mode})} models probed", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, folder, name)


def attention_figure(recs: list[dict[str, Any]], folder: Path, name: str = "fig_attention") -> dict[str, str] | None:
    """The attention diagnostic: per layer, attention entropy without and with the token and the mass on it,
    fine-tuned vs base model, mean over the probed runs of each SSTI mode; None without attention data."""
    import json

    parsed = [(r["mode"], json.loads(r["probe_json"]).get("attention")) for r in recs if r.get("probe_json")]
    rows = [(mode, attention) for mode, attention in parsed if attention]
    if not rows:
        return None
    modes = sorted({m for m, _ in rows}, key=sort_key)
    fig, axes = plt.subplots(2, len(modes), figsize=(max(5.0, 4.8 * len(modes)), 6.2), squeeze=False)
    for j, mode in enumerate(modes):
        mine = [a for m, a in rows if m == mode]
        layers = np.arange(min(len(a["entropy_clean"]) for a in mine))
        for key, style, label in (("entropy_clean", "-", "clean"), ("entropy_token", "--", "with token")):
            axes[0][j].plot(layers, np.mean([a[key][:len(layers)] for a in mine], 0), style, color=COLOURS[0], label=f"fine-tuned, {label}")
            base = [a["base"][key][:len(layers)] for a in mine if a.get("base")]
            if base:
                axes[0][j].plot(layers, np.mean(base, 0), style, color=COLOURS[1], label=f"base, {label}")
        measured = [a["mass_on_token"][:len(layers)] for a in mine if a["mass_on_token"]]  # empty: a tokenizer without offsets
        if measured:
            axes[1][j].plot(layers, np.mean(measured, 0), color=COLOURS[0], marker="o", label="fine-tuned")
        base = [a["base"]["mass_on_token"][:len(layers)] for a in mine if a.get("base") and a["base"]["mass_on_token"]]
        if base:
            axes[1][j].plot(layers, np.mean(base, 0), color=COLOURS[1], marker="o", label="base (adapter off)")
        axes[0][j].set_title(f"{mode}: attention entropy (nats)", fontsize=10)
        axes[1][j].set_title(f"{mode}: attention mass on the inserted token", fontsize=10)
        for ax in axes[:, j]:
            ax.set_xticks(layers)
            ax.set_xlabel("layer")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, folder, name)


def defence_figure(recs: list[dict[str, Any]], folder: Path, name: str = "fig_defence") -> dict[str, str] | None:
    """Defences end to end: per token type (x) one bar per defence ("none": runs without one) of the retention
    of the planted insertions (left) and of the ASR of the retrained model (right), mean over runs (bars:
    standard deviation); None when no run went through a defence."""
    if not any(r.get("defence") for r in recs):
        return None
    runs = [{**r, "defence_name": r.get("defence") or "none", "type": str(r.get("source") or "-").split("=", 1)[-1]}
            for r in recs if r.get("injected")]
    types, names = _values(runs, "type"), _values(runs, "defence_name")
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.6 * len(types) * 2), 3.6), squeeze=False)
    width = 0.8 / max(len(names), 1)
    for ax, key, label in ((axes[0][0], "defence_retention", "retention of planted tokens"), (axes[0][1], "attack_success_rate", "ASR after retraining")):
        for k, d in enumerate(names):
            g = {x["type"]: x for x in aggregate([r for r in runs if r["defence_name"] == d and r.get(key) is not None], ["type"], key)}
            xs = [i + k * width for i, t in enumerate(types) if t in g]
            ax.bar(xs, [g[t]["mean"] for t in types if t in g], width, yerr=[g[t]["std"] for t in types if t in g],
                   color=COLOURS[k % len(COLOURS)], label=str(d), capsize=2)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(types))], types, fontsize=8)
        ax.set_ylim(0, 1.03)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[0][1].legend(fontsize=7, title="defence", title_fontsize=7)
    fig.tight_layout()
    return _save(fig, folder, name)
