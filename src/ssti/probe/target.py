"""What `ssti probe` audits: any text classifier, loaded as an ssti `Classifier`.

Accepted, in the order they are recognised:
- an ssti run folder (`config.yaml` + `adapter/model.json`): the run's classifier; its held-out texts
  default to the run's own evaluation split;
- a saved ssti classifier (`model.json`, e.g. a run's `adapter/`);
- a PEFT adapter folder (`adapter_config.json` names its base): a sequence-classification adapter
  whose head was saved with it (`modules_to_save`), on `AutoModelForSequenceClassification` of the base;
- a Hugging Face sequence-classification model: a local folder or a hub id.
Everything but the run folder needs held-out labelled texts (`--data`) in the model's label space.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssti.config import LoraSpec, ModelSpec
from ssti.errors import SSTIError
from ssti.io import MARKER
from ssti.models.build import Classifier, load_classifier, load_run

HEAD_NAMES = ("score", "classifier", "out_proj", "classification_head")  # last module names of seq-cls heads
GENERIC_LABEL = re.compile(r"LABEL_\d+")  # what transformers calls classes nobody named


@dataclass
class ProbeTarget:
    """The classifier to audit, what it is, and the run folder it came from (None for other kinds)."""

    clf: Classifier
    kind: str  # "run" | "ssti-model" | "peft-adapter" | "hf-model"
    source: str
    run_dir: Path | None = None


class HFSequenceClassifier(nn.Module):
    """A Hugging Face `...ForSequenceClassification` model behind ssti's `forward(input_ids, attention_mask) -> logits`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.backbone = model  # what Classifier.autocast and MFU counting read
        self.head = None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()


def load_target(source: str | Path, labels: list[str] | None = None, trust_remote_code: bool = False,
                max_length: int | None = None) -> ProbeTarget:
    """Load the classifier at `source` (see the module docstring); `labels` renames its classes in index order.

    Raises SSTIError (one line) for a causal LM without a classification head, an adapter whose base
    is not available offline, a model that cannot be loaded, or `labels` of the wrong length.
    """
    path = Path(str(source))
    if (path / "config.yaml").is_file() and (path / MARKER).is_file() and not (path / "adapter" / "model.json").is_file():
        raise SSTIError(f"model: {path} is an ssti run folder without adapter/model.json: its training has not finished "
                        f"(finish it with `ssti run {path / 'config.yaml'} --out {path}`)")
    if (path / "config.yaml").is_file() and (path / "adapter" / "model.json").is_file():
        target = ProbeTarget(load_run(path), "run", str(source), run_dir=path)
    elif (path / "model.json").is_file():
        target = ProbeTarget(load_classifier(path), "ssti-model", str(source))
    elif (path / "adapter_config.json").is_file():
        target = ProbeTarget(_peft_adapter(path, trust_remote_code, max_length), "peft-adapter", str(source))
    else:
        target = ProbeTarget(_hf_model(str(source), trust_remote_code, max_length), "hf-model", str(source))
    if labels is not None:
        if not all(labels) or len(set(labels)) != len(labels):
            raise SSTIError(f"labels: {','.join(labels)!r} must be distinct, non-empty class names")
        if not all(GENERIC_LABEL.fullmatch(n) for n in target.clf.class_names):
            raise SSTIError(f"labels: the model already names its classes ({', '.join(target.clf.class_names)}); --labels is for "
                            f"models whose classes are LABEL_0, LABEL_1, ... (held-out data is matched to the names)")
        if len(labels) != len(target.clf.class_names):
            raise SSTIError(f"labels: {len(labels)} names given for the model's {len(target.clf.class_names)} classes "
                            f"({', '.join(target.clf.class_names)})")
        target.clf.class_names = list(labels)
    return target


