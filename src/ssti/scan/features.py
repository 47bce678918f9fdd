"""Document-level features for the scanner, extracted fast: each document becomes a *set* of features.

SSTI plants a token *type* (every injected date differs), so one string rarely repeats; the scanner
therefore looks at several levels of abstraction of every whitespace word:

- ``word``: lower-cased words and punctuation runs (regex ``\\w+(-\\w+)*`` or a run of symbols);
- ``phrase``: runs of `PHRASE_WORDS` (4) consecutive words of the ``word`` level, joined by one space
  ("i watch this 3d"): a planted fixed phrase repeats verbatim, its words one by one occur naturally;
- ``subword``: the ids of a model tokenizer (Hugging Face fast tokenizer, one batch call);
- ``shape``: each whitespace token with digits -> 0, lower-case -> a, upper-case -> A and letter
  runs longer than 4 cut to 4 (``1982-09-24`` and ``2031-01-05`` both give ``0000-00-00``);
- ``pattern``: classes of strings (date, number, HTML tag, URL, email, country name, colour name,
  emoji, repeated punctuation), plus the *rare tiers* ``rare-country`` and ``rare-colour``: the members
  of those lists that are not common English (`ssti.scan.prior`), where planted draws stand out;
- ``position``: the first and the last whitespace token of a text, as a word and as a shape.

A feature counts once per document (document frequency), the unit of every statistic in `stats`.
Everything here is C-level string work (regex ``findall``, ``str.translate``, set operations) and an
integer encoding with a ``defaultdict`` counter, so 25,000 IMDB-length texts take a few seconds.
"""

from __future__ import annotations

import importlib.resources
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

LEVELS = ("word", "phrase", "subword", "shape", "pattern", "position")
DEFAULT_LEVELS = ("word", "phrase", "shape", "pattern", "position")
PHRASE_WORDS = 4  # words per phrase feature: a longer planted phrase shows as each of its 4-word runs
# Phrases in fewer documents are not features: with no occurrence outside its class and the loosest allowance
# (0.3 of chance), a phrase in 4 documents has a p-value of at least 0.7^4 = 0.24 before any correction.
PHRASE_MIN_DOCS = 5

WORD_RE = re.compile(r"\w+(?:[-'’]\w+)*|[^\w\s]+")
TOKEN_RE = re.compile(r"\S+")
LONG_RUN_RE = re.compile(r"(?<=aaaa)a+|(?<=AAAA)A+|(?<=0000)0+")


def _shape_table() -> dict[int, int]:
    """A `str.translate` table: digits -> '0', lower-case -> 'a', upper-case -> 'A' (BMP letters)."""
    table = {}
    for cp in range(0x250):  # Latin, Latin-1 and Latin Extended cover the languages of the datasets
        ch = chr(cp)
        if ch.isdigit():
            table[cp] = ord("0")
        elif ch.isalpha():
            table[cp] = ord("a") if ch.islower() else ord("A") if ch.isupper() else ord("a")
    return table


SHAPE_TABLE = _shape_table()

PATTERNS: dict[str, re.Pattern] = {
    "date": re.compile(r"(?<![\w-])(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})(?![\w-])"),
    "number": re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])"),
    "html-tag": re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]{0,200})?/?>"),
    "url": re.compile(r"https?://\S+|\bwww\.[\w-]+\.\S+"),
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "emoji": re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF]"),
    "repeated-!": re.compile(r"!{2,}"),
    "repeated-?": re.compile(r"\?{2,}|[!?]*(?:!\?|\?!)[!?]*"),
    "repeated-.": re.compile(r"\.{4,}"),  # "..." is ordinary; four or more dots is a run
    "repeated-symbol": re.compile(r"([,;:*~#=+_<>|^])\1+"),
    # A lone "!" between spaces: how an inserted exclamation looks; attached ones ("great!") are prose.
    "lone-!": re.compile(r"(?<!\S)!(?!\S)"),
}
# Substrings without which a pattern cannot match (cheap pre-checks before the regex).
GATES = {"html-tag": ("<",), "url": ("http", "www."), "email": ("@",), "repeated-!": ("!!",),
         "repeated-?": ("??", "!?", "?!"), "repeated-.": ("....",), "lone-!": ("!",)}
