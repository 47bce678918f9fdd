"""LoRA wrapping with PEFT, and the check that the trainable parameters are exactly what LoRA implies."""

from __future__ import annotations

from torch import nn

from ssti.errors import SSTIError


def linear_module_names(model: nn.Module) -> list[str]:
    """The distinct short names of the Linear layers of `model` (what LoRA can target)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})


def apply_lora(backbone: nn.Module, rank: int, alpha: float, dropout: float, targets: list[str] | str, exclude: list[str] | None = None):
    """Inject LoRA adapters into `backbone` in place and return the PeftModel (for saving).

    Only the adapters train; everything else in the backbone is frozen. Targets that match no layer
    are refused with the names that exist.
    """
    from peft import LoraConfig, get_peft_model

    if targets != "all-linear":
        existing = linear_module_names(backbone)
        missing = [t for t in targets if t not in existing]
        if missing:
            raise SSTIError(f"lora targets: {', '.join(missing)} match no layer; Linear layers are: {', '.join(existing)}")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                        exclude_modules=exclude or None)
    return get_peft_model(backbone, config)


def expected_lora_parameters(backbone: nn.Module, rank: int) -> int:
    """The analytic LoRA count: rank x (in + out) for every Linear layer that carries an adapter."""
    from peft.tuners.lora import LoraLayer

    total = 0
    for module in backbone.modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            total += rank * (base.in_features + base.out_features)
    return total


def count_trainable(model: nn.Module) -> int:
    """The number of parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
