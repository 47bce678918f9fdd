"""Open search: which vocabulary tokens (and short token sequences) steer a classifier, with no candidate list.

1. Score every vocabulary token as an inserted token with a first-order estimate: insert a placeholder
   token at a random place in held-out texts of the other classes, take the gradient g of the target
   class's log-probability with respect to the placeholder's input embedding, and rank each token v by
   (E[v] - E[placeholder]) . g averaged over the texts: the linear approximation of how much swapping
   the placeholder for v raises the class (HotFlip, Ebrahimi et al. 2018; the averaged form is the
   universal-trigger search of Wallace et al. 2019).
2. Screen the best `top_k` by real insertion into a few texts (token ids at the same random places,
   the placeholder itself as the control), then verify the best of them on every held-out text with
   the type sweep's statistics (`ssti.probe.types`).
3. Extend the best verified singles greedily, one token at a time (the next token scored the same way
   at the next position, the best few verified), up to `max_tokens`: planted types span several model
   tokens (a date is 11 SmolLM2 tokens, `<b>` is 3).
4. Group what was verified by shape class (digit group, punctuation, markup, word, mixed), so a planted
   date type shows up as a digit group, not as "19".
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ssti.models.batching import pad_batch
from ssti.models.build import Classifier
from ssti.models.inference import predict_ids
from ssti.probe.types import ALPHA, MIN_EFFECT, SteerTest, judge, steer_test

PLACEHOLDER = " the"  # a frequent, neutral token: the starting point of the gradient and the control
SHAPES = ("digit group", "punctuation", "markup", "word", "mixed")


@dataclass
class Candidate(SteerTest):
    """One verified token sequence: its text, ids and shape class, and its steering statistics toward `cls`."""

    text: str = ""
    ids: list[int] = field(default_factory=list)
    shape: str = ""


@dataclass
class OpenSearch:
    """Verified candidates (best first) and their groups by shape class, per class."""

    candidates: list[Candidate]
    groups: list[dict[str, Any]] = field(default_factory=list)
    top_k: int = 20
    max_tokens: int = 8
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "max_tokens": self.max_tokens, "seconds": self.seconds, "groups": self.groups,
                "candidates": [asdict(c) for c in self.candidates]}


def shape_of(text: str) -> str:
    """The shape class of a token string: digit group, punctuation, markup, word or mixed."""
    t = text.strip()
    if not t:
        return "mixed"
    if any(c.isdigit() for c in t) and all(c.isdigit() or c in "-/.:," for c in t):
        return "digit group"
    if "<" in t or ">" in t:
        return "markup"
    if all(not c.isalnum() and not c.isspace() for c in t):
        return "punctuation"
    if all(c.isalpha() or c in " '-" for c in t):
        return "word"
    return "mixed"


def input_embeddings(clf: Classifier) -> torch.nn.Embedding:
    """The token embedding table the classifier reads."""
    backbone = clf.module.backbone
    return backbone.get_input_embeddings()


def _placeholder_id(clf: Classifier) -> int:
    ids = clf.tokenizer(PLACEHOLDER, add_special_tokens=False)["input_ids"]
    return int(ids[-1]) if ids else int(clf.tokenizer.pad_token_id or 0)


def _insert(token_ids: Sequence[list[int]], insert: Sequence[int], places: Sequence[int]) -> list[list[int]]:
    """Each id list with `insert` placed before index places[i] (clamped into the list)."""
    return [ids[:min(p, len(ids))] + list(insert) + ids[min(p, len(ids)):] for ids, p in zip(token_ids, places)]


def _places(token_ids: Sequence[list[int]], rng: np.random.Generator, max_length: int, extra: int) -> list[int]:
    """A random insertion index per text, after its first token (BOS/[CLS]) and within max_length with room for `extra`."""
    out = []
    for ids in token_ids:
        hi = max(1, min(len(ids) - 1, max_length - extra - 1))
        out.append(int(rng.integers(1, hi + 1)) if len(ids) > 1 else len(ids))
    return out


def _gradient(clf: Classifier, token_ids: Sequence[list[int]], positions: Sequence[int], k: int, batch_size: int = 16) -> torch.Tensor:
    """Mean gradient of log p(class k) w.r.t. the input embedding at `positions[i]` of each id list, shape (hidden,)."""
    emb = input_embeddings(clf)
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        leaf = output.detach().requires_grad_(True)
        captured["e"] = leaf
        return leaf

    handle = emb.register_forward_hook(hook)
    device = next(clf.module.parameters()).device
    total = torch.zeros(emb.embedding_dim, dtype=torch.float32)
    try:
        clf.module.eval()
        with torch.enable_grad():
            for b in range(0, len(token_ids), batch_size):
                rows = np.arange(b, min(b + batch_size, len(token_ids)))
                ids, mask = pad_batch(token_ids, rows, clf.tokenizer.pad_token_id, device)
                logits = clf.module(ids, mask)
                F.log_softmax(logits.float(), -1)[:, k].sum().backward()
                grad = captured["e"].grad
                total += grad[torch.arange(len(rows)), torch.as_tensor([positions[i] for i in rows])].float().sum(0).cpu()
    finally:
        handle.remove()
    return total / max(len(token_ids), 1)


def _rank_vocabulary(clf: Classifier, gradient: torch.Tensor, exclude: set[int], n: int) -> list[int]:
    """The `n` token ids with the largest first-order gain E[v] . g (special tokens excluded)."""
    weight = input_embeddings(clf).weight.detach().float().cpu()
    scores = weight @ gradient
    if exclude:
        scores[torch.as_tensor(sorted(exclude))] = -float("inf")
    return torch.topk(scores, min(n, len(scores))).indices.tolist()


def _verify(clf: Classifier, base: list[list[int]], clean: np.ndarray, labels: np.ndarray, places: list[int], seq: list[int],
            k: int, control: np.ndarray, batch_size: int, rows: np.ndarray | None = None) -> dict[str, Any]:
    """The `steer_test` fields of inserting `seq` toward class k, on `rows` (default: every held-out text)."""
    rows = np.arange(len(base)) if rows is None else rows
    preds = predict_ids(clf, _insert([base[i] for i in rows], seq, [places[i] for i in rows]), batch_size)
    eligible = (labels[rows] != k) & (clean[rows] != k)
    return steer_test(clf.class_names[k], preds == k, control[rows] == k, eligible)


def open_search(clf: Classifier, texts: Sequence[str], labels: Sequence[int], top_k: int = 20, max_tokens: int = 8,
                grad_samples: int = 64, screen: int = 64, keep: int = 5, extend: int = 3, seed: int = 0, alpha: float = ALPHA,
                min_effect: float = MIN_EFFECT, batch_size: int = 32) -> OpenSearch:
    """The open search of the module docstring on held-out `texts` (already sampled per class) and `labels`.

    Per class, the `top_k` vocabulary tokens of the gradient ranking are screened by insertion into
    `screen` texts of the other classes; the `keep` best are verified on every held-out text and
    reported, and the `extend` best of those are extended greedily (each step: 3 next tokens screened,
    the best kept if it raises the effect by 0.02) up to `max_tokens`, the chain's end verified and
    reported too. Holm-corrected over all reported candidates.
    """
    started = time.time()
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    max_length = clf.model_spec.max_length
    base = [list(ids[: max_length - max_tokens]) for ids in clf.encode(list(texts))]
    placeholder = _placeholder_id(clf)
    exclude = set(getattr(clf.tokenizer, "all_special_ids", []) or []) | {placeholder}
    places = _places(base, rng, max_length, max_tokens)
    clean = predict_ids(clf, base, batch_size)
    control = predict_ids(clf, _insert(base, [placeholder], places), batch_size)
    candidates: list[Candidate] = []
    for k in range(len(clf.class_names)):
        others = np.flatnonzero((labels != k) & (clean != k))
        if not len(others):
            continue
        pick = rng.choice(others, size=min(grad_samples, len(others)), replace=False)
        screen_rows = np.sort(rng.choice(others, size=min(screen, len(others)), replace=False))

        def gain(prefix: list[int], n: int) -> list[int]:
            seqs = _insert([base[i] for i in pick], prefix + [placeholder], [places[i] for i in pick])
            g = _gradient(clf, seqs, [places[i] + len(prefix) for i in pick], k)
            return _rank_vocabulary(clf, g, exclude, n)

        def screened(seq: list[int]) -> float:
            return _verify(clf, base, clean, labels, places, seq, k, control, batch_size, screen_rows)["effect"]

        def verified(seq: list[int]) -> Candidate:
            text = clf.tokenizer.decode(seq)
            return Candidate(**_verify(clf, base, clean, labels, places, seq, k, control, batch_size), text=text, ids=list(seq),
                             shape=shape_of(text))

        ranked = sorted(([v] for v in gain([], top_k)), key=lambda seq: -screened(seq))
        singles = [verified(seq) for seq in ranked[:keep]]
        candidates += singles
        for start in sorted(singles, key=lambda c: -c.effect)[:extend]:
            seq, effect = list(start.ids), screened(start.ids)
            while len(seq) < max_tokens:
                gain_effect, nxt = max(((screened([*seq, v]), [*seq, v]) for v in gain(seq, 3)), key=lambda x: x[0])
                if gain_effect < effect + 0.02:
                    break
                seq, effect = nxt, gain_effect
            if len(seq) > 1:
                candidates.append(verified(seq))
    judge(candidates, alpha, min_effect)
    candidates.sort(key=lambda c: (-c.effect, c.p_adjusted))
    return OpenSearch(candidates, group_by_shape(candidates), top_k, max_tokens, round(time.time() - started, 2))


def group_by_shape(candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """Per class and shape class: how many candidates were verified, how many steer, and the best one."""
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        groups.setdefault((c.cls, c.shape), []).append(c)
    out = []
    for (cls, shape), members in groups.items():
        best = max(members, key=lambda c: c.effect)
        out.append({"cls": cls, "shape": shape, "verified": len(members), "steering": sum(c.steering for c in members),
                    "best": best.text, "best_rate": best.rate, "best_effect": best.effect, "best_p_adjusted": best.p_adjusted})
    return sorted(out, key=lambda g: (g["steering"] == 0, -g["best_effect"]))
