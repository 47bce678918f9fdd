"""The run contract: one pydantic `RunConfig` per run, with help text on every field.

`RunConfig = data + injection + defence + model + lora + train + eval` fully determines a run. A run folder's
`config.yaml` is exactly `RunConfig.model_dump()` of the resolved config (local data made absolute and
fingerprinted), so `ssti run runs/X/config.yaml --out runs/Y` reproduces run X. The run id is one hash
of its canonical form (`run_id`), used by `ssti run`, `ssti sweep`, resume and the results store.

Rules, one of each:
- a preset (`preset: paper`) fills in values; every field given explicitly (YAML, CLI option or a
  dotted override) wins over it;
- overrides are dotted `key=value` pairs (`lora.rank=8`, `injection.targets.fresh=date`), values read
  as YAML scalars, keys checked against the fields (`apply_overrides`);
- the run id hashes only the fields that differ from their defaults (plus a schema version), so adding
  a field with a default later leaves existing ids unchanged; local data enters by content hash.
"""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ssti.errors import SSTIError
from ssti.inject.spec import InjectionSpec, NoBoolNumbers, validation_message

T = TypeVar("T", bound=BaseModel)

ID_SCHEMA = 1  # bump only if the meaning of an existing field changes (it re-keys every run)
INJECTED_DATA = "data"  # a run with an injection keeps the injected dataset in this sub-folder
DEFENDED_DATA = "defended"  # a run with a defence keeps the defended training set (what it trained on) in this sub-folder


