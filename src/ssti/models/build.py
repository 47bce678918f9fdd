"""Build a classifier (backbone + LoRA + head) from specs, save it beside a run, and load it back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ssti.version import __version__
from ssti.config import LoraSpec, ModelSpec, validate
from ssti.errors import SSTIError
from ssti.models.heads import SequenceClassifier
from ssti.models.loading import load_backbone, load_tokenizer
from ssti.models.lora import apply_lora, count_trainable, expected_lora_parameters
from ssti.models.registry import ModelEntry, resolve_model


def has_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls are fast here: CUDA with bf16 support, or a CPU with AVX-512 BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The autocast dtype for a precision setting ('auto', 'bf16', 'fp32') on `device`."""
    if precision == "fp32" or (precision == "auto" and not has_bf16(device)):
        return torch.float32
    return torch.bfloat16


@dataclass
class Classifier:
    """Everything needed to run a text classifier: the module, its tokenizer and how it was built."""

    module: SequenceClassifier
    tokenizer: object
    entry: ModelEntry
    model_spec: ModelSpec
    lora_spec: LoraSpec
    class_names: list[str]
    peft_model: object | None = None
    trainable: int = 0
    expected_trainable: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def merged(self) -> bool:
        """Whether `merge_adapters` folded the LoRA update away (a LoRA classifier without its PeftModel)."""
        return self.lora_spec.rank > 0 and self.peft_model is None

    def autocast(self, device: torch.device, dtype: torch.dtype):
        """Autocast for a forward pass, where it pays.

        On CUDA always for bf16: the fp32 adapters then run on tensor cores too. On a CPU only when the
        weights are fp32: frozen base weights already held in bf16 need none (PEFT runs the fp32
        adapters itself), which skips re-casting every weight matrix at every step.
        """
        weights_dtype = next(self.module.backbone.parameters()).dtype
        wanted = dtype != torch.float32 and (device.type == "cuda" or weights_dtype == torch.float32)
        return torch.autocast(device.type, dtype=dtype, enabled=wanted)

    def merge_adapters(self) -> None:
        """Fold the LoRA update into the base weights, for inference only (evaluation never trains).

        Each adapted layer then costs one matmul instead of the adapter's four small extra ops: a
        smollm2-135m forward of 32 x 25 tokens (LoRA r=8 on q/v) went from 699 to 530 ms (measured).
        Exact up to float rounding in fp32; with bf16 base weights the merged weight is rounded to
        bf16 once, as in any bf16 deployment of the fine-tuned model. A merged classifier can no
        longer be saved as an adapter.
        """
        if self.peft_model is not None:
            self.peft_model.merge_and_unload()
            self.peft_model = None

    def use_attention(self, implementation: str) -> None:
        """Switch the backbone's attention kernel ('eager', 'sdpa', ...) where the model allows it.

        Training on a CPU uses 'eager': PyTorch's CPU flash-attention backward made a smollm2-135m
        training step about 25% slower at 25 and at 250 tokens (profiled); forward-only inference keeps
        'sdpa', which is the faster one there. Models that cannot switch (remote code) keep theirs.
        """
        backbone = self.module.backbone
        if getattr(backbone, "_can_set_attn_implementation", lambda: False)():
            backbone.set_attn_implementation(implementation)

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (template applied for the verbalizer), truncated to max_length."""
        if self.model_spec.head == "verbalizer":
            texts = [self.model_spec.template.format(text=t) for t in texts]
        max_length = self.model_spec.max_length
        ids = self.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        return ids


def build_classifier(model_spec: ModelSpec, lora_spec: LoraSpec, class_names: list[str], seed: int = 0,
                     base_dtype: torch.dtype = torch.float32) -> Classifier:
    """A fresh classifier: pretrained backbone (frozen, in `base_dtype`), LoRA adapters (or full
    fine-tuning at rank 0) and the chosen head, with the trainable count checked against LoRA's formula."""
    entry = resolve_model(model_spec.name)
    tokenizer = load_tokenizer(model_spec.name, trust_remote_code=model_spec.trust_remote_code)
    causal = model_spec.head == "verbalizer"
    if lora_spec.rank == 0:
        base_dtype = torch.float32  # full fine-tuning keeps fp32 master weights
    backbone = load_backbone(entry, causal_lm=causal, trust_remote_code=model_spec.trust_remote_code, dtype=base_dtype)
    label_ids = _label_token_ids(tokenizer, model_spec, class_names) if causal else None
    hidden = backbone.config.hidden_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft_model = None
        if lora_spec.rank > 0:
            exclude = ["lm_head"] if causal else None
            peft_model = apply_lora(backbone, lora_spec.rank, lora_spec.resolved_alpha(), lora_spec.dropout,
                                    entry.lora_targets(lora_spec.targets), exclude)
            backbone = peft_model.get_base_model()
        else:
            backbone.requires_grad_(True)
        module = SequenceClassifier(backbone, model_spec.head, entry.arch, len(class_names), hidden, label_ids, head_seed=seed)
    clf = Classifier(module, tokenizer, entry, model_spec, lora_spec, list(class_names), peft_model)
    clf.trainable = count_trainable(module)
    head_params = sum(p.numel() for p in module.head.parameters()) if module.head is not None and model_spec.head == "classifier" else 0
    if lora_spec.rank > 0:
        clf.expected_trainable = expected_lora_parameters(backbone, lora_spec.rank) + head_params
    else:
        clf.expected_trainable = sum(p.numel() for p in backbone.parameters()) + head_params
    if clf.trainable != clf.expected_trainable:
        raise SSTIError(f"lora: {clf.trainable:,} trainable parameters, but LoRA's formula gives {clf.expected_trainable:,}")
    return clf


