"""Command-line options built from the spec fields, so defaults and help have one source: `ssti.config`.

`spec_options(...)` adds one `--field-name` option per field of the named sections to a command; the
command receives the values the user gave as dotted overrides (`{"lora.rank": 8}`), which go through
the same rule as YAML configs and `key=value` overrides (`ssti.config.load_run_config`).
"""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import typer
from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _option_type(annotation: Any) -> tuple[Any, str]:
    """The typer type of a field (Optional, since 'not given' is None) and a note on allowed values."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if typing.get_origin(annotation) is Literal or any(typing.get_origin(a) is Literal for a in args):
        lit = next(a for a in [annotation, *args] if typing.get_origin(a) is Literal)
        return Optional[str], " | ".join(map(str, typing.get_args(lit)))
    for kind in (bool, int, float):
        if kind in args:
            return Optional[kind], ""
    if any(typing.get_origin(a) is list for a in args) and str not in args:
        return Optional[list[str]], "repeatable"
    return Optional[str], ""


def spec_params(sections: dict[str, type[BaseModel]], rename: dict[str, str] | None = None,
                skip: set[str] | None = None) -> dict[str, tuple[str, inspect.Parameter]]:
    """{python name: (dotted field, typer parameter)} for every field of the given sections.

    `sections` maps a config section ("lora") to its spec class; `rename` maps a dotted field to an
    option name ("model.name" -> "--model"); `skip` lists dotted fields left out.
    """
    rename, skip = rename or {}, skip or set()
    out: dict[str, tuple[str, inspect.Parameter]] = {}
    for section, model in sections.items():
        for name, field in model.model_fields.items():
            dotted = f"{section}.{name}" if section else name
            if dotted in skip:
                continue
            flag = rename.get(dotted, "--" + name.replace("_", "-"))
            py = flag.lstrip("-").replace("-", "_")
            kind, note = _option_type(field.annotation)
            default = field.default if field.default is not PydanticUndefined else None
            help_text = (field.description or name) + (f" ({note})" if note else "")
            if default is not None and not isinstance(default, bool):
                help_text += f" [default: {default!s}]".replace("\n", "\\n")
            flags = [flag] if kind is not Optional[bool] else [f"{flag}/--no-{flag.lstrip('-')}"]
            param = inspect.Parameter(py, inspect.Parameter.KEYWORD_ONLY, annotation=kind,
                                      default=typer.Option(None, *flags, help=help_text, show_default=False))
            out[py] = (dotted, param)
    return out


def spec_options(sections: dict[str, type[BaseModel]], rename: dict[str, str] | None = None, skip: set[str] | None = None):
    """Decorator: add the options of `spec_params` to a command; it receives them as `options={dotted: value}`
    (only those the user gave)."""
    params = spec_params(sections, rename, skip)

    def wrap(fn):
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != "options"]

        @functools.wraps(fn)
        def run(*args, **kwargs):
            given = {params[k][0]: kwargs.pop(k) for k in list(kwargs) if k in params}
            options = {dotted: v for dotted, v in given.items() if v is not None and v != []}
            return fn(*args, options=options, **kwargs)

        hints = typing.get_type_hints(fn)
        run.__signature__ = sig.replace(parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in own]
                                        + [p for _, p in params.values()])
        run.__annotations__ = {**{p.name: hints.get(p.name, p.annotation) for p in own}, **{k: p.annotation for k, (_, p) in params.items()}}
        del run.__wrapped__  # typer must read the signature above, not fn's
        return run

    return wrap


def section(options: dict[str, Any], name: str) -> dict[str, Any]:
    """The options of one config section as field -> value ({"data.delimiter": ";"} -> {"delimiter": ";"});
    `name` "" gives the options of a spec passed without a section (e.g. EvalSpec in `ssti eval`)."""
    if not name:
        return {k: v for k, v in options.items() if "." not in k}
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in options.items() if k.startswith(prefix)}


def out_path(value: str | Path) -> Path:
    """The parser of every `--out` option: an empty value (`--out "$OUT"` with OUT unset) is refused, not read
    as the current folder."""
    if isinstance(value, Path):
        return value
    if not value.strip():
        raise typer.BadParameter("empty path; give a folder or file to write")
    return Path(value)
