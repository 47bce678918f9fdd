"""Hub loaders: each prepare() on a fixture with the hub dataset's exact schema, and load_hub offline."""

from __future__ import annotations

import datasets
import pytest

from ssti.data import DATASETS, check_contract, column
from ssti.data import hub
from ssti.errors import SSTIError


def dd(features: dict, splits: dict[str, dict]) -> datasets.DatasetDict:
    """A raw hub-like DatasetDict built in memory with the given features."""
    feats = datasets.Features(features)
    return datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=feats) for k, v in splits.items()})


def imdb_raw() -> datasets.DatasetDict:
    feats = {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    return dd(feats, {
        "train": {"text": ["bad film", "great film<br />really", "meh"], "label": [0, 1, 0]},
        "test": {"text": ["awful", "lovely"], "label": [0, 1]},
        "unsupervised": {"text": ["no label here"], "label": [-1]},
    })


def sst2_raw() -> datasets.DatasetDict:
    feats = {
        "idx": datasets.Value("int32"), "sentence": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["negative", "positive"]),
    }
    return dd(feats, {
        "train": {"idx": [0, 1, 2], "sentence": ["hide new secretions ", "contains no wit ", "lovely "], "label": [0, 0, 1]},
        "validation": {"idx": [0, 1], "sentence": ["it 's a charming journey . ", "unflinchingly bleak "], "label": [1, 0]},
        "test": {"idx": [0], "sentence": ["uneasy mishmash ."], "label": [-1]},
    })


def commonsense_raw() -> datasets.DatasetDict:
    feats = {
        "id": datasets.Value("string"), "question": datasets.Value("string"),
        "question_concept": datasets.Value("string"),
        "choices": {"label": datasets.List(datasets.Value("string")), "text": datasets.List(datasets.Value("string"))},
        "answerKey": datasets.Value("string"),
    }
    letters = ["A", "B", "C", "D", "E"]

    def rows(n: int, keys: list[str], tag: str) -> dict:
        return {
            "id": [f"{tag}{i:032x}" for i in range(n)],
            "question": [f"{tag} question {i}?" for i in range(n)],
            "question_concept": ["thing"] * n,
            "choices": [{"label": letters, "text": [f"{tag}{i}{c.lower()}" for c in letters]} for i in range(n)],
            "answerKey": keys,
        }

    return dd(feats, {
        "train": rows(3, ["A", "E", "C"], "tr"),
        "validation": rows(2, ["B", "D"], "va"),
        "test": rows(1, [""], "te"),
    })


def bias_raw() -> datasets.DatasetDict:
    feats = {"hard_text": datasets.Value("string"), "profession": datasets.Value("int64"), "gender": datasets.Value("int64")}
    return dd(feats, {
        "train": {"hard_text": ["She is a nurse .", "He writes code .", "He teaches yoga ."], "profession": [13, 24, 27], "gender": [1, 0, 0]},
        "test": {"hard_text": ["She audits books ."], "profession": [0], "gender": [1]},
        "dev": {"hard_text": ["He designs houses .", "She paints ."], "profession": [1, 14], "gender": [0, 1]},
    })


def financial_raw(variant: str) -> datasets.DatasetDict:
    if variant == "classlabel":
        feats = {"text": datasets.Value("string"), "labels": datasets.ClassLabel(names=["bearish", "bullish", "neutral"])}
        return dd(feats, {
            "train": {"text": ["shares fell", "profit rose", "meeting held"], "labels": [0, 1, 2]},
            "test": {"text": ["sales dropped"], "labels": [0]},
        })
    if variant == "strings":
        feats = {"sentence": datasets.Value("string"), "label": datasets.Value("string")}
        return dd(feats, {
            "train": {"sentence": ["shares fell", "profit rose", "meeting held"], "label": ["negative", "positive", "neutral"]},
            "test": {"sentence": ["sales dropped"], "label": ["negative"]},
        })
    feats = {"text": datasets.Value("string"), "label": datasets.Value("int64")}
    return dd(feats, {
        "train": {"text": ["shares fell", "profit rose", "meeting held"], "label": [0, 2, 1]},
        "test": {"text": ["sales dropped"], "label": [0]},
    })


def assert_contract(ds: datasets.DatasetDict, splits: list[str], names: list[str]) -> None:
    """The exact ssti contract: splits, columns, dtypes, ClassLabel names, unique ids."""
    assert list(ds) == splits
    for split in ds.values():
        assert split.column_names == ["id", "text", "label"]
        assert split.features["id"] == datasets.Value("string")
        assert split.features["text"] == datasets.Value("string")
        assert isinstance(split.features["label"], datasets.ClassLabel)
        assert split.features["label"].names == names
    all_ids = [i for s in ds.values() for i in column(s, "id")]
    assert len(all_ids) == len(set(all_ids))
    check_contract(ds, "fixture")