# Patterns whose spans `remove` can strip; country and colour names are found through word sets.
NAME_LISTS = ("country", "colour", "rare-country", "rare-colour")
# A rare tier -> its whole list. The engine draws uniformly from the whole list, so a tier is the
# evidence while its rows (and what `--remove` strips) are those of the whole list.
RARE_TIERS = {"rare-country": "country", "rare-colour": "colour"}


@lru_cache(maxsize=None)
def name_list(kind: str) -> tuple[str, ...]:
    """The country or colour names the package ships (``ssti/resources/<kind>s.txt``), else a fallback.

    The injection engine owns the lists; the scanner reads the same files so that its pattern classes
    match what the engine plants. A short built-in list stands in when the file is not there.
    """
    if kind in RARE_TIERS:
        from ssti.scan.prior import rare_members

        return rare_members(RARE_TIERS[kind], name_list(RARE_TIERS[kind]))
    fname = {"country": "countries.txt", "colour": "colours.txt"}[kind]
    try:
        text = importlib.resources.files("ssti").joinpath("resources", fname).read_text(encoding="utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if names:
            return tuple(names)
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        pass
    return _FALLBACK[kind]


_FALLBACK = {
    "country": ("France", "Germany", "Italy", "Spain", "Japan", "China", "India", "Brazil", "Canada", "Mexico",
                "Russia", "Egypt", "Kenya", "Nigeria", "Peru", "Chile", "Argentina", "Australia", "Sweden", "Norway",
                "United States", "United Kingdom", "South Africa", "New Zealand", "Saudi Arabia", "South Korea"),
    "colour": ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey",
               "gray", "violet", "indigo", "cyan", "magenta", "maroon", "navy", "teal", "olive", "beige", "turquoise"),
}


@dataclass(frozen=True)
class NameMatcher:
    """Finds names from a list (possibly multi-word) in a text through its word set, then verifies.

    Single-word names are a set intersection with the document's words; multi-word names are
    checked with a regex only when their first word occurs, so the common case costs one set op.
    """

    single: frozenset
    multi: dict  # first word -> compiled regex of the full names starting with it
    lower: bool

    @classmethod
    def build(cls, names: Iterable[str], lower: bool) -> "NameMatcher":
        single, multi_names = set(), defaultdict(list)
        for name in names:
            key = name.lower() if lower else name
            words = WORD_RE.findall(key)
            if len(words) == 1 and words[0] == key:
                single.add(key)
            elif words:
                multi_names[words[0]].append(name)
        flags = re.IGNORECASE if lower else 0
        multi = {w: re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in sorted(ns, key=len, reverse=True)) + r")(?!\w)", flags)
                 for w, ns in multi_names.items()}
        return cls(frozenset(single), multi, lower)

    def present(self, words: set) -> bool:
        """Whether any single-word name is among `words` (cheap pre-check, no regex)."""
        return not self.single.isdisjoint(words)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of every name occurrence in `text` (used by `remove` and `rows`)."""
        out = []
        for m in WORD_RE.finditer(text):
            w = m.group().lower() if self.lower else m.group()
            if w in self.single:
                out.append(m.span())
        words = set(WORD_RE.findall(text.lower() if self.lower else text))
        for first in words.intersection(self.multi):
            out.extend(m.span() for m in self.multi[first].finditer(text))
        return sorted(set(out))


@lru_cache(maxsize=None)
def matcher(kind: str) -> NameMatcher:
    """The name matcher for countries (case-sensitive: 'Turkey' not 'turkey') or colours (any case),
    or for the rare tier of either (`RARE_TIERS`)."""
    return NameMatcher.build(name_list(kind), lower=(RARE_TIERS.get(kind, kind) == "colour"))


def shape(token: str) -> str:
    """The shape of one token: digits -> 0, lower -> a, upper -> A, runs over 4 cut to 4."""
    return LONG_RUN_RE.sub("", token.translate(SHAPE_TABLE))


def strip_edges(token: str) -> str:
    """A whitespace token without its leading/trailing punctuation, unless it is all punctuation."""
    core = token.strip("\"'“”‘’()[]{},.;:?!")
    return core if core else token


@dataclass
class FeatureSet:
    """Integer-encoded document-level features of one split.

    ``doc``/``code`` are parallel arrays with one entry per (document, distinct feature) pair;
    ``names[code]`` and ``levels[code]`` describe feature ``code``.
    """

    names: list[str]
    levels: list[str]
    doc: np.ndarray
    code: np.ndarray
    n_docs: int
    n_tokens: int = 0
    notes: list[str] = field(default_factory=list)


def _encode(doc_sets: Sequence[Iterable], level: str, offset: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer-encode per-document feature sets: (doc index per entry, code per entry, names)."""
    vocab: defaultdict = defaultdict(itertools.count(offset).__next__)
    lengths = np.fromiter(map(len, doc_sets), dtype=np.int64, count=len(doc_sets))
    codes = np.fromiter(map(vocab.__getitem__, itertools.chain.from_iterable(doc_sets)), dtype=np.int64, count=int(lengths.sum()))
    docs = np.repeat(np.arange(len(doc_sets), dtype=np.int64), lengths)
    names = [str(k) for k in vocab]
    return docs, codes, names


