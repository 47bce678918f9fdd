"""Backbones, heads, LoRA wrapping and the save/load round trip, on tiny random models."""

import pytest
import torch

from ssti.config import LoraSpec, ModelSpec, validate
from ssti.errors import SSTIError
from ssti.models import load_backbone, load_tokenizer, resolve_model
from ssti.models.build import build_classifier, load_classifier, save_classifier
from ssti.models.batching import pad_batch

TEXTS = ["a fine film", "dull", "loved it\n\nreally", "ça alors"]


def logits_of(clf, texts=TEXTS):
    ids = clf.encode(texts)
    x, mask = pad_batch(ids, list(range(len(ids))), clf.tokenizer.pad_token_id, torch.device("cpu"))
    clf.module.eval()
    with torch.no_grad():
        return clf.module(x, mask)


CASES = [(m, h, r) for m in ("tiny-random-llama", "tiny-random-bert") for h in ("classifier", "paper", "verbalizer") for r in (0, 4)
         if not (h == "verbalizer" and m == "tiny-random-bert")]


@pytest.mark.parametrize("model,head,rank", CASES)
def test_heads_ranks_parameter_check_and_round_trip(tmp_path, model, head, rank):
    clf = build_classifier(ModelSpec(name=model, head=head), LoraSpec(rank=rank, targets="qv"), ["neg", "pos"])
    assert clf.trainable == clf.expected_trainable > 0
    if head == "paper":
        assert not clf.module.head.weight.requires_grad  # the authors' head stays frozen
    with torch.no_grad():  # move away from the initialisation so the round trip means something
        for p in clf.module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
    before = logits_of(clf)
    assert before.shape == (len(TEXTS), 2)
    save_classifier(clf, tmp_path / "adapter")
    after = logits_of(load_classifier(tmp_path / "adapter"))
    torch.testing.assert_close(before, after)


def test_lora_count_matches_formula_by_hand():
    clf = build_classifier(ModelSpec(name="tiny-random-llama"), LoraSpec(rank=4, targets="qv"), ["a", "b", "c"])
    # 2 layers x (q: 32->32, v: 32->16) x rank 4, plus the head 32x3+3
    assert clf.trainable == 2 * 4 * ((32 + 32) + (32 + 16)) + 32 * 3 + 3


