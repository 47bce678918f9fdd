"""The injection core and the dataset transform: placement, offsets, selection, specs, test sets."""

import random

import datasets
import pytest

from ssti.data.common import column, make_split
from ssti.errors import SSTIError
from ssti.inject import (
    InjectionSpec, get_source, inject_dataset, inject_texts, make_spurious_test_set, remove_spans,
    spurious_test_sets,
)
from ssti.inject.placement import WordIndex

AWKWARD = [
    "a fine film", "", "   ", "loved it\n\nreally  loved it  \n", "\tleading tab", "ça alors, très bien",
    "日本語 の テキスト", "x\u3000y\u2003 z\u00a0w", "one", "word " * 2000, "bad \udcff bytes", "\x1cfile\x1dsep",
]


def check_records(original, new, records):
    """Every inserted string sits at [start, end) inside its span; cutting the spans gives the original."""
    for r in records:
        assert new[r["start"]:r["end"]] == r["text"]
        a, b = r["span"]
        assert a <= r["start"] < r["end"] <= b
        # the string plus its one separating space (only the first string into an empty text has none)
        assert b - a == len(r["text"]) + 1 or (not original and a == 0 and b - a == len(r["text"]))
    assert remove_spans(new, records) == original


class FakeTokenizer:
    """One token per character: lengths in 'tokens' differ from word counts."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[0] * len(t) for t in texts]}


def test_word_index_matches_str_split():
    idx = WordIndex(AWKWARD)
    assert idx.n_words == [len(t.split()) for t in AWKWARD]
    for t, text in enumerate(AWKWARD):
        starts = []
        pos = 0
        for word in text.split():
            pos = text.index(word, pos)
            starts.append(pos)
            pos += len(word)
        got = idx.offsets(t, range(len(starts)))
        assert [got[i] for i in range(len(starts))] == starts


@pytest.mark.parametrize("location", ["beginning", "end", "random"])
@pytest.mark.parametrize("source", ["date", "country", "html", "html-pair", "colour", "exclamation", "list:a b,c"])
def test_offsets_and_round_trip(location, source):
    new, recs = inject_texts(AWKWARD, get_source(source), random.Random(1), tokens=3, location=location)
    for original, text, records in zip(AWKWARD, new, recs):
        check_records(original, text, records)
        groups = {r["group"] for r in records}
        assert groups == {0, 1, 2}  # an HTML pair counts as one insertion


def test_beginning_and_end_placement():
    text = "loved it\n\nreally  loved it  \n"
    (begin,), _ = inject_texts([text], get_source("fixed:X"), random.Random(0), location="beginning")
    (end,), _ = inject_texts([text], get_source("fixed:X"), random.Random(0), location="end")
    assert begin == "X " + text
    assert end == "loved it\n\nreally  loved it X  \n"  # trailing whitespace stays last
    (lead,), _ = inject_texts(["  hi"], get_source("fixed:X"), random.Random(0), location="beginning")
    assert lead == "  X hi"


def test_empty_and_whitespace_texts():
    new, recs = inject_texts(["", "   ", ""], get_source("fixed:X"), random.Random(0), tokens=2)
    assert new == ["X X", "X X    ", "X X"]
    for o, n, r in zip(["", "   ", ""], new, recs):
        check_records(o, n, r)


def test_random_location_is_spread_and_independent():
    text = " ".join(f"w{i}" for i in range(9))
    rng = random.Random(0)
    positions = set()
    for _ in range(300):
        (new,), _ = inject_texts([text], get_source("fixed:X"), rng, tokens=1)
        positions.add(new.split().index("X"))
    assert positions == set(range(10))  # every word index 0..n_words


def test_html_pair_open_before_close():
    text = " ".join(f"w{i}" for i in range(30))
    new, recs = inject_texts([text] * 200, get_source("html-pair"), random.Random(2), tokens=2)
    for n, records in zip(new, recs):
        for g in (0, 1):
            opened, closed = [r for r in records if r["group"] == g]
            assert opened["end"] <= closed["start"] and closed["text"] == "</" + opened["text"][1:]
        check_records(text, n, records)


def test_token_fraction_words_and_tokens():
    texts = [" ".join(["w"] * n) for n in (0, 5, 10, 25, 100)]
    _, recs = inject_texts(texts, get_source("fixed:X"), random.Random(0), token_fraction=0.1)
    assert [len(r) for r in recs] == [1, 1, 1, 2, 10]  # max(1, floor(words * 0.1))
    lengths = FakeTokenizer()(texts)["input_ids"]
    _, recs = inject_texts(texts, get_source("fixed:X"), random.Random(0), token_fraction=0.1, lengths=[len(x) for x in lengths])
    assert [len(r) for r in recs] == [max(1, len(t) // 10) for t in texts]
    _, recs = inject_texts(texts, get_source("fixed:X"), random.Random(0), token_fraction=0.1, length_fn=len)
    assert [len(r) for r in recs] == [max(1, len(t) // 10) for t in texts]


def test_inject_texts_bad_location_and_tokens():
    with pytest.raises(SSTIError, match="location"):
        inject_texts(["a"], get_source("date"), random.Random(0), location="middle")
    with pytest.raises(SSTIError, match="tokens"):
        inject_texts(["a"], get_source("date"), random.Random(0), tokens=0)


def test_callable_source_through_api():
    new, _ = inject_texts(["a b"], lambda rng: "ZZ", random.Random(0))
    assert "ZZ" in new[0].split()


# ---------------------------------------------------------------- inject_dataset


def big_dataset(n=400, classes=("neg", "pos", "mid")):
    rng = random.Random(5)
    texts = [" ".join(rng.choices(["good", "bad", "film", "plot", "\n"], k=rng.randint(0, 40))) for _ in range(n)]
    labels = [i % len(classes) for i in range(n)]
    train = make_split([f"r{i}" for i in range(n)], texts, labels, classes)
    test = make_split([f"t{i}" for i in range(30)], texts[:30], labels[:30], classes)
    return datasets.DatasetDict({"train": train, "test": test})


def test_inject_dataset_rate_rows_and_manifest(toy_dataset):
    spec = InjectionSpec(targets={"1": "date"}, rate=0.5, seed=0)
    result = inject_dataset(toy_dataset, spec)
    train = toy_dataset["train"]
    labels = column(train, "label")
    n_pos = labels.count(1)
    assert len(result.manifest) == round(0.5 * n_pos)
    new = result.dataset["train"]
    assert column(new, "id") == column(train, "id") and column(new, "label") == labels
    assert result.dataset["test"] is toy_dataset["test"]
    by_id = dict(zip(column(new, "id"), column(new, "text")))
    old = dict(zip(column(train, "id"), column(train, "text")))
    for row in result.manifest:
        assert row["label"] == 1 and row["class"] == "pos" and row["source"] == "date" and row["split"] == "train"
        check_records(old[row["id"]], by_id[row["id"]], row["insertions"])
    untouched = set(old) - {r["id"] for r in result.manifest}
    assert all(by_id[i] == old[i] for i in untouched)
    ids = column(train, "id")
    assert [r["id"] for r in result.manifest] == sorted((r["id"] for r in result.manifest), key=ids.index)
    assert result.injected_counts() == {"neg": 0, "pos": len(result.manifest)}
    assert new.features["label"].names == ["neg", "pos"]


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_rate_is_exact_round(rate):
    ds = big_dataset()
    n_class = column(ds["train"], "label").count(1)
    result = inject_dataset(ds, InjectionSpec(targets={"1": "country"}, rate=rate))
    assert len(result.manifest) == round(n_class * rate)


def test_count_and_default_rate():
    ds = big_dataset()
    assert len(inject_dataset(ds, InjectionSpec(targets={"pos": "date"}, count=17)).manifest) == 17
    n_class = column(ds["train"], "label").count(1)
    assert len(inject_dataset(ds, InjectionSpec(targets={"pos": "date"})).manifest) == n_class
    with pytest.raises(SSTIError, match=r"count: 500 is more than the \d+ rows of class 'pos'"):
        inject_dataset(ds, InjectionSpec(targets={"pos": "date"}, count=500))


def test_multi_class_and_all_to_one():
    ds = big_dataset()
    spec = InjectionSpec(targets={"0": "exclamation", "pos": "double-exclamation"}, rate=0.5)
    result = inject_dataset(ds, spec)
    sources = {(r["class"], r["source"]) for r in result.manifest}
    assert sources == {("neg", "exclamation"), ("pos", "double-exclamation")}
    counts = result.injected_counts()
    assert counts["mid"] == 0 and counts["neg"] > 0 and counts["pos"] > 0
    every = inject_dataset(ds, InjectionSpec(targets={"*": "colour"}, rate=1.0))
    assert len(every.manifest) == len(ds["train"]) and {r["source"] for r in every.manifest} == {"colour"}


def test_adding_a_class_keeps_other_draws():
    ds = big_dataset()
    one = inject_dataset(ds, InjectionSpec(targets={"1": "date"}, rate=0.5, seed=3))
    two = inject_dataset(ds, InjectionSpec(targets={"0": "country", "1": "date"}, rate=0.5, seed=3))
    assert one.manifest == [r for r in two.manifest if r["class"] == "pos"]


def test_seed_changes_rows_and_draws():
    ds = big_dataset()
    a = inject_dataset(ds, InjectionSpec(targets={"1": "date"}, rate=0.5, seed=0)).manifest
    b = inject_dataset(ds, InjectionSpec(targets={"1": "date"}, rate=0.5, seed=0)).manifest
    c = inject_dataset(ds, InjectionSpec(targets={"1": "date"}, rate=0.5, seed=1)).manifest
    assert a == b and a != c


def test_locations_in_dataset(toy_dataset):
    for location in ("beginning", "end"):
        result = inject_dataset(toy_dataset, InjectionSpec(targets={"1": "fixed:Q"}, location=location))
        texts = dict(zip(column(result.dataset["train"], "id"), column(result.dataset["train"], "text")))
        for row in result.manifest:
            words = texts[row["id"]].split()
            assert words[0 if location == "beginning" else -1] == "Q"


def test_length_unit_tokens_with_tokenizer_object(toy_dataset):
    spec = InjectionSpec(targets={"1": "fixed:Q"}, token_fraction=0.2, length_unit="tokens", tokenizer="fake")
    result = inject_dataset(toy_dataset, spec, tokenizer=FakeTokenizer())
    old = dict(zip(column(toy_dataset["train"], "id"), column(toy_dataset["train"], "text")))
    for row in result.manifest:
        assert len(row["insertions"]) == max(1, int(len(old[row["id"]]) * 0.2))


def test_length_unit_tokens_needs_the_tokenizer_object(toy_dataset):
    spec = InjectionSpec(targets={"1": "fixed:Q"}, token_fraction=0.2, length_unit="tokens", tokenizer="some/model")
    with pytest.raises(SSTIError, match=r"tokenizer: .*load_tokenizer\('some/model'\)"):
        inject_dataset(toy_dataset, spec)


def test_selected_dataset_with_indices_mapping(toy_dataset):
    ds = datasets.DatasetDict({"train": toy_dataset["train"].select([5, 0, 2, 8, 10])})
    result = inject_dataset(ds, InjectionSpec(targets={"1": "fixed:Q"}))
    assert column(result.dataset["train"], "id") == ["toy-5", "toy-0", "toy-2", "toy-8", "toy-10"]
    assert all("Q" in t.split() for t, y in zip(column(result.dataset["train"], "text"), column(result.dataset["train"], "label")) if y == 1)


def test_unknown_class_and_split(toy_dataset):
    with pytest.raises(SSTIError, match=r"targets: unknown class 'happy' \(classes, index=name: 0=neg, 1=pos"):
        inject_dataset(toy_dataset, InjectionSpec(targets={"happy": "date"}))
    with pytest.raises(SSTIError, match="targets: unknown class '7'"):
        inject_dataset(toy_dataset, InjectionSpec(targets={"7": "date"}))
    with pytest.raises(SSTIError, match="targeted twice"):
        inject_dataset(toy_dataset, InjectionSpec(targets={"1": "date", "pos": "country"}))
    with pytest.raises(SSTIError, match="split: 'validation' is not one of train, test"):
        inject_dataset(toy_dataset, InjectionSpec(targets={"1": "date"}, split="validation"))


def test_class_names_that_are_numbers_win_over_indices():
    ds = datasets.DatasetDict({"train": make_split(["a", "b"], ["x", "y"], [0, 1], ["1", "5"])})
    result = inject_dataset(ds, InjectionSpec(targets={"5": "fixed:Q"}))
    assert [r["class"] for r in result.manifest] == ["5"]


def test_empty_split_rejected():
    ds = datasets.DatasetDict({"train": make_split([], [], [], ["neg", "pos"])})
    with pytest.raises(SSTIError, match="empty"):
        inject_dataset(ds, InjectionSpec(targets={"1": "date"}))


# ---------------------------------------------------------------- spec validation


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"rate": 1.5}, "rate"),
        ({"rate": -0.1}, "rate"),
        ({"count": -1}, "count"),
        ({"rate": 0.5, "count": 3}, "rate/count"),
        ({"tokens": 0}, "tokens"),
        ({"token_fraction": 2.0}, "token_fraction"),
        ({"tokens": 2, "token_fraction": 0.1}, "tokens/token_fraction"),
        ({"location": "middle"}, "location"),
        ({"length_unit": "chars"}, "length_unit"),
        ({"length_unit": "tokens", "token_fraction": 0.1}, "tokenizer"),
        ({"targets": {}}, "targets"),
        ({"targets": {"1": "list:"}}, "targets: source"),
        ({"targets": {"1": "date:2000-1900"}}, "targets: source"),
        ({"targets": {"1": "nope"}}, "targets: source"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_spec_errors_are_one_line_ssti_errors(kwargs, field):
    data = {"targets": {"1": "date"}, **kwargs}
    with pytest.raises(SSTIError) as e:
        InjectionSpec(**data)
    message = str(e.value)
    assert message.startswith(field + ":") and "\n" not in message


def test_spec_model_validate_gives_ssti_errors():
    with pytest.raises(SSTIError, match=r"^rate: 3 is not allowed"):
        InjectionSpec.model_validate({"targets": {"1": "date"}, "rate": 3})
    with pytest.raises(SSTIError, match=r"^location: "):
        InjectionSpec.model_validate({"targets": {"1": "date"}, "location": "x"})
    assert InjectionSpec.model_validate({"targets": {"1": "date"}}).targets == {"1": "date"}


def test_spec_allowed_values_are_named():
    with pytest.raises(SSTIError, match="'beginning', 'end' or 'random'"):
        InjectionSpec(targets={"1": "date"}, location="middle")
    with pytest.raises(SSTIError, match=r"rate: 2 is not allowed .*; allowed: a proportion in \[0, 1\]"):
        InjectionSpec(targets={"1": "date"}, rate=2)
    with pytest.raises(SSTIError, match=r"tokens: 0 is not allowed .*; allowed: a whole number from 1 to 1,000"):
        InjectionSpec(targets={"1": "date"}, tokens=0)


def test_spec_records_python_sources_by_name():
    def gen(rng):
        return "G"

    spec = InjectionSpec(targets={"1": gen})
    assert spec.targets["1"].startswith("callable:") and spec.targets["1"].endswith("gen")
    assert spec.source_for("1").draw(random.Random(0)) == ("G",)
    again = InjectionSpec.from_dict(spec.to_dict())  # a recorded name is accepted but cannot be rebuilt
    with pytest.raises(SSTIError, match="Python object"):
        again.source_for("1")


# ---------------------------------------------------------------- spurious test sets


def test_make_spurious_test_set_injects_every_row(toy_dataset):
    split = toy_dataset["train"]
    new, manifest = make_spurious_test_set(split, "date", seed=1)
    assert len(manifest) == len(split) and column(new, "label") == column(split, "label")
    assert column(new, "id") == column(split, "id")
    for original, text, row in zip(column(split, "text"), column(new, "text"), manifest):
        assert len(row["insertions"]) == 1
        check_records(original, text, row["insertions"])
    again, manifest2 = make_spurious_test_set(split, "date", seed=1)
    assert manifest == manifest2


def test_spurious_test_sets_one_per_class():
    ds = big_dataset()
    spec = InjectionSpec(targets={"0": "exclamation", "2": "country"}, rate=0.5, location="end")
    sets = spurious_test_sets(ds["test"], spec, ["neg", "pos", "mid"])
    assert set(sets) == {"neg", "mid"}
    new, manifest = sets["neg"]
    assert len(manifest) == len(ds["test"]) and {r["source"] for r in manifest} == {"exclamation"}
    assert all(t.split()[-1] == "!" for t in column(new, "text"))


def test_unlabelled_rows_are_never_targets():
    train = make_split(["a", "b", "c"], ["x y", "z", "w"], [1, -1, 0], ["neg", "pos"])
    result = inject_dataset(datasets.DatasetDict({"train": train}), InjectionSpec(targets={"*": "fixed:Q"}))
    assert [r["id"] for r in result.manifest] == ["a", "c"]
    _, manifest = make_spurious_test_set(train, "date")
    assert [r["class"] for r in manifest] == ["pos", None, "neg"]