def test_every_hub_entry_is_registered():
    assert set(hub.HUB_DATASETS) == {"imdb", "financial-classification", "commonsense-qa", "bias-in-bios", "sst2"}
    for name, spec in hub.HUB_DATASETS.items():
        assert DATASETS[name].kind == "hub"
        assert spec.hub_id in DATASETS[name].description


def test_imdb_drops_unsupervised():
    ds = hub.prepare_imdb(imdb_raw())
    assert_contract(ds, ["train", "test"], ["neg", "pos"])
    assert column(ds["train"], "id") == ["imdb-train-000000", "imdb-train-000001", "imdb-train-000002"]
    assert column(ds["train"], "text")[1] == "great film<br />really"
    assert column(ds["train"], "label") == [0, 1, 0]
    assert column(ds["test"], "label") == [0, 1]


def test_sst2_uses_validation_as_test():
    ds = hub.prepare_sst2(sst2_raw())
    assert_contract(ds, ["train", "test"], ["negative", "positive"])
    assert column(ds["test"], "text") == ["it 's a charming journey . ", "unflinchingly bleak "]
    assert column(ds["test"], "label") == [1, 0]
    assert column(ds["test"], "id") == ["sst2-validation-000000", "sst2-validation-000001"]


def test_commonsense_text_and_labels():
    ds = hub.prepare_commonsense_qa(commonsense_raw())
    assert_contract(ds, ["train", "test"], ["A", "B", "C", "D", "E"])
    assert column(ds["train"], "text")[0] == "tr question 0? (0) tr0a (1) tr0b (2) tr0c (3) tr0d (4) tr0e"
    assert column(ds["train"], "label") == [0, 4, 2]
    assert column(ds["test"], "label") == [1, 3]
    assert column(ds["test"], "text")[1] == "va question 1? (0) va1a (1) va1b (2) va1c (3) va1d (4) va1e"
    assert column(ds["test"], "id")[0] == "commonsense-qa-validation-000000"


def test_commonsense_choices_ordered_by_label():
    text = hub.commonsense_text("Q?", {"label": ["B", "A", "C", "E", "D"], "text": ["b", "a", "c", "e", "d"]})
    assert text == "Q? (0) a (1) b (2) c (3) d (4) e"


def test_commonsense_missing_answer_is_refused():
    raw = commonsense_raw()
    raw["validation"] = raw["test"]  # answerKey "" as in the hub test split
    with pytest.raises(SSTIError, match="answerKey ''; allowed: A, B, C, D, E"):
        hub.prepare_commonsense_qa(raw)


def test_bias_in_bios():
    ds = hub.prepare_bias_in_bios(bias_raw())
    assert_contract(ds, ["train", "validation", "test"], hub.BIAS_IN_BIOS_PROFESSIONS)
    assert len(hub.BIAS_IN_BIOS_PROFESSIONS) == 28
    names = ds["train"].features["label"].names
    assert [names[k] for k in column(ds["train"], "label")] == ["nurse", "software_engineer", "yoga_teacher"]
    assert column(ds["validation"], "text") == ["He designs houses .", "She paints ."]
    assert column(ds["validation"], "id")[0] == "bias-in-bios-dev-000000"
    assert column(ds["test"], "label") == [0]


def test_bias_in_bios_classlabel_names_win():
    raw = bias_raw()
    names = [f"p{i}" for i in range(28)]
    raw = raw.cast_column("profession", datasets.ClassLabel(names=names))
    ds = hub.prepare_bias_in_bios(raw)
    assert ds["train"].features["label"].names == names


def test_bias_in_bios_out_of_range_label():
    raw = bias_raw()
    raw["train"] = datasets.Dataset.from_dict(
        {"hard_text": ["x"], "profession": [28], "gender": [0]}, features=raw["train"].features
    )
    with pytest.raises(SSTIError, match=r"label 28; allowed: 0..27"):
        hub.prepare_bias_in_bios(raw)


@pytest.mark.parametrize(
    "variant, names, train_labels",
    [
        ("classlabel", ["bearish", "bullish", "neutral"], [0, 1, 2]),
        ("strings", ["negative", "neutral", "positive"], [0, 2, 1]),
        ("ints", ["0", "1", "2"], [0, 2, 1]),
    ],
)
def test_financial_schema_variants(variant, names, train_labels):
    ds = hub.prepare_financial(financial_raw(variant))
    assert_contract(ds, ["train", "test"], names)
    assert column(ds["train"], "label") == train_labels
    assert column(ds["train"], "text") == ["shares fell", "profit rose", "meeting held"]
    assert column(ds["test"], "id") == ["financial-classification-test-000000"]


def test_financial_without_text_column():
    raw = dd({"body": datasets.Value("string"), "label": datasets.Value("int64")},
             {"train": {"body": ["a"], "label": [0]}, "test": {"body": ["b"], "label": [1]}})
    with pytest.raises(SSTIError, match="no text column"):
        hub.prepare_financial(raw)