def _hf_model(name: str, trust_remote_code: bool, max_length: int | None, num_labels: int | None = None):
    """A sequence-classification model by hub id or folder, as a Classifier (class names from id2label)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from ssti.models.loading import _quiet_transformers, load_tokenizer
    from ssti.models.registry import resolve_model

    _quiet_transformers()
    entry = resolve_model(name)
    if entry.kind == "tiny":
        raise SSTIError(f"model: {name} is an ssti test model built in code, not a Hugging Face model folder; save it with "
                        f"save_pretrained and name that folder (an adapter: in base_model_name_or_path)")
    if entry.kind == "embedded":  # a registry name (e.g. an adapter trained on smollm2-135m): its local weights, no network
        from ssti.models.loading import _weights_folder

        name = _weights_folder(entry)
    if entry.kind == "hub":
        from ssti.assets import offline_unless_hub_reachable

        offline_unless_hub_reachable()
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ConnectionError):
        raise SSTIError(f"model: {name} is neither an ssti run or model folder, a PEFT adapter folder, nor a Hugging Face model "
                        f"available here (a hub id needs the network; or pass a local folder)") from None
    except ValueError as e:
        raise SSTIError(f"model: {name}: {str(e).splitlines()[0]}") from None
    architectures = getattr(config, "architectures", None) or []
    if num_labels is None and architectures and not any("SequenceClassification" in a for a in architectures):
        raise SSTIError(f"model: {name} is a {', '.join(architectures)} with no classification head; ssti probe needs a text "
                        f"classifier (a ...ForSequenceClassification model, a PEFT classification adapter or an ssti run)")
    kwargs = {"num_labels": num_labels} if num_labels is not None else {}
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(name, trust_remote_code=trust_remote_code,
                                                                         output_loading_info=True, **kwargs)
    except (OSError, ConnectionError):
        raise SSTIError(f"model: {name} needs the network to download from the Hugging Face hub, or pass a local folder") from None
    except ValueError as e:
        raise SSTIError(f"model: {name} cannot be loaded as a sequence classifier: {str(e).splitlines()[0]}") from None
    fresh = [k for k in info.get("missing_keys", []) if any(h in k.split(".") for h in HEAD_NAMES)]
    if fresh and num_labels is None:  # an adapter brings its own head; a plain model must have one in its weights
        raise SSTIError(f"model: {name} has no trained classification head in its weights ({', '.join(sorted(fresh)[:2])} would be "
                        f"random); ssti probe needs a trained text classifier")
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    if len(tokenizer) < 32:
        raise SSTIError(f"model: {name} has no usable tokenizer (a vocabulary of {len(tokenizer)}); save the model's tokenizer "
                        f"beside it (tokenizer.save_pretrained)")
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # decoders find each row's last token by the pad id
    model.eval()
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    limit = getattr(model.config, "max_position_embeddings", None) or 512
    spec = ModelSpec(name=name, max_length=max(8, min(max_length or 512, limit)), trust_remote_code=trust_remote_code)
    return Classifier(HFSequenceClassifier(model), tokenizer, entry, spec, LoraSpec(rank=0), names)


def _peft_adapter(path: Path, trust_remote_code: bool, max_length: int | None) -> Classifier:
    """A PEFT sequence-classification adapter on its base (the head from the adapter's saved modules)."""
    from peft import PeftModel

    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (OSError, ValueError) as e:
        raise SSTIError(f"model: {path / 'adapter_config.json'} is not readable JSON ({str(e).splitlines()[0]})") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base:
        raise SSTIError(f"model: {path / 'adapter_config.json'} names no base model (base_model_name_or_path)")
    if not (path / "adapter_model.safetensors").is_file():
        raise SSTIError(f"model: {path} has no adapter_model.safetensors (ssti loads safetensors only, never pickled weights)")
    try:
        clf = _hf_model(base, trust_remote_code, max_length, num_labels=_adapter_classes(path))
    except SSTIError as e:
        if "network" in str(e) or "neither" in str(e) or "not a known name" in str(e):
            where = "a hub id that needs the network" if not base.startswith(("/", ".")) else "a folder that does not exist"
            raise SSTIError(f"model: the adapter's base {base} (base_model_name_or_path in {path / 'adapter_config.json'}) is not "
                            f"available: {where}; point it to a local copy of the base model") from None
        raise
    try:
        peft_model = PeftModel.from_pretrained(clf.module.model, path)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        if isinstance(e, KeyError) and _adapter_classes(path) is None:
            raise SSTIError(f"model: the adapter in {path} saved no classification head (no modules_to_save such as score or "
                            f"classifier in adapter_model.safetensors) and its base {base} has none; ssti probe needs a text "
                            f"classifier: train the adapter with task_type SEQ_CLS, which saves the head") from None
        raise SSTIError(f"model: cannot load the adapter in {path} on {base}: {str(e).splitlines()[0]}") from None
    clf.module = HFSequenceClassifier(peft_model.eval())
    clf.peft_model = peft_model
    return clf


def _adapter_classes(path: Path) -> int | None:
    """The number of classes of an adapter's saved classification head (rows of its weight), if it saved one."""
    from safetensors import SafetensorError, safe_open

    try:
        return _head_rows(path, safe_open)
    except (SafetensorError, OSError) as e:
        raise SSTIError(f"model: {path / 'adapter_model.safetensors'} is damaged ({str(e).splitlines()[0]})") from None


def _head_rows(path: Path, safe_open) -> int | None:
    with safe_open(str(path / "adapter_model.safetensors"), "pt") as f:
        for key in f.keys():
            parts = key.split(".")
            if key.endswith(".weight") and any(p in HEAD_NAMES for p in parts[-4:]) and "lora_" not in key:
                shape = f.get_slice(key).get_shape()
                if len(shape) == 2:
                    return int(shape[0])
    return None