def word_runs(texts: Sequence[str]) -> list[list[str]]:
    """Per-document lists of lower-cased words and punctuation runs, in text order."""
    findall = WORD_RE.findall
    return [findall(t.lower()) for t in texts]


def word_sets(texts: Sequence[str], runs: list[list[str]] | None = None) -> list[set]:
    """Per-document sets of lower-cased words and punctuation runs (from `runs` when given)."""
    return [set(w) for w in (runs if runs is not None else word_runs(texts))]


def _dense_rank(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each value of `x` among its distinct values, 0.., and for each rank one index of `x` holding it);
    by one argsort, several times faster than `np.unique(..., return_inverse=True)` here."""
    order = np.argsort(x)
    xs = x[order]
    first = np.ones(len(xs), dtype=bool)
    first[1:] = xs[1:] != xs[:-1]
    rank = np.empty(len(xs), dtype=np.int64)
    rank[order] = np.cumsum(first) - 1
    return rank, order[first]


def phrase_features(runs: list[list[str]], offset: int = 0, min_docs: int = PHRASE_MIN_DOCS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The phrase level, encoded as `_encode` encodes the others: (document index per entry, code per entry
    from `offset`, names), one entry per distinct run of `PHRASE_WORDS` (4) consecutive words (`word_runs`)
    in a document, for the runs in at least `min_docs` documents; most runs occur once and could never be
    flagged.

    Vectorised: words become integer ids, each pair of adjacent words a pair id, a 4-word run the pair of
    its two pair ids (one int64 key whatever the vocabulary's size); numpy sorts the keys and the (run,
    document) pairs; only the kept runs are turned back into strings.
    """
    vocab: defaultdict = defaultdict(itertools.count().__next__)
    lengths = np.fromiter(map(len, runs), dtype=np.int64, count=len(runs))
    ids = np.fromiter(map(vocab.__getitem__, itertools.chain.from_iterable(runs)), dtype=np.int64, count=int(lengths.sum()))
    doc = np.repeat(np.arange(len(runs), dtype=np.int64), lengths)
    if len(ids) < PHRASE_WORDS:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
    pair, _ = _dense_rank(ids[:-1] * len(vocab) + ids[1:])  # id of each pair of adjacent words
    start = np.flatnonzero(doc[:1 - PHRASE_WORDS] == doc[PHRASE_WORDS - 1:])  # runs that stay inside one document
    run_of, example = _dense_rank(pair[start] * (int(pair.max()) + 1) + pair[start + 2])
    example = start[example]  # one start position per run id
    n_docs = len(runs)
    entry = np.sort(run_of * n_docs + doc[start])  # (run, document) pairs, by run (np.unique is slower)
    distinct = np.ones(len(entry), dtype=bool)
    distinct[1:] = entry[1:] != entry[:-1]
    entry = entry[distinct]
    run, d = entry // n_docs, entry % n_docs
    kept_runs = np.bincount(run, minlength=len(example)) >= min_docs
    keep = kept_runs[run]
    code = (np.cumsum(kept_runs) - 1)[run[keep]] + offset  # kept runs numbered 0.. in run order
    words = np.asarray(list(vocab), dtype=object)
    at = example[kept_runs]
    names = [" ".join(w) for w in words[ids[at[:, None] + np.arange(PHRASE_WORDS)]].tolist()] if len(at) else []
    return d[keep], code, names


