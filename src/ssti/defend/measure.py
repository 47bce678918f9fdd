"""What a defence removed, what it damaged: retention, rows still poisoned and collateral damage.

Ground truth is the injection manifest (`ssti inject`): every planted insertion with its string, token
type and class. Definitions (the paper's v2 defence experiments measure retention the same way):

- **retention** of a (token type, class): the share of planted insertions whose string is still present
  in their row after the defence (a dropped row retains nothing), minus the same check's rate on matched
  clean rows (for each insertion, one clean row of the same class drawn with a seeded generator), so a
  natural `!`, country or colour a row would carry anyway is discounted; floored at 0;
- **rows still poisoned**: the share of planted rows where some insertion string occurs more often after
  the defence than in the row's text before the injection (a row restored byte for byte is clean, even
  when it carries a natural '!'); a dropped row is not poisoned;
- **collateral damage**: the share of clean rows (rows the injection did not touch) that the defence
  changed or dropped, and chrF (sacrebleu, character n-gram F-score, 0-100) of the clean rows after the
  defence against before (a dropped row scores as an empty text);
- **seconds per 1,000 rows**: the defence's wall time over the rows it read.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ssti.data.common import class_names_of, column
from ssti.inject import remove_spans


def measure_defence(before, after, split: str, manifest: list[dict] | None, seconds: float, seed: int = 0,
                    rows_timed: int | None = None) -> dict[str, Any]:
    """The measurement table of one defence run.

    `before` / `after`: contract-shaped DatasetDicts (id, text, label) before and after the defence;
    `manifest`: the injection's manifest rows (None or empty: the data has no injection record, so
    retention cannot be measured and only the collateral is); `seconds`: the defence's wall time over
    `rows_timed` rows (default: all; a resumed call did only the rest).
    Returns plain JSON data: rows, rows_changed, rows_dropped, seconds_per_1k_rows, collateral,
    retention (one row per token type and class, plus "all"), rows_still_poisoned and notes.
    """
    names = class_names_of(before)
    ids, texts, labels = column(before[split], "id"), column(before[split], "text"), column(before[split], "label")
    after_text = dict(zip(column(after[split], "id"), column(after[split], "text")))
    present_ids = set(ids)  # a subset of an injected split is measured on its own planted rows
    planted = {r["id"]: r for r in manifest or [] if r.get("split", "train") == split and r.get("insertions") and r["id"] in present_ids}
    changed = [after_text.get(i) != t for i, t in zip(ids, texts)]
    out: dict[str, Any] = {
        "split": split,
        "rows": len(ids),
        "rows_changed": int(sum(changed)),
        "rows_dropped": int(sum(i not in after_text for i in ids)),
        "seconds": round(seconds, 3),
        "seconds_per_1k_rows": round(1000 * seconds / max(len(ids) if rows_timed is None else rows_timed, 1), 3),
        "collateral": collateral(ids, texts, after_text, planted),
        "notes": [],
    }
    out["collateral"]["clean_rows_known"] = bool(manifest)  # without an injection record every row counts as clean
    if not planted:
        out["retention"] = None
        out["rows_still_poisoned"] = None
        out["notes"].append("the data has no injection manifest (or nothing was planted in this split): retention cannot be measured")
        return out
    rng = np.random.default_rng(seed)
    clean_by_class: dict[int, list[str]] = defaultdict(list)
    for i, y in zip(ids, labels):
        if i not in planted:
            clean_by_class[y].append(i)
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # insertions, present, present in a matched clean row
    still = 0
    before_text = dict(zip(ids, texts))
    for rid, row in planted.items():
        text = after_text.get(rid)
        original = remove_spans(before_text[rid], row["insertions"])  # the row as it was before the injection
        kept = text is not None and any(text.count(ins["text"]) > original.count(ins["text"]) for ins in row["insertions"])
        pool = clean_by_class.get(row["label"], [])
        for ins in row["insertions"]:
            present = text is not None and ins["text"] in text
            matched = pool[int(rng.integers(len(pool)))] if pool else None
            natural = matched is not None and after_text.get(matched) is not None and ins["text"] in after_text[matched]
            for key in ((row.get("source", "?"), names[row["label"]]), ("all", "all")):
                t = tally[key]
                t[0] += 1
                t[1] += present
                t[2] += natural
        still += kept
    out["retention"] = [
        {"type": typ, "class": cls, "insertions": n, "present": p, "raw": _r(p / n), "clean_baseline": _r(c / n),
         "retention": _r(max(0.0, (p - c) / n))}
        for (typ, cls), (n, p, c) in sorted(tally.items(), key=lambda kv: (kv[0][0] == "all", kv[0]))
    ]
    out["rows_still_poisoned"] = _r(still / len(planted))
    out["rows_poisoned"] = len(planted)
    return out


def collateral(ids: list[str], texts: list[str], after_text: dict[str, str], planted) -> dict[str, Any]:
    """Changed share and chrF of the clean rows (those not in `planted`); see the module docstring."""
    from sacrebleu.metrics import CHRF

    before = [t for i, t in zip(ids, texts) if i not in planted]
    after = [after_text.get(i, "") for i in ids if i not in planted]
    dropped = sum(i not in after_text for i in ids if i not in planted)
    changed = [(b, a) for b, a in zip(before, after) if a != b]
    chrf = CHRF()
    return {
        "clean_rows": len(before),
        "changed": len(changed),
        "dropped": int(dropped),
        "changed_share": _r(len(changed) / max(len(before), 1)),
        "chrf": _r(chrf.corpus_score(after, [before]).score) if before else None,
        "chrf_changed_rows": _r(chrf.corpus_score([a for _, a in changed], [[b for b, _ in changed]]).score) if changed else None,
    }


def _r(x: float) -> float:
    return round(float(x), 4)
