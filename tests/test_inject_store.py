"""The injected-dataset folder: contents, round trip through load_dataset, determinism, atomicity."""

import hashlib

import pytest

from ssti.data import load_dataset
from ssti.data.common import column
from ssti.errors import SSTIError
from ssti.inject import InjectionSpec, inject_dataset, read_dataset_folder, read_manifest, read_spec, write_injected


def folder_digest(path):
    """One hash over every file's relative path and bytes."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def write(toy_dataset, out, seed=0, **kw):
    spec = InjectionSpec(targets={"1": "html"}, rate=0.5, seed=seed, **kw)
    return write_injected(inject_dataset(toy_dataset, spec, source_dataset="toy"), out)


def test_folder_layout_and_round_trip(toy_dataset, tmp_path):
    out = write(toy_dataset, tmp_path / "inj")
    assert sorted(p.name for p in out.iterdir()) == [".ssti.json", "data", "injection.yaml", "manifest.jsonl"]
    assert sorted(p.name for p in (out / "data").iterdir()) == ["test.parquet", "train.parquet"]
    ds = read_dataset_folder(out)
    assert list(ds) == ["train", "test"]
    assert ds["train"].features["label"].names == ["neg", "pos"]
    assert column(ds["test"], "text") == column(toy_dataset["test"], "text")
    manifest = read_manifest(out)
    texts = dict(zip(column(ds["train"], "id"), column(ds["train"], "text")))
    assert len(manifest) == round(0.5 * column(toy_dataset["train"], "label").count(1))
    for row in manifest:
        for r in row["insertions"]:
            assert texts[row["id"]][r["start"]:r["end"]] == r["text"]
    spec = read_spec(out)
    assert spec == InjectionSpec(targets={"1": "html"}, rate=0.5, seed=0)
    # ssti.data.load_dataset reads any ssti folder
    again = load_dataset(str(out))
    assert column(again["train"], "text") == column(ds["train"], "text")


def test_injection_yaml_content(toy_dataset, tmp_path):
    import yaml

    import ssti

    meta = yaml.safe_load((write(toy_dataset, tmp_path / "inj") / "injection.yaml").read_text())
    assert meta["ssti_version"] == ssti.__version__ and meta["source_dataset"] == "toy"
    assert meta["seed"] == 0 and meta["class_names"] == ["neg", "pos"]
    assert meta["spec"]["targets"] == {"1": "html"} and meta["spec"]["rate"] == 0.5
    assert meta["splits"] == {"train": 12, "test": 4} and meta["injected"]["neg"] == 0


def test_same_seed_same_bytes_other_seed_differs(toy_dataset, tmp_path):
    a = folder_digest(write(toy_dataset, tmp_path / "a", seed=0))
    b = folder_digest(write(toy_dataset, tmp_path / "b", seed=0))
    c = folder_digest(write(toy_dataset, tmp_path / "c", seed=1))
    assert a == b and a != c


def test_existing_folder_refused_unless_overwrite(toy_dataset, tmp_path):
    out = write(toy_dataset, tmp_path / "inj")
    before = folder_digest(out)
    with pytest.raises(SSTIError, match="already exists"):
        write(toy_dataset, out, seed=5)
    assert folder_digest(out) == before
    spec = InjectionSpec(targets={"1": "html"}, rate=0.5, seed=5)
    write_injected(inject_dataset(toy_dataset, spec, source_dataset="toy"), out, overwrite=True)
    assert folder_digest(out) != before and not list(tmp_path.glob(".*"))


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(SSTIError, match="not an ssti dataset folder"):
        read_dataset_folder(tmp_path)
    with pytest.raises(SSTIError, match="not an ssti dataset folder"):
        load_dataset(str(tmp_path))