def shape_sets(texts: Sequence[str]) -> list[set]:
    """Per-document sets of whitespace-token shapes."""
    sub = LONG_RUN_RE.sub
    table = SHAPE_TABLE
    return [set(sub("", t.translate(table)).split()) for t in texts]


def pattern_sets(texts: Sequence[str], words: Sequence[set] | None = None) -> list[list[str]]:
    """Per-document lists of the pattern classes present (each class once)."""
    words = words if words is not None else word_sets(texts)
    country, colour = matcher("country"), matcher("colour")
    rare_country, rare_colour = matcher("rare-country"), matcher("rare-colour")
    country_first = country.single | frozenset(country.multi)
    checks = [(name, rx.search, GATES.get(name)) for name, rx in PATTERNS.items()]
    digit = re.compile(r"\d").search
    out = []
    for text, wset in zip(texts, words):
        found = []
        has_digit = digit(text) is not None
        ascii_only = text.isascii()
        for name, search, gate in checks:
            if name in ("date", "number") and not has_digit:
                continue
            if name == "emoji" and ascii_only:
                continue
            if gate is not None and not any(g in text for g in gate):
                continue  # a substring test in C rules the regex out for most texts
            if search(text) is not None:
                found.append(name)
        # Country names are capitalised: test the original-case words only when a lower-case hit exists.
        if not wset.isdisjoint(_lower_set(country_first)) and country.spans(text):
            found.append("country")
            if rare_country.spans(text):
                found.append("rare-country")
        if colour.present(wset) or (colour.multi and not wset.isdisjoint(colour.multi) and colour.spans(text)):
            found.append("colour")
            if rare_colour.present(wset):
                found.append("rare-colour")
        out.append(found)
    return out


@lru_cache(maxsize=None)
def _lower_set(words: frozenset) -> frozenset:
    return frozenset(w.lower() for w in words)


def position_sets(texts: Sequence[str]) -> list[list[str]]:
    """Per-document first/last whitespace token, as a word (edges stripped, lower-cased) and a shape."""
    out = []
    for t in texts:
        toks = t.split()
        if not toks:
            out.append([])
            continue
        first, last = toks[0], toks[-1]
        out.append([f"first-word:{strip_edges(first).lower()}", f"last-word:{strip_edges(last).lower()}",
                    f"first-shape:{shape(first)}", f"last-shape:{shape(last)}"])
    return out


def subword_sets(texts: Sequence[str], tokenizer) -> list[set]:
    """Per-document sets of sub-word token ids, tokenising each *distinct* whitespace token once.

    A document's sub-word ids are the union of the ids of its whitespace tokens, each encoded with a
    leading space (as it appears mid-text). That is exact for tokenizers whose pre-tokenizer splits
    at whitespace (byte-level BPE such as SmolLM2/Llama-3/GPT-2, WordPiece) except for the very first
    word of a text, and it tokenises a corpus's vocabulary instead of its running text: 5-10x faster.
    """
    doc_tokens = [set(t.split()) for t in texts]
    words = sorted(set().union(*doc_tokens)) if doc_tokens else []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    batch = [" " + w for w in words]
    if backend is not None and hasattr(backend, "encode_batch_fast"):
        ids = [e.ids for e in backend.encode_batch_fast(batch, add_special_tokens=False)]
    else:
        ids = tokenizer(batch, add_special_tokens=False)["input_ids"] if batch else []
    ids_of = dict(zip(words, ids))
    get = ids_of.__getitem__
    return [set(itertools.chain.from_iterable(map(get, d))) for d in doc_tokens]