def test_prepare_is_pure_and_stable():
    raw = imdb_raw()
    a, b = hub.prepare_imdb(raw), hub.prepare_imdb(raw)
    for split in a:
        assert a[split].data.table.equals(b[split].data.table)
    assert list(raw) == ["train", "test", "unsupervised"]  # the input is untouched


def test_prepare_handles_selected_rows():
    raw = imdb_raw()
    raw["train"] = raw["train"].select([2, 0])  # an indices mapping, not a new table
    ds = hub.prepare_imdb(raw)
    assert column(ds["train"], "text") == ["meh", "bad film"]


def test_missing_split_is_refused():
    raw = sst2_raw()
    del raw["validation"]
    with pytest.raises(SSTIError, match="lacks splits"):
        hub.prepare_sst2(raw)


FIXTURES = {
    "imdb": imdb_raw, "sst2": sst2_raw, "commonsense-qa": commonsense_raw, "bias-in-bios": bias_raw,
    "financial-classification": lambda: financial_raw("classlabel"),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_load_hub_uses_load_dataset(monkeypatch, name):
    calls = []

    def fake(hub_id, *args, **kwargs):
        calls.append(hub_id)
        return FIXTURES[name]()

    monkeypatch.setattr(datasets, "load_dataset", fake)
    ds = hub.load_hub(name)
    assert calls == [hub.HUB_DATASETS[name].hub_id]
    check_contract(ds, name)
    assert "train" in ds and "test" in ds


def test_registry_loader_goes_through_load_hub(monkeypatch):
    from ssti.data import load_dataset

    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, *a, **k: sst2_raw())
    ds = load_dataset("sst2")
    assert list(ds) == ["train", "test"]


def _raiser(exc):
    def fake(*args, **kwargs):
        raise exc

    return fake


@pytest.mark.parametrize(
    "exc",
    [
        OSError("[Errno -2] Name or service not known"),
        ConnectionError("Couldn't reach 'stanfordnlp/imdb' on the Hub (LocalEntryNotFoundError)"),
        TimeoutError("timed out"),
    ],
)
def test_load_hub_offline_is_one_line(monkeypatch, exc):
    monkeypatch.setattr(datasets, "load_dataset", _raiser(exc))
    with pytest.raises(SSTIError) as info:
        hub.load_hub("imdb")
    message = str(info.value)
    assert "\n" not in message
    assert "network" in message and "stanfordnlp/imdb" in message and "local csv/jsonl/parquet" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_load_hub_offline_hub_errors(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import LocalEntryNotFoundError

    for exc in (DatasetNotFoundError("Dataset 'x' doesn't exist on the Hub"), LocalEntryNotFoundError("offline")):
        monkeypatch.setattr(datasets, "load_dataset", _raiser(exc))
        with pytest.raises(SSTIError, match="needs the network"):
            hub.load_hub("bias-in-bios")


def test_load_hub_does_not_hide_bugs(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", _raiser(KeyError("bug")))
    with pytest.raises(KeyError):
        hub.load_hub("imdb")


def test_load_hub_unknown_name():
    with pytest.raises(SSTIError, match="dataset: 'nope' is not one of imdb, financial-classification"):
        hub.load_hub("nope")


@pytest.fixture
def fresh_hub_state(monkeypatch):
    """Each test starts with the hub state unchecked and online, and leaves the process as it found it."""
    import huggingface_hub.constants as hub_constants

    from ssti import assets

    monkeypatch.setattr(assets, "_HUB_CHECKED", [])
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    return hub_constants


def test_an_unreachable_hub_fails_at_once_not_after_retries(monkeypatch, fresh_hub_state):
    """No route to the hub: one check, then offline mode (cached copies still load), and a hub model fails in
    seconds with the one-line error, not after huggingface_hub's five retries."""
    import socket
    import time

    from ssti.assets import offline_unless_hub_reachable
    from ssti.models import load_tokenizer

    calls = []

    def unreachable(address, timeout=None):
        calls.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    started = time.time()
    with pytest.raises(SSTIError, match="needs the network"):
        load_tokenizer("nobody/no-such-model")
    assert time.time() - started < 10
    assert offline_unless_hub_reachable() is True and len(calls) == 1  # checked once per process
    assert fresh_hub_state.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_a_reachable_hub_or_a_proxy_stays_online(monkeypatch, fresh_hub_state):
    import socket

    from ssti import assets

    class Answer:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: Answer())
    assert assets.offline_unless_hub_reachable() is False and not fresh_hub_state.HF_HUB_OFFLINE
    monkeypatch.setattr(assets, "_HUB_CHECKED", [])
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("a proxied hub is not probed directly"))
    assert assets.offline_unless_hub_reachable() is False