class Spec(NoBoolNumbers):
    """Base of all specs: unknown fields are errors, so a typo never passes silently; true/false is no number."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    def __init__(self, **data: Any):
        # built directly from Python (LoraSpec(rank=-1)): a one-line SSTIError naming the section's field, as a config file gets
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise SSTIError(one_line(e, type(self), SECTIONS.get(type(self).__name__, ""))) from None


def validate(cls: type[T], data: Any, where: str = "") -> T:
    """Build `cls` from `data`, turning pydantic's report into a one-line SSTIError naming the field
    (prefixed with `where`, e.g. "base" for a sweep's base config)."""
    try:
        return cls.model_validate(data if data is not None else {})
    except ValidationError as e:
        raise SSTIError(one_line(e, cls, where)) from None
    except SSTIError as e:  # a Spec's own __init__ (pydantic runs it) already made the line; it names the section
        raise SSTIError(f"{where}.{e}" if where and not str(e).startswith(f"{where}.") else str(e)) from None


def one_line(e: ValidationError, cls: type[BaseModel], where: str = "") -> str:
    """The first problem of a ValidationError of `cls` as one line naming the dotted field (see `validation_message`);
    an unknown field of a run config section lists the section's fields."""
    first = e.errors(include_url=False)[0]
    own = first.get("ctx", {}).get("error")
    path = ".".join(str(x) for x in ((where,) if where else ()) + tuple(first["loc"]))
    if first["type"] == "extra_forbidden" and (cls is RunConfig or SECTIONS.get(cls.__name__) == where):
        try:
            field_of(path)
        except SSTIError as named:
            return str(named)
    if isinstance(own, SSTIError) and isinstance(first.get("input"), dict):
        # a nested spec refused itself: its message names its own field, e.g. "rate: ..." or, from Spec.__init__, "lora.rank: ..."
        if path and str(own).startswith(f"{path}."):
            return str(own)
        return f"{path}.{own}" if path else str(own)
    return validation_message(e, where)


class DataSpec(Spec):
    dataset: str = Field("rotten-tomatoes", description="registry name (see `ssti datasets`), ssti dataset folder, or csv/tsv/jsonl/json/parquet file")
    text_column: str = Field("text", description="text column of a local file")
    label_column: str = Field("label", description="label column of a local file")
    id_column: str = Field("id", description="id column of a local file (kept as written; without one, ids are <file stem>-<row>)")
    delimiter: str | None = Field(None, description="field delimiter of a local csv file (default ','; e.g. ';' or a tab)")
    drop_unlabelled: bool = Field(False, description="drop rows of a local file labelled -1 or left empty (counted on stderr) "
                                  "instead of refusing the file")
    max_words: int | None = Field(None, ge=1, description="cut every text to its first N words, spacing kept (long documents as "
                                  "windows a model reads whole, so injected tokens are not truncated away); None: texts as written")
    fingerprint: str | None = Field(None, description="sha256 of a local file's (or ssti folder's) bytes, filled in when a run is "
                                    "made; a run whose data bytes changed is refused, and changed bytes are a new run id")


    def load_options(self) -> dict[str, Any]:
        """The keyword arguments of `ssti.data.load_dataset` this spec sets (how a local file is read)."""
        return {"text_column": self.text_column, "label_column": self.label_column, "id_column": self.id_column, "delimiter": self.delimiter,
                "drop_unlabelled": self.drop_unlabelled, "max_words": self.max_words}


class ModelSpec(Spec):
    name: str = Field("smollm2-135m", description="registry name (see `ssti models`), Hugging Face id, or local folder")
    head: Literal["classifier", "paper", "verbalizer"] = Field("classifier", description="classifier: trained linear head on pooled states; paper: the authors' frozen head on [mean; last]; verbalizer: LM scores label words")
    max_length: int = Field(256, ge=8, description="texts are truncated to this many model tokens")
    trust_remote_code: bool = Field(False, description="allow models that run code from their repository (OpenELM)")
    label_words: list[str] | None = Field(None, description="verbalizer: one word per class (default: the class names)")
    template: str = Field("{text}\nAnswer:", description="verbalizer: prompt template with {text}")


    @model_validator(mode="after")
    def _label_words_need_the_verbalizer(self):
        if self.label_words is not None and self.head != "verbalizer":
            raise SSTIError(f"label_words: only the verbalizer head reads label words (head is {self.head!r}); "
                            f"set head: verbalizer or drop label_words")
        return self

    @model_validator(mode="after")
    def _template_has_text(self):
        try:
            filled = self.template.format(text="\0")
        except (KeyError, IndexError, ValueError) as e:
            raise SSTIError(f"template: {self.template!r} is not a format string with only {{text}} ({type(e).__name__}: {e})") from None
        if "\0" not in filled:
            raise SSTIError(f"template: {self.template!r} has no {{text}}: the model would never see the text")
        return self


class LoraSpec(Spec):
    rank: int = Field(8, ge=0, description="LoRA rank; 0 = full fine-tuning (all weights trainable) as a comparison")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; default = rank, as in the paper")
    alpha_ratio: float | None = Field(None, gt=0, description="alternatively alpha = alpha_ratio x rank")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    targets: str | list[str] = Field("attention", description="'attention' (all attention projections), 'qv', 'all-linear', or comma-separated module names")

    @model_validator(mode="after")
    def _one_alpha(self):
        if self.alpha is not None and self.alpha_ratio is not None:
            raise SSTIError("alpha/alpha_ratio: give alpha or alpha_ratio, not both")
        return self

    def resolved_alpha(self) -> float:
        """The LoRA alpha actually used."""
        if self.alpha is not None:
            return self.alpha
        return (self.alpha_ratio or 1.0) * self.rank


class TrainSpec(Spec):
    optimizer: Literal["adamw", "adafactor"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="decoupled weight decay")
    warmup_ratio: float = Field(0.05, ge=0, le=1, description="fraction of steps of linear warm-up before the cosine decay")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="learning-rate schedule after warm-up")
    batch_size: int = Field(16, ge=1, description="global batch (samples per optimizer step, over all processes)")
    micro_batch_size: int | None = Field(None, ge=1, description="samples per forward pass; gradients accumulate to batch_size")
    steps: int | None = Field(100, ge=1, description="optimizer steps (epochs wins when given)")
    epochs: float | None = Field(None, gt=0, description="passes over the training split, instead of steps")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (None: no clipping)")
    seed: int = Field(0, description="seeds batch order, head init and LoRA init")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="dtype of the frozen base weights; auto: the faster "
                                                       "one measured on this machine (bf16 only when clearly faster; on CUDA bf16 "
                                                       "where supported), kept on resume")
    checkpoint_every: int = Field(50, ge=0, description="save a resumable checkpoint every N steps (0: never)")
    eval_every: int = Field(0, ge=0, description="measure clean accuracy every N steps (and at the last step) on eval_samples "
                            "rows of the eval split: the learning curve that shows whether the step count reaches a plateau, "
                            "in train_log.jsonl and metrics.json (0: never)")
    eval_samples: int = Field(256, ge=2, description="rows of the eval split (stratified, seeded by eval.seed) the learning curve "
                              "is measured on")

    @model_validator(mode="after")
    def _steps_or_epochs(self):
        if self.steps is None and self.epochs is None:
            raise SSTIError("steps: null with no epochs either; give steps (a whole number >= 1) or epochs")
        return self

    @model_validator(mode="after")
    def _micro_divides_batch(self):
        m = self.micro_batch_size
        if m is not None and (m > self.batch_size or self.batch_size % m):
            raise SSTIError(f"micro_batch_size: {m} does not divide batch_size {self.batch_size} (allowed: a divisor of it)")
        return self

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps to run for a training split of n_train samples."""
        if self.epochs is not None:
            return max(1, int(self.epochs * n_train // self.batch_size))
        return int(self.steps)


class EvalSpec(Spec):
    split: str = Field("test", description="split to evaluate on")
    sources: dict[str, str] | None = Field(None, description="class -> token source for the spurious test sets (default: the types the run trained with)")
    location: Literal["beginning", "end", "random"] | None = Field(None, description="location of test-time tokens (default: the training injection's)")
    match_density: bool = Field(False, description="spurious sets get the training injection's token_fraction too (aggressive SSTI "
                                "tested at its own density); default: its `tokens` per sample (one for light SSTI: the paper's Table 1)")
    max_samples: int | None = Field(None, ge=1, description="evaluate on a stratified seeded subsample of this many rows (None: all)")
    batch_size: int = Field(32, ge=1, description="inference batch")
    seed: int = Field(0, description="seeds the test-time token draws and the subsample")

    @model_validator(mode="after")
    def _sources_exist(self):
        from ssti.inject.sources import get_source, is_recorded_object

        for key, spec in (self.sources or {}).items():  # checked here, before any data or model is loaded
            if not is_recorded_object(spec):
                try:
                    get_source(spec)
                except SSTIError as e:
                    raise SSTIError(f"sources.{key}: {e}") from None
        return self


SCAN_LEVELS = ("word", "phrase", "subword", "shape", "pattern", "position")  # the scanner's feature levels (ssti.scan.features)
DEFENCES = ("scan-strip", "scan-drop", "onion", "paraphrase", "grammar")  # registered in ssti.defend.registry
# the fields each defence reads (besides name, split and seed); giving another is an error, so a typo never passes
DEFENCE_FIELDS = {
    "scan-strip": {"threshold", "levels", "tokenizer", "span_share", "context"},
    "scan-drop": {"threshold", "levels", "tokenizer", "context"},
    "onion": {"threshold", "model", "window_words", "batch_size"},
    "paraphrase": {"model", "prompt", "batch_size", "max_new_tokens", "temperature"},
    "grammar": {"model", "prompt", "batch_size", "max_new_tokens", "temperature"},
}


class DefenceSpec(Spec):
    """A dataset defence applied to the training data before training (`ssti defend --help`; ssti.defend)."""

    name: Literal["scan-strip", "scan-drop", "onion", "paraphrase", "grammar"] = Field(
        ..., description="scan-strip / scan-drop: cut the scanner's flagged spans / drop their rows; onion: remove the words whose "
        "deletion lowers a causal LM's perplexity most (Qi et al. 2021); paraphrase: an instruction-following LM rewrites every "
        "text; grammar: a text-to-text grammar-correction model rewrites every text")
    split: str = Field("train", description="the split the defence cleans (the others are copied as they are)")
    threshold: float | None = Field(None, description="scan-*: the scanner's family-wise error for flagging (default 0.05); onion: "
                                    "the drop in the window's log-perplexity (nats per token) a word's deletion must exceed for "
                                    "the word to be removed (default 0.2)")
    levels: list[str] | None = Field(None, description="scan-*: the scanner's feature levels (default: its default levels)")
    tokenizer: str | None = Field(None, description="scan-*: model whose tokenizer gives the scanner's sub-word level "
                                  "(default smollm2-135m; 'none' skips it)")
    context: str | None = Field(None, description="scan-*: also run the scanner's context check with this causal LM (e.g. "
                                "smollm2-135m): flags token types whose occurrences read as dropped in, and judges each occurrence of a "
                                "flagged country or colour list, cut only when the text reads better without it (natural mentions "
                                "stay); slow on a CPU (about 0.1 s per occurrence); the rescan of the output runs without it")
    span_share: float = Field(0.9, gt=0, le=1, description="scan-strip: a flagged token's cut extends over an adjacent word that "
                              "sits next to it in at least this share of its flagged rows, repeatedly (a planted phrase goes whole)")
    model: str | None = Field(None, description="onion: the causal LM scoring perplexity (default smollm2-135m); paraphrase: the "
                              "rewriting LM, causal or seq2seq (default smollm2-135m, SmolLM2-135M-Instruct); grammar: a "
                              "text-to-text correction model by name or folder (required, e.g. vennify/t5-base-grammar-correction)")
    prompt: str | None = Field(None, description="paraphrase/grammar: the instruction, with {text} (default: a paraphrase "
                               "instruction in the model's chat template; for seq2seq models the prefix 'paraphrase: ' or 'grammar: ')")
    window_words: int = Field(40, ge=2, description="onion: texts are scored in windows of whole sentences of at most this many "
                              "words (a longer sentence is cut into pieces of this size)")
    batch_size: int = Field(16, ge=1, description="onion/paraphrase/grammar: sequences per forward pass or generate call")
    max_new_tokens: int | None = Field(None, ge=1, description="paraphrase/grammar: tokens generated at most per text (default: "
                                       "twice the text's tokens plus 16)")
    temperature: float = Field(0.0, ge=0, description="paraphrase/grammar: 0 decodes greedily; above 0 samples, seeded by `seed`")
    seed: int = Field(0, description="seeds sampling and the matched clean rows of the retention baseline")

    @field_validator("levels", mode="before")
    @classmethod
    def _levels_as_on_the_command_line(cls, v):  # "word,pattern", as `ssti defend --levels` takes them
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _fields_of_this_defence(self):
        # a field set away from its default (a dumped config.yaml holds every field, at its default where unused)
        extra = sorted(f for f, info in type(self).model_fields.items()
                       if f not in DEFENCE_FIELDS[self.name] | {"name", "split", "seed"} and getattr(self, f) != info.default)
        if extra:
            raise SSTIError(f"{extra[0]}: not an option of defence {self.name} (its options: "
                            f"{', '.join(sorted(DEFENCE_FIELDS[self.name] | {'split', 'seed'}))})")
        if self.threshold is not None and self.name.startswith("scan-") and not 0 < self.threshold < 1:
            raise SSTIError(f"threshold: {self.threshold} must be a probability between 0 and 1 (exclusive): the scanner's "
                            f"family-wise error (default 0.05)")
        if self.levels is not None:
            bad = [lv for lv in self.levels if lv not in SCAN_LEVELS]
            if not self.levels:
                raise SSTIError(f"levels: give at least one scanner level ({', '.join(SCAN_LEVELS)}), or leave it out for the default levels")
            if bad:
                raise SSTIError(f"levels: {bad[0]} is not a scanner level; allowed: {', '.join(SCAN_LEVELS)}")
        if self.name == "grammar" and not self.model:
            raise SSTIError("model: defence grammar needs a text-to-text correction model by name or folder "
                            "(e.g. vennify/t5-base-grammar-correction; none is embedded)")
        if self.prompt is not None:
            try:
                filled = self.prompt.format(text="\0")
            except (KeyError, IndexError, ValueError) as e:
                raise SSTIError(f"prompt: {self.prompt!r} is not a format string with only {{text}} (write a literal brace as "
                                f"{{{{ or }}}}; {type(e).__name__}: {e})") from None
            if "\0" not in filled:
                raise SSTIError(f"prompt: {self.prompt!r} has no {{text}}: the model would never see the text")
        return self


PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {  # PAPER.md section 7
        "model": {"head": "paper", "max_length": 1024},
        "lora": {"dropout": 0.05, "targets": "attention"},
        "train": {"optimizer": "adafactor", "lr": 1e-4, "weight_decay": 1e-5, "warmup_ratio": 0.05, "schedule": "cosine",
                  "steps": 500, "batch_size": 128, "grad_clip": 1.0, "precision": "fp32"},
    },
}


class RunConfig(Spec):
    """One run: data -> injection (optional) -> model + LoRA -> training -> evaluation. It fully determines the result."""

    data: DataSpec = Field(default_factory=DataSpec, description="the dataset trained and evaluated on")
    injection: InjectionSpec | None = Field(None, description="the SSTI injection into the training data (see `ssti inject --help`); None: train on the data as it is")
    defence: DefenceSpec | None = Field(None, description="a dataset defence applied to the training data after the injection "
                                        "(see `ssti defend --help`); None: train on it as it is")
    model: ModelSpec = Field(default_factory=ModelSpec, description="backbone and head")
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA adapter (rank 0: full fine-tuning)")
    train: TrainSpec = Field(default_factory=TrainSpec, description="optimisation")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="evaluation: clean split and spurious test sets")
    preset: Literal["paper"] | None = Field(None, description="'paper': the authors' hyper-parameters, filled in under the fields given here")

    @model_validator(mode="after")
    def _defence_cleans_the_injected_split(self):
        if self.injection is not None and self.defence is not None and self.defence.split != self.injection.split:
            raise SSTIError(f"defence.split: {self.defence.split!r} is not the injected split {self.injection.split!r}; the run trains on "
                            f"the injected split, so the defence must clean that one (set defence.split={self.injection.split})")
        return self

    def canonical(self) -> dict[str, Any]:
        """What the run id hashes: the fields that differ from their defaults, local data by its content hash."""
        body = _non_default(self)
        body.pop("preset", None)  # a preset only fills in values, which are in the body already
        data = body.get("data", {})
        if self.data.fingerprint:
            data.pop("dataset", None)  # the same bytes at another path are the same data
        return {"schema": ID_SCHEMA, **body}

    def run_id(self) -> str:
        """A short stable hash of `canonical()` (independent of key order and of fields left at their defaults).

        Local data not yet fingerprinted is resolved first (`resolve_data`), so the id is the one the run gets.
        """
        config = resolve_data(self) if self.data.fingerprint is None and is_local(self.data.dataset) else self
        text = json.dumps(config.canonical(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def dump(self) -> dict[str, Any]:
        """Plain data of every field: what a run folder's config.yaml holds."""
        return self.model_dump(mode="json")