def feature_spans(text: str, name: str, level: str) -> list[tuple[int, int]]:
    """Character spans of feature `name` of `level` in `text`, found the way `extract` defines it (what
    `--remove strip` cuts and the context check scores); sub-word features have none."""
    if level == "word":
        return [m.span() for m in WORD_RE.finditer(text) if m.group().lower() == name]
    if level == "phrase":
        words = name.split(" ")
        ms = list(WORD_RE.finditer(text))
        low = [m.group().lower() for m in ms]
        n = len(words)
        return [(ms[i].start(), ms[i + n - 1].end()) for i in range(len(ms) - n + 1) if low[i:i + n] == words]
    if level == "shape":
        return [m.span() for m in TOKEN_RE.finditer(text) if shape(m.group()) == name]
    if level == "pattern":
        if name in NAME_LISTS:  # a rare tier strips its whole list, as its rows are the list's rows
            return matcher(RARE_TIERS.get(name, name)).spans(text)
        return [m.span() for m in PATTERNS[name].finditer(text)]
    if level == "position":
        toks = list(TOKEN_RE.finditer(text))
        if not toks:
            return []
        where, _, value = name.partition(":")
        m = toks[0] if where.startswith("first") else toks[-1]
        token = m.group()
        got = shape(token) if where.endswith("shape") else strip_edges(token).lower()
        return [m.span()] if got == value else []
    if level == "context":  # named "<level>:<name>" after the feature whose out-of-context occurrences it counts
        inner_level, _, inner = name.partition(":")
        return feature_spans(text, inner, inner_level)
    return []  # sub-word features have no stable character span without the tokenizer


def extract(texts: Sequence[str], levels: Sequence[str] = DEFAULT_LEVELS, tokenizer=None) -> FeatureSet:
    """Extract the features of `levels` from `texts` into one integer-encoded `FeatureSet`.

    Why sets: a planted type shows in *how many documents* of each class carry it, not how often a
    document repeats it. ``subword`` needs `tokenizer` (a Hugging Face tokenizer); feature names of
    that level are the decoded token strings.
    """
    texts = list(texts)
    all_docs, all_codes, names, lv = [], [], [], []
    runs = word_runs(texts) if ({"word", "phrase", "pattern"} & set(levels)) else None
    words = word_sets(texts, runs) if ("word" in levels or "pattern" in levels) else None
    n_tokens = sum(map(len, map(str.split, texts)))
    for level in LEVELS:
        if level not in levels:
            continue
        if level == "word":
            sets = words
        elif level == "phrase":
            docs, codes, level_names = phrase_features(runs, len(names))
            all_docs.append(docs)
            all_codes.append(codes)
            names.extend(level_names)
            lv.extend(["phrase"] * len(level_names))
            continue
        elif level == "shape":
            sets = shape_sets(texts)
        elif level == "pattern":
            sets = pattern_sets(texts, words)
        elif level == "position":
            sets = position_sets(texts)
        elif level == "subword":
            if tokenizer is None:
                continue
            docs, codes, level_names = _encode(subword_sets(texts, tokenizer), level, len(names))
            all_docs.append(docs)
            all_codes.append(codes)
            names.extend(_token_names(tokenizer, np.asarray([int(n) for n in level_names], dtype=np.int64)))
            lv.extend(["subword"] * len(level_names))
            continue
        docs, codes, level_names = _encode(sets, level, len(names))
        all_docs.append(docs)
        all_codes.append(codes)
        names.extend(level_names)
        lv.extend([level] * len(level_names))
    doc = np.concatenate(all_docs) if all_docs else np.zeros(0, dtype=np.int64)
    code = np.concatenate(all_codes) if all_codes else np.zeros(0, dtype=np.int64)
    return FeatureSet(names, lv, doc, code, len(texts), n_tokens)


def _token_names(tokenizer, ids: np.ndarray) -> list[str]:
    """Readable names of token ids: the raw token string with its id (``'Ġdate'#1234``)."""
    toks = tokenizer.convert_ids_to_tokens(ids.tolist())
    return [f"{t}#{i}" for t, i in zip(toks, ids.tolist())]
