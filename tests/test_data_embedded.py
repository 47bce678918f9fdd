"""Embedded datasets (shipped in installed packages), the registry entry point and `ssti datasets`."""

from __future__ import annotations

from collections import Counter

import datasets
import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.data import DATASETS, DEFAULT_DATASET, column, load_dataset
from ssti.errors import SSTIError


@pytest.fixture(scope="module")
def rotten() -> datasets.DatasetDict:
    return load_dataset("rotten-tomatoes")


@pytest.fixture(scope="module")
def bbc() -> datasets.DatasetDict:
    return load_dataset("bbc-news")


def test_rotten_tomatoes_sizes_and_classes(rotten):
    assert DEFAULT_DATASET == "rotten-tomatoes"
    assert list(rotten) == ["train", "test"]
    assert rotten["train"].features["label"].names == ["rotten", "fresh"]
    counts = Counter(column(rotten["train"], "label")) + Counter(column(rotten["test"], "label"))
    assert counts == {1: 7403, 0: 5405}
    assert len(rotten["train"]) + len(rotten["test"]) == 12808
    assert rotten["train"].column_names == ["id", "text", "label"]


def test_rotten_tomatoes_split_is_stratified(rotten):
    test = Counter(column(rotten["test"], "label"))
    assert test == {1: round(7403 * 0.2), 0: round(5405 * 0.2)}
    ids = column(rotten["train"], "id") + column(rotten["test"], "id")
    assert len(ids) == len(set(ids))
    assert not set(column(rotten["train"], "id")) & set(column(rotten["test"], "id"))


def test_rotten_tomatoes_same_split_twice(rotten):
    again = load_dataset("rotten-tomatoes")
    for split in rotten:
        assert column(again[split], "id") == column(rotten[split], "id")
        assert column(again[split], "text") == column(rotten[split], "text")


def test_bbc_news(bbc):
    assert list(bbc) == ["train", "test"]
    names = bbc["train"].features["label"].names
    assert names == ["business", "entertainment", "politics", "sports", "tech"]  # the package's folder names
    counts = Counter(column(bbc["train"], "label")) + Counter(column(bbc["test"], "label"))
    assert sum(counts.values()) == 2225
    assert {names[k]: v for k, v in counts.items()} == {
        "business": 510, "sports": 511, "politics": 417, "tech": 401, "entertainment": 386,
    }
    assert all(isinstance(t, str) and t for t in column(bbc["test"], "text"))


def test_unknown_name_raises():
    with pytest.raises(SSTIError) as info:
        load_dataset("nope")
    message = str(info.value)
    assert "'nope'" in message and "rotten-tomatoes" in message and "\n" not in message


def test_registry_has_every_name():
    assert list(DATASETS) == [
        "rotten-tomatoes", "bbc-news", "imdb", "financial-classification", "commonsense-qa", "bias-in-bios", "sst2",
    ]


def test_datasets_command_lists_names():
    result = CliRunner().invoke(app, ["datasets"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for name in DATASETS:
        assert name in result.output
    assert "needs network" in result.output
    assert "train 1,781" in result.output and "test 444" in result.output  # bbc-news, loaded
