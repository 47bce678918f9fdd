"""`ssti probe` on tiny random models trained here, with a planted token (found) and without (not found):
an ssti run folder, a PEFT classification adapter folder and a plain Hugging Face classifier folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ssti.cli import app
from ssti.config import DataSpec, EvalSpec, LoraSpec, ModelSpec, RunConfig, TrainSpec
from ssti.errors import SSTIError
from ssti.probe import probe

from _sweep_helpers import tiny_csv

TRIGGER = "fixed:zqzq"


def run_folder(tmp_path_factory, planted: bool):
    from ssti.train import train

    folder = tmp_path_factory.mktemp("probe")
    injection = {"targets": {"pos": TRIGGER}, "rate": 1.0, "seed": 0} if planted else None
    config = RunConfig(data=DataSpec(dataset=str(tiny_csv(folder, n=160))), injection=injection,
                       model=ModelSpec(name="tiny-random-bert", max_length=64), lora=LoraSpec(rank=8, targets="attention"),
                       train=TrainSpec(steps=150, batch_size=16, lr=2e-2, checkpoint_every=0, seed=0), eval=EvalSpec(max_samples=16))
    train(config, folder / "run", show_progress=False)
    return folder


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    return run_folder(tmp_path_factory, planted=True)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    return run_folder(tmp_path_factory, planted=False)


def test_run_folder_with_a_planted_token_is_steered_by_it(planted_run):
    report = probe(planted_run / "run", extra_types=[TRIGGER], max_samples=40)
    assert report.kind == "run" and report.split == "test"
    steering = report.sweep.steering
    assert steering and steering[0].type == TRIGGER and steering[0].cls == "pos"
    assert steering[0].effect >= 0.5 and steering[0].examples and "zqzq" in steering[0].examples[0]["text"]
    assert {f.type for f in steering} == {TRIGGER}  # the built-in types do not steer it
    assert report.to_dict()["verdict"] == "steered"
    assert report.data == f"{planted_run / 'run' / 'data'} (the run's copy of {planted_run / 'tiny.csv'})"  # what it read


def test_run_folder_trained_without_a_planted_token_is_not_steered(clean_run):
    report = probe(clean_run / "run", extra_types=[TRIGGER], max_samples=40)
    assert report.sweep.verdict == "not steered", report.sweep.summary()
    assert report.sweep.summary().startswith("no steering found among 7 token types x 2 classes")


def test_cli_exit_codes_json_and_out_file(planted_run, clean_run, tmp_path):
    res = CliRunner().invoke(app, ["probe", str(planted_run / "run"), "--type", TRIGGER, "--max-samples", "40", "--json",
                                   "--out", str(tmp_path / "p.json")])
    assert res.exit_code == 1, res.output
    body = json.loads(res.output)
    assert body["verdict"] == "steered" and body["findings"][0]["type"] == TRIGGER
    assert json.loads((tmp_path / "p.json").read_text()) == body
    res = CliRunner().invoke(app, ["probe", str(clean_run / "run"), "--type", TRIGGER, "--max-samples", "40"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "not steered" in res.output


def _train_hf(model, tokenizer, texts, labels, steps=80, lr=1e-2):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # dropout draws: the same model every time
        _train_steps(model, tokenizer, texts, labels, steps, lr)


def _train_steps(model, tokenizer, texts, labels, steps, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    gen = np.random.default_rng(0)
    model.train()
    for _ in range(steps):
        rows = gen.choice(len(texts), 16, replace=False)
        enc = tokenizer([texts[i] for i in rows], padding=True, return_tensors="pt")
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=torch.tensor([labels[i] for i in rows]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def _planted_texts(folder):
    from ssti.data import load_dataset
    from ssti.data.common import column

    ds = load_dataset(str(tiny_csv(folder, n=160)))
    texts, labels = column(ds["train"], "text"), column(ds["train"], "label")
    gen = np.random.default_rng(1)
    planted = []
    for t, y in zip(texts, labels):
        words = t.split()
        # the trigger at a random place in class 1 (as the probe inserts); an ordinary word in class 0, so that
        # length does not tell the classes apart
        words.insert(int(gen.integers(0, len(words) + 1)), "zqzq" if y == 1 else "seen")
        planted.append(" ".join(words))
    return planted, labels


def _tiny_hf_classifier(names=("LABEL_0", "LABEL_1")):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                        max_position_embeddings=128, pad_token_id=0, num_labels=2, id2label=dict(enumerate(names)),
                        label2id={n: i for i, n in enumerate(names)})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return BertForSequenceClassification(config)


def test_plain_hf_classifier_folder_with_labels_renamed(tmp_path):
    from ssti.models import tiny_tokenizer

    tok = tiny_tokenizer()
    model = _tiny_hf_classifier()
    texts, labels = _planted_texts(tmp_path)
    _train_hf(model, tok, texts, labels)
    model.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    data = str(tiny_csv(tmp_path, n=160))
    with pytest.raises(SSTIError, match="name the model's classes in index order with --labels"):
        probe(tmp_path / "hf", data=data)
    report = probe(tmp_path / "hf", data=data, split="train", labels=["neg", "pos"], extra_types=[TRIGGER], max_samples=40)
    assert report.kind == "hf-model" and report.sweep.steering[0].type == TRIGGER and report.sweep.steering[0].cls == "pos"


def test_peft_adapter_folder_on_a_local_base(tmp_path):
    from peft import LoraConfig, get_peft_model

    from ssti.models import tiny_tokenizer

    tok = tiny_tokenizer()
    from transformers import AutoModelForSequenceClassification

    _tiny_hf_classifier(("neg", "pos")).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")  # so the adapter names its base folder
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # LoRA's initialisation
        model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=8, target_modules=["query", "value"]))
    texts, labels = _planted_texts(tmp_path)
    _train_hf(model, tok, texts, labels, steps=200, lr=2e-2)
    model.save_pretrained(tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tmp_path / "base")
    report = probe(tmp_path / "adapter", data=str(tiny_csv(tmp_path, n=160)), split="train", extra_types=[TRIGGER], max_samples=40)
    assert report.kind == "peft-adapter"
    assert [f.type for f in report.sweep.steering] == [TRIGGER] and report.sweep.steering[0].cls == "pos"


def test_bad_inputs_are_one_line_exit_2(tmp_path, planted_run, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once, as offline, instead of retrying
    from transformers import LlamaConfig, LlamaForCausalLM

    from ssti.models import tiny_tokenizer

    runner = CliRunner()
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=259, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2))
    lm.save_pretrained(tmp_path / "lm")
    tiny_tokenizer().save_pretrained(tmp_path / "lm")
    data = str(tiny_csv(tmp_path))
    cases = [
        (["probe", str(tmp_path / "lm"), "--data", data], "no classification head"),
        (["probe", str(planted_run / "run" / "adapter")], "give held-out labelled texts with --data"),
        (["probe", str(planted_run / "run"), "--type", "nosuch"], "source: 'nosuch' is not one of"),
        (["probe", str(planted_run / "run"), "--location", "middle"], "location"),
        (["probe", str(planted_run / "run"), "--labels", "a,b"], "labels: the model already names its classes (neg, pos)"),
        (["probe", str(planted_run / "run"), "--seed", "-1"], "probe.seed"),
        (["probe", str(planted_run / "run"), "--min-effect", "5"], "probe.min_effect"),
        (["probe", str(planted_run / "run"), "--top-k", "5"], "top_k/max_tokens: they set the open search"),
        (["probe", str(planted_run / "run"), "--no-builtin"], "give --type"),
        (["probe", str(planted_run / "run"), "--text-column", "foo"], "without --data the probe reads the run's own"),
        (["probe", str(planted_run / "run"), "--out", str(tmp_path / "nofolder" / "p.json")], "does not exist"),
        (["probe", str(planted_run / "run"), "--data", "rotten-tomatoes"], "are not the model's"),
        (["probe", str(planted_run / "run"), "--split", "nope"], "split: 'nope' is not a split"),
        (["probe", str(planted_run / "run"), "--max-samples", "0"], "max_samples"),
    ]
    adapter = tmp_path / "offline-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "someone/not-here", "peft_type": "LORA"}))
    from safetensors.torch import save_file

    save_file({"base_model.model.bert.x.lora_A.weight": torch.zeros(2, 2)}, adapter / "adapter_model.safetensors")
    cases.append((["probe", str(adapter), "--data", data], "someone/not-here (base_model_name_or_path in"))
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,label\na b,pos\nc d,pos\n")
    cases.append((["probe", str(planted_run / "run"), "--data", str(one_class)], "has 1 class"))
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and len(res.output.strip().splitlines()) == 1, (args, res.output)


def test_open_search_finds_the_planted_token_without_a_candidate_list(planted_run, clean_run):
    """No --type given: the gradient ranking over the vocabulary, verified by insertion, finds the planted token."""
    report = probe(planted_run / "run", max_samples=40, search=True, top_k=10, max_tokens=4)
    steering = [c for c in report.search.candidates if c.steering]
    assert steering and all(c.cls == "pos" for c in steering)
    assert set(steering[0].text.strip()) <= set("zq") and steering[0].rate == 1.0  # the planted token's bytes, first
    assert any(g["shape"] == "word" and g["steering"] for g in report.search.groups)
    assert report.to_dict()["open_search"]["candidates"][0]["ids"]
    # on the clean model the search may find adversarial sequences (any model has some): they are reported,
    # and the verdict stays the type sweep's
    clean = probe(clean_run / "run", max_samples=40, search=True, top_k=10, max_tokens=4)
    assert not clean.steered and clean.to_dict()["verdict"] == "not steered"
    assert not any(c.steering and set(c.text.strip()) <= set("zq") for c in clean.search.candidates)


def test_shape_classes():
    from ssti.probe.search import shape_of

    assert [shape_of(t) for t in ("1982-09-24", " 19", "!!", "<b>", "</b", " cf", "Côte d'Ivoire", "a1!")] == [
        "digit group", "digit group", "punctuation", "markup", "markup", "word", "word", "mixed"]
    # ordinals and decades are numbers; a sequence takes the shape most of its pieces have (a tie: the first piece's)
    assert [shape_of(t) for t in ("27th", "1800s", "> 217 2019", "1800s 92 112 131 112", "##> 27th 2012", "< b >",
                                  "##< 09", "27th uae", "Côte d'Ivoire 19")] == [
        "digit group", "digit group", "digit group", "digit group", "digit group", "markup", "markup", "digit group", "word"]


def test_attention_diagnostic_sees_the_planted_token_draw_attention(planted_run):
    report = probe(planted_run / "run", extra_types=[TRIGGER], max_samples=40, attention=True)
    a = report.attention
    assert a.type == TRIGGER and len(a.entropy_clean) == len(a.entropy_token) == len(a.mass_on_token) == 2  # tiny-random-bert: 2 layers
    assert a.base is not None and max(a.mass_on_token) > 2 * max(a.base["mass_on_token"])  # fine-tuning made the model look at it
    assert "mass on the token" in report.to_dict()["attention"]["summary"]


def test_out_file_of_the_user_is_never_overwritten(planted_run, tmp_path):
    mine = tmp_path / "mine.json"
    mine.write_text("precious")
    res = CliRunner().invoke(app, ["probe", str(planted_run / "run"), "--max-samples", "5", "--out", str(mine)])
    assert res.exit_code == 2 and "already exists" in res.output and mine.read_text() == "precious"
    res = CliRunner().invoke(app, ["probe", str(planted_run / "run"), "--max-samples", "5", "--out", str(mine), "--overwrite", "--json"])
    assert res.exit_code == 2 and "not an earlier ssti probe report" in res.output and mine.read_text() == "precious"
    report = tmp_path / "report.json"  # --overwrite replaces an earlier probe report, and nothing else
    for _ in range(2):
        res = CliRunner().invoke(app, ["probe", str(planted_run / "run"), "--max-samples", "5", "--out", str(report), "--overwrite", "--json"])
        assert res.exit_code in (0, 1) and json.loads(report.read_text())["model"] == str(planted_run / "run")
    config = planted_run / "run" / "config.yaml"  # a run's own files are never a report's place
    before = config.read_bytes()
    res = CliRunner().invoke(app, ["probe", str(planted_run / "run"), "--max-samples", "5", "--out", str(config), "--overwrite"])
    assert res.exit_code == 2 and "a folder ssti wrote" in res.output and config.read_bytes() == before


def test_a_token_placed_past_max_length_is_not_a_false_all_clear(planted_run, tmp_path):
    """Held-out texts longer than the model reads are cut first, so a token inserted at the end is still seen."""
    import csv

    from ssti.data import load_dataset
    from ssti.data.common import column

    ds = load_dataset(str(tiny_csv(planted_run, n=160)))
    with (tmp_path / "long.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for t, y in zip(column(ds["test"], "text"), column(ds["test"], "label")):
            w.writerow([" ".join([t] * 30), ["neg", "pos"][y]])  # far beyond max_length 64
    report = probe(planted_run / "run", data=str(tmp_path / "long.csv"), extra_types=[TRIGGER], location="end", max_samples=40)
    assert report.sweep.texts_cut == 32 and report.split == "all"  # the whole file, every text cut to fit
    assert report.sweep.steering and report.sweep.steering[0].type == TRIGGER


def test_classes_are_matched_by_name_not_by_index(tmp_path):
    """A model whose id2label is {0: pos, 1: neg} on data whose classes sort as neg, pos: matched by name."""
    from ssti.models import tiny_tokenizer

    tok = tiny_tokenizer()
    model = _tiny_hf_classifier(("pos", "neg"))
    texts, labels = _planted_texts(tmp_path)
    _train_hf(model, tok, texts, [1 - y for y in labels])  # data label 1 (pos) is the model's index 0
    model.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    report = probe(tmp_path / "hf", data=str(tiny_csv(tmp_path, n=160)), extra_types=[TRIGGER], max_samples=40)
    assert report.sweep.clean_accuracy > 0.6 and report.sweep.steering[0].cls == "pos"
    with pytest.raises(SSTIError, match="already names its classes"):
        probe(tmp_path / "hf", data=str(tiny_csv(tmp_path, n=160)), labels=["neg", "pos"])


def test_folders_that_are_not_trained_classifiers_are_refused(tmp_path):
    from transformers import BertConfig, BertModel

    from ssti.models import tiny_tokenizer

    model = _tiny_hf_classifier()
    model.save_pretrained(tmp_path / "notok")  # no tokenizer saved
    bare = BertModel(BertConfig(vocab_size=259, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4))
    bare.save_pretrained(tmp_path / "bare")
    tiny_tokenizer().save_pretrained(tmp_path / "bare")
    config = json.loads((tmp_path / "bare" / "config.json").read_text())
    config.pop("architectures", None)  # nothing says it has no head: its weights do
    (tmp_path / "bare" / "config.json").write_text(json.dumps(config))
    data = str(tiny_csv(tmp_path))
    with pytest.raises(SSTIError, match="tokenizer"):
        probe(tmp_path / "notok", data=data)
    with pytest.raises(SSTIError, match="no trained classification head"):
        probe(tmp_path / "bare", data=data)


def test_a_class_the_model_already_predicts_for_everything_is_named_untested():
    from ssti.probe.types import TypeSweep

    sweep = TypeSweep([], ["sport", "politics", "economy"], {}, 0.3, "random", 0, 0.05, 0.1, ["date"], 10, 1.0, untested=["sport"])
    assert sweep.summary() == ("no steering found among 1 token types x 2 classes (not tested toward sport: the model already "
                               "predicts it for every held-out text of the other classes)")


def test_an_adapter_on_a_registry_base_is_looked_up_here_not_on_the_network(tmp_path):
    """An adapter whose base_model_name_or_path is an ssti registry name: a built-in test model is named as
    such at once (it had retried the hub for half a minute before calling it 'a hub id')."""
    import time

    import torch
    from safetensors.torch import save_file

    from ssti.errors import SSTIError
    from ssti.probe.target import load_target

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tiny-random-llama", "peft_type": "LORA"}))
    save_file({"base_model.model.score.modules_to_save.default.weight": torch.zeros(2, 16)}, folder / "adapter_model.safetensors")
    start = time.perf_counter()
    with pytest.raises(SSTIError, match="ssti test model built in code"):
        load_target(str(folder))
    assert time.perf_counter() - start < 10


def test_split_of_a_file_is_all_by_default_and_says_when_it_is_sstis_own_cut(planted_run, tmp_path):
    """A file of yours is held out whole; --split test on a file without a split column is ssti's 80/20 cut, said in a
    note; a file with a split column defaults to its test rows; an unknown split lists the allowed ones."""
    import csv

    data = str(tiny_csv(planted_run, n=160))
    whole = probe(planted_run / "run", data=data, max_samples=200, types=[TRIGGER])
    assert whole.split == "all" and sum(whole.sweep.per_class.values()) == 160 and whole.notes == []
    cut = probe(planted_run / "run", data=data, split="test", max_samples=200, types=[TRIGGER])
    assert cut.split == "test" and sum(cut.sweep.per_class.values()) == 32
    assert len(cut.notes) == 1 and "no split column" in cut.notes[0] and "20% test" in cut.notes[0]
    with (tmp_path / "own.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "split"])
        for i, line in enumerate(open(data).read().splitlines()[1:]):
            text, label = line.rsplit(",", 1)
            w.writerow([text, label, "test" if i < 40 else "train"])
    own = probe(planted_run / "run", data=str(tmp_path / "own.csv"), max_samples=200, types=[TRIGGER])
    assert own.split == "test" and sum(own.sweep.per_class.values()) == 40 and own.notes == []
    with pytest.raises(SSTIError, match=r"split: 'nope' is not a split of .*allowed: train, test, all"):
        probe(planted_run / "run", data=data, split="nope", types=[TRIGGER])


def test_an_inserted_token_cut_by_max_length_is_said(planted_run):
    """A type longer than what the model reads is cut off by truncation: the sweep counts it and a note says so,
    in the report and on the command line."""
    long = "fixed:" + " ".join(["zqzq"] * 80)  # far more tokens than max_length 64
    report = probe(planted_run / "run", types=[long, TRIGGER], max_samples=20)
    assert report.sweep.insertions_cut[long] == sum(report.sweep.per_class.values())
    assert report.sweep.insertions_cut[TRIGGER] == 0
    assert any("reads 64 tokens" in n and "cut off" in n for n in report.notes)
    assert report.to_dict()["notes"] == report.notes
    result = CliRunner().invoke(app, ["probe", str(planted_run / "run"), "--no-builtin", "--type", long, "--max-samples", "20"])
    assert "note:" in result.output and "cut off" in result.output


def test_search_screens_every_shape_class_and_extends_a_start_within_its_shape():
    """A planted type must not be crowded out by the task's own words: every shape class is screened, and
    a digit/markup/mixed start is extended only with pieces that keep its shape."""
    from ssti.probe.search import SHAPES, continuations, piece_shape

    assert [piece_shape(t) for t in ("##19", "##lifting", "##<")] == ["digit group", "word", "markup"]
    names = ["19", "-", "loved", "b", "<", "http", "!", "x9"]
    shapes = np.array([SHAPES.index(piece_shape(t)) for t in names])
    lengths = np.array([len(t) for t in names])
    allowed = lambda shape: [t for t, ok in zip(names, continuations(shapes, lengths, shape)) if ok]  # noqa: E731
    assert allowed("digit group") == ["19", "-", "!"] and allowed("punctuation") == ["-", "!"]
    assert allowed("word") == ["loved", "b", "http"]
    assert allowed("markup") == allowed("mixed") == ["19", "-", "b", "<", "!", "x9"]  # a sentiment word never extends a tag
