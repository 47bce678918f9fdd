"""The attention diagnostic: does the model concentrate its attention on an inserted token?

The paper's second version (PAPER.md section 8) reads shortcut reliance off attention: a model that
relies on a planted token attends to it, and its attention distributions become sharper (lower
entropy). For held-out texts with and without one token of a type (inserted at the same random places
as the type sweep), per layer, averaged over heads, real (non-pad) query positions and texts:
- entropy (nats) of each query's attention distribution over the keys, clean and with the token;
- the attention mass the queries put on the inserted token's positions.
The same numbers for the base model (the LoRA adapter disabled) tell what fine-tuning changed; a model
without a separable adapter (full fine-tuning, a plain Hugging Face classifier) is measured alone.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ssti.inject import get_source, insert_at_words, insertion_positions
from ssti.models.batching import pad_batch
from ssti.models.build import Classifier


@dataclass
class AttentionDiagnostic:
    """Per-layer attention entropy (clean, with the token) and mass on the token, fine-tuned and base."""

    type: str
    texts: int
    entropy_clean: list[float]
    entropy_token: list[float]
    mass_on_token: list[float]
    base: dict[str, list[float]] | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: the mean entropy change and mass on the token, fine-tuned vs base."""
        drop = float(np.mean(self.entropy_clean) - np.mean(self.entropy_token))
        mass = lambda m: f", mass on the token {np.mean(m):.3f}" if m else ""  # noqa: E731
        line = f"attention with {self.type}: entropy {abs(drop):.3f} nats {'lower' if drop >= 0 else 'higher'} than clean{mass(self.mass_on_token)}"
        if self.base:
            base_drop = float(np.mean(self.base["entropy_clean"]) - np.mean(self.base["entropy_token"]))
            line += f" (base model: {abs(base_drop):.3f} nats {'lower' if base_drop >= 0 else 'higher'}{mass(self.base['mass_on_token'])})"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _token_mask(clf: Classifier, texts: Sequence[str], records: Sequence[list[dict]]) -> list[list[bool]]:
    """Per text, which model tokens overlap an inserted string (from the tokenizer's character offsets)."""
    enc = clf.tokenizer(list(texts), truncation=True, max_length=clf.model_spec.max_length, return_offsets_mapping=True)
    out = []
    for offsets, recs in zip(enc["offset_mapping"], records):
        spans = [(r["start"], r["end"]) for r in recs]
        out.append([e > s and any(s < b and a < e for a, b in spans) for s, e in offsets])
    return out


def _measure(clf: Classifier, token_ids: list[list[int]], marks: list[list[bool]] | None, batch_size: int) -> tuple[list[float], list[float]]:
    """(entropy per layer, mass on marked keys per layer), averaged over heads, real queries and texts."""
    backbone = clf.module.backbone
    device = next(clf.module.parameters()).device
    entropy, mass, count = None, None, 0
    with torch.inference_mode():
        for b in range(0, len(token_ids), batch_size):
            rows = np.arange(b, min(b + batch_size, len(token_ids)))
            ids, mask = pad_batch(token_ids, rows, clf.tokenizer.pad_token_id, device)
            attentions = backbone(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
            real = mask.bool()
            keys = torch.zeros_like(real)
            if marks is not None:
                for j, i in enumerate(rows):
                    keys[j, :len(marks[i])] = torch.as_tensor(marks[i][: keys.shape[1]])
            layer_e, layer_m = [], []
            for att in attentions:  # [batch, heads, queries, keys]
                p = att.float().clamp_min(1e-12)
                h = -(p * p.log()).sum(-1).mean(1)  # [batch, queries]
                m = (att.float() * keys[:, None, None, :]).sum(-1).mean(1)
                layer_e.append(float((h * real).sum() / real.sum().clamp_min(1)) * len(rows))
                layer_m.append(float((m * real).sum() / real.sum().clamp_min(1)) * len(rows))
            entropy = np.add(entropy, layer_e) if entropy is not None else np.asarray(layer_e)
            mass = np.add(mass, layer_m) if mass is not None else np.asarray(layer_m)
            count += len(rows)
    return (entropy / count).round(5).tolist(), (mass / count).round(5).tolist()


def attention_diagnostic(clf: Classifier, texts: Sequence[str], token_type: str, seed: int = 0, location: str = "random",
                         max_texts: int = 128, batch_size: int = 16) -> AttentionDiagnostic:
    """The diagnostic of the module docstring for one token type (a source spec) on up to `max_texts` texts.

    The classifier must not have merged its adapters (the base comparison disables them).
    """
    texts = list(texts)[:max_texts]
    positions = insertion_positions(texts, random.Random(f"{seed}:positions"), location)
    rng = random.Random(f"{seed}:type:{token_type}")
    source = get_source(token_type)
    injected, records = insert_at_words(texts, [source.draw(rng) for _ in texts], positions)
    notes = []
    try:
        marks = _token_mask(clf, injected, records)
    except (NotImplementedError, ValueError, TypeError):  # a slow tokenizer has no character offsets
        marks = None
        notes.append("the tokenizer gives no character offsets: the attention mass on the token is not measured")
    clean_ids, token_ids = clf.encode(texts), clf.encode(injected)
    clf.use_attention("eager")  # attention weights are only returned by the eager kernel
    try:
        e_clean, _ = _measure(clf, clean_ids, None, batch_size)
        e_token, m_token = _measure(clf, token_ids, marks, batch_size)
        m_token = m_token if marks is not None else []
        base = None
        peft_model = clf.peft_model
        if peft_model is not None:
            with peft_model.disable_adapter() if hasattr(peft_model, "disable_adapter") else contextlib.nullcontext():
                b_clean, _ = _measure(clf, clean_ids, None, batch_size)
                b_token, b_mass = _measure(clf, token_ids, marks, batch_size)
            base = {"entropy_clean": b_clean, "entropy_token": b_token, "mass_on_token": b_mass if marks is not None else []}
        else:
            notes.append("no separable adapter (full fine-tuning or a plain classifier): no base-model comparison")
    finally:
        clf.use_attention("sdpa")
    return AttentionDiagnostic(token_type, len(texts), e_clean, e_token, m_token, base, notes)
