"""Shared test fixtures."""

import pytest

from ssti.data.common import make_split
import datasets


@pytest.fixture
def toy_dataset() -> datasets.DatasetDict:
    """A small two-class contract-shaped dataset with awkward texts (newlines, unicode, empty)."""
    texts = [
        "a fine film", "dull and slow", "loved it\n\nreally  loved it", "", "   ", "ça alors, très bien",
        "bad", "worst movie ever made", "great acting throughout the film", "meh\tokay", "superb", "awful",
    ]
    labels = [1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    ids = [f"toy-{i}" for i in range(len(texts))]
    train = make_split(ids, texts, labels, ["neg", "pos"])
    test = make_split([f"t-{i}" for i in range(4)], texts[:4], labels[:4], ["neg", "pos"])
    return datasets.DatasetDict({"train": train, "test": test})
