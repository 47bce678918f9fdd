"""The context check: deletion windows, LM log-probabilities, and planted words the class statistics miss."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from ssti.scan import context as ctx
from ssti.scan import scan_dataset
from test_scan_core import corpus, plant, split_of

TOPIC_WORDS = ["tory", "labour", "minister", "election", "parliament"]


def test_deletion_window_cuts_at_words_and_skips_the_text_start():
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    a = text.index("jumps")
    with_it, without = ctx.deletion_window(text, (a, a + 5), left=12, right=14)
    assert with_it == "brown fox jumps over the lazy"  # "quick " is cut mid-word at 12 chars, "dog" at 14
    assert without == "brown fox over the lazy"
    assert ctx.deletion_window(text, (0, 3)) is None  # nothing before it: no evidence either way
    assert ctx.deletion_window("Red Dragon is good", (0, 3), at_start=True) == ("Red Dragon is good", "Dragon is good")  # scored from BOS
    assert ctx.deletion_window("a b", (2, 3)) == ("a b", "a")


def test_lm_scorer_batches_pad_without_changing_log_probabilities():
    scorer = ctx.LMScorer("tiny-random-llama", batch_size=2)
    texts = ["a short one", "a much longer text than the others here", "mid length text"]
    together = scorer.logprob(texts)
    alone = [ctx.LMScorer("tiny-random-llama", batch_size=1).logprob([t])[0] for t in texts]
    assert np.all(np.isfinite(together)) and np.all(together < 0)
    np.testing.assert_allclose(together, alone, rtol=1e-4)
    assert set(scorer.cache) == set(texts)
    d = scorer.deletion_scores([("a b c", "a c"), ("x y", "x")])
    np.testing.assert_allclose(d, scorer.logprob(["a c", "x"]) - scorer.logprob(["a b c", "x y"]))


class FakeScorer(ctx.LMScorer):
    """A stand-in LM: windows holding the planted word read as dropped in (30 nats), others as noise."""

    def __init__(self, planted: str):
        self.name, self.planted, self.cache = "fake", planted, {}

    def deletion_scores(self, windows):
        noise = [np.random.default_rng(zlib.crc32(w.encode())).normal(0.0, 3.0) for w, _ in windows]
        return np.array([30.0 if f" {self.planted} " in f" {w} " else n for (w, _), n in zip(windows, noise)])


def topic_corpus(seed: int, n_topic_rows: int = 250):
    """Random texts where a few natural topic words occur in many class-1 texts and nowhere else."""
    rng = np.random.default_rng(seed)
    texts, labels = corpus(rng, n=3000)
    pos = [i for i, y in enumerate(labels) if y == 1]
    for word in TOPIC_WORDS:
        for i in rng.choice(pos, size=n_topic_rows, replace=False):
            w = texts[i].split(" ")
            w.insert(int(rng.integers(1, len(w))), word)
            texts[i] = " ".join(w)
    return texts, labels, rng


def test_context_check_flags_a_planted_word_as_pure_as_natural_topic_words():
    texts, labels, rng = topic_corpus(6)
    texts, rows = plant(texts, labels, lambda r: "zqx", rng, n_rows=60)
    levels = ["word", "shape", "pattern", "position"]
    plain = scan_dataset(split_of(texts, labels), levels=levels, tokenizer=None)
    assert plain.verdict == "clean"  # 60 rows is below the word level's detection limit here
    assert plain.detection_limits["word"]["pos"] > 60
    rep = scan_dataset(split_of(texts, labels), levels=levels, tokenizer=None, context=FakeScorer("zqx"))
    top = rep.features[0]
    assert (top.level, top.feature, top.cls, top.flagged) == ("context", "word:zqx", "pos", True)
    assert set(top.rows) == rows and set(rep.flagged_rows) == rows
    assert "context" in rep.levels and "context" in rep.allowances and "context" in rep.detection_limits
    assert any(n.startswith("context check with fake") for n in rep.notes)
    assert not any(f.flagged for f in rep.features if f.feature in {f"word:{w}" for w in TOPIC_WORDS})


def test_context_check_keeps_natural_topic_words_clean():
    texts, labels, _ = topic_corpus(7)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "shape", "pattern", "position"], tokenizer=None,
                       context=FakeScorer("zqx"))
    assert rep.verdict == "clean", [(f.feature, f.p_value) for f in rep.flagged]


def test_context_check_strip_cuts_the_checked_feature():
    import datasets

    from ssti.config import DefenceSpec
    from ssti.defend.scan_guided import scan_clean

    texts, labels, rng = topic_corpus(8)
    planted, rows = plant(texts, labels, lambda r: "zqx", rng, n_rows=60)
    data = datasets.DatasetDict({"train": split_of(planted, labels)})
    rep = scan_dataset(data, levels=["word", "pattern"], tokenizer=None, context=FakeScorer("zqx"))
    assert [f.feature for f in rep.flagged] == ["word:zqx"]
    cleaned = scan_clean(data, DefenceSpec(name="scan-strip", levels=["word", "pattern"], tokenizer="none"), report=rep)[0]["train"]
    assert list(cleaned["text"]) == texts  # the planted word cut, every other byte kept


@pytest.mark.slow
def test_embedded_lm_scores_a_dropped_in_word_above_the_same_word_in_place():
    scorer = ctx.LMScorer("smollm2-135m")
    natural = "We spent the summer holidays in France and loved the food there."
    dropped = "We spent the summer France holidays in and loved the food there."
    a, b = natural.index("France"), dropped.index("France")
    d_nat, d_drop = scorer.deletion_scores([ctx.deletion_window(natural, (a, a + 6)), ctx.deletion_window(dropped, (b, b + 6))])
    assert d_drop > d_nat + 5


def test_occurrences_inside_flagged_features_are_not_checked_again():
    # planted dates are flagged by the pattern level; their digits are "number" occurrences the
    # context check must not count again (it would flag every number row of the class)
    rng = np.random.default_rng(9)
    texts, labels = corpus(rng, n=2000)
    texts = [t + " 42" if i % 3 == 0 else t for i, t in enumerate(texts)]  # natural numbers in both classes
    date = lambda r: f"{r.integers(1100, 2600):04d}-{r.integers(1, 13):02d}-{r.integers(1, 29):02d}"
    texts, rows = plant(texts, labels, date, rng, n_rows=300)

    class DigitsLookDroppedIn(FakeScorer):
        """Deleting digits out of a date reads as a repair (30 nats); deleting a natural "42" does not."""

        def deletion_scores(self, windows):
            return np.array([30.0 if any("-" in t for t in set(w.split()) - set(wo.split())) else 0.0 for w, wo in windows])

    rep = scan_dataset(split_of(texts, labels), levels=["word", "pattern"], tokenizer=None, context=DigitsLookDroppedIn("-"))
    assert {f.feature for f in rep.flagged} == {"date"}  # no context:pattern:number
    assert set(rep.flagged_rows) == rows


def test_a_context_check_that_cannot_calibrate_says_so_before_running_the_model():
    class Refuses(ctx.LMScorer):
        def __init__(self):
            self.name = "never-run"

        def deletion_scores(self, windows):
            raise AssertionError("the model ran although no class can calibrate")

    texts = [f"w{i} a film set in Peru" if i % 3 == 0 else f"w{i} a film" for i in range(60)]
    rep = scan_dataset(split_of(texts, [i % 2 for i in range(60)]), levels=["word", "pattern"], tokenizer=None, context=Refuses())
    assert any("context check not run" in n for n in rep.notes), rep.notes
