"""The SSTI injection engine: token sources, placement, the dataset transform and its folder format.

    from ssti.inject import InjectionSpec, inject_dataset, write_injected
    spec = InjectionSpec(targets={"1": "date"}, rate=0.5, seed=0)
    write_injected(inject_dataset(load_dataset("rotten-tomatoes"), spec), "out/rt-date")
"""

from ssti.inject.engine import InjectedDataset, inject_dataset, inject_texts, resolve_targets
from ssti.inject.placement import LOCATIONS, remove_spans
from ssti.inject.sources import (
    SOURCE_HELP, SOURCES, CallableSource, ChoiceSource, DateSource, FixedSource, TokenSource, get_source,
)
from ssti.inject.spec import InjectionSpec
from ssti.inject.store import read_dataset_folder, read_manifest, read_spec, write_injected
from ssti.inject.testsets import make_spurious_test_set, spurious_test_sets

__all__ = [
    "CallableSource", "ChoiceSource", "DateSource", "FixedSource", "InjectedDataset", "InjectionSpec", "LOCATIONS",
    "SOURCES", "SOURCE_HELP", "TokenSource", "get_source", "inject_dataset", "inject_texts", "make_spurious_test_set",
    "read_dataset_folder", "read_manifest", "read_spec", "remove_spans", "resolve_targets", "spurious_test_sets",
    "write_injected",
]
