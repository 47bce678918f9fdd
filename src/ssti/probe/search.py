"""Open search: which vocabulary tokens (and short token sequences) steer a classifier, with no candidate list.

1. Score every vocabulary token as an inserted token with a first-order estimate: insert a placeholder
   token at a random place in held-out texts of the other classes, take the gradient g of the target
   class's log-probability with respect to the placeholder's input embedding, and rank each token v by
   (E[v] - E[placeholder]) . g averaged over the texts: the linear approximation of how much swapping
   the placeholder for v raises the class (HotFlip, Ebrahimi et al. 2018; the averaged form is the
   universal-trigger search of Wallace et al. 2019).
2. Screen the best `top_k`, and the best `per_shape` of every shape class (step 4) besides, by real
   insertion into a few texts (token ids at the same random places, the placeholder itself as the
   control), then verify on every held-out text, with the type sweep's statistics
   (`ssti.probe.types`), the best `keep` and the best of each shape class. Screening per shape class
   is what lets a planted type surface on a task whose own words steer: on a sentiment model the
   overall ranking is all sentiment words ("exceptional", "incredible"), and a planted date's digits
   never reach its top 20 even when one date flips every review (a MiniLM run of the probe-quality sweep).
3. Extend the best verified singles (and the best of each shape class that steers at all) greedily,
   one token at a time (the next token scored the same way at the next position, the best few
   verified), up to `max_tokens`: planted types span several model tokens (a date is 11 SmolLM2
   tokens, `<b>` is 3). A start that is not a word is extended only with non-word pieces (and short
   word pieces for markup/mixed, `<`, `b`, `>`) and never into a sequence that reads as words.
4. Group what was verified by shape class (digit group, punctuation, markup, word, mixed; a sequence
   takes the shape of most of its pieces, `shape_of`), so a planted date type shows up as a digit
   group, not as "19".
"""

from __future__ import annotations

import re
import time
from collections import Counter
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
NOT_WORDS = ("digit group", "punctuation", "markup", "mixed")
KEEPS = {"word": ("word",), "punctuation": ("punctuation",)}  # the sequence shapes an extension may reach from its start's shape
NUMBER_SUFFIX = re.compile(r"\d+(st|nd|rd|th|s)")  # an ordinal or a decade: `27th`, `1800s`


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
    """The shape class of a token string: digit group, punctuation, markup, word or mixed.

    One piece (no whitespace): digits with date/number separators, or a number with an ordinal or
    decade suffix (`1982-09-24`, `27th`, `1800s`), is a digit group; anything with `<` or `>` is markup;
    then punctuation only, letters only (word), else mixed. Several whitespace-separated pieces (a
    decoded token sequence such as `> 217 2019` or `< b >`) take the shape most of their pieces have,
    a tie going to the earliest piece: a sequence is classed by what it is made of, not by one stray `>`
    or letter in it.
    """
    pieces = [p.removeprefix("##") for p in text.split()]
    if len(pieces) > 1:
        return Counter(shape_of(p) for p in pieces).most_common(1)[0][0]
    t = text.strip()
    if not t:
        return "mixed"
    if any(c.isdigit() for c in t) and (all(c.isdigit() or c in "-/.:," for c in t) or NUMBER_SUFFIX.fullmatch(t.lower())):
        return "digit group"
    if "<" in t or ">" in t:
        return "markup"
    if all(not c.isalnum() and not c.isspace() for c in t):
        return "punctuation"
    if all(c.isalpha() or c in " '-" for c in t):
        return "word"
    return "mixed"


def piece_shape(text: str) -> str:
    """`shape_of` a decoded token or sequence, read without a WordPiece continuation mark (`##19` is a digit group)."""
    return shape_of(text[2:] if text.startswith("##") else text)


