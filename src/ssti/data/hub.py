"""Hugging Face hub datasets of the paper (need the network); filled in below."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import datasets


@dataclass(frozen=True)
class HubDataset:
    hub_id: str
    description: str
    prepare: Callable[[datasets.DatasetDict], datasets.DatasetDict]


HUB_DATASETS: dict[str, HubDataset] = {}


def load_hub(name: str) -> datasets.DatasetDict:
    raise NotImplementedError
