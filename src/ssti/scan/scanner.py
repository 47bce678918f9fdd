"""`scan_dataset`: rank the features of a training split by how suspiciously well they predict a label.

The decision rule (checked on the clean embedded corpora, see README "Scanner quality and speed"):

Natural language has words that predict labels ("awful" -> rotten, "tory" -> politics), so a skew
test alone (Gardner et al. 2021) flags hundreds of honest words. What a planted token type does that
language does not is to occur in the other classes *far less often than chance* across many
documents: an injected date shows up in 59 fresh reviews and in no rotten one, while "awful"-like
words keep leaking into the other class. For a feature present in n documents, l of them outside
its skew class k (prior p_k), the scanner tests

    H0: the out-of-class rate is at least r_level * (1 - p_k)    (a natural cue)
    p  = P(Bin(n, r_level * (1 - p_k)) <= l)

`r_level` is the leakage a natural cue still has at that level. For words, sub-words, shapes and
positions it is read off the corpus (an empirical null, `stats.calibrated_ratio`): the 5th smallest
95% upper confidence bound of the leak ratio among the level's features seen in >= 20 documents.
Corpora differ: BBC topic words such as "tory" are pure over 106 politics articles (word allowance
0.06 there), while no Rotten Tomatoes word seen 20 times is purer than about a quarter of chance. A
few planted features cannot move a 5th order statistic. Caps: 0.3 for words and sub-words (thousands
of calibrating features, so the estimate is stable and the few natural features purer than it are
diluted by a Tarone count in the hundreds); the a priori 0.1 for shapes and positions, where the
calibration may only tighten (tens to a couple of hundred features: on 60% BBC subsamples a
raised shape allowance let football scores, shape `0-0`, reach p = 0.04). A level with fewer than
50 calibrating features keeps 0.1. Pattern classes keep a fixed 0.3: a dozen of them are too few to
calibrate, and a pattern class pools many unrelated strings — every number, every country — so
natural ones leak at 34-100% of chance on both corpora; a pure pattern class is the SSTI signature.
No level is assumed to be more naturally leaky than the pattern level. The report lists the
allowances used.

Phrases (runs of 4 words) repeat less than words, so their empirical null is read off phrases seen in
>= 10 documents (at least 30 of them; Rotten Tomatoes has 36, its 30% and 60% subsets too few, which then
keep the a priori 0.1), and a phrase level's allowance is never looser than the word level's: a phrase is
at least as specific as its words, so natural phrases are no leakier than natural words ("foreign
secretary jack straw" is as pure as "straw" on BBC, where the phrase level's own figure, 0.18, gives way
to the word level's 0.06). Few phrases are testable, a small Bonferroni factor: that is how a planted
phrase of common words is flagged in fewer rows than any of its words could be, on a corpus large
enough to calibrate the phrase level (full Rotten Tomatoes: 48 rows against the word level's 81). On
a small file (2,000 rows) too few phrases repeat to calibrate on, so the phrase allowance keeps its a
priori 0.1 while the word level's calibrates to 0.3, and a planted phrase needs more rows than a planted
word (110-143 against 50-66 rows there): the report's detection limits say so per level.

Pattern classes include *rare tiers* of the attack's vocabularies (`rare-colour`, `rare-country`:
the list members that are not common English, `ssti.scan.prior`). The engine draws list members
uniformly, natural text uses the common ones: on Rotten Tomatoes 155 reviews name a colour but only
11 a rare one, so planted colours stand out in the rare tier long before they do in the whole list. A
tier's rows are those of its whole list (the planted draws include common members too).

Multiple testing, a weighted **Bonferroni** with Tarone's testable-feature count:
- each scanned level gets an a priori share w_level of the family-wise error: the pattern level 4
  parts, the phrase level a quarter part, every other level 1 part (with all six levels: 16/33, 1/33
  and 4/33 each) — SSTI plants a token *type*, which the pattern level names in a dozen tests while
  the word level makes thousands; a planted multi-word phrase is the rarest form, and with a full
  part a natural collocation tested among a handful of phrases ("one of the best", 31 fresh vs 1
  rotten review) outranked planted countries, colours and `cf` at 1% of Rotten Tomatoes (measured:
  rank 1 in 7 of 9 types at a full part, 9 of 9 at a quarter; a planted phrase in 59 rows is flagged
  with both);
- within a level the share is split over its *testable* features only (Tarone 1990): a feature
  whose best possible p-value (no leakage at all) cannot reach the level's share can never be
  flagged, so the 15,000 words seen in 3 documents do not bury the one planted in 300.

    p_corr = p * k_level / w_level

A feature is flagged when p_corr <= threshold (default 0.05); the dataset is *suspicious* when any
feature is flagged. Features are ranked by -log10 p_corr (ties: larger support first).

What "clean" means, the **detection limit**: a feature in n documents of class k and in none outside
it has the smallest p-value its level allows, (1 - r_level (1 - p_k))^n. The report gives, per level
and class, the fewest rows n for which that reaches the threshold after correction (`LevelRule.min_rows`).
A planted feature in fewer rows cannot be flagged, however it was planted; a clean verdict says no
planted type reached the limit. Measured (README): on Rotten Tomatoes a planted word needs 57-80 rows
of its class, a pattern class 26-36; on BBC News 211-226 and 19-21 (its pure topic words set a strict
word allowance).

Class statistics cannot separate a planted word from a topic word as pure, nor planted names from the
natural ones around them. The opt-in **context check** (`context=` a causal LM, `ssti.scan.context`)
adds a level ``context``: per checked feature, the documents where one of its occurrences reads as
dropped into the text, tested like a pattern class.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import datasets
import numpy as np

from ssti.data.common import column
from ssti.data.registry import load_dataset
from ssti.errors import SSTIError
from ssti.scan import features as feat
from ssti.scan import stats as st
from ssti.scan.defaults import ALL_LEVELS, DEFAULT_THRESHOLD, DEFAULT_TOKENIZER  # noqa: F401  (re-exported)

NATURAL_LEAKAGE = {"word": 0.1, "phrase": 0.1, "subword": 0.1, "shape": 0.1, "position": 0.1, "pattern": 0.3, "context": 0.3}
# The most a calibrated allowance may be (`stats.calibrated_ratio`); levels not listed keep NATURAL_LEAKAGE.
CALIBRATION_CAP = {"word": 0.3, "phrase": 0.3, "subword": 0.3, "shape": 0.1, "position": 0.1}
# Phrases repeat less than words: their empirical null is read off phrases in >= 10 documents (at least 30 of them).
CALIBRATION_FEATURES = {"phrase": {"min_support": 10, "min_features": 30}}
# A priori share of the family-wise error per level (normalised over the scanned levels): SSTI plants a
# token *type*, which shows at the pattern level, a dozen tests against thousands at the others.
LEVEL_WEIGHT = {"word": 1.0, "phrase": 0.25, "subword": 1.0, "shape": 1.0, "position": 1.0, "pattern": 4.0, "context": 4.0}
CONTEXT_TOP_WORDS = 10  # best-ranked words the context check scores, besides every pattern class
DEFAULT_LEVELS = ALL_LEVELS


@dataclass
class FeatureReport:
    """One ranked feature: its statistics and the rows (of its skew class) that carry it."""

    feature: str
    level: str
    cls: str
    support: int
    counts: dict[str, int]
    entropy: float
    p_value: float  # scanner's leakage test, Bonferroni-corrected (what the verdict uses)
    score: float  # -log10 of the uncapped corrected p-value: the ranking key
    skew_p_value: float  # Gardner et al. binomial skew test, Bonferroni-corrected
    z: float
    pmi: float
    log_odds: float
    leakage: int
    flagged: bool
    rows: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the skew class is written under the key ``class``."""
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d


