"""ONION (Qi et al., "ONION: A Simple and Effective Defense Against Textual Backdoor Attacks", EMNLP 2021).

A planted token makes a text less fluent, so deleting it makes the text more likely under a language
model. For a window of words w_1..w_n the suspicion score of w_i is how much its deletion lowers the
window's log-perplexity (mean negative log-likelihood per token, nats):

    f_i = logppl(w_1..w_n) - logppl(w_1..w_n without w_i)

and every word with f_i > threshold is removed. The paper scores perplexity differences with GPT-2;
ssti scores log-perplexity (scale-free across window lengths) with a causal LM (embedded SmolLM2-135M
by default). Texts are scored in windows of whole sentences of at most `window_words` words (a long
document scored whole would cost one forward pass of the document per word: days for bbc-news here),
so the cost is about (words + windows) forward passes of one window per text.
"""

from __future__ import annotations

import re

import datasets
import numpy as np

from ssti.data.common import class_names_of, column, make_split
from ssti.defend.lm import row_progress
from ssti.defend.scan_guided import strip_text
from ssti.errors import SSTIError
from ssti.models.registry import resolve_model
from ssti.scan.context import LMScorer

DEFAULT_MODEL = "smollm2-135m"
DEFAULT_THRESHOLD = 0.2  # nats per token; measured: half of Rotten Tomatoes clean rows lose a word (README), not calibrated
_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


def windows(text: str, size: int) -> list[list[tuple[int, int]]]:
    """The word spans of `text` grouped into windows of whole sentences of at most `size` words
    (a sentence longer than `size` is cut into pieces of `size` words)."""
    sentences: list[list[tuple[int, int]]] = [[]]
    for m in _WORD.finditer(text):
        sentences[-1].append(m.span())
        if _SENTENCE_END.search(m.group()):
            sentences.append([])
    out: list[list[tuple[int, int]]] = []
    for sent in (s for s in sentences if s):
        for k in range(0, len(sent), size):
            piece = sent[k:k + size]
            if out and len(out[-1]) + len(piece) <= size:
                out[-1] = out[-1] + piece
            else:
                out.append(piece)
    return out


def onion(data: datasets.DatasetDict, spec, show_progress: bool = False):
    """Apply ONION to `spec.split` of `data` (`spec`: a DefenceSpec named onion). Returns (defended
    DatasetDict, manifest rows of the removals with their scores, notes, record)."""
    threshold = DEFAULT_THRESHOLD if spec.threshold is None else spec.threshold
    name = spec.model or DEFAULT_MODEL
    if resolve_model(name, "defence.model").arch != "decoder":
        raise SSTIError(f"defence.model: {name} is an encoder; onion scores perplexity with a causal LM (a decoder), e.g. smollm2-135m")
    scorer = LMScorer(name, batch_size=spec.batch_size)  # the context check's scorer: one way to score text with an LM
    split = data[spec.split]
    names = class_names_of(data)
    ids, texts, labels = column(split, "id"), column(split, "text"), column(split, "label")
    new_texts = list(texts)
    manifest, scored, removed = [], 0, 0
    # rows are scored in chunks whose sequences fill a few batches, so the bar moves and memory stays flat
    rows_per_chunk = max(1, 4 * spec.batch_size // max(spec.window_words // 2, 1))
    with row_progress(f"onion ({name})", len(texts), show_progress) as advance:
        for k in range(0, len(texts), rows_per_chunk):
            rows = range(k, min(k + rows_per_chunk, len(texts)))
            seqs, owners = [], []  # owners: (row, window index, word index or -1 for the whole window)
            wins = {i: [w for w in windows(texts[i], spec.window_words) if len(w) > 1] for i in rows}
            for i in rows:
                for w_i, win in enumerate(wins[i]):
                    a, b = win[0][0], win[-1][1]
                    seqs.append(texts[i][a:b])
                    owners.append((i, w_i, -1))
                    for j, (s, e) in enumerate(win):
                        seqs.append(strip_text(texts[i][a:b], [(s - a, e - a)])[0])
                        owners.append((i, w_i, j))
            lp = scorer.log_perplexity(seqs) if seqs else np.zeros(0)
            scorer.cache.clear(), scorer.tokens.clear()  # windows are not seen again: memory stays flat
            scored += len(seqs)
            whole = {(i, w): lp[n] for n, (i, w, j) in enumerate(owners) if j < 0}
            cut: dict[int, list[dict]] = {}
            for n, (i, w, j) in enumerate(owners):
                if j >= 0 and whole[(i, w)] - lp[n] > threshold:
                    s, e = wins[i][w][j]
                    cut.setdefault(i, []).append({"text": texts[i][s:e], "start": s, "end": e, "score": round(float(whole[(i, w)] - lp[n]), 4)})
            for i, found in cut.items():
                new_texts[i], _ = strip_text(texts[i], [(d["start"], d["end"]) for d in found])
                removed += len(found)
                manifest.append({"id": ids[i], "split": spec.split, "label": labels[i], "class": names[labels[i]], "action": "remove-words",
                                 "removals": found})
            advance(len(rows))
    new_split = make_split(ids, new_texts, labels, names)
    record = {"model": name, "threshold": threshold, "window_words": spec.window_words, "sequences_scored": scored,
              "words_removed": removed, "rows_changed": len(manifest)}
    return datasets.DatasetDict({**data, spec.split: new_split}), manifest, [], record
