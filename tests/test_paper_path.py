"""The paper's path as a new user meets it: remote-code decoders shaped like OpenELM, the paper head's
fixed-width padding, and full fine-tuning (rank 0) kept apart from the LoRA ranks in the report."""

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from ssti.config import EvalSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec
from ssti.errors import SSTIError
from ssti.models import resolve_model, tiny_tokenizer
from ssti.models.batching import pad_batch
from ssti.models.build import build_classifier

FIXTURE = Path(__file__).parent / "fixtures" / "openelm_shaped"


@pytest.fixture(scope="module")
def openelm_folder(tmp_path_factory) -> Path:
    """A local model folder like apple/OpenELM's: remote code whose auto_map has a causal LM and no
    AutoModel, `model_dim` instead of `hidden_size`, `max_context_length`, qkv_proj/out_proj layers."""
    root = tmp_path_factory.mktemp("remote")
    package = root / "openelm_like"
    shutil.copytree(FIXTURE, package, ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(root))
    try:
        modeling = importlib.import_module("openelm_like.modeling_openelm")
        config = importlib.import_module("openelm_like.configuration_openelm").OpenELMConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            modeling.OpenELMForCausalLM(config).save_pretrained(package)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("openelm_like")]:
            del sys.modules[name]
    meta = json.loads((package / "config.json").read_text())
    meta["auto_map"] = {"AutoConfig": "configuration_openelm.OpenELMConfig", "AutoModelForCausalLM": "modeling_openelm.OpenELMForCausalLM"}
    (package / "config.json").write_text(json.dumps(meta))
    tiny_tokenizer().save_pretrained(package)
    return package


def test_openelm_shaped_folder_resolves_with_its_own_layer_names(openelm_folder):
    entry = resolve_model(str(openelm_folder))
    assert entry.arch == "decoder"
    assert entry.lora_targets("attention") == ["qkv_proj", "out_proj"] and entry.lora_targets("qv") == ["qkv_proj"]


def test_openelm_shaped_model_needs_consent_for_its_code(openelm_folder):
    with pytest.raises(SSTIError, match="trust-remote-code"):
        build_classifier(ModelSpec(name=str(openelm_folder)), LoraSpec(rank=2), ["neg", "pos"])


def test_openelm_shaped_model_trains_and_evaluates(openelm_folder, tmp_path):
    from ssti.evaluate import evaluate_run
    from ssti.train import train

    clf = build_classifier(ModelSpec(name=str(openelm_folder), trust_remote_code=True, max_length=64), LoraSpec(rank=2), ["neg", "pos"])
    assert clf.module.head.in_features == 32  # the width came from model_dim
    assert clf.trainable == clf.expected_trainable
    config = RunConfig(model=ModelSpec(name=str(openelm_folder), trust_remote_code=True, max_length=64), lora=LoraSpec(rank=2),
                       train=TrainSpec(steps=3, batch_size=4, checkpoint_every=0), eval=EvalSpec(max_samples=16))
    train(config, tmp_path / "run", show_progress=False)
    metrics = evaluate_run(tmp_path / "run")
    assert sum(metrics["clean"]["pred_counts"]) == 16


def test_openelm_shaped_max_length_is_checked_against_max_context_length(openelm_folder):
    with pytest.raises(SSTIError, match="model.max_length: 512 is above the 256 positions"):
        build_classifier(ModelSpec(name=str(openelm_folder), trust_remote_code=True, max_length=512), LoraSpec(rank=2), ["a", "b"])


@pytest.mark.parametrize("model", ["tiny-random-llama", "tiny-random-bert"])
def test_paper_head_logits_do_not_depend_on_the_batch(model):
    """The authors pad every text to max_length: a text's logits are the same alone and in any batch."""
    clf = build_classifier(ModelSpec(name=model, head="paper", max_length=48), LoraSpec(rank=2, targets="qv"), ["neg", "pos"])
    clf.module.eval()
    texts = ["short", "a somewhat longer text that pads the short one", "mid length text"]
    ids = clf.encode(texts)
    with torch.no_grad():
        x, m = pad_batch(ids, [0, 1, 2], clf.tokenizer.pad_token_id, torch.device("cpu"))
        together = clf.module(x, m)
        for i in range(3):
            x, m = pad_batch(ids, [i], clf.tokenizer.pad_token_id, torch.device("cpu"))
            torch.testing.assert_close(clf.module(x, m)[0], together[i], rtol=1e-5, atol=1e-5)


def test_classifier_head_is_not_padded_to_max_length():
    clf = build_classifier(ModelSpec(name="tiny-random-llama", max_length=48), LoraSpec(rank=2, targets="qv"), ["neg", "pos"])
    assert clf.module.pad_to is None