@dataclass
class ScanReport:
    """What `scan_dataset` found: the verdict, the ranked features, the flagged rows and timing."""

    verdict: str
    threshold: float
    split: str
    n_docs: int
    n_tokens: int
    classes: list[str]
    class_sizes: list[int]
    levels: list[str]
    tokenizer: str | None
    n_features: int
    features: list[FeatureReport]
    flagged_rows: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)
    source: str | None = None
    allowances: dict[str, str] = field(default_factory=dict)  # natural-leakage allowance r per level
    # level -> class -> fewest rows of that class a feature with no occurrence outside it needs to be flagged
    detection_limits: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def flagged(self) -> list[FeatureReport]:
        """The features over the threshold."""
        return [f for f in self.features if f.flagged]

    @property
    def tokens_per_s(self) -> float:
        """Whitespace tokens scanned per second (the speed figure of the benchmark)."""
        return self.n_tokens / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: verdict and features first, then the context of the scan."""
        return {
            "verdict": self.verdict,
            "features": [f.to_dict() for f in self.features],
            "flagged_rows": self.flagged_rows,
            "threshold": self.threshold,
            "source": self.source,
            "split": self.split,
            "n_docs": self.n_docs,
            "n_tokens": self.n_tokens,
            "classes": self.classes,
            "class_sizes": self.class_sizes,
            "levels": self.levels,
            "tokenizer": self.tokenizer,
            "n_features": self.n_features,
            "allowances": self.allowances,
            "detection_limits": self.detection_limits,
            "seconds": round(self.seconds, 3),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "notes": self.notes,
        }

    def to_json(self) -> str:
        """The report as a JSON string (the `ssti scan --json` output)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)


