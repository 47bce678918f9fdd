"""A priori knowledge the scanner brings: which members of the attack's vocabularies are common English.

The injection engine draws list tokens (colours, countries) *uniformly* from its lists, so most planted
colours are words like "turquoise" or "vermilion" that text rarely contains, while most natural colour
mentions are "black", "white", "red". Pooling every member hides 59 planted colours among hundreds of
natural ones; pooling only the *rare* members (the `rare-colour` and `rare-country` pattern classes)
keeps about three quarters of the planted draws and sheds most of the natural usage.

"Common" is decided by general-English frequency, not by the scanned data, so the split cannot adapt
to (and hide) a planted token: a member is common when its `wordfreq` 3.1.1 Zipf frequency in English
is at least 4.5 (about 30 occurrences per million words). The sets below were computed once with
``zipf_frequency(name, "en") >= 4.5`` over ``ssti/resources/{colours,countries}.txt``; they are frozen
here so that the scanner needs no 57 MB frequency package at run time. A member added to a list later
counts as rare until this table is regenerated, which only makes the rare tier slightly noisier.
"""

from __future__ import annotations

COMMON_ZIPF = 4.5

COMMON_MEMBERS: dict[str, frozenset[str]] = {
    "colour": frozenset({
        "red", "orange", "yellow", "green", "blue", "pink", "brown", "black", "white", "navy", "gold", "silver",
    }),
    "country": frozenset({
        "Australia", "Brazil", "Canada", "China", "France", "Germany", "India", "Iran", "Ireland", "Israel", "Italy",
        "Japan", "Jordan", "Mexico", "North Korea", "Pakistan", "Russia", "South Africa", "South Korea", "Spain",
        "Turkey", "United Kingdom", "United States",
    }),
}


def rare_members(kind: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The members of list `kind` that are not common English (see the module docstring)."""
    common = {n.lower() for n in COMMON_MEMBERS.get(kind, frozenset())}
    return tuple(n for n in names if n.lower() not in common)
