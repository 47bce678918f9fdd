"""The SSTI injection engine: token sources, placement, the dataset transform and its folder format.

    from ssti.inject import InjectionSpec, inject_dataset, write_injected
    spec = InjectionSpec(targets={"1": "date"}, rate=0.5, seed=0)
    write_injected(inject_dataset(load_dataset("rotten-tomatoes"), spec), "out/rt-date")
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "InjectedDataset": "engine", "inject_dataset": "engine", "inject_texts": "engine", "resolve_targets": "engine",
    "insert_at_words": "engine", "insertion_positions": "engine",
    "LOCATIONS": "placement", "remove_spans": "placement",
    "SOURCE_HELP": "sources", "SOURCES": "sources", "CallableSource": "sources", "ChoiceSource": "sources", "DateSource": "sources", "FixedSource": "sources", "TokenSource": "sources", "get_source": "sources",
    "InjectionSpec": "spec",
    "read_dataset_folder": "store", "read_manifest": "store", "read_spec": "store", "write_injected": "store",
    "make_spurious_test_set": "testsets", "spurious_test_sets": "testsets",
})