def _pick_split(data, split: str) -> datasets.Dataset:
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise SSTIError(f"split: {split!r} is not one of {', '.join(data)}")
        return data[split]
    if isinstance(data, datasets.Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return _pick_split(load_dataset(os.fspath(data), whole_file=True), split)  # a file without a split column is scanned whole
    raise SSTIError(f"data: got a {type(data).__name__}; give a datasets.Dataset or DatasetDict with text and label columns, or a "
                    f"dataset name, ssti folder or csv/jsonl/parquet file path (a table of rows: save it with df.to_csv(path, index=False))")


def _check(split: datasets.Dataset, name: str) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Validate and read a split: one-line SSTIErrors for the bad inputs the scanner can meet."""
    missing = {"text", "label"} - set(split.column_names)
    if missing:
        raise SSTIError(f"data: split {name!r} has no {' or '.join(sorted(missing))} column; the scanner needs labelled text")
    if len(split) == 0:
        raise SSTIError(f"data: split {name!r} is empty; nothing to scan")
    label_feature = split.features["label"]
    classes = list(getattr(label_feature, "names", None) or [])
    labels_list = column(split, "label")
    if not classes and any(isinstance(v, str) or isinstance(v, bool) for v in labels_list):
        raise SSTIError(f"data: split {name!r} has text labels; encode them with ds.class_encode_column('label') "
                        f"(class names as written), or save the rows as a csv/jsonl file and scan that")
    if any(v is None for v in labels_list):
        raise SSTIError(f"data: split {name!r} has rows without a label; the scanner needs every row labelled")
    labels = np.asarray(labels_list, dtype=np.int64)
    if not classes:
        classes = [str(k) for k in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(classes):
        raise SSTIError(f"data: split {name!r} has labels outside 0..{len(classes) - 1} (missing labels are often stored as -1)")
    present = np.unique(labels)
    if len(present) < 2:
        only = classes[int(present[0])]
        raise SSTIError(f"data: split {name!r} has one class only ({only!r}); a label association needs at least 2")
    texts = column(split, "text")
    if any(t is None for t in texts):
        raise SSTIError(f"data: split {name!r} has rows without text")
    ids = column(split, "id") if "id" in split.column_names else [str(i) for i in range(len(split))]
    return ids, texts, labels, classes


def resolve_tokenizer(tokenizer, notes: list[str]):
    """A tokenizer object from a name (or None when it cannot load, e.g. a hub id offline), noting why in
    `notes`. A name that is no registry name, local folder or Hugging Face id raises SSTIError (a typo is
    an error, not a reason to scan without the sub-word level)."""
    if tokenizer is None or not isinstance(tokenizer, str):
        return tokenizer, getattr(tokenizer, "name_or_path", None)
    from ssti.models.registry import resolve_model

    try:
        resolve_model(tokenizer, "tokenizer")
    except SSTIError as e:
        raise SSTIError(f"{e} (or none to skip the sub-word level)") from None
    try:
        from ssti.models import load_tokenizer

        tok = load_tokenizer(tokenizer)
    except Exception as e:  # offline hub, missing package, unknown name: fall back, say so
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        notes.append(f"tokenizer {tokenizer!r} could not be loaded ({msg}); sub-word level skipped, word features used instead")
        return None, None
    if not getattr(tok, "is_fast", False):
        notes.append(f"tokenizer {tokenizer!r} is not a fast tokenizer; the sub-word level will be slow")
    return tok, tokenizer


def scan_dataset(
    data: datasets.DatasetDict | datasets.Dataset,
    split: str = "train",
    levels: Sequence[str] = DEFAULT_LEVELS,
    tokenizer=DEFAULT_TOKENIZER,
    threshold: float = DEFAULT_THRESHOLD,
    top: int = 20,
    source: str | None = None,
    context=None,
) -> ScanReport:
    """Scan one labelled split for planted spurious features; see the module docstring for the rule.

    `levels` picks feature levels (word, subword, shape, pattern, position); `tokenizer` is a model
    name or a Hugging Face tokenizer for the sub-word level (when it cannot load, the scan goes on
    without that level and the report says so). `threshold` is the family-wise error allowed for
    flagging; `top` limits the unflagged features reported (flagged ones are always reported).
    `context` (a causal LM name, or a `context.LMScorer` to reuse its cache) adds the context check
    of `ssti.scan.context`: features whose occurrences read as dropped into the text.
    """
    t0 = time.perf_counter()
    for lv in levels:
        if lv not in ALL_LEVELS:
            raise SSTIError(f"levels: {lv!r} is not one of {', '.join(ALL_LEVELS)}")
    if not levels:
        raise SSTIError(f"levels: pick at least one of {', '.join(ALL_LEVELS)}")
    if not 0 < threshold < 1:
        raise SSTIError(f"threshold: {threshold} must be a probability between 0 and 1 (exclusive)")
    dsplit = _pick_split(data, split)
    ids, texts, labels, classes = _check(dsplit, split)
    notes: list[str] = []
    levels = [lv for lv in ALL_LEVELS if lv in levels]
    tok, tok_name = (None, None)
    if "subword" in levels:
        tok, tok_name = resolve_tokenizer(tokenizer, notes)
        if tok is None:
            levels = [lv for lv in levels if lv != "subword"]
            if "word" not in levels:
                levels.insert(0, "word")
            if not notes:
                notes.append("no tokenizer given; sub-word level skipped, word features used instead")
    fs = feat.extract(texts, levels, tokenizer=tok)
    k = len(classes)
    counts = st.doc_freq(fs, labels, k)
    class_sizes = np.bincount(labels, minlength=k)
    s = st.compute(counts, class_sizes)
    prior = class_sizes / class_sizes.sum()
    score, rules = level_scores(fs, s, prior, levels, threshold)
    if context is not None:
        fs, note = _add_context_features(fs, score, threshold, texts, labels, context)
        notes.append(note)
        levels = levels + ["context"]
        counts = st.doc_freq(fs, labels, k)
        s = st.compute(counts, class_sizes)
        score, rules = level_scores(fs, s, prior, levels, threshold)
    p_corr = np.minimum(1.0, 10.0 ** (-score))
    flagged = p_corr <= threshold
    order = np.lexsort((-s.support, -score))
    n_flagged = int(flagged.sum())
    chosen = order[: max(top, n_flagged)]
    row_code = _row_codes(fs, chosen)
    by_doc = _rows_of(fs, np.unique(row_code))
    reports, flagged_rows = [], set()
    for f, rc in zip(chosen, row_code):
        docs = by_doc[int(rc)]
        docs = docs[labels[docs] == s.cls[f]]
        rows = [ids[i] for i in docs]
        if flagged[f]:
            flagged_rows.update(docs.tolist())
        reports.append(FeatureReport(
            feature=fs.names[f], level=fs.levels[f], cls=classes[s.cls[f]], support=int(s.support[f]),
            counts={classes[j]: int(counts[f, j]) for j in range(k)}, entropy=_r(s.entropy[f]),
            p_value=float(f"{p_corr[f]:.4g}"), score=_r(score[f]), skew_p_value=float(f"{s.p_value[f]:.4g}"),
            z=_r(s.z[f]), pmi=_r(s.pmi[f]), log_odds=_r(s.log_odds[f]), leakage=int(s.leakage[f]),
            flagged=bool(flagged[f]), rows=rows,
        ))
    limits = {lv: {c: r.min_rows(float(prior[j]), threshold) for j, c in enumerate(classes)} for lv, r in rules.items()}
    for j, c in enumerate(classes):  # a class too small for any level: "clean" says nothing about it
        least = min((lim[c] for lim in limits.values() if lim.get(c) is not None), default=None)
        if least is not None and class_sizes[j] < least:
            notes.append(f"class {c!r} has {int(class_sizes[j]):,} rows, fewer than any level's detection limit ({least:,} rows): "
                         f"a token planted in every one of them could not be flagged, so a clean verdict says nothing about this class")
        elif least is not None:  # too small for some levels: say which kinds of plant this scan cannot see there
            blind = [f"{lv} ({lim[c]:,})" for lv, lim in limits.items() if lim.get(c) is not None and class_sizes[j] < lim[c]]
            if blind:
                notes.append(f"class {c!r} has {int(class_sizes[j]):,} rows, fewer than the detection limit of level(s) "
                             f"{', '.join(blind)} rows: a feature of those levels planted in every one of its rows could not be "
                             f"flagged; a clean verdict covers only the other levels there")
    seconds = time.perf_counter() - t0
    return ScanReport(
        verdict="suspicious" if n_flagged else "clean", threshold=threshold, split=split, n_docs=len(texts),
        n_tokens=fs.n_tokens, classes=classes, class_sizes=class_sizes.tolist(), levels=levels, tokenizer=tok_name,
        n_features=len(fs.names), features=reports, flagged_rows=[ids[i] for i in sorted(flagged_rows)],
        seconds=seconds, notes=notes + fs.notes, source=source,
        allowances={lv: f"{r.ratio:.3g}{f' (the {r.from_level} level' + chr(39) + 's)' if r.from_level else ' (calibrated)' if r.calibrated else ''}"
                    for lv, r in rules.items()},
        detection_limits=limits,
    )


@dataclass
class LevelRule:
    """How one feature level is tested: its natural-leakage allowance and its Bonferroni factor."""

    ratio: float  # natural-leakage allowance r_level
    calibrated: bool  # read off the corpus (`stats.calibrated_ratio`) rather than a priori
    log10_correction: float  # log10(k_level / w_level): testable features over the level's error share
    from_level: str | None = None  # the level whose allowance this one took (phrase <- word), else None

    def min_rows(self, prior_k: float, threshold: float) -> int:
        """The fewest documents of a class (prior `prior_k`) that a feature of this level, absent from
        every other class, must be in to be flagged: the scan's detection limit. A planted feature in
        fewer rows cannot be flagged, however it was planted."""
        log_q = np.log10(1.0 - min(1.0 - 1e-12, self.ratio * (1.0 - prior_k)))
        return int(np.ceil((np.log10(threshold) - self.log10_correction) / log_q - 1e-9))


def level_scores(fs: feat.FeatureSet, s: st.FeatureStats, prior: np.ndarray, levels: Sequence[str],
                 threshold: float) -> tuple[np.ndarray, dict[str, LevelRule]]:
    """The ranking key of every feature, -log10 of its Bonferroni-corrected leakage p-value, and the
    rule each level was tested with.

    Each level's natural-leakage allowance is `NATURAL_LEAKAGE`, or for the levels in `CALIBRATION_CAP`
    the corpus's own (`stats.calibrated_ratio`). Every scanned level gets a share ``w_level`` of the
    family-wise error (`LEVEL_WEIGHT`, normalised over the scanned levels), split over that level's
    *testable* features (`stats.tarone_count`); the score is ``-log10(p * k_level / w_level)``,
    uncapped so that it still orders features whose corrected p-value is 1.
    """
    level_arr = np.asarray(fs.levels)
    rules: dict[str, LevelRule] = {}
    if not len(level_arr):
        return np.zeros(0), rules
    ratio = np.zeros(len(level_arr))
    correction = np.zeros(len(level_arr))
    total = sum(LEVEL_WEIGHT[lv] for lv in levels)
    for lv in levels:
        m = level_arr == lv  # a level with no feature (e.g. no phrase in 5 documents) still reports its rule
        r, calibrated = (st.calibrated_ratio(s.support[m], s.leakage[m], prior[s.cls[m]], NATURAL_LEAKAGE[lv], cap=CALIBRATION_CAP[lv],
                                             **CALIBRATION_FEATURES.get(lv, {}))
                         if lv in CALIBRATION_CAP and m.any() else (NATURAL_LEAKAGE[lv], False))
        borrowed = lv == "phrase" and "word" in rules and rules["word"].ratio < r
        if borrowed:  # a phrase is no leakier than words (see the module docstring)
            r, calibrated = rules["word"].ratio, rules["word"].calibrated
        best = st.log10_leakage_pvalue(s.support[m], np.zeros(int(m.sum()), dtype=np.int64), prior[s.cls[m]], r)
        w = LEVEL_WEIGHT[lv] / total
        rules[lv] = LevelRule(r, calibrated, float(np.log10(st.tarone_count(best, threshold * w) / w)), "word" if borrowed else None)
        ratio[m], correction[m] = r, rules[lv].log10_correction
    log_p = st.log10_leakage_pvalue(s.support, s.leakage, prior[s.cls], ratio)
    return -(log_p + correction), rules


def _add_context_features(fs: feat.FeatureSet, score: np.ndarray, threshold: float, texts: list[str], labels: np.ndarray,
                          context) -> tuple[feat.FeatureSet, str]:
    """`fs` with the context check's derived features appended (level ``context``), and a note on the check."""
    from ssti.scan import context as ctx

    scorer = context if isinstance(context, ctx.LMScorer) else ctx.LMScorer(str(context))
    flagged = 10.0 ** (-score) <= threshold  # the verdict's rule, before the context features exist
    codes = ctx.candidates(fs, score, flagged, CONTEXT_TOP_WORDS)
    explained = [(fs.names[i], fs.levels[i]) for i in np.where(flagged)[0]]  # sub-word features have no spans: no-ops
    res = ctx.context_check(texts, labels, fs, _rows_of(fs, np.asarray(codes, dtype=np.int64)), codes, scorer, explained)
    names = list(res.features)
    docs = [res.features[n] for n in names]
    lengths = np.asarray([len(d) for d in docs], dtype=np.int64)
    new_codes = np.repeat(np.arange(len(fs.names), len(fs.names) + len(names), dtype=np.int64), lengths)
    out = feat.FeatureSet(fs.names + names, fs.levels + ["context"] * len(names),
                          np.concatenate([fs.doc, *docs]) if docs else fs.doc, np.concatenate([fs.code, new_codes]),
                          fs.n_docs, fs.n_tokens, fs.notes + res.notes)
    tau = "not calibrated" if res.tau is None else f"tau {res.tau:.1f} nats"
    return out, f"context check with {scorer.name}: {res.checked} feature(s) scored, {tau}, {len(names)} with out-of-context occurrences"


def _row_codes(fs: feat.FeatureSet, chosen: np.ndarray) -> np.ndarray:
    """The code whose documents are reported as a feature's rows: itself; for a rare tier
    (`features.RARE_TIERS`) the code of its whole list, since planted draws come from the whole list;
    for a context feature the feature it checked (a planted occurrence may read well enough to pass)."""
    code_of = {(lv, n): i for i, (lv, n) in enumerate(zip(fs.levels, fs.names)) if lv != "context"}
    out = []
    for f in chosen:
        level, name = fs.levels[f], fs.names[f]
        if level == "context":  # the rows of the checked feature itself: its out-of-context occurrences are the evidence
            level, _, name = name.partition(":")
        parent = feat.RARE_TIERS.get(name) if level == "pattern" else None
        out.append(code_of.get((level, parent or name), f))
    return np.asarray(out, dtype=np.int64)


def _r(x: float) -> float:
    """Round for the report (4 decimals) and make -0.0 plain 0.0."""
    return float(round(float(x), 4)) + 0.0


def _rows_of(fs: feat.FeatureSet, codes: np.ndarray) -> dict[int, np.ndarray]:
    """Document indices carrying each of `codes`, in one pass over the entry arrays."""
    wanted = np.asarray(codes, dtype=np.int64)
    mask = np.isin(fs.code, wanted)
    sel_code, sel_doc = fs.code[mask], fs.doc[mask]
    srt = np.lexsort((sel_doc, sel_code))
    sel_code, sel_doc = sel_code[srt], sel_doc[srt]
    bounds = np.searchsorted(sel_code, wanted, side="left"), np.searchsorted(sel_code, wanted, side="right")
    return {int(c): sel_doc[a:b] for c, a, b in zip(wanted, *bounds)}
