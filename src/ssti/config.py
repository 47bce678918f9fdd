"""Specs of every stage as pydantic models with help text: validated at the boundary, YAML in and out.

A `RunConfig` fully determines a run: data (+ optional injection) -> model + LoRA -> training -> eval.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ssti.errors import SSTIError

T = TypeVar("T", bound=BaseModel)


class Spec(BaseModel):
    """Base of all specs: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def validate(cls: type[T], data: Any, where: str = "") -> T:
    """Build `cls` from `data`, turning pydantic's report into a one-line SSTIError naming the field."""
    try:
        return cls.model_validate(data if data is not None else {})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in ((where,) if where else ()) + tuple(err["loc"])) or cls.__name__
        msg = err["msg"]
        if err["type"] == "literal_error":
            msg = f"{err.get('input')!r} is not allowed; expected {err['ctx']['expected']}"
        raise SSTIError(f"{field}: {msg}") from None


class ModelSpec(Spec):
    name: str = Field("smollm2-135m", description="registry name (see `ssti models`), Hugging Face id, or local folder")
    head: Literal["classifier", "paper", "verbalizer"] = Field("classifier", description="classifier: trained linear head on pooled states; paper: the authors' frozen head on [mean; last]; verbalizer: LM scores label words")
    max_length: int = Field(256, ge=8, description="texts are truncated to this many model tokens")
    trust_remote_code: bool = Field(False, description="allow models that run code from their repository (OpenELM)")
    label_words: list[str] | None = Field(None, description="verbalizer: one word per class (default: the class names)")
    template: str = Field("{text}\nAnswer:", description="verbalizer: prompt template with {text}")


class LoraSpec(Spec):
    rank: int = Field(8, ge=0, description="LoRA rank; 0 = full fine-tuning (all weights trainable) as a comparison")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; default = rank, as in the paper")
    alpha_ratio: float | None = Field(None, gt=0, description="alternatively alpha = alpha_ratio x rank")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    targets: str | list[str] = Field("attention", description="'attention' (all attention projections), 'qv', 'all-linear', or module names")

    @model_validator(mode="after")
    def _one_alpha(self):
        if self.alpha is not None and self.alpha_ratio is not None:
            raise ValueError("give alpha or alpha_ratio, not both")
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
    steps: int | None = Field(100, ge=1, description="optimizer steps (or use epochs)")
    epochs: float | None = Field(None, gt=0, description="passes over the training split, instead of steps")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (None: no clipping)")
    seed: int = Field(0, description="seeds batch order, head init and LoRA init")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto: bf16 where the hardware has it (CUDA or CPU with AVX-512 BF16), else fp32")
    checkpoint_every: int = Field(50, ge=0, description="save a resumable checkpoint every N steps (0: never)")

    def total_steps(self, n_train: int) -> int:
        """Optimizer steps to run for a training split of n_train samples."""
        if self.epochs is not None:
            return max(1, int(self.epochs * n_train // self.batch_size))
        return int(self.steps or 1)


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "model": {"head": "paper", "max_length": 1024},
        "lora": {"alpha": None, "alpha_ratio": None, "dropout": 0.05, "targets": "attention"},
        "train": {"optimizer": "adafactor", "lr": 1e-4, "weight_decay": 1e-5, "warmup_ratio": 0.05, "schedule": "cosine",
                  "steps": 500, "epochs": None, "batch_size": 128, "grad_clip": 1.0, "precision": "fp32"},
    },
}


def apply_preset(data: dict[str, Any], preset: str | None) -> dict[str, Any]:
    """Overlay a named preset (the authors' hyper-parameters for 'paper') on a config dict."""
    if not preset:
        return data
    if preset not in PRESETS:
        raise SSTIError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, values in PRESETS[preset].items():
        out.setdefault(section, {})
        out[section] = {**(out[section] or {}), **values}
    return out


class DataSpec(Spec):
    dataset: str = Field("rotten-tomatoes", description="registry name (see `ssti datasets`), ssti folder, or csv/jsonl/parquet file")
    text_column: str = Field("text", description="text column of a local file")
    label_column: str = Field("label", description="label column of a local file")


class EvalSpec(Spec):
    split: str = Field("test", description="split to evaluate on")
    sources: dict[str, str] | None = Field(None, description="class -> token source for the spurious sets (default: the types the run trained with)")
    location: str | None = Field(None, description="location of test-time tokens (default: the training injection's)")
    max_samples: int | None = Field(None, ge=1, description="evaluate on a stratified seeded subsample of this many rows (None: all)")
    batch_size: int = Field(32, ge=1, description="inference batch")
    seed: int = Field(0, description="seeds the test-time token draws and the subsample")


class RunConfig(Spec):
    """One pipeline run: inject (optional) -> train -> evaluate. It fully determines the result."""

    data: DataSpec = Field(default_factory=DataSpec)
    injection: dict[str, Any] | None = Field(None, description="an InjectionSpec (see `ssti inject --help`); None: train on clean data")
    model: ModelSpec = Field(default_factory=ModelSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    preset: str | None = Field(None, description="'paper': the authors' hyper-parameters, applied under the fields given here")


def load_run_config(path_or_data: Any, where: str = "") -> RunConfig:
    """A RunConfig from a YAML path or a dict; a preset is applied first, explicit fields win."""
    from pathlib import Path

    from ssti.io import read_yaml

    data = read_yaml(path_or_data) if isinstance(path_or_data, (str, Path)) else dict(path_or_data or {})
    if not isinstance(data, dict):
        raise SSTIError(f"{where or 'config'}: expected a mapping of sections (data, injection, model, lora, train, eval)")
    preset = data.get("preset")
    if preset:
        base = apply_preset({}, preset)
        data = {**data, **{k: {**base.get(k, {}), **(data.get(k) or {})} for k in base}}
    return validate(RunConfig, data, where)
