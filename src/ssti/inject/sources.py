"""Token sources: what gets inserted. A source draws a fresh string (or an HTML open/close pair) per call.

The spurious feature of SSTI is a token *type* (a random date, a country...), so every insertion draws
anew from the source with the caller's seeded `random.Random`; a fixed string is the special case.
Sources are named by a short spec string (`date`, `date:1900-2100`, `list:a,b`, `file:PATH`...), so a
spec written to YAML names its sources exactly; `get_source` turns a spec into a `TokenSource`.
"""

from __future__ import annotations

import datetime
import random
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

from ssti.errors import SSTIError

DEFAULT_YEARS = (1100, 2600)


class TokenSource:
    """A named generator of inserted strings.

    `draw(rng)` returns a tuple of 1 string (one token) or 2 strings (an opening and a closing HTML tag,
    placed in that order). Subclasses set `name` (the spec string that recreates them) and `draw`.
    """

    name: str = "source"

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        """Return the next inserted string(s), drawn with `rng` only."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ChoiceSource(TokenSource):
    """Uniform choice among a fixed list of items, each a 1-tuple (token) or a 2-tuple (open, close)."""

    def __init__(self, name: str, items: Sequence[tuple[str, ...]]):
        if not items:
            raise SSTIError(f"source: {name!r} has no items (give at least one non-empty item)")
        self.name = name
        self.items = tuple(items)

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        """One item, uniformly."""
        return self.items[int(rng.random() * len(self.items))]


class DateSource(TokenSource):
    """A random calendar date `YYYY-MM-DD`, uniform over the days of years start..end (inclusive)."""

    def __init__(self, start: int = DEFAULT_YEARS[0], end: int = DEFAULT_YEARS[1]):
        if not (1 <= start <= 9999 and 1 <= end <= 9999):
            raise SSTIError(f"source: date years {start}-{end} must lie within 1-9999")
        if start > end:
            raise SSTIError(f"source: date range start {start} > end {end} (write date:START-END with START <= END)")
        self.start, self.end = start, end
        self.name = "date" if (start, end) == DEFAULT_YEARS else f"date:{start}-{end}"
        self._first = datetime.date(start, 1, 1).toordinal()
        self._days = datetime.date(end, 12, 31).toordinal() - self._first + 1

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        """One date; every day of the range is equally likely (one `rng.random()` per draw)."""
        return (datetime.date.fromordinal(self._first + int(rng.random() * self._days)).isoformat(),)


class FixedSource(TokenSource):
    """The same string every time (the easy special case of SSTI)."""

    def __init__(self, text: str, name: str | None = None):
        if not text.strip():
            raise SSTIError("source: fixed:TEXT needs a non-empty TEXT")
        self.text = text
        self.name = name or f"fixed:{text}"

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        """The fixed string (consumes no randomness)."""
        return (self.text,)


class CallableSource(TokenSource):
    """Wraps a Python callable `f(rng) -> str`; named `callable:module.qualname` in specs."""

    def __init__(self, fn: Callable[[random.Random], str]):
        self.fn = fn
        self.name = f"callable:{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"

    def draw(self, rng: random.Random) -> tuple[str, ...]:
        """Call the function; it must return a non-empty string."""
        out = self.fn(rng)
        if not isinstance(out, str) or not out:
            raise SSTIError(f"source: {self.name} returned {out!r}; a source callable must return a non-empty str")
        return (out,)


def read_items(lines: Sequence[str]) -> list[str]:
    """Non-empty stripped lines."""
    return [s for s in (line.strip() for line in lines) if s]


def resource_lines(filename: str) -> list[str]:
    """The items of a list shipped in `ssti/resources/`."""
    return read_items(resources.files("ssti").joinpath("resources", filename).read_text(encoding="utf-8").splitlines())


def html_items(lines: Sequence[str]) -> list[tuple[str, ...]]:
    """`<b> </b>` lines become (open, close) pairs; `<br>` lines single tags."""
    return [tuple(line.split()) for line in lines]


def _html(kind: str) -> ChoiceSource:
    items = html_items(resource_lines("html_tags.txt"))
    if kind == "html-pair":
        items = [t for t in items if len(t) == 2]
    elif kind == "html-single":
        items = [t for t in items if len(t) == 1]
    return ChoiceSource(kind, items)


def _date(arg: str | None) -> DateSource:
    if arg is None:
        return DateSource()
    try:
        start, end = (int(x) for x in arg.split("-"))
    except ValueError:
        raise SSTIError(f"source: date:{arg} is not date:START-END with integer years, e.g. date:1900-2100") from None
    return DateSource(start, end)


def _list(arg: str | None) -> ChoiceSource:
    items = read_items((arg or "").split(","))
    if not items:
        raise SSTIError("source: list: is empty (write list:a,b,c with at least one item)")
    return ChoiceSource(f"list:{arg}", [(s,) for s in items])


def _file(arg: str | None) -> ChoiceSource:
    if not arg:
        raise SSTIError("source: file: needs a path (file:PATH, one item per line)")
    path = Path(arg)
    try:
        if path.is_dir():
            raise SSTIError(f"source: file:{arg} is a folder (file:PATH must name a text file, one item per line)")
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first token
    except (FileNotFoundError, IsADirectoryError):
        raise SSTIError(f"source: file:{arg} not found (file:PATH must name a text file, one item per line)") from None
    except UnicodeDecodeError:
        raise SSTIError(f"source: file:{arg} is not UTF-8 text") from None
    items = read_items(text.splitlines())
    if not items:
        raise SSTIError(f"source: file:{arg} is empty (it needs at least one non-empty line)")
    return ChoiceSource(f"file:{arg}", [(s,) for s in items])


def _fixed(arg: str | None) -> FixedSource:
    return FixedSource(arg or "")


def _no_arg(factory: Callable[[], TokenSource]) -> Callable[[str | None], TokenSource]:
    return lambda arg: factory()


# name -> factory(argument after the colon, or None)
SOURCES: dict[str, Callable[[str | None], TokenSource]] = {
    "date": _date,
    "country": _no_arg(lambda: ChoiceSource("country", [(s,) for s in resource_lines("countries.txt")])),
    "html": _no_arg(lambda: _html("html")),
    "html-pair": _no_arg(lambda: _html("html-pair")),
    "html-single": _no_arg(lambda: _html("html-single")),
    "colour": _no_arg(lambda: ChoiceSource("colour", [(s,) for s in resource_lines("colours.txt")])),
    "exclamation": _no_arg(lambda: FixedSource("!", name="exclamation")),
    "double-exclamation": _no_arg(lambda: FixedSource("!!", name="double-exclamation")),
    "fixed": _fixed,
    "list": _list,
    "file": _file,
}
ALIASES = {"color": "colour"}
TAKES_ARG = {"date", "fixed", "list", "file"}
RECORDED_PREFIXES = ("callable:", "object:")

SOURCE_HELP = (
    "date, date:START-END (years), country, html, html-pair, html-single, colour (color), exclamation, "
    "double-exclamation, fixed:TEXT, list:a,b,c, file:PATH"
)


def is_recorded_object(spec: str) -> bool:
    """True for the name of a Python-object source as recorded in a spec (it cannot be rebuilt from text)."""
    return spec.startswith(RECORDED_PREFIXES)


def get_source(spec: str | TokenSource | Callable[[random.Random], str]) -> TokenSource:
    """Turn a source spec (string, TokenSource or callable `f(rng) -> str`) into a TokenSource.

    Raises SSTIError naming the allowed sources for an unknown name, an empty list or file, a bad date
    range, or a recorded Python-object name (which cannot be rebuilt from text).
    """
    if isinstance(spec, TokenSource):
        return spec
    if callable(spec):
        return CallableSource(spec)
    if not isinstance(spec, str):
        raise SSTIError(f"source: {spec!r} is not a source name, TokenSource or callable (allowed: {SOURCE_HELP})")
    if is_recorded_object(spec):
        raise SSTIError(f"source: {spec} was a Python object; pass the object itself again through the Python API")
    name, sep, arg = spec.strip().partition(":")
    name = ALIASES.get(name, name)
    if name not in SOURCES or (sep and name not in TAKES_ARG):
        raise SSTIError(f"source: {spec!r} is not one of {SOURCE_HELP}")
    return SOURCES[name](arg if sep else None)


__all__ = [
    "CallableSource", "ChoiceSource", "DateSource", "FixedSource", "SOURCES", "SOURCE_HELP", "TokenSource",
    "get_source", "is_recorded_object",
]


def recorded_name(source: TokenSource) -> str:
    """The name a spec records for `source`: its spec string if that rebuilds it, else `object:qualname:name`."""
    if isinstance(source, CallableSource):
        return source.name
    try:
        rebuilt = get_source(source.name)
    except SSTIError:
        rebuilt = None
    if rebuilt is not None and type(rebuilt) is type(source):
        return source.name
    return f"object:{type(source).__module__}.{type(source).__qualname__}:{source.name}"


__all__ += ["recorded_name"]
