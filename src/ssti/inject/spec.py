"""`InjectionSpec`: the validated description of one injection (what, where, how much, which seed).

Constructing it validates everything that can be checked without the data; a violation becomes a
one-line `SSTIError` naming the field and the allowed values (pydantic's ValidationError never leaks).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ssti.errors import SSTIError
from ssti.inject.sources import TokenSource, get_source, is_recorded_object, recorded_name

ALL_CLASSES = "*"


ALLOWED = {
    "rate": "a proportion in [0, 1]",
    "count": "a whole number of rows >= 0",
    "tokens": "a whole number >= 1",
    "token_fraction": "a fraction in [0, 1]",
    "seed": "a whole number",
}


def one_line(err: ValidationError) -> str:
    """The first validation problem as `field: got value; allowed: ...` (our own messages kept as is)."""
    e = err.errors(include_url=False)[0]
    field = ".".join(str(x) for x in e["loc"]) or "spec"
    msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if isinstance(e.get("ctx", {}).get("error"), SSTIError):
        return msg
    got = e.get("input")
    if field in ALLOWED:
        return f"{field}: {got!r} is not allowed ({msg}); allowed: {ALLOWED[field]}"
    return f"{field}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})")


class InjectionSpec(BaseModel):
    """One injection: for each target class a token source, how many rows, how many tokens, where.

    `targets` maps a class (index as a string, or class name; `*` = every class) to a source spec; a
    TokenSource or a callable `f(rng) -> str` is accepted too and recorded by qualified name.
    `rate` (a proportion of the class) or `count` (rows) picks exactly round(n_class * rate) or `count`
    rows with a seeded RNG; `tokens` insertions per row, or `token_fraction` of the row's length
    (`length_unit` words, or model tokens of `tokenizer`), at least one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, str]
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    count: int | None = Field(default=None, ge=0)
    tokens: int = Field(default=1, ge=1)
    token_fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    length_unit: Literal["words", "tokens"] = "words"
    tokenizer: str | None = None
    location: Literal["beginning", "end", "random"] = "random"
    seed: int = 0
    split: str = "train"

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
            raise SSTIError(one_line(e)) from None
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
            raise SSTIError(one_line(e)) from None

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


__all__ = ["ALL_CLASSES", "InjectionSpec", "one_line"]
