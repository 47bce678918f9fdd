"""The context check (opt-in, ``ssti scan --context MODEL``): do a feature's occurrences read as dropped in?

Class statistics cannot tell a planted token from language that happens to predict the label as
well: on BBC News "cf" planted in 77 entertainment articles is as pure as the topic word "tory" (106
politics articles and no other), and planted country names drown in the thousand natural ones. What
SSTI does that language does not is to put its tokens *anywhere*: "Blue Iraq Crush is anything but".
A causal language model tells the two apart. For one occurrence, the **deletion score** is

    d = log P(window without the occurrence) - log P(window with it)      (nats)

over a window of about 100 characters before and 50 after it: large when the text reads better
without the token. Occurrences at the very start of a text (no left context) are not scored.

The null is read off the scan itself. SSTI plants a token type in the rows of the class it steers, so
most classes hold only natural occurrences of it: the threshold tau is the smallest, over the classes
with at least `MIN_CALIBRATION` scored occurrences, of the 99.8th percentile of the deletion scores in
that class (pooled over the checked features). One planted class can raise its own percentile, not
the smallest one. An occurrence with d > tau is *out of context*. Why 99.8 (measured with SmolLM2-135M,
`benchmarks/scan_quality.py`): at the 99th percentile (tau 11.6 nats on BBC News) natural country
names in 36 other-class articles read as dropped in and hid 77 planted ones; at 99.8 (15.7 nats) 5
do, and 71 articles of the planted class still pass, enough to flag it.

Each checked feature f gives a derived feature ``<level>:<f>`` at the level ``context``, present in
the documents with an out-of-context occurrence of f; the scanner tests it like the others (a
priori allowance and error share as the pattern level). Which features are checked: every pattern
class found (a rare tier is checked as its whole list) and the `top_words` best-ranked words, except
those the class statistics flag already, each only when it has at most `max_occurrences` occurrences
(the model's time is the cost: about 0.1 s per occurrence on a 2-core CPU with the embedded
SmolLM2-135M; the scores are cached by window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ssti.errors import SSTIError
from ssti.scan import features as feat

LEFT_CHARS, RIGHT_CHARS = 100, 50
MIN_CALIBRATION = 200  # scored occurrences a class needs to give a percentile
TAU_PERCENTILE = 99.8


def deletion_window(text: str, span: tuple[int, int], left: int = LEFT_CHARS, right: int = RIGHT_CHARS,
                    at_start: bool = False) -> tuple[str, str] | None:
    """The (with, without) texts around one occurrence, cut at word boundaries; None at the text start
    unless `at_start` (then the window is scored from the BOS token alone, as a text opening)."""
    a, b = span
    lo = max(0, a - left)
    if lo > 0 and not text[lo - 1].isspace():  # started mid-word: begin at the next word
        cut = text.find(" ", lo, a)
        lo = cut + 1 if cut >= 0 else lo
    before = text[lo:a]
    if not before.strip():
        if not at_start:
            return None
        before = ""
    after = text[b:b + right]
    if b + right < len(text) and not text[b + right].isspace() and " " in after:  # ends mid-word: end at the last whole one
        after = after[:after.rfind(" ")]
    with_it = before + text[a:b] + after
    without = before.rstrip() + (" " if before and after.strip() else "") + after.lstrip()
    return with_it, without


class LMScorer:
    """Log-probabilities of texts under a causal LM (any `ssti models` name), cached by text."""

    def __init__(self, model: str, batch_size: int = 32):
        import torch

        from ssti.models import load_tokenizer
        from ssti.models.precision import auto_dtype
        from ssti.models.loading import load_backbone
        from ssti.models.registry import resolve_model

        entry = resolve_model(model, "context")
        if entry.arch != "decoder":
            raise SSTIError(f"context: {model} is an encoder; the context check needs a causal LM (a decoder), e.g. smollm2-135m")
        self.name = model
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = auto_dtype(self.device, "infer")
        self.tokenizer = load_tokenizer(model)
        self.model = load_backbone(entry, causal_lm=True, dtype=dtype).to(self.device).eval()
        self.batch_size = batch_size
        self.cache: dict[str, float] = {}
        self.tokens: dict[str, int] = {}  # tokens scored per cached text

    def logprob(self, texts: Sequence[str]) -> np.ndarray:
        """Sum of the token log-probabilities of each text after a BOS token (nats), from cache when seen."""
        import torch

        from ssti.models.batching import pad_batch

        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            bos = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
            ids = [[bos] + x for x in self.tokenizer(todo, add_special_tokens=False)["input_ids"]]
            order = np.argsort([len(x) for x in ids], kind="stable")
            pad = self.tokenizer.pad_token_id or 0
            with torch.inference_mode():
                for i in range(0, len(order), self.batch_size):
                    rows = order[i:i + self.batch_size]
                    batch, mask = pad_batch(ids, rows, pad, self.device)
                    logits = self.model(input_ids=batch, attention_mask=mask).logits[:, :-1].float()
                    # log-softmax of the next tokens only: no second vocabulary-sized tensor
                    lp = (logits.gather(-1, batch[:, 1:, None])[..., 0] - torch.logsumexp(logits, -1)) * mask[:, 1:]
                    for j, v, n in zip(rows, lp.sum(1).tolist(), mask[:, 1:].sum(1).tolist()):
                        self.cache[todo[j]] = v
                        self.tokens[todo[j]] = int(n)
        return np.array([self.cache[t] for t in texts], dtype=float)

    def log_perplexity(self, texts: Sequence[str]) -> np.ndarray:
        """Mean negative log-likelihood per token of each text (nats; ONION's perplexity, in logs)."""
        lp = self.logprob(texts)
        return -lp / np.maximum([self.tokens[t] for t in texts], 1)

    def deletion_scores(self, windows: Sequence[tuple[str, str]]) -> np.ndarray:
        """d = log P(without) - log P(with) for each (with, without) window pair."""
        if not windows:
            return np.zeros(0)
        lp = self.logprob([w for pair in windows for w in pair]).reshape(-1, 2)
        return lp[:, 1] - lp[:, 0]


@dataclass
class ContextResult:
    """What the context check found: derived features (name -> documents), the threshold, notes."""

    features: dict[str, np.ndarray] = field(default_factory=dict)
    tau: float | None = None
    checked: int = 0
    notes: list[str] = field(default_factory=list)


def candidates(fs: feat.FeatureSet, score: np.ndarray, flagged: np.ndarray, top_words: int) -> list[int]:
    """Feature codes to check: every pattern class (a rare tier as its whole list) and the best words,
    except those the class statistics already flag (with a rare tier, the list), whose case is made."""
    levels = np.asarray(fs.levels)
    done = {fs.names[i] for i in np.where(flagged & (levels == "pattern"))[0]}
    done |= {parent for tier, parent in feat.RARE_TIERS.items() if tier in done}
    out = [i for i in np.where(levels == "pattern")[0] if fs.names[i] not in feat.RARE_TIERS and fs.names[i] not in done]
    words = np.where((levels == "word") & ~flagged)[0]
    out += words[np.argsort(-score[words], kind="stable")[:top_words]].tolist()
    return [int(i) for i in out]


def context_check(texts: Sequence[str], labels: np.ndarray, fs: feat.FeatureSet, docs_of: dict[int, np.ndarray],
                  codes: Sequence[int], scorer: LMScorer, explained: Sequence[tuple[str, str]] = (),
                  max_occurrences: int = 5000) -> ContextResult:
    """Score every occurrence of the features `codes` (documents from `docs_of`) and derive, per feature,
    the documents holding an out-of-context occurrence (see the module docstring).

    Occurrences inside a span of an `explained` feature, (name, level) pairs the class statistics
    flag already, are left out: the digits of a flagged planted date are not news about numbers.
    """
    res = ContextResult()
    taken: dict[int, list[tuple[int, int]]] = {}

    def free(d: int, span: tuple[int, int]) -> bool:
        if d not in taken:
            taken[d] = [sp for name, level in explained for sp in feat.feature_spans(texts[d], name, level)]
        return not any(a < span[1] and span[0] < b for a, b in taken[d])

    found = []  # (code, doc index per occurrence, windows)
    for c in codes:
        docs, windows = [], []
        for d in docs_of[c]:
            for span in feat.feature_spans(texts[d], fs.names[c], fs.levels[c]):
                w = deletion_window(texts[d], span) if free(int(d), span) else None
                if w is not None:
                    docs.append(d)
                    windows.append(w)
        if len(windows) > max_occurrences:
            res.notes.append(f"context check skipped {fs.levels[c]}:{fs.names[c]} ({len(windows):,} occurrences > {max_occurrences:,})")
            continue
        if windows:
            found.append((c, np.asarray(docs, dtype=np.int64), windows))
    if not found:
        return res
    all_docs = np.concatenate([d for _, d, _ in found])
    occ_class = labels[all_docs]
    calibrating = [k for k in np.unique(occ_class) if (occ_class == k).sum() >= MIN_CALIBRATION]
    if not calibrating:  # known before any scoring: the model is not run for nothing
        res.notes.append(f"context check not run: no class has {MIN_CALIBRATION} occurrences of the checked features to calibrate on "
                         f"(most: {int(np.bincount(occ_class).max()):,})")
        return res
    per_feature = [(c, docs, scorer.deletion_scores(windows)) for c, docs, windows in found]
    res.checked = len(per_feature)
    all_scores = np.concatenate([s for _, _, s in per_feature])
    per_class = [np.percentile(all_scores[occ_class == k], TAU_PERCENTILE) for k in calibrating]
    res.tau = float(min(per_class))
    for c, docs, scores in per_feature:
        hit = np.unique(docs[scores > res.tau])
        if len(hit):
            res.features[f"{fs.levels[c]}:{fs.names[c]}"] = hit
    return res