def _label_token_ids(tokenizer, model_spec: ModelSpec, class_names: list[str]) -> list[int]:
    """The first token of each label word (with a leading space, as it follows the prompt)."""
    words = model_spec.label_words or class_names
    if len(words) != len(class_names):
        raise SSTIError(f"model.label_words: {len(words)} words given for {len(class_names)} classes ({', '.join(class_names)})")
    ids = []
    for w in words:
        tokens = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        if len(tokens) > 1 and not tokenizer.decode(tokens[:1]).strip():
            tokens = tokens[1:]  # the space is a token of its own (byte-level tokenizers)
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise SSTIError(f"model.label_words: {words} do not start with distinct tokens; choose other label_words")
    return ids


def save_classifier(clf: Classifier, folder: str | Path) -> None:
    """Write the trained parts into `folder` (the run's adapter/): PEFT adapter or full weights,
    the head, and model.json saying how to rebuild the rest. Safetensors only."""
    if clf.merged:
        raise SSTIError("model: this classifier's adapters were merged for inference; save it before merge_adapters()")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if clf.peft_model is not None:
        clf.peft_model.save_pretrained(folder)
    else:
        state = {k: v.detach().contiguous() for k, v in clf.module.backbone.state_dict().items()}
        save_file(_untie(state), folder / "backbone.safetensors")
    if clf.module.head is not None:
        save_file({k: v.detach().contiguous() for k, v in clf.module.head.state_dict().items()}, folder / "head.safetensors")
    meta = {"model": clf.model_spec.model_dump(), "lora": clf.lora_spec.model_dump(), "class_names": clf.class_names,
            "ssti_version": __version__}
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")


def _untie(state: dict) -> dict:
    """Clone tensors that share storage (tied embeddings), which safetensors refuses to save."""
    seen, out = set(), {}
    for k, v in state.items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def load_classifier(folder: str | Path, base_dtype: torch.dtype = torch.float32) -> Classifier:
    """Rebuild a saved classifier: the same backbone, the saved adapter (or weights) and head."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError):
        raise SSTIError(f"run: {folder} has no readable model.json (not a saved ssti model)") from None
    model_spec = validate(ModelSpec, meta["model"], "model")
    lora_spec = validate(LoraSpec, meta["lora"], "lora")
    entry = resolve_model(model_spec.name)
    tokenizer = load_tokenizer(model_spec.name, trust_remote_code=model_spec.trust_remote_code)
    causal = model_spec.head == "verbalizer"
    if lora_spec.rank == 0:
        base_dtype = torch.float32
    backbone = load_backbone(entry, causal_lm=causal, trust_remote_code=model_spec.trust_remote_code, dtype=base_dtype)
    peft_model = None
    try:
        if lora_spec.rank > 0:
            from peft import PeftModel

            peft_model = PeftModel.from_pretrained(backbone, folder)
            backbone = peft_model.get_base_model()
        else:
            backbone.load_state_dict(load_file(folder / "backbone.safetensors"), strict=False)
        label_ids = _label_token_ids(tokenizer, model_spec, meta["class_names"]) if causal else None
        module = SequenceClassifier(backbone, model_spec.head, entry.arch, len(meta["class_names"]), backbone.config.hidden_size, label_ids)
        if module.head is not None:
            module.head.load_state_dict(load_file(folder / "head.safetensors"))
    except (OSError, RuntimeError, ValueError) as e:
        raise SSTIError(f"run: cannot load the saved model in {folder}: {str(e).splitlines()[0]}") from None
    module.eval()
    return Classifier(module, tokenizer, entry, model_spec, lora_spec, meta["class_names"], peft_model)


def load_run(run_dir: str | Path, precision: str | None = None) -> Classifier:
    """The classifier a run folder trained, its base weights in the precision the run used (or `precision`)."""
    from ssti.config import read_run_config

    run_dir = Path(run_dir)
    if precision is None:
        precision = read_run_config(run_dir).train.precision
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return load_classifier(run_dir / "adapter", base_dtype=compute_dtype(precision, device))
