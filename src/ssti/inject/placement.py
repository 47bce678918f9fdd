"""Where insertions go: word positions, their character offsets, and the one-pass text rebuild.

A word is a maximal run of non-whitespace (what `str.split()` splits on). Position `i` in [0, n_words]
means "before word i" (i < n_words: insert `tok + " "` at the word's first character) or "after the
last word" (i == n_words: insert `" " + tok` right after it, so trailing whitespace stays last). The
rest of the text is never touched: newlines, tabs, runs of spaces and unicode survive byte for byte.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

LOCATIONS = ("beginning", "end", "random")

_WORD = re.compile(r"\S+")
# Below this many distinct positions in a text, locate each word with one bounded str.split (C speed,
# no match objects); above it, one regex pass over the whole text is cheaper.
_SPLIT_LIMIT = 4


def draw_position(location: str, n_words: int, rand: Callable[[], float]) -> int:
    """A word index in [0, n_words] for `location` (random: uniform and independent per call)."""
    if location == "random":
        return int(rand() * (n_words + 1))
    return 0 if location == "beginning" else n_words


def word_offsets(text: str, indices: Sequence[int], n_words: int) -> dict[int, int]:
    """Character offset of each position in `indices`: a word's start, or the end of the last word."""
    out: dict[int, int] = {}
    inner = {i for i in indices if i < n_words}
    if n_words in indices:
        out[n_words] = len(text.rstrip()) if n_words else 0
    if len(inner) < _SPLIT_LIMIT:
        size = len(text)
        for i in inner:
            # split(None, i) leaves word i onward (its trailing whitespace included) as the last part
            out[i] = size - len(text.split(None, i)[i])
    elif inner:
        top = max(inner)
        for i, m in enumerate(_WORD.finditer(text)):
            if i in inner:
                out[i] = m.start()
            if i >= top:
                break
    return out


def apply_insertions(text: str, n_words: int, placed: Sequence[tuple[int, int, str, int]]) -> tuple[str, list[dict]]:
    """Insert every `(word_index, order, string, group)` into `text`; return the new text and records.

    Strings at the same position keep `order`. Each record gives the string, its `[start, end)` in the
    new text, and `span`, the offsets of the string plus its one separating space (removing every span
    restores `text`). Records come in text order; `group` is the insertion number (an HTML pair shares one).
    """
    offsets = word_offsets(text, {p[0] for p in placed}, n_words)
    pieces = []
    first_in_empty = not text
    for index, order, string, group in sorted(placed):
        if index < n_words or (n_words == 0 and text):
            piece, rel = string + " ", 0
        elif first_in_empty:
            piece, rel, first_in_empty = string, 0, False
        else:
            piece, rel = " " + string, 1
        pieces.append((offsets[index], piece, rel, string, group))
    out: list[str] = []
    records: list[dict] = []
    pos = shift = 0
    for offset, piece, rel, string, group in pieces:
        out.append(text[pos:offset])
        a = offset + shift
        records.append({"text": string, "start": a + rel, "end": a + rel + len(string), "span": [a, a + len(piece)], "group": group})
        out.append(piece)
        shift += len(piece)
        pos = offset
    out.append(text[pos:])
    return "".join(out), records


def remove_spans(text: str, records: Sequence[dict]) -> str:
    """Undo `apply_insertions`: cut every record's span out of `text` (the original comes back)."""
    out, pos = [], 0
    for a, b in sorted(tuple(r["span"]) for r in records):
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    return "".join(out)