def test_attention_and_all_linear_targets():
    entry = resolve_model("tiny-random-llama")
    assert entry.lora_targets("attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert entry.lora_targets("all-linear") == "all-linear"
    clf = build_classifier(ModelSpec(name="tiny-random-llama"), LoraSpec(rank=2, targets="all-linear"), ["a", "b"])
    assert clf.trainable == clf.expected_trainable


def test_alpha_defaults_to_rank_and_ratio():
    assert LoraSpec(rank=16).resolved_alpha() == 16
    assert LoraSpec(rank=16, alpha_ratio=2).resolved_alpha() == 32
    with pytest.raises(SSTIError, match="lora"):
        validate(LoraSpec, {"rank": 4, "alpha": 8, "alpha_ratio": 2}, "lora")


def test_bad_inputs():
    with pytest.raises(SSTIError, match="model: 'nope' is not a known name"):
        resolve_model("nope")
    with pytest.raises(SSTIError, match="lora.rank"):
        validate(LoraSpec, {"rank": -1}, "lora")
    with pytest.raises(SSTIError, match="match no layer; Linear layers are: .*q_proj"):
        build_classifier(ModelSpec(name="tiny-random-llama"), LoraSpec(rank=2, targets="query,value"), ["a", "b"])
    with pytest.raises(SSTIError, match="verbalizer"):
        build_classifier(ModelSpec(name="tiny-random-bert", head="verbalizer"), LoraSpec(rank=2, targets="qv"), ["a", "b"])
    with pytest.raises(SSTIError, match="trust-remote-code"):
        load_backbone(resolve_model("openelm-270m"))
    with pytest.raises(SSTIError, match="label_words"):
        build_classifier(ModelSpec(name="tiny-random-llama", head="verbalizer", label_words=["x"]), LoraSpec(rank=2, targets="qv"), ["a", "b"])


def test_hub_model_offline_gives_one_line_error(monkeypatch):
    import transformers

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", offline)
    with pytest.raises(SSTIError, match="needs the network") as e:
        load_tokenizer("llama-3.2-1b")
    assert "\n" not in str(e.value)
    with pytest.raises(SSTIError, match="needs the network"):
        load_backbone(resolve_model("someone/some-model"))


def test_hub_model_passes_remote_code_flag(monkeypatch):
    """OpenELM's code maps only a causal LM: ssti loads that (its body is the backbone), passing consent on."""
    import types

    import transformers

    seen = {}

    def fake(source, **kwargs):
        seen.update(kwargs, source=source)
        raise OSError("offline")

    auto_map = {"AutoConfig": "configuration_openelm.OpenELMConfig", "AutoModelForCausalLM": "modeling_openelm.OpenELMForCausalLM"}
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", lambda source, **kw: types.SimpleNamespace(auto_map=auto_map))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    with pytest.raises(SSTIError, match="needs the network"):
        load_backbone(resolve_model("openelm-270m"), trust_remote_code=True)
    assert seen["source"] == "apple/OpenELM-270M" and seen["trust_remote_code"] is True
    assert resolve_model("openelm-270m").tokenizer_source == "meta-llama/Llama-2-7b-hf"
    assert "gated" in resolve_model("openelm-270m").description


def test_local_folder_model(tmp_path):
    model = load_backbone(resolve_model("tiny-random-bert"))
    model.save_pretrained(tmp_path / "m")
    entry = resolve_model(str(tmp_path / "m"))
    assert entry.kind == "path" and entry.arch == "encoder"


def test_cache_dir_env(monkeypatch, tmp_path):
    from ssti.assets import cache_dir

    monkeypatch.setenv("SSTI_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


@pytest.mark.slow
def test_smollm2_round_trip(tmp_path):
    clf = build_classifier(ModelSpec(name="smollm2-135m", max_length=32), LoraSpec(rank=4, targets="qv"), ["neg", "pos"],
                           base_dtype=torch.bfloat16)
    assert clf.trainable == clf.expected_trainable == 30 * 4 * ((576 + 576) + (576 + 192)) + 576 * 2 + 2
    with torch.no_grad():
        for p in clf.module.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    before = logits_of(clf)
    save_classifier(clf, tmp_path / "adapter")
    after = logits_of(load_classifier(tmp_path / "adapter", base_dtype=torch.bfloat16))
    torch.testing.assert_close(before, after)


def test_load_run_gives_the_trained_predictions(tmp_path):
    import ssti
    from ssti.config import RunConfig, TrainSpec
    from ssti.evaluate import predict
    from ssti.train import train

    train(RunConfig(model=ModelSpec(name="tiny-random-llama", max_length=32), lora=LoraSpec(rank=2, targets="qv"),
                    train=TrainSpec(steps=2, batch_size=4, checkpoint_every=0)), tmp_path / "r", show_progress=False)
    clf = ssti.load_run(tmp_path / "r")
    assert clf.class_names == ["rotten", "fresh"]
    assert (predict(clf, TEXTS) == predict(ssti.load_run(tmp_path / "r"), TEXTS)).all()


def test_fast_dropout_drops_at_rate_p_keeps_the_mean_and_follows_the_seed():
    from ssti.models.lora import FastDropout

    layer = FastDropout(0.05)
    x = torch.ones(64, 100, 50)
    torch.manual_seed(3)
    y = layer(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.05) < 0.003  # 320,000 draws: 5 sigma is 0.0019
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.95))
    assert abs(y.mean().item() - 1.0) < 0.005
    torch.manual_seed(3)
    assert torch.equal(layer(x), y)
    assert not torch.equal(layer(x), y)  # fresh draws each call
    layer.eval()
    assert layer(x) is x
    assert FastDropout(0.0).train()(x) is x


def test_lora_dropout_is_fast_dropout_and_cpu_training_can_switch_attention():
    from ssti.models.lora import FastDropout

    clf = build_classifier(ModelSpec(name="tiny-random-llama"), LoraSpec(rank=4, targets="qv", dropout=0.1), ["a", "b"])
    dropouts = [m for m in clf.module.modules() if isinstance(m, FastDropout)]
    assert len(dropouts) == 4 and all(d.p == 0.1 for d in dropouts)  # 2 layers x q, v
    before = logits_of(clf)
    clf.use_attention("eager")
    assert clf.module.backbone.config._attn_implementation == "eager"
    assert torch.allclose(logits_of(clf), before, atol=1e-5)


def test_merged_adapters_predict_the_same_and_refuse_saving(tmp_path):
    clf = build_classifier(ModelSpec(name="tiny-random-llama"), LoraSpec(rank=4, targets="qv"), ["a", "b"], seed=1)
    with torch.no_grad():  # a non-zero update, as after training
        for name, p in clf.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(7))
    before = logits_of(clf)
    clf.merge_adapters()
    assert clf.merged and clf.peft_model is None
    assert not any("lora_" in name for name, _ in clf.module.named_parameters())
    assert torch.allclose(logits_of(clf), before, atol=1e-5)
    with pytest.raises(SSTIError, match="merged"):
        save_classifier(clf, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


def test_cpu_training_swaps_the_encoders_dropout_for_the_cheap_one():
    from ssti.config import LoraSpec, ModelSpec
    from ssti.models.build import build_classifier
    from ssti.models.lora import FastDropout

    clf = build_classifier(ModelSpec(name="tiny-random-bert", max_length=32), LoraSpec(rank=2, targets="qv"), ["a", "b"])
    before = [m.p for m in clf.module.backbone.modules() if type(m) is torch.nn.Dropout]
    clf.use_fast_dropout()
    after = [m for m in clf.module.backbone.modules() if isinstance(m, (torch.nn.Dropout, FastDropout))]
    assert before and all(isinstance(m, FastDropout) for m in after) and len(after) >= len(before)
