"""The scanner-guided defences `scan-strip` and `scan-drop` (also what `ssti scan --remove` runs).

Rule (stated here once; the tests check it):
- a flagged feature is cleaned only in rows of **its own class** that carry it: those are the rows an
  attack planted it in; the same token in other classes' rows is natural use, and cutting it there
  would only damage clean rows;
- ``strip`` cuts the feature's spans out of those rows, each **extended over an adjacent word that sits
  next to it in at least `span_share` (default 90%) of its rows**, repeatedly on both sides, so a
  planted phrase ("I watch this 3D movie", flagged through "3d" alone) goes whole; once a feature
  extends to a phrase, only occurrences of the whole phrase are cut (a bare "3D" or "watch" elsewhere
  is natural use and stays); every cut takes one adjacent space or tab with it (never a line break) (the inverse of
  how `ssti inject` inserts), every other byte of every text is kept;
- **names** (a flagged country or colour class, or its rare tier) are also ordinary words, so with a
  language model (`context`) each of their occurrences is judged on its own: it is cut only when it
  reads as dropped in, deletion score d = log P(window without) - log P(window with) above what most
  natural mentions of the list in the *other* classes score, and higher where needed so that at most
  about 5% of the cut mentions are natural ones (`dropped_in`; an occurrence that opens a text is scored
  from the BOS token alone). Without a model every occurrence in the flagged rows is cut,
  natural mentions too (the notes say how many rows);
- a flagged feature with most of its occurrences inside another flagged feature's spans (the numbers
  of a planted date) was flagged as a part of it: it is cut only there, its other occurrences ("a
  179-minute film") are natural use and stay (`nested_features`);
- ``drop`` removes those rows (for names judged by a model: the rows with an occurrence cut by the rule);
- sub-word features have no character span: strip leaves them (noted), drop uses their rows;
- the defence rescans its own output with the same settings and reports what is still flagged.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import datasets
import numpy as np
import pyarrow as pa

from ssti.data.common import class_names_of, column, make_split
from ssti.scan import features as feat
from ssti.scan.scanner import FeatureReport, ScanReport

MAX_EXTENSION = 16  # words a flagged token's span may grow by, per side
_NEXT_WORD = re.compile(r"[^\S\n]*(\S+)")  # the word after a span, across spaces (not across a line break)
_PREV_WORD = re.compile(r"(\S+)[^\S\n]*$")


def with_space(text: str, a: int, b: int) -> tuple[int, int]:
    """Widen span [a, b) by one space or tab: the one after it, else the one before; a line break is
    never taken (it would break a CRLF pair or merge paragraphs).

    That is the inverse of how `ssti inject` inserts a word ("TOKEN " before a word, " TOKEN" at the
    end of a text), so stripping an injected token restores the original bytes, newlines included.
    """
    if b < len(text) and text[b] in " \t":
        return a, b + 1
    if a > 0 and text[a - 1] in " \t":
        return a - 1, b
    return a, b


def strip_text(text: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """Cut `spans` out of `text`: overlapping spans are merged first (a tag and its "<" are one cut),
    cuts separated by whitespace only are joined, then each cut is widened by one separating space.
    Returns the new text and the cuts made (character spans of the old text)."""
    merged = _merge(sorted(spans), touching=False)
    grouped: list[list[int]] = []  # cuts separated by whitespace only ("<b> </b>") are one cut
    for a, b in merged:
        if grouped and not text[grouped[-1][1]:a].strip():
            grouped[-1][1] = b
        else:
            grouped.append([a, b])
    merged = _merge(sorted(with_space(text, a, b) for a, b in grouped), touching=True)
    out, pos = [], 0
    for a, b in merged:
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    return "".join(out), [tuple(m) for m in merged]


def _merge(spans, touching: bool) -> list[list[int]]:
    """Union of sorted spans: overlapping ones (and, if `touching`, adjacent ones) become one."""
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and (a < merged[-1][1] or (touching and a == merged[-1][1])):
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def target_rows(report: ScanReport, ids: list[str], labels: list[int], names: list[str]) -> dict[str, list[FeatureReport]]:
    """Row id -> the flagged features it carries in its own class (the rows a defence edits)."""
    label_of = dict(zip(ids, labels))
    out: dict[str, list[FeatureReport]] = defaultdict(list)
    for f in report.flagged:
        cls = names.index(f.cls)
        for r in f.rows:
            if label_of.get(r) == cls:
                out[r].append(f)
    return out


def extended_spans(texts: dict[str, str], spans: dict[str, list[tuple[int, int]]], share: float) -> tuple[dict[str, list[tuple[int, int]]], list[str]]:
    """Grow every row's spans of one feature over the words that flank it in at least `share` of the rows.

    `texts`/`spans`: row id -> text / the feature's spans in it. Repeats on each side until no word
    qualifies (at most MAX_EXTENSION words). When words were added (a planted phrase), only the
    occurrences that carry the whole phrase are kept: a bare occurrence elsewhere is natural use.
    Returns the new spans (rows with none left are dropped) and the words added, in text order.
    """
    spans = {r: [(a, b, True) for a, b in s] for r, s in spans.items() if s}
    need = share * len(spans)
    left: list[str] = []
    right: list[str] = []
    for side, added in (("right", right), ("left", left)):
        for _ in range(MAX_EXTENSION):
            seen = Counter()
            for r, ss in spans.items():
                seen.update({w for w in (_neighbour(texts[r], a, b, side) for a, b, ok in ss if ok) if w})
            if not seen:
                break
            word, count = seen.most_common(1)[0]
            if count < need:
                break
            for r, ss in spans.items():
                spans[r] = [_grow(texts[r], a, b, ok, side, word) for a, b, ok in ss]
            added.append(word)
    grown = {r: [(a, b) for a, b, ok in ss if ok or not (left or right)] for r, ss in spans.items()}
    return {r: ss for r, ss in grown.items() if ss}, left[::-1] + right


def _neighbour(text: str, a: int, b: int, side: str) -> str | None:
    m = _NEXT_WORD.match(text, b) if side == "right" else _PREV_WORD.search(text[:a])
    return m.group(1) if m and (m.start(1) > b if side == "right" else m.end(1) < a) else None


def _grow(text: str, a: int, b: int, ok: bool, side: str, word: str) -> tuple[int, int, bool]:
    """The span grown over `word` on `side` when it is there (still carrying the phrase so far), else marked as not."""
    if ok and side == "right":
        m = _NEXT_WORD.match(text, b)
        if m and m.group(1) == word and m.start(1) > b:
            return a, m.end(1), True
    elif ok:
        m = _PREV_WORD.search(text[:a])
        if m and m.group(1) == word and m.end(1) < a:
            return m.start(1), b, True
    return a, b, False


def is_name_feature(f: FeatureReport) -> bool:
    """Whether a flagged feature is a list of names (countries, colours, or a rare tier of them), directly or
    through the context check: the features whose occurrences are also ordinary words."""
    level, name = f.level, f.feature
    if level == "context":
        level, _, name = name.partition(":")
    return level == "pattern" and name in feat.NAME_LISTS


NAME_TAU_PERCENTILE = 75  # of the deletion scores of the list's occurrences in the other classes (natural use)
NAME_TAU_MIN_OCCURRENCES = 30  # fewer scored natural occurrences than this: tau = 0
NAME_FALSE_CUT_SHARE = 0.05  # the estimated share of natural mentions among the cut ones that tau is raised to meet


def dropped_in(texts: dict[str, str], spans: dict[str, list[tuple[int, int]]], scorer,
               natural: list[tuple[str, tuple[int, int]]] = ()) -> tuple[dict[str, list[tuple[int, int]]], int, float, float | None]:
    """The occurrences a causal LM reads as dropped into their text (`ssti.scan.context` deletion scores d).

    `texts`/`spans`: row id -> text / occurrence spans in the flagged rows; `natural`: (text, span) of the same
    list's occurrences in the other classes, which an attack on this class left alone: the null distribution
    of natural mentions. An occurrence is kept as planted when d > tau; one that opens its text is scored
    from the BOS token alone, in both sets (natural titles open reviews: "Red Dragon is ...").
    tau is the `NAME_TAU_PERCENTILE`th percentile of the null (at least 0: the window must read better
    without it; 0 when fewer than `NAME_TAU_MIN_OCCURRENCES` null occurrences), raised where needed so that
    the estimated share of natural mentions among the cut ones, n_natural x P(null d > tau) / cuts, is at
    most `NAME_FALSE_CUT_SHARE`: the false discovery proportion as Storey (2002) estimates it, with
    n_natural = the flagged rows' occurrences scoring at most the null's median / the null's share there
    (planted names score far above it). The other classes' mention rate is no guide to n_natural: Rotten
    Tomatoes' fresh reviews name countries 6x as often as its rotten ones. Where no tau meets the share
    the percentile stays. Few planted names among many natural ones (1% of a class) need the higher bar;
    many planted ones do not. Measured with SmolLM2-135M on Rotten Tomatoes at 1% (README): the 1st
    percentile of planted scores is 10.7 nats for colours and 12.3 for countries; 8-10% of the natural
    mentions in the planted class score above the null's 90th percentile (9.1 and 10.2 nats).
    Returns (row id -> kept spans, occurrences judged natural, tau, the estimated natural share of the cuts,
    None without a null).
    """
    from ssti.scan.context import deletion_window

    ref = [deletion_window(t, sp, at_start=True) for t, sp in natural]
    ref_d = scorer.deletion_scores(ref) if len(ref) >= NAME_TAU_MIN_OCCURRENCES else None
    tau = max(0.0, float(np.percentile(ref_d, NAME_TAU_PERCENTILE))) if ref_d is not None else 0.0
    occ = [(r, sp) for r, ss in spans.items() for sp in ss]
    d = scorer.deletion_scores([deletion_window(texts[r], sp, at_start=True) for r, sp in occ])
    false_share = None
    if ref_d is not None and len(d):
        ref_sorted, own = np.sort(ref_d), np.sort(d)
        lam = float(np.median(ref_sorted))
        n_natural = min(len(own), np.searchsorted(own, lam, side="right") / (np.searchsorted(ref_sorted, lam, side="right") / len(ref_sorted)))

        def share(t: float) -> float:  # estimated natural mentions cut / occurrences cut, at threshold t
            cuts = len(own) - np.searchsorted(own, t, side="right")
            return n_natural * (len(ref_sorted) - np.searchsorted(ref_sorted, t, side="right")) / len(ref_sorted) / max(cuts, 1)

        false_share = share(tau)
        if false_share > NAME_FALSE_CUT_SHARE:
            for t in own[own >= tau]:  # the lowest bar (the most planted names cut) that meets the share
                if share(t) <= NAME_FALSE_CUT_SHARE:
                    tau, false_share = float(t), share(t)
                    break
    kept: dict[str, list[tuple[int, int]]] = {}
    for (r, sp), score in zip(occ, d.tolist()):
        if score > tau:
            kept.setdefault(r, []).append(sp)
    return kept, len(occ) - sum(map(len, kept.values())), tau, false_share


def natural_mentions(f: FeatureReport, ids: list[str], texts: list[str], labels: list[int], names: list[str],
                     flagged: set[str]) -> tuple[list[tuple[str, tuple[int, int]]], str]:
    """The null sample for `dropped_in`: (text, span) of natural mentions of the flagged name list, and a phrase
    saying where they come from.

    Natural mentions are the list's occurrences in rows of the other classes that no flagged feature marks
    (an attack on another class may have planted there). Where they number fewer than
    `NAME_TAU_MIN_OCCURRENCES` (Rotten Tomatoes' rotten reviews name 11 countries), the other name lists'
    occurrences in those rows join them: a colour in "a black comedy" is used as naturally as a country in
    "set in France", and both read as dropped in when an attack inserts them at random (measured with
    SmolLM2-135M on Rotten Tomatoes: the 90th percentiles of the two nulls are 9.1 and 10.2 nats).
    """
    cls = names.index(f.cls)
    rows = [(t, r) for r, t, y in zip(ids, texts, labels) if y != cls and r not in flagged]
    name = f.feature.partition(":")[2] if f.level == "context" else f.feature
    lists = [feat.RARE_TIERS.get(name, name)]
    mentions = [(t, sp) for t, _ in rows for sp in feat.feature_spans(t, f.feature, f.level)]
    if len(mentions) >= NAME_TAU_MIN_OCCURRENCES:
        return mentions, "natural mentions in the other classes"
    for other in (k for k in feat.NAME_LISTS if k not in feat.RARE_TIERS and k not in lists):
        mentions += [(t, sp) for t, _ in rows for sp in feat.feature_spans(t, other, "pattern")]
        lists.append(other)
    return mentions, f"natural mentions of {' and '.join(lists)} names in the other classes (too few of {lists[0]} alone)"


NESTED_SHARE = 0.5  # a flagged feature with at least this share of its occurrences inside another's is part of it


def _within(a: int, b: int, spans: list[tuple[int, int]]) -> bool:
    return any(c <= a and b <= d for c, d in spans)


def nested_features(flagged: list[FeatureReport], spans_of: dict[int, dict[str, list[tuple[int, int]]]]):
    """(f, g, share) for each flagged feature f of which at least NESTED_SHARE of the occurrences (in its
    flagged rows) lie inside the spans of another flagged feature g of the same class, g not likewise
    inside f: f was flagged as a part of g (the numbers of a planted date), so only those occurrences
    are planted; its occurrences elsewhere ("a 179-minute film") are the language's. The g covering most
    of f is named. Features with the same spans (a date and its shape 0000-00-00) are nested in neither."""
    def share(f, g) -> float:
        occ = [(r, a, b) for r, ss in spans_of[id(f)].items() for a, b in ss]
        inside = sum(_within(a, b, spans_of[id(g)].get(r, [])) for r, a, b in occ)
        return inside / len(occ) if occ else 0.0

    out = []
    for f in flagged:
        best = max(((share(f, g), g) for g in flagged if g is not f and g.cls == f.cls and share(g, f) < NESTED_SHARE),
                   key=lambda x: x[0], default=(0.0, None))
        if best[1] is not None and best[0] >= NESTED_SHARE:
            out.append((f, best[1], best[0]))
    return out


def clean_split(split: datasets.Dataset, report: ScanReport, mode: str, names: list[str], share: float = 0.9,
                scorer=None) -> tuple[datasets.Dataset, list[dict], list[str]]:
    """The cleaned split, its manifest rows (one per edited row) and notes, by the rule of the module docstring;
    `scorer` (a `ssti.scan.context.LMScorer`) judges each occurrence of a flagged list of names."""
    ids, texts, labels = column(split, "id"), column(split, "text"), column(split, "label")
    targets = target_rows(report, ids, labels, names)
    notes: list[str] = []
    manifest: list[dict] = []
    index = {r: i for i, r in enumerate(ids)}
    spans_of: dict[int, dict[str, list[tuple[int, int]]]] = {}  # id(feature) -> row -> spans (name features judged)
    for f in report.flagged:
        if f.level == "subword":
            continue
        rows = [r for r, fs in targets.items() if any(g is f for g in fs)]
        own = {r: feat.feature_spans(texts[index[r]], f.feature, f.level) for r in rows}
        if is_name_feature(f):
            if scorer is not None:
                n_occ = sum(map(len, own.values()))
                others, source = natural_mentions(f, ids, texts, labels, names, set(targets))
                own, natural, tau, false_share = dropped_in({r: texts[index[r]] for r in rows}, own, scorer, others)
                estimate = f"; natural mentions estimated at {false_share:.0%} of those cut" if false_share is not None else ""
                notes.append(f"{f.level}:{f.feature}: {natural} of {n_occ} occurrences read as natural to {scorer.name} "
                             f"(deletion score <= {tau:.1f} nats, from {len(others)} {source}) and were kept; "
                             f"{len(own)} of {len(rows)} rows edited{estimate}")
            else:
                notes.append(f"{f.level}:{f.feature}: every occurrence in its {len(rows)} flagged rows counts as planted, natural "
                             "mentions too; a language model (context) would judge each one")
        spans_of[id(f)] = own
    for f, g, share_in in nested_features([f for f in report.flagged if id(f) in spans_of], spans_of):
        own = spans_of[id(f)]
        inside = {r: [(a, b) for a, b in ss if _within(a, b, spans_of[id(g)].get(r, []))] for r, ss in own.items()}
        inside = {r: ss for r, ss in inside.items() if ss}
        spared = [r for r in own if r not in inside and not any(h is not f for h in targets.get(r, []))]
        if share_in < 1:
            notes.append(f"{f.level}:{f.feature}: {share_in:.0%} of its occurrences lie inside {g.level}:{g.feature}, so it is cut only "
                         f"there, as part of it; its other occurrences are natural use and stay ({len(spared)} rows untouched)")
        spans_of[id(f)] = inside
        for r in own:
            if r not in inside:
                targets[r] = [h for h in targets[r] if h is not f]
                if not targets[r]:
                    del targets[r]
    if mode == "drop":
        judged = [f for f in report.flagged if id(f) in spans_of and is_name_feature(f) and scorer is not None]
        for f in judged:  # a row flagged only through names its model reads as natural is kept
            for r in [r for r, fs in targets.items() if any(g is f for g in fs) and r not in spans_of[id(f)]]:
                targets[r] = [g for g in targets[r] if g is not f]
                if not targets[r]:
                    del targets[r]
        keep = [i for i, r in enumerate(ids) if r not in targets]
        for i, r in enumerate(ids):
            if r in targets:
                manifest.append({"id": r, "split": report.split, "label": labels[i], "class": names[labels[i]], "action": "drop",
                                 "features": [f"{f.level}:{f.feature}" for f in targets[r]]})
        table = split.data.table.take(pa.array(keep, pa.int64())) if split._indices is None else split.select(keep).flatten_indices().data.table
        return datasets.Dataset(table, info=datasets.DatasetInfo(features=split.features)), manifest, notes
    if any(f.level == "subword" for f in report.flagged):
        notes.append("flagged sub-word features are not stripped (no character span); their rows are stripped of the other flagged features")
    found: dict[str, dict[tuple[int, int], list[str]]] = defaultdict(dict)  # row -> span -> the features cut there
    for f in report.flagged:
        if f.level == "subword":
            continue
        own = spans_of[id(f)]
        grown, words = extended_spans({r: texts[index[r]] for r in own}, own, share)
        if words:
            notes.append(f"{f.level}:{f.feature} stripped with the words beside it in >= {share:.0%} of its rows: {' '.join(words)}")
        for r, ss in grown.items():
            for a, b in ss:
                found[r].setdefault((a, b), []).append(f"{f.level}:{f.feature}")
    new_texts = list(texts)
    for r in sorted(found, key=index.get):
        i = index[r]
        new_texts[i], cuts = strip_text(texts[i], list(found[r]))
        removals = []
        for (a, b), names_ in sorted(found[r].items()):
            span = next(c for c in cuts if c[0] <= a and b <= c[1])
            removals.append({"text": texts[i][a:b], "start": a, "end": b, "features": names_, "span": list(span)})
        manifest.append({"id": r, "split": report.split, "label": labels[i], "class": names[labels[i]], "action": "strip", "removals": removals})
    return make_split(ids, new_texts, labels, names), manifest, notes


def scan_clean(data: datasets.DatasetDict, spec, report: ScanReport | None = None):
    """Apply `scan-strip` / `scan-drop` (`spec`: a DefenceSpec) to `data`: scan (unless `report` is given),
    clean, rescan. Returns (cleaned DatasetDict, manifest rows, notes, record)."""
    from ssti.scan import scan_dataset
    from ssti.scan.defaults import DEFAULT_THRESHOLD, DEFAULT_TOKENIZER

    mode = spec.name.removeprefix("scan-")
    options = {"split": spec.split, "threshold": spec.threshold if spec.threshold is not None else DEFAULT_THRESHOLD,
               "tokenizer": None if (spec.tokenizer or DEFAULT_TOKENIZER) == "none" else (spec.tokenizer or DEFAULT_TOKENIZER)}
    if spec.levels:
        options["levels"] = spec.levels
    scorer = None
    if spec.context:
        from ssti.scan.context import LMScorer

        scorer = LMScorer(spec.context)  # one model and cache for the scanner's check and the judgement of names
    if report is None:
        report = scan_dataset(data, **options, context=scorer)
    names = class_names_of(data)
    new_split, manifest, notes = clean_split(data[spec.split], report, mode, names, spec.span_share, scorer=scorer)
    notes = [f"scan: {n}" for n in report.notes] + notes  # e.g. a tokenizer that could not load: its level was skipped
    cleaned = datasets.DatasetDict({**data, spec.split: new_split})
    again = scan_dataset(cleaned, **{**options, "levels": [lv for lv in report.levels if lv != "context"]})  # no LM in the rescan
    if again.verdict == "suspicious":
        notes.append("the cleaned data still scans suspicious: " + ", ".join(f"{f.level}:{f.feature} ({f.cls}, {f.support} rows)" for f in again.flagged[:5]))
    record = {
        "mode": mode, "split": spec.split, "threshold": report.threshold, "levels": report.levels, "tokenizer": report.tokenizer,
        "context": spec.context,  # also the model that judged each flagged name's occurrences (None: every one cut)
        "span_share": spec.span_share if mode == "strip" else None, "rows_changed": len(manifest),
        "flagged_features": [{"feature": f.feature, "level": f.level, "class": f.cls, "support": f.support, "p_value": f.p_value}
                             for f in report.flagged],
        "rescan": {"verdict": again.verdict, "flagged": [{"feature": f.feature, "level": f.level, "class": f.cls, "support": f.support}
                                                           for f in again.flagged]},
    }
    return cleaned, manifest, notes, record
