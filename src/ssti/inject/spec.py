"""`InjectionSpec`: the validated description of one injection (what, where, how much, which seed).

Constructing it validates everything that can be checked without the data; a violation becomes a
one-line `SSTIError` naming the field and the allowed values (pydantic's ValidationError never leaks).
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ssti.errors import SSTIError
from ssti.inject.sources import TokenSource, get_source, is_recorded_object, recorded_name

ALL_CLASSES = "*"
MAX_TOKENS = 1000  # insertions per row: far above aggressive SSTI (10% of a 1,000-word text), far below what exhausts memory


ALLOWED = {
    "rate": "a proportion in [0, 1]",
    "count": "a whole number of rows >= 0",
    "tokens": f"a whole number from 1 to {MAX_TOKENS:,} (for more, use token_fraction)",
    "token_fraction": "a fraction in (0, 1]",
    "seed": "a whole number",
}


def validation_message(err: ValidationError, where: str = "") -> str:
    """The first problem of a pydantic ValidationError as one line naming the dotted field and what is allowed.

    `where` prefixes the field (e.g. "injection" for a spec inside a run config). Our own SSTIError
    messages (raised by validators) are kept, with their field made dotted.
    """
    e = err.errors(include_url=False)[0]
    loc = tuple(str(x) for x in ((where,) if where else ()) + tuple(e["loc"]))
    field = ".".join(loc) or "spec"
    msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if isinstance(e.get("ctx", {}).get("error"), SSTIError):
        if loc and msg.startswith(f"{field}."):  # a nested spec that names its own section already: "lora.rank: ..."
            return msg
        if loc and msg.startswith(f"{loc[-1]}:"):  # "rate: ..." inside "injection" -> "injection.rate: ..."
            return ".".join(loc[:-1] + (msg,))
        return f"{'.'.join(loc)}: {msg}" if loc else msg
    got = e.get("input")
    if e["type"] == "literal_error":
        return f"{field}: {got!r} is not allowed; expected {e['ctx']['expected']}"
    if e["type"] == "extra_forbidden":
        return f"{field}: is not a field (a typo?)"
    if loc and loc[-1] in ALLOWED:
        return f"{field}: {_short(got)} is not allowed ({msg}); allowed: {ALLOWED[loc[-1]]}"
    return f"{field}: {msg}" + ("" if isinstance(got, dict) else f" (got {_short(got)})")


def _short(value: Any) -> str:
    """A value for an error line: its repr on one line, cut to 80 characters (a DataFrame's repr is many lines)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else f"a {type(value).__name__}: {text[:60]}..."


def _takes(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a field annotation (possibly a union or Optional) admits any of `kinds`."""
    return annotation in kinds or any(_takes(a, kinds) for a in typing.get_args(annotation))


class NoBoolNumbers(BaseModel):
    """Base of the specs: a YAML true/false where a number belongs is an error, not 1/0 (pydantic's lax mode
    would train `lora.rank: true` as rank 1 under rank 1's run id)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info):
        if isinstance(value, bool):
            annotation = cls.model_fields[info.field_name].annotation
            if _takes(annotation, (int, float)) and not _takes(annotation, (bool,)):
                raise ValueError(f"a number, not {str(value).lower()}")
        return value


class InjectionSpec(NoBoolNumbers):
    """One injection: for each target class a token source, how many rows, how many tokens, where.

    `targets` maps a class (index as a string, or class name; `*` = every class) to a source spec; a
    TokenSource or a callable `f(rng) -> str` is accepted too and recorded by qualified name.
    `rate` (a proportion of the class) or `count` (rows) picks exactly round(n_class * rate) or `count`
    rows with a seeded RNG; `tokens` insertions per row, or `token_fraction` of the row's length
    (`length_unit` words, or model tokens of `tokenizer`), at least one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    targets: dict[str, str] = Field(description="class -> token source: CLASS is a class name, an index (a class name wins when both "
                                    "match) or * for every class; SOURCE one of `ssti sources` (date, country, html, colour, "
                                    "exclamation, fixed:TEXT, list:a,b, file:PATH, ...)")
    rate: float | None = Field(default=None, ge=0.0, le=1.0, description="proportion of each target class's rows to inject: exactly "
                               "round(n_class * rate), drawn with the seed (default 1.0 when count is not given either)")
    count: int | None = Field(default=None, ge=0, description="number of rows of each target class to inject, instead of rate")
    tokens: int = Field(default=1, ge=1, le=MAX_TOKENS, description=f"insertions per injected row (light SSTI: 1; an HTML pair "
                        f"counts as one; at most {MAX_TOKENS:,})")
    token_fraction: float | None = Field(default=None, gt=0.0, le=1.0, description="insertions per row as a fraction of its length, "
                                         "at least one (aggressive SSTI: about 0.1), instead of tokens")
    length_unit: Literal["words", "tokens"] = Field("words", description="unit of a row's length for token_fraction: whitespace words, "
                                                    "or model tokens of `tokenizer`")
    tokenizer: str | None = Field(None, description="model name, hub id or folder whose tokenizer measures lengths (length_unit tokens)")
    location: Literal["beginning", "end", "random"] = Field("random", description="where insertions go: beginning, end, or an "
                                                             "independent uniform word position each (random)")
    seed: int = Field(0, description="seeds the rows chosen, the tokens drawn and their positions")
    split: str = Field("train", description="the split to inject into; the other splits are copied unchanged")

    _sources: dict[str, TokenSource] = PrivateAttr(default_factory=dict)

    def __init__(self, **data: Any):
        objects: dict[str, TokenSource] = {}
        targets = data.get("targets")
        if isinstance(targets, dict):
            clean = {}
            for key, value in targets.items():
                if isinstance(value, str):
                    clean[str(key)] = value
                else:
                    src = get_source(value)
                    objects[str(key)] = src
                    clean[str(key)] = recorded_name(src)
            data["targets"] = clean
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise SSTIError(validation_message(e)) from None
        self._sources.update(objects)

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, targets: dict[str, str]) -> dict[str, str]:
        if not targets:
            raise SSTIError("targets: give at least one CLASS=SOURCE (CLASS an index or name, or * for all)")
        for key, spec in targets.items():
            if not key.strip():
                raise SSTIError(f"targets: empty class in {key!r}={spec!r} (CLASS is an index or a class name)")
            if not is_recorded_object(spec):
                get_source(spec)  # raises SSTIError for unknown names, empty lists/files, bad date ranges
        return targets

    @model_validator(mode="after")
    def _check_combinations(self) -> "InjectionSpec":
        if self.rate is not None and self.count is not None:
            raise SSTIError("rate/count: give either rate (a proportion 0..1) or count (rows), not both")
        if self.token_fraction is not None and self.tokens != 1:
            raise SSTIError("tokens/token_fraction: give either tokens (insertions per sample) or token_fraction, not both")
        if self.length_unit == "tokens" and not self.tokenizer:
            raise SSTIError("tokenizer: length_unit 'tokens' needs a tokenizer (a model name, hub id or path)")
        return self

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> "InjectionSpec":
        """pydantic's model_validate, with one-line SSTIErrors instead of ValidationError."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as e:
            raise SSTIError(validation_message(e)) from None

    @classmethod
    def from_dict(cls, data: dict) -> "InjectionSpec":
        """Build from a plain mapping (e.g. YAML), with one-line SSTIErrors."""
        if not isinstance(data, dict):
            raise SSTIError(f"spec: expected a mapping of fields, got {type(data).__name__}")
        return cls(**data)

    @property
    def effective_rate(self) -> float | None:
        """The proportion in force: `rate`, or 1.0 when neither rate nor count is given."""
        if self.count is not None:
            return None
        return 1.0 if self.rate is None else self.rate

    def source_for(self, key: str) -> TokenSource:
        """The TokenSource of target `key` (the Python object if one was given, else built from its spec)."""
        return self._sources.get(key) or get_source(self.targets[key])

    def to_dict(self) -> dict:
        """Plain JSON/YAML-ready fields, in declaration order."""
        return self.model_dump(mode="json")


__all__ = ["ALL_CLASSES", "InjectionSpec", "validation_message"]