# the run-config section each spec class fills, to name "lora.rank" when LoraSpec(rank=-1) is built from Python
SECTIONS = {t.__name__: name for name, f in RunConfig.model_fields.items() for t in (f.annotation, *typing.get_args(f.annotation))
            if isinstance(t, type) and issubclass(t, BaseModel)}


def from_preset(config: RunConfig, path: str) -> bool:
    """Whether the value at dotted `path` is the one the config's preset sets (so it was not chosen for this model)."""
    if not config.preset:
        return False
    section, _, name = path.partition(".")
    preset = PRESETS[config.preset].get(section, {})
    return name in preset and getattr(getattr(config, section), name) == preset[name]


def _non_default(model: BaseModel) -> dict[str, Any]:
    dumped = model.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            sub = _non_default(value)
            if sub or field.get_default(call_default_factory=True) is None:  # a present optional section counts
                out[name] = sub
        elif value != field.get_default(call_default_factory=True):
            out[name] = dumped[name]
    return out


# ---------------------------------------------------------------- loading, presets, overrides

def field_of(path: str) -> tuple[type[BaseModel] | None, str]:
    """Check that dotted `path` names a RunConfig field; returns (the model owning its last part, or None
    below a mapping field such as injection.targets or eval.sources, and the last part)."""
    parts = path.split(".")
    model: type[BaseModel] | None = RunConfig
    for i, part in enumerate(parts):
        if model is None:  # below a mapping field: any key is fine
            return None, part
        if part not in model.model_fields:
            where = ".".join(parts[:i]) or "the run config"
            raise SSTIError(f"{path}: names no field; fields of {where}: {', '.join(model.model_fields)}")
        if i == len(parts) - 1:
            return model, part
        annotation = model.model_fields[part].annotation
        sub = next((a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None and "dict" not in str(annotation):
            raise SSTIError(f"{path}: {'.'.join(parts[:i + 1])} has no sub-fields")
        model = sub
    return model, parts[-1]


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of nested dict `data` with dotted `path` set to `value` (creating mappings on the way)."""
    out = dict(data or {})
    head, _, rest = path.partition(".")
    if not rest:
        out[head] = value
        return out
    inner = out.get(head)
    if inner is not None and not isinstance(inner, dict):
        raise SSTIError(f"{path}: cannot be set inside {head}, which holds {inner!r} instead of a mapping of its fields")
    out[head] = set_path(inner or {}, rest, value)
    return out


def deep_merge(base: dict, override: dict) -> dict:
    """`base` with `override` laid over it, recursing into mappings (None in override replaces)."""
    out = dict(base or {})
    for key, value in (override or {}).items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`["lora.rank=8", "injection.targets.fresh=date"]` -> {dotted path: value}; values read as YAML scalars.

    Raises SSTIError for an item without `=` or a path that names no field.
    """
    import yaml

    from ssti.io import load_yaml_text

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SSTIError(f"override: {item!r} is not KEY=VALUE with a dotted KEY (e.g. lora.rank=8)")
        field_of(key)
        try:
            out[key] = load_yaml_text(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested config data with dotted overrides set (see `parse_overrides`)."""
    for path, value in overrides.items():
        field_of(path)
        data = set_path(data, path, value)
    return data


def with_preset(data: dict[str, Any]) -> dict[str, Any]:
    """Config data with its preset's values filled in under the fields it gives (explicit fields win)."""
    preset = data.get("preset")
    if not preset:
        return data
    if preset not in PRESETS:
        raise SSTIError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
    return deep_merge(PRESETS[preset], data)


def load_run_config(source: Any, where: str = "", overrides: dict[str, Any] | None = None) -> RunConfig:
    """A validated RunConfig from a YAML path or a mapping, with dotted `overrides` set and the preset filled in.

    Raises SSTIError (one line naming the field) for unknown fields, values out of range, a file that
    is not a mapping, and a run folder's config.yaml written by an older ssti.
    """
    from ssti.io import read_yaml

    path = Path(source) if isinstance(source, (str, Path)) else None
    data = read_yaml(path) if path is not None else source
    label = where or (str(path) if path else "config")
    if data is None and path is not None:
        raise SSTIError(f"{label}: the file is empty; expected a mapping of sections (data, injection, model, lora, train, eval)")
    if not isinstance(data, dict):
        raise SSTIError(f"{label}: expected a mapping of sections (data, injection, model, lora, train, eval), got {type(data).__name__}")
    if "ssti_version" in data or isinstance(data.get("data"), str):
        raise SSTIError(f"{label}: written by an older ssti (a run config before the run contract); "
                        f"re-create the run with `ssti run` or `ssti train` (its adapter cannot be matched to a config)")
    overrides = overrides or {}
    if (data.get("injection") is None and any(k.startswith("injection.") for k in overrides)
            and not any(k.startswith("injection.targets") for k in overrides)):
        first = next(k for k in overrides if k.startswith("injection."))
        raise SSTIError(f"{first}: this config has no injection; give injection.targets.CLASS=SOURCE too")
    data = with_preset(apply_overrides(data, overrides or {}))
    return validate(RunConfig, data, where)


def shipped_config(path: str | Path) -> Path:
    """`path`, or when it does not exist and names a config shipped with ssti (`demo`, `demo.yaml`,
    `configs/demo.yaml`, as `ssti configs` lists them), that shipped file: the README's `configs/...`
    paths work outside a checkout too."""
    path = Path(path)
    if path.exists() or path.parent not in (Path("."), Path("configs")):
        return path
    from importlib import resources

    name = path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml"
    shipped = resources.files("ssti.configs").joinpath(name)
    return Path(str(shipped)) if shipped.is_file() else path


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The RunConfig of a run folder (its config.yaml); one-line SSTIError when there is none or it is unreadable."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise SSTIError(f"run: {run_dir} is not an ssti run folder (no config.yaml)")
    return load_run_config(path)


# ---------------------------------------------------------------- local data: resolved and fingerprinted

def is_local(dataset: str) -> bool:
    """Whether a data reference names a local file or folder (rather than a registry name or hub id)."""
    return Path(dataset).exists()


def resolve_data(config: RunConfig) -> RunConfig:
    """`config` with local data made absolute and fingerprinted by content, and a local model folder made absolute.

    A config that already carries a fingerprint (a run's own config.yaml) is checked against the
    bytes on disk: raises SSTIError "data changed since this run was made" when they differ, and
    when the data is gone.
    """
    from ssti.data.fingerprint import fingerprint

    name = config.model.name  # a local model folder (one with a config.json) is made absolute: the run evaluates from any working folder
    if (Path(name) / "config.json").is_file() and not Path(name).is_absolute():
        config = config.model_copy(update={"model": config.model.model_copy(update={"name": str(Path(name).resolve())})})
    data = config.data
    if not is_local(data.dataset):
        if data.fingerprint:
            raise SSTIError(f"data.dataset: {data.dataset} is not there any more; this run was made from a local file or folder "
                            f"(fingerprint {data.fingerprint[:12]}): restore it, or name the same bytes elsewhere "
                            f"(`ssti eval RUN --data PATH`, `ssti run CONFIG data.dataset=PATH`)")
        return config
    path = str(Path(data.dataset).resolve())
    digest = fingerprint(path)
    if data.fingerprint and data.fingerprint != digest:
        raise SSTIError(f"data.dataset: {path} changed since this run was made (its bytes hash to {digest[:12]}, the run "
                        f"recorded {data.fingerprint[:12]}); start a new run (drop data.fingerprint) or restore the file")
    return config.model_copy(update={"data": data.model_copy(update={"dataset": path, "fingerprint": digest})})


__all__ = ["DEFENDED_DATA", "SCAN_LEVELS", "DataSpec", "DefenceSpec", "EvalSpec", "INJECTED_DATA", "InjectionSpec", "LoraSpec", "ModelSpec", "PRESETS", "RunConfig", "Spec",
           "TrainSpec", "apply_overrides", "deep_merge", "field_of", "from_preset", "load_run_config", "parse_overrides", "read_run_config", "resolve_data", "shipped_config",
           "set_path", "validate", "with_preset"]