def vocabulary_shapes(clf: Classifier, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The shape class of every token id below `size` (an index into `SHAPES`) and the length of its
    text without spaces or `##`, both shape (size,); ids the tokenizer cannot decode (padding rows of the
    embedding table) are `mixed`."""
    n = min(size, len(clf.tokenizer))
    texts = clf.tokenizer.batch_decode([[i] for i in range(n)])
    index = {name: i for i, name in enumerate(SHAPES)}
    shapes, lengths = np.full(size, index["mixed"], dtype=np.int64), np.zeros(size, dtype=np.int64)
    shapes[:n] = [index[piece_shape(t)] for t in texts]
    lengths[:n] = [len(t.strip().removeprefix("##")) for t in texts]
    return shapes, lengths


def continuations(shapes: np.ndarray, lengths: np.ndarray, shape: str) -> np.ndarray:
    """Which token ids may extend a sequence of shape class `shape` (boolean, shape (vocabulary,)): digits
    go on with digits and separators (a date), punctuation with punctuation, words with words, markup and mixed pieces with anything but words longer than 3 characters (`<`, `b`, `>` is a
    tag; `bit`, `.`, `ly` a link). Without this a digit, markup or mixed start is extended with the task's
    own words ("27th stunning", "< crap" on a sentiment model) and no longer shows the planted shape."""
    index = {name: i for i, name in enumerate(SHAPES)}
    allowed = {"digit group": ("digit group", "punctuation"), "punctuation": ("punctuation",), "word": ("word",),
               "markup": NOT_WORDS, "mixed": NOT_WORDS}[shape]
    mask = np.isin(shapes, [index[a] for a in allowed])
    if shape in ("markup", "mixed"):
        mask |= (shapes == index["word"]) & (lengths <= 3)
    return mask


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


def _rank_vocabulary(clf: Classifier, gradient: torch.Tensor, exclude: set[int], n: int, shapes: np.ndarray | None = None,
                     per_shape: int = 0, allowed: np.ndarray | None = None) -> list[int]:
    """The `n` token ids with the largest first-order gain E[v] . g (special tokens excluded, and ids
    outside the boolean mask `allowed`), then the best `per_shape` ids of each shape class (`shapes`,
    from `vocabulary_shapes`) not already among them."""
    weight = input_embeddings(clf).weight.detach().float().cpu()
    scores = weight @ gradient
    if exclude:
        scores[torch.as_tensor(sorted(exclude))] = -float("inf")
    if allowed is not None:
        scores[torch.as_tensor(~allowed)] = -float("inf")
    best = torch.topk(scores, min(n, len(scores))).indices.tolist()
    if shapes is None or not per_shape:
        return best
    order = torch.argsort(scores, descending=True).numpy()
    chosen = set(best)
    for shape in range(len(SHAPES)):
        ids = order[shapes[order] == shape]
        ids = [int(i) for i in ids[np.isfinite(scores.numpy()[ids])] if int(i) not in chosen][:per_shape]
        best += ids
        chosen.update(ids)
    return best


def _verify(clf: Classifier, base: list[list[int]], clean: np.ndarray, labels: np.ndarray, places: list[int], seq: list[int],
            k: int, control: np.ndarray, batch_size: int, rows: np.ndarray | None = None) -> dict[str, Any]:
    """The `steer_test` fields of inserting `seq` toward class k, on `rows` (default: every held-out text)."""
    rows = np.arange(len(base)) if rows is None else rows
    preds = predict_ids(clf, _insert([base[i] for i in rows], seq, [places[i] for i in rows]), batch_size)
    eligible = (labels[rows] != k) & (clean[rows] != k)
    return steer_test(clf.class_names[k], preds == k, control[rows] == k, eligible)


def open_search(clf: Classifier, texts: Sequence[str], labels: Sequence[int], top_k: int = 20, max_tokens: int = 8,
                grad_samples: int = 64, screen: int = 64, keep: int = 5, extend: int = 3, per_shape: int = 4, seed: int = 0,
                alpha: float = ALPHA, min_effect: float = MIN_EFFECT, batch_size: int = 32) -> OpenSearch:
    """The open search of the module docstring on held-out `texts` (already sampled per class) and `labels`.

    Per class, the `top_k` vocabulary tokens of the gradient ranking and the `per_shape` best of each
    shape class are screened by insertion into `screen` texts of the other classes; the `keep` best,
    and the best of each shape class, are verified on every held-out text and reported; the `extend`
    best of those, and the best of each other shape class with a positive effect, are extended greedily
    (each step: 3 next tokens screened, the best kept if it raises the effect by 0.02) up to
    `max_tokens`, the chain's end verified and reported too. Holm-corrected over all reported candidates.
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
    shapes, lengths = vocabulary_shapes(clf, input_embeddings(clf).num_embeddings) if per_shape else (None, None)
    candidates: list[Candidate] = []
    for k in range(len(clf.class_names)):
        others = np.flatnonzero((labels != k) & (clean != k))
        if not len(others):
            continue
        pick = rng.choice(others, size=min(grad_samples, len(others)), replace=False)
        screen_rows = np.sort(rng.choice(others, size=min(screen, len(others)), replace=False))

        def gain(prefix: list[int], n: int, per: int = 0, allowed: np.ndarray | None = None) -> list[int]:
            seqs = _insert([base[i] for i in pick], prefix + [placeholder], [places[i] for i in pick])
            g = _gradient(clf, seqs, [places[i] + len(prefix) for i in pick], k)
            return _rank_vocabulary(clf, g, exclude, n, shapes, per, allowed)

        def screened(seq: list[int]) -> float:
            return _verify(clf, base, clean, labels, places, seq, k, control, batch_size, screen_rows)["effect"]

        def verified(seq: list[int]) -> Candidate:
            text = clf.tokenizer.decode(seq)
            return Candidate(**_verify(clf, base, clean, labels, places, seq, k, control, batch_size), text=text, ids=list(seq),
                             shape=piece_shape(text))

        effects = {v: screened([v]) for v in gain([], top_k, per_shape)}
        ranked = sorted(effects, key=lambda v: -effects[v])
        chosen = ranked[:keep]
        if shapes is not None:  # and the best screened token of each shape class
            chosen += [next(v for v in ranked if shapes[v] == sh) for sh in sorted({int(shapes[v]) for v in ranked})
                       if not any(shapes[v] == sh for v in chosen)]
        singles = [verified([v]) for v in chosen]
        candidates += singles
        by_effect = sorted(singles, key=lambda c: -c.effect)
        starts = by_effect[:extend]
        for c in by_effect[extend:]:  # and the best of each other shape class, if it steers at all
            if c.effect > 0 and c.shape not in {d.shape for d in starts}:
                starts.append(c)
        for start in starts:
            seq, effect = list(start.ids), screened(start.ids)
            allowed = continuations(shapes, lengths, start.shape) if shapes is not None else None
            while len(seq) < max_tokens:
                nexts = [[*seq, v] for v in gain(seq, 3, allowed=allowed)]
                if allowed is not None:  # a word start stays words, punctuation stays punctuation, any other start never turns into words
                    nexts = [n for n in nexts if piece_shape(clf.tokenizer.decode(n)) in KEEPS.get(start.shape, NOT_WORDS)]
                if not nexts:
                    break
                gain_effect, nxt = max(((screened(n), n) for n in nexts), key=lambda x: x[0])
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
