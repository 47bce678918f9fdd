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
from ssti.models.loading import load_backbone, load_tokenizer, model_width
from ssti.models.precision import compute_dtype
from ssti.models.lora import FastDropout, apply_lora, count_trainable, expected_lora_parameters
from ssti.models.registry import ModelEntry, resolve_model


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

    def use_fast_dropout(self) -> None:
        """Replace the backbone's own `nn.Dropout` layers by `FastDropout` at the same rate (CPU training).

        An encoder's hidden-state dropout (BERT: p=0.1, 13 layers in all-MiniLM-L6) cost about 17% of a
        minilm-l6 training step in `bernoulli_` (profiled); the cheaper draw of LoRA's dropout made its
        training 13% faster (3,500 -> 4,000 real tokens/s, measured side by side). Decoders such as
        SmolLM2 have no dropout layers; functional dropout inside attention is left as it is.
        """
        for module in list(self.module.backbone.modules()):
            for name, child in list(module.named_children()):
                if type(child) is torch.nn.Dropout:
                    setattr(module, name, FastDropout(child.p))

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

    def kept_chars(self, texts: list[str], room: int = 0) -> list[int] | None:
        """How many leading characters of each text the model sees after truncation to max_length tokens
        (less `room` tokens kept free, e.g. for a token the probe will insert).

        An inserted token whose start offset is at or beyond this count is cut off (the model never
        sees it). None when the tokenizer cannot map tokens to characters (a slow tokenizer).
        """
        if not texts:  # a fast tokenizer fails on an empty batch
            return []
        limit = max(2, self.model_spec.max_length - room)
        verbalizer = self.model_spec.head == "verbalizer"
        prefix = self.model_spec.template.split("{text}")[0] if verbalizer else ""
        full = [self.model_spec.template.format(text=t) for t in texts] if verbalizer else list(texts)
        try:
            enc = self.tokenizer(full, truncation=True, max_length=limit, return_offsets_mapping=True)
        except (NotImplementedError, ValueError, TypeError):
            return None
        out = []
        for text, offsets, ids in zip(texts, enc["offset_mapping"], enc["input_ids"]):
            untruncated = len(ids) < limit
            end = max((e for s, e in offsets if e > s), default=0) - len(prefix)
            out.append(len(text) if untruncated else max(0, min(end, len(text))))
        return out


def lost_insertions(clf: "Classifier", texts: list[str], manifest: list[dict], row_of: dict[str, int]) -> dict[str, int] | None:
    """Insertions of `manifest` (rows by id -> index into `texts`) that truncation cuts off.

    Returns {"insertions", "lost", "rows", "rows_all_lost"}, or None when the tokenizer cannot tell.
    """
    rows = [r for r in manifest if r["id"] in row_of and r.get("insertions")]
    kept = clf.kept_chars([texts[row_of[r["id"]]] for r in rows])
    if kept is None:
        return None
    total = lost = all_lost = 0
    for r, k in zip(rows, kept):
        starts = [ins["start"] for ins in r["insertions"]]
        cut = sum(s >= k for s in starts)
        total, lost, all_lost = total + len(starts), lost + cut, all_lost + (cut == len(starts) and cut > 0)
    return {"insertions": total, "lost": lost, "rows": len(rows), "rows_all_lost": all_lost}


def build_classifier(model_spec: ModelSpec, lora_spec: LoraSpec, class_names: list[str], seed: int = 0,
                     base_dtype: torch.dtype = torch.float32, max_length_from_preset: bool = False) -> Classifier:
    """A fresh classifier: pretrained backbone (frozen, in `base_dtype`), LoRA adapters (or full
    fine-tuning at rank 0) and the chosen head, with the trainable count checked against LoRA's formula.

    max_length is checked against the model's positions first (`check_max_length`)."""
    entry = resolve_model(model_spec.name)
    tokenizer = load_tokenizer(model_spec.name, trust_remote_code=model_spec.trust_remote_code)
    causal = model_spec.head == "verbalizer"
    if lora_spec.rank == 0:
        base_dtype = torch.float32  # full fine-tuning keeps fp32 master weights
    backbone = load_backbone(entry, causal_lm=causal, trust_remote_code=model_spec.trust_remote_code, dtype=base_dtype)
    label_ids = _label_token_ids(tokenizer, model_spec, class_names) if causal else None
    hidden = model_width(backbone)
    model_spec = check_max_length(model_spec, backbone.config, max_length_from_preset)
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
        module = SequenceClassifier(backbone, model_spec.head, entry.arch, len(class_names), hidden, label_ids, head_seed=seed,
                                    pad_to=model_spec.max_length, pad_id=tokenizer.pad_token_id)
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


def check_max_length(model_spec: ModelSpec, config, from_preset: bool = False) -> ModelSpec:
    """`model_spec` with max_length checked against the model's position table (`max_position_embeddings`).

    A value above it is refused (SSTIError naming model.max_length and the limit), unless it came from a
    preset (`from_preset`), when it is clamped to the limit with a warning on stderr.
    """
    limit = next((getattr(config, k) for k in ("max_position_embeddings", "n_positions", "max_context_length")
                  if isinstance(getattr(config, k, None), int)), None)
    if not limit or model_spec.max_length <= limit:
        return model_spec
    if from_preset:
        import sys

        print(f"warning: model.max_length {model_spec.max_length} (from the preset) is above {model_spec.name}'s "
              f"{limit} positions; using {limit}", file=sys.stderr)
        return model_spec.model_copy(update={"max_length": int(limit)})
    raise SSTIError(f"model.max_length: {model_spec.max_length} is above the {limit} positions of {model_spec.name} "
                    f"(allowed: 8..{limit})")


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
    if lora_spec.rank > 0 and not (folder / "adapter_model.safetensors").is_file():
        raise SSTIError(f"run: {folder} has no adapter_model.safetensors (ssti loads safetensors only, never pickled weights "
                        f"such as adapter_model.bin: they can run arbitrary code)")
    from safetensors import SafetensorError

    file = folder / ("adapter_model.safetensors" if lora_spec.rank > 0 else "backbone.safetensors")  # the one being read
    try:
        if lora_spec.rank > 0:
            from peft import PeftModel

            peft_model = PeftModel.from_pretrained(backbone, folder)
            backbone = peft_model.get_base_model()
        else:
            backbone.load_state_dict(load_file(file), strict=False)
        label_ids = _label_token_ids(tokenizer, model_spec, meta["class_names"]) if causal else None
        module = SequenceClassifier(backbone, model_spec.head, entry.arch, len(meta["class_names"]), model_width(backbone), label_ids,
                                    pad_to=model_spec.max_length, pad_id=tokenizer.pad_token_id)
        if module.head is not None:
            file = folder / "head.safetensors"
            module.head.load_state_dict(load_file(file))
    except SafetensorError as e:
        raise SSTIError(f"run: {file} is damaged ({str(e).splitlines()[0][:160]}); re-create the run") from None
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
    return load_classifier(run_dir / "adapter", base_dtype=compute_dtype(precision, device, "infer"))
