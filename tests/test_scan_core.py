"""ssti scan: planted features found at each level, clean data stays clean, statistics by hand."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest

from ssti.data.common import make_split
from ssti.scan import features as feat
from ssti.scan import scan_dataset
from ssti.scan import stats as st

VOCAB = [f"w{i}" for i in range(300)] + ["film", "movie", "good", "bad", "plot", "actor", "scene", "story"]


def corpus(rng: np.random.Generator, n: int = 1000, words: int = 15) -> tuple[list[str], list[int]]:
    """n short texts of random vocabulary words, labels alternating 0/1 (no word predicts the label)."""
    texts = [" ".join(rng.choice(VOCAB, size=words)) for _ in range(n)]
    return texts, [i % 2 for i in range(n)]


def split_of(texts, labels) -> datasets.Dataset:
    return make_split([f"r{i}" for i in range(len(texts))], texts, labels, ["neg", "pos"])


def plant(texts, labels, make_token, rng, n_rows=300, where="random"):
    """Insert one token drawn by make_token(rng) into n_rows class-1 texts; returns the new texts and rows."""
    rows = rng.choice([i for i, y in enumerate(labels) if y == 1], size=n_rows, replace=False)
    out = list(texts)
    for i in rows:
        w = out[i].split(" ")
        j = 0 if where == "first" else int(rng.integers(0, len(w) + 1))
        w.insert(j, make_token(rng))
        out[i] = " ".join(w)
    return out, {f"r{i}" for i in rows}


def date(rng):
    return f"{rng.integers(1100, 2600):04d}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"


@pytest.mark.parametrize("level,make_token,where,expect", [
    ("word", lambda r: "zqx", "random", "zqx"),
    ("shape", lambda r: f"AB-{r.integers(1000, 9999)}", "random", "AA-0000"),
    ("pattern", date, "random", "date"),
    ("pattern", lambda r: "<br>", "random", "html-tag"),
    ("position", lambda r: "honestly", "first", "first-word:honestly"),
])
def test_planted_feature_found_at_each_level(level, make_token, where, expect):
    rng = np.random.default_rng(1)
    texts, labels = corpus(rng)
    texts, rows = plant(texts, labels, make_token, rng, where=where)
    rep = scan_dataset(split_of(texts, labels), levels=[level], tokenizer=None)
    top = rep.features[0]
    assert (top.feature, top.level, top.cls) == (expect, level, "pos")
    assert top.flagged and rep.verdict == "suspicious"
    assert set(rep.flagged_rows) == rows


def test_planted_feature_found_at_subword_level():
    from ssti.models import tiny_tokenizer

    rng = np.random.default_rng(2)
    texts, labels = corpus(rng)
    texts, rows = plant(texts, labels, lambda r: "§", rng)
    rep = scan_dataset(split_of(texts, labels), levels=["subword"], tokenizer=tiny_tokenizer())
    assert rep.features[0].level == "subword" and rep.features[0].cls == "pos" and rep.features[0].flagged
    assert set(rep.flagged_rows) == rows


def test_planted_phrase_of_common_words_is_flagged_as_a_phrase_and_no_word_is():
    # every word of "I watch this movie" occurs in both classes; only the exact run is planted in one
    rng = np.random.default_rng(4)
    texts, labels = corpus(rng)
    texts = [t + (" " + str(rng.choice(["I", "watch", "this", "movie"])) if i % 3 == 0 else "") for i, t in enumerate(texts)]
    texts, rows = plant(texts, labels, lambda r: "I watch this movie", rng, n_rows=150)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "phrase"], tokenizer=None)
    assert [(f.level, f.feature, f.cls) for f in rep.flagged] == [("phrase", "i watch this movie", "pos")]
    assert set(rep.flagged_rows) == rows
    text = "So I  watch THIS movie, and i watch this movie."
    assert [text[a:b] for a, b in feat.feature_spans(text, "i watch this movie", "phrase")] == ["I  watch THIS movie", "i watch this movie"]


def test_phrase_allowance_is_never_looser_than_the_word_level(monkeypatch):
    from ssti.scan import scanner

    rng = np.random.default_rng(5)
    texts, labels = corpus(rng)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "phrase"], tokenizer=None)
    assert rep.allowances["phrase"] == "0.1"  # a random corpus repeats no phrase: the a priori figure
    monkeypatch.setitem(scanner.NATURAL_LEAKAGE, "phrase", 0.3)  # a looser phrase figure gives way to the word level's
    monkeypatch.setitem(scanner.CALIBRATION_CAP, "word", 0.2)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "phrase"], tokenizer=None)
    assert rep.allowances["word"] == "0.2 (calibrated)" and rep.allowances["phrase"] == "0.2 (the word level's)"


def test_clean_synthetic_dataset_gives_no_alarm():
    rng = np.random.default_rng(3)
    texts, labels = corpus(rng)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "phrase", "shape", "pattern", "position"], tokenizer=None)
    assert rep.verdict == "clean" and not rep.flagged and rep.flagged_rows == []
    assert all(f.p_value > 0.05 for f in rep.features)


def test_statistics_match_hand_computation():
    # feature a: 3 docs of class 0, 1 of class 1; feature b: 0 and 2. Classes: 6 and 4 docs.
    counts = np.array([[3, 1], [0, 2]])
    s = st.compute(counts, np.array([6, 4]))
    # H(y|a) = -(3/4 log2 3/4 + 1/4 log2 1/4)
    assert s.entropy[0] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert s.entropy[1] == pytest.approx(0.0)
    # skew class and z: a -> class 0: (3 - 4*0.6) / sqrt(4*0.6*0.4); b -> class 1: (2 - 2*0.4) / sqrt(2*0.4*0.6)
    assert list(s.cls) == [0, 1]
    assert s.z[0] == pytest.approx((3 - 2.4) / math.sqrt(0.96))
    assert s.z[1] == pytest.approx((2 - 0.8) / math.sqrt(0.48))
    # exact binomial tails, Bonferroni over 2 features (two classes count as one test per feature)
    p_a = sum(math.comb(4, j) * 0.6**j * 0.4 ** (4 - j) for j in (3, 4))
    assert s.p_value[0] == pytest.approx(min(1, 2 * p_a))
    assert s.p_value[1] == pytest.approx(2 * 0.4**2)
    # PMI = log2(P(k|t) / P(k)); log odds ratio with +0.5
    assert s.pmi[0] == pytest.approx(math.log2(0.75 / 0.6))
    assert s.pmi[1] == pytest.approx(math.log2(1.0 / 0.4))
    assert s.log_odds[1] == pytest.approx(math.log(2.5 / 2.5) - math.log(0.5 / 6.5))
    assert list(s.leakage) == [1, 0]
    # leakage test: P(Bin(2, 0.1 * 0.6) <= 0)
    assert st.leakage_pvalue(np.array([2]), np.array([0]), np.array([0.4]), 0.1)[0] == pytest.approx((1 - 0.06) ** 2)


def test_document_frequency_counts_each_document_once():
    fs = feat.extract(["a a a b", "a", "b c"], levels=["word"])
    counts = st.doc_freq(fs, np.array([0, 1, 1]), 2)
    got = {fs.names[i]: counts[i].tolist() for i in range(len(fs.names))}
    assert got == {"a": [1, 1], "b": [1, 1], "c": [0, 1]}


def test_shapes_and_patterns():
    assert feat.shape("1982-09-24") == feat.shape("2031-01-05") == "0000-00-00"
    assert feat.shape("McDonald's") == "AaAaaaa'a"
    assert feat.shape("Extraordinary") == "Aaaaa"
    pats = feat.pattern_sets(["born 1982-09-24 in France", "see <b>this</b> at https://x.org !!", "a lone ! here", "red 😀 a@b.com"])
    assert set(pats[0]) == {"date", "number", "country"}
    assert {"html-tag", "url", "repeated-!"} <= set(pats[1])
    assert pats[2] == ["lone-!"]
    assert {"colour", "emoji", "email"} <= set(pats[3])
    assert "country" not in feat.pattern_sets(["roast turkey for dinner"])[0]  # case-sensitive country names
    assert "country" in feat.pattern_sets(["a trip to Bosnia and Herzegovina"])[0]  # multi-word names


def test_tarone_counts_only_testable_features():
    # min p-values 1e-5, 1e-4, 0.5, 0.9 at alpha 0.05: k=1 leaves 2 testable (> 1), k=2 leaves 2 (<= 2)
    assert st.tarone_count(np.log10([1e-5, 1e-4, 0.5, 0.9]), 0.05) == 2
    assert st.tarone_count(np.log10([0.5, 0.9]), 0.05) == 1  # nothing testable: no penalty at all
    assert st.tarone_count(np.log10(np.full(100, 1e-6)), 0.05) == 100  # all testable: plain Bonferroni
    # thousands of hapax words (min p 0.96) do not dilute one strong feature
    assert st.tarone_count(np.log10(np.r_[1e-6, np.full(5000, 0.96)]), 0.05) == 1


def test_rare_tier_pools_uncommon_list_members_and_reports_the_whole_lists_rows():
    from ssti.scan.prior import COMMON_MEMBERS

    assert "black" in COMMON_MEMBERS["colour"] and "turquoise" not in COMMON_MEMBERS["colour"]
    pats = feat.pattern_sets(["a turquoise hat in Eswatini", "a black car in France", "a red and mauve sky"])
    assert set(pats[0]) == {"colour", "rare-colour", "country", "rare-country"}
    assert set(pats[1]) == {"colour", "country"}  # common members only: no rare tier
    assert set(pats[2]) == {"colour", "rare-colour"}
    # natural colour talk in both classes (common members) + rare colours planted in 40 class-1 rows
    rng = np.random.default_rng(4)
    texts, labels = corpus(rng)
    common = ["black", "white", "red", "green", "blue"]
    texts = [t + " " + common[i % 5] if i % 4 < 2 else t for i, t in enumerate(texts)]
    rare = sorted(set(feat.name_list("colour")) - COMMON_MEMBERS["colour"])
    texts, rows = plant(texts, labels, lambda r: str(r.choice(rare)), rng, n_rows=40)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "pattern"], tokenizer=None)
    top = rep.features[0]
    assert (top.level, top.feature, top.cls) == ("pattern", "rare-colour", "pos") and top.flagged
    assert rows <= set(top.rows)  # every planted row, as the rows of the whole colour list in class pos
    assert set(top.rows) == {f"r{i}" for i, t in enumerate(texts) if labels[i] == 1 and feat.matcher("colour").spans(t)}


def test_natural_list_usage_in_both_classes_gives_no_alarm():
    rng = np.random.default_rng(5)
    texts, labels = corpus(rng)
    names = list(feat.name_list("colour"))
    texts = [t + " " + names[int(rng.integers(len(names)))] if rng.random() < 0.3 else t for t in texts]
    rep = scan_dataset(split_of(texts, labels), levels=["word", "shape", "pattern", "position"], tokenizer=None)
    assert rep.verdict == "clean"


def test_calibrated_allowance_is_the_fifth_purest_features_upper_bound():
    from scipy import stats as sps

    support = np.r_[np.full(6, 100), np.full(60, 50)]
    leakage = np.r_[np.zeros(6, int), np.full(60, 25)]
    prior_k = np.full(66, 0.5)
    r, calibrated = st.calibrated_ratio(support, leakage, prior_k, default=0.1)
    assert calibrated and r == pytest.approx(sps.beta.ppf(0.95, 1, 100) / 0.5)  # about 0.06: 6 features pure over 100 docs
    assert st.calibrated_ratio(support, leakage, prior_k, default=0.1, cap=0.01) == (0.01, True)
    assert st.calibrated_ratio(support[:10], leakage[:10], prior_k[:10], default=0.1) == (0.1, False)  # too few features


def test_natural_topic_words_set_their_own_allowance_and_stay_unflagged(monkeypatch):
    from ssti.scan import scanner

    # 8 topic words, each in 250 class-1 documents and nowhere else: a fixed 10% allowance would flag them
    rng = np.random.default_rng(6)
    texts, labels = corpus(rng, n=3000)
    pos = [i for i, y in enumerate(labels) if y == 1]
    for word in ["tory", "labour", "minister", "election", "parliament", "commons", "cabinet", "ballot"]:
        for i in rng.choice(pos, size=250, replace=False):
            w = texts[i].split(" ")
            w.insert(int(rng.integers(1, len(w))), word)
            texts[i] = " ".join(w)
    rep = scan_dataset(split_of(texts, labels), levels=["word", "shape", "pattern", "position"], tokenizer=None)
    assert rep.verdict == "clean", [(f.feature, f.p_value) for f in rep.flagged]
    assert float(rep.allowances["word"].split()[0]) < 0.1 and "calibrated" in rep.allowances["word"]
    monkeypatch.delitem(scanner.CALIBRATION_CAP, "word")  # the fixed a priori allowance alone would cry wolf
    assert scan_dataset(split_of(texts, labels), levels=["word", "shape", "pattern", "position"], tokenizer=None).verdict == "suspicious"


def test_detection_limit_is_the_fewest_rows_a_pure_planted_word_is_flagged_in():
    rng = np.random.default_rng(7)
    texts, labels = corpus(rng, n=2000)

    def scan_with_planted(n_rows):
        planted, _ = plant(texts, labels, lambda r: "zqx", np.random.default_rng(8), n_rows=n_rows)
        rep = scan_dataset(split_of(planted, labels), levels=["word", "pattern"], tokenizer=None)
        word = next(f for f in rep.features if f.feature == "zqx")
        return rep.detection_limits["word"]["pos"], word.flagged

    limit, _ = scan_with_planted(300)
    assert 5 < limit < 300
    assert scan_with_planted(limit) == (limit, True)
    assert scan_with_planted(limit - 1) == (limit, False)


def test_detection_limit_matches_the_leakage_test():
    from ssti.scan.scanner import LevelRule

    rule = LevelRule(ratio=0.3, calibrated=True, log10_correction=np.log10(400 / 0.125))
    n = rule.min_rows(prior_k=0.5, threshold=0.05)
    corrected = lambda rows: 10 ** (st.log10_leakage_pvalue(np.array([rows]), np.array([0]), np.array([0.5]), 0.3)[0] + rule.log10_correction)
    assert corrected(n) <= 0.05 < corrected(n - 1)
    assert n == math.ceil(math.log10(0.05 * 0.125 / 400) / math.log10(1 - 0.3 * 0.5))


def test_phrase_level_on_texts_shorter_than_a_phrase_and_on_none():
    for texts in (["a b c", "d e f", "g h"], [], ["", "a"]):
        docs, codes, names = feat.phrase_features(feat.word_runs(texts))
        assert len(docs) == len(codes) == len(names) == 0
    texts = ["one two three four five"] * 5 + ["one two three four"]  # 2 runs in 5+ documents, each counted once per document
    docs, codes, names = feat.phrase_features(feat.word_runs(texts), offset=3)
    assert sorted(names) == ["one two three four", "two three four five"]
    assert sorted(zip(codes.tolist(), docs.tolist())) == sorted((3 + names.index(n), d) for d in range(6) for n in names
                                                                  if d < 5 or n == "one two three four")


def test_a_class_smaller_than_every_detection_limit_is_said_to_be_unjudged():
    texts = [f"w{i} some film text" + (" zqx" if i % 2 else "") for i in range(60)]  # zqx in all 30 rows of class 1
    rep = scan_dataset(split_of(texts, [i % 2 for i in range(60)]), levels=["word"], tokenizer=None)
    assert rep.verdict == "clean"  # 30 rows are below the word level's limit
    assert any("fewer than any level's detection limit" in n and "'pos'" in n for n in rep.notes), rep.notes
