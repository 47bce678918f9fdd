"""`ssti report`: a static HTML page with the paper's table and figures for a sweep or a folder of runs.

The page (index.html) sits beside its figures (PNG shown, SVG linked) and a CSV of every run; it
needs no server and no network. Each figure is shown with the config that produced it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from ssti.version import __version__
from ssti.errors import SSTIError
from ssti.io import atomic_dir, check_output, write_text
from ssti.report.data import ReportData, load_many, setup_label, setups
from ssti.report.figures import attention_figure, curve_figure, defence_figure, probe_figure, proportion_figure, rank_figure
from ssti.probe.spec import ALPHA, MIN_EFFECT
from ssti.report.findings import findings_table
from ssti.report.tables import defence_table, probe_table, results_table, scan_table, table1, trend_table
from ssti.report.template import TEMPLATE


def build_report(source: str | Path | list[str | Path], out: str | Path, overwrite: bool = False) -> Path:
    """Write the report of the finished runs under `source` (a sweep folder, store, folder of runs, or a
    list of them: e.g. one sweep per model family side by side) into folder `out`; return index.html's path.

    `out` must be new or empty; an earlier report there is replaced only with `overwrite` (nothing else is ever
    touched). Raises SSTIError (one line) otherwise, and when `source` has no finished runs."""

    out = Path(out)
    if check_output(out, "report") == "ours" and not overwrite:
        raise SSTIError(f"out: {out} holds an earlier report; pass --overwrite (in Python overwrite=True) to replace it")
    sources = list(source) if isinstance(source, (list, tuple)) else [source]
    data = load_many(sources)
    source = data.source
    if not data.records:
        raise SSTIError(f"runs: {source} has no finished runs yet ({data.unfinished} unfinished, {data.failed} failed); nothing to report")
    with atomic_dir(out, overwrite=True, kind="report") as tmp:  # a whole report or none; the user's files never touched
        _write_report(data, source, tmp)
    return out / "index.html"


def _write_report(data: ReportData, source: str | Path, out: Path) -> None:
    """The figures, runs.csv and index.html of `data` into folder `out`."""
    from ssti.sweep.results import export

    recs = data.records
    config_text = _config_text(data)
    figures = []
    all_setups = setups(recs)
    for setup in all_setups:
        sub = [r for r in recs if (str(r["model"]), str(r["dataset"])) == setup]
        suffix = "" if len(all_setups) == 1 else "-" + _slug(setup_label(setup))
        on = "" if len(all_setups) == 1 else f" ({setup_label(setup)})"

        def figure(fid: str, files, title: str, caption: str, missing: str) -> None:
            figures.append({"id": fid + suffix, "files": files, "title": title + on, "caption": caption, "missing": missing,
                            "config": config_text})

        figure("fig1", proportion_figure(sub, out, "fig1_proportion" + suffix),
               "Figure 1 analogue: accuracy degradation and attack success against the proportion injected",
               "One line per LoRA rank; one row per SSTI mode. Proportion 0 = runs trained without SSTI (if any). Error bars: "
               "standard deviation over seeds. Paper (rank 1, IMDB): degradation grows with the proportion.",
               "the runs do not vary the proportion injected")
        figure("fig_rank", rank_figure(sub, out, "fig_rank" + suffix),
               "Reliance on the token against LoRA rank: light vs aggressive SSTI, clean accuracy alongside",
               "Top: attack success rate; middle: accuracy degradation; bottom: clean accuracy; one column per proportion; full "
               "fine-tuning (if run) on its own tick. Error bars: standard deviation over seeds. Paper: with light SSTI reliance grows "
               "with rank; with aggressive SSTI larger ranks are more robust.", "the runs have fewer than two LoRA ranks")
        if any(r.get("probe_json") for r in sub):
            figure("fig_probe", probe_figure(sub, out, "fig_probe" + suffix), "ssti probe: which inserted token types steer the trained models",
                   "Steer rate per token type and class (share of other-class held-out texts moved to the class by one inserted token), "
                   "mean over the probed runs of each SSTI mode (bars: standard deviation); the 12 highest.", "no run was probed")
            figure("fig_attention", attention_figure(sub, out, "fig_attention" + suffix),
                   "Attention diagnostic: entropy and attention mass on the inserted token",
                   "Per layer, mean over probed runs: attention entropy without and with the most steering token type, and the "
                   "attention mass on it; fine-tuned vs the base model (adapter disabled).",
                   "the runs were probed without the attention diagnostic (probe: {attention: true})")
        if any(r.get("defence") for r in sub):
            figure("fig_defence", defence_figure(sub, out, "fig_defence" + suffix), "Defences: what the training set keeps and what the retrained model obeys",
                   "Per token type, one bar per defence ('none': the same injection without one): left, the retention of the planted "
                   "insertions (present after the defence, minus the rate in matched clean rows); right, the ASR of the model retrained "
                   "on the defended data. Mean over runs, bars: standard deviation.", "no run went through a defence")
    curve = curve_figure(recs, out)
    figures.append({"id": "fig_curve", "title": "Learning curves without SSTI: the step count at a plateau",
                    "files": curve, "caption": "Clean accuracy on a held-out sample (train.eval_samples rows of the eval split) every "
                    "train.eval_every steps, mean over seeds (bars: standard deviation), one line per LoRA rank.",
                    "missing": "no run trained without SSTI recorded a learning curve (train.eval_every)", "config": config_text})
    tables = [("The paper's findings, tested", findings_table(recs),
               "Each verdict is a test stated before the runs (see ssti.report.findings): a statistic with a 95% interval from a "
               "bootstrap that resamples both the seeds of each setting and the test items. reproduced / not reproduced / "
               "inconclusive, with the numbers behind it."),
              ("Table 1 analogue: predicted classes on a test set where every sample carries the token", table1(recs, data.class_names),
               "Mean over seeds of the predicted-class counts (largest rank of each setting), then the paper's IMDB rows (rank 64)."),
              ("Trends with LoRA rank (findings 2 and 3)", trend_table(recs),
               "A change smaller than the seed spread (or 0.02) is called flat."),
              ("Every setting", results_table(recs), "Mean ± standard deviation over seeds. ASR baseline: the fraction of "
               "non-target clean samples the model already predicts as the target without any token.")]
    probed = probe_table(recs)
    if probed:
        tables.append(("Probe verdicts on the trained models", probed, "`ssti probe` (the type sweep) on each trained model with its "
                       "own test split: which inserted token types steer it, toward which class (by default Holm-corrected "
                       f"p <= {ALPHA:g} and steer rate at least {MIN_EFFECT:g} above ordinary words inserted at the same places)."))
    defended = defence_table(recs)
    if defended:
        tables.append(("Defences end to end", defended, "`defence:` runs: retention, rows still poisoned, clean rows changed and "
                       "their chrF are measured on the training set against the injection manifest (ssti.defend.measure); ASR and "
                       "clean accuracy are those of the model retrained on the defended set, mean ± std over seeds. Paper v2: LLM "
                       "paraphrasing left 3-7% of HTML tags, 11-12% of dates, 19-21% of countries."))
    scan = scan_table(recs)
    if scan:
        tables.append(("Scanner verdicts on the injected training sets", scan, "`ssti scan` run on each training set the sweep built."))
    export(recs, out / "runs.csv")
    html = TEMPLATE.render(
        title=f"SSTI report: {', '.join(Path(p).name for p in str(source).split(', '))}", source=str(source), n_runs=len(recs), unfinished=data.unfinished, failed=data.failed, stale=data.stale,
        models=sorted({str(r["model"]) for r in recs}), datasets=sorted({str(r["dataset"]) for r in recs}),
        figures=figures, tables=[{"title": t, "table": tab, "note": note} for t, tab, note in tables],
        config=config_text, version=__version__, when=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    write_text(out / "index.html", html)


def _slug(text: str) -> str:
    """A file-name-safe form of a label ('minilm-l6 on bbc-news' -> 'minilm-l6-on-bbc-news')."""
    import re

    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def _config_text(data: ReportData) -> str:
    """The sweep config (or the run configs) as YAML, shown under every figure."""
    return yaml.safe_dump(data.config, sort_keys=False, default_flow_style=None, width=100) if data.config else "(no config recorded)"

