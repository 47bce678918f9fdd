"""Where insertions go: word positions, their character offsets, and the one-pass text rebuild.

A word is a maximal run of non-whitespace (exactly what `str.split()` splits on). Position `i` in
[0, n_words] means "before word i" (i < n_words: insert `tok + " "` at the word's first character) or
"after the last word" (i == n_words: insert `" " + tok` right after it, so trailing whitespace stays
last). The rest of the text is never touched: newlines, tabs, runs of spaces and unicode survive.

Finding words is the hot loop of the engine, so `WordIndex` locates the word starts of a whole batch
of texts at once with numpy (one pass over the characters, no per-word Python objects).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

LOCATIONS = ("beginning", "end", "random")

WHITESPACE = tuple(c for c in map(chr, range(0x3001)) if c.isspace())  # all of str.isspace (max U+3000)


def _ranges(codes: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous [lo, hi] runs of sorted code points."""
    out: list[list[int]] = []
    for c in sorted(codes):
        if out and c == out[-1][1] + 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [(lo, hi) for lo, hi in out]


_WS_RANGES = _ranges([ord(c) for c in WHITESPACE])


def is_space(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of whitespace code points (uint8 latin-1 or uint32 code points)."""
    kind = codes.dtype.type
    mask = None
    for lo, hi in _WS_RANGES:
        if lo > np.iinfo(codes.dtype).max:
            break
        if lo == hi:
            hit = codes == kind(lo)
        else:  # unsigned wrap-around: (c - lo) <= (hi - lo) holds exactly for lo <= c <= hi
            hit = (codes - kind(lo)) <= kind(hi - lo)
        mask = hit if mask is None else np.bitwise_or(mask, hit, out=mask)
    return mask


class WordIndex:
    """The word start offsets of a batch of texts, found in one vectorised pass.

    `n_words[t]` is `len(texts[t].split())`; `offsets(t, indices)` gives the character offset of each
    position (a word's first character, or for index n_words the end of the last word).
    """

    def __init__(self, texts: Sequence[str]):
        self.texts = texts
        lengths = np.fromiter((len(x) for x in texts), dtype=np.int64, count=len(texts))
        self.base = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths + 1, out=self.base[1:])  # texts joined with one "\n" each
        joined = "\n".join(texts)
        try:
            codes = np.frombuffer(joined.encode("latin-1"), dtype=np.uint8)
        except UnicodeEncodeError:
            codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        space = is_space(codes)
        start = ~space
        start[1:] &= space[:-1]
        self.starts = np.flatnonzero(start)
        self.first = np.searchsorted(self.starts, self.base)
        self.n_words: list[int] = np.diff(self.first).tolist()

    def offsets(self, t: int, indices: Sequence[int]) -> dict[int, int]:
        """Character offset in text `t` of each word position in `indices`."""
        n = self.n_words[t]
        out = {}
        inner = [i for i in indices if i < n]
        if len(inner) == 1:
            out[inner[0]] = int(self.starts[self.first[t] + inner[0]] - self.base[t])
        elif inner:
            found = self.starts[self.first[t] + np.asarray(inner)] - self.base[t]
            out.update(zip(inner, found.tolist()))
        if len(inner) < len(indices):
            out[n] = len(self.texts[t].rstrip()) if n else 0
        return out


def apply_insertions(
    text: str, n_words: int, placed: Sequence[tuple[int, int, str, int]], offsets: dict[int, int]
) -> tuple[str, list[dict]]:
    """Insert every `(word_index, order, string, group)` into `text`; return the new text and records.

    `offsets` maps each word index used to its character offset (see `WordIndex.offsets`). Strings at
    the same position keep `order`. Each record gives the string, its `[start, end)` in the new text,
    and `span`, the offsets of the string plus its one separating space (removing every span restores
    `text`). Records come in text order; `group` is the insertion number (an HTML pair shares one).
    """
    out: list[str] = []
    records: list[dict] = []
    append, record = out.append, records.append
    pos = shift = 0
    first_in_empty = not text
    for index, _order, string, group in (placed if len(placed) == 1 else sorted(placed)):
        if index < n_words or (n_words == 0 and text):
            piece, rel = string + " ", 0
        elif first_in_empty:
            piece, rel, first_in_empty = string, 0, False
        else:
            piece, rel = " " + string, 1
        offset = offsets[index]
        append(text[pos:offset])
        append(piece)
        a = offset + shift
        b = a + len(piece)
        record({"text": string, "start": a + rel, "end": a + rel + len(string), "span": [a, b], "group": group})
        shift += b - a
        pos = offset
    append(text[pos:])
    return "".join(out), records


def remove_spans(text: str, records: Sequence[dict]) -> str:
    """Undo `apply_insertions`: cut every record's span out of `text` (the original comes back)."""
    out, pos = [], 0
    for a, b in sorted(tuple(r["span"]) for r in records):
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    return "".join(out)
