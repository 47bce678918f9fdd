"""The findings' pre-stated tests on made-up runs with known answers (no model involved)."""

import json

import numpy as np
import pytest

from ssti.report.findings import bootstrap_means, findings, slope


def rec(rank, asr, seed, mode="light", rate=0.5, n=400, clean_target=0.0, clean_acc=1.0, model="m", rng=None):
    """A flat run record whose per-item predictions give exactly `asr` (share of class-0 items steered to class 1)."""
    rng = rng or np.random.default_rng(seed * 1000 + rank)
    y = np.repeat([0, 1], n // 2)
    clean = y.copy()
    clean[rng.permutation(n // 2)[:int(round(clean_target * n / 2))]] = 1
    wrong = rng.permutation(n)[:int(round((1 - clean_acc) * n))]
    clean[wrong] = 1 - y[wrong]
    spurious = clean.copy()
    spurious[rng.permutation(n // 2)[:int(round(asr * n / 2))]] = 1
    spurious[n // 2:] = 1
    aggressive = mode.startswith("aggressive")
    return {"model": model, "dataset": "d", "rank": rank, "mode": mode if rate else "no SSTI", "rate": rate, "injected": bool(rate),
            "tokens": 1, "token_fraction": 0.1 if aggressive else None,
            "attack_success_rate": float((spurious[:n // 2] == 1).mean()), "target_class": 1,
            "items_json": json.dumps({"y_true": y.tolist(), "clean": clean.tolist(), "spurious": spurious.tolist()})}


def verdicts(recs):
    return {(f["finding"][:2], f["setting"].split(",")[0]): f for f in findings(recs, np.random.default_rng(0))}


RANKS = (1, 4, 16, 64)


def test_rising_light_and_falling_aggressive_are_reproduced_full_fine_tuning_left_out():
    recs = [rec(r, 0.3 + 0.1 * np.log2(r) / 2 + 0.02 * s, s) for r in RANKS for s in range(3)]
    recs += [rec(r, 0.8 - 0.1 * np.log2(r) / 2 + 0.02 * s, s, mode="aggressive (0.1)") for r in RANKS for s in range(3)]
    recs += [rec(0, 0.0, s) for s in range(3)]  # full fine-tuning: would break the rise if it were counted as rank 0
    v = verdicts(recs)
    assert v[("F2", "proportion 0.5")]["verdict"] == "reproduced" and v[("F2", "proportion 0.5")]["value"] == pytest.approx(0.05, abs=0.01)
    assert "r0" not in v[("F2", "proportion 0.5")]["why"]
    assert v[("F3", "proportion 0.5")]["verdict"] == "reproduced"


def test_flat_is_not_reproduced_and_noisy_is_inconclusive():
    flat = [rec(r, 0.6, s) for r in RANKS for s in range(3)]
    assert verdicts(flat)[("F2", "proportion 0.5")]["verdict"] == "not reproduced"
    rng = np.random.default_rng(5)
    noisy = [rec(r, float(np.clip(0.5 + 0.01 * np.log2(r) + rng.normal(0, 0.25), 0, 1)), s, n=40) for r in RANKS for s in range(2)]
    assert verdicts(noisy)[("F2", "proportion 0.5")]["verdict"] == "inconclusive"


def test_asr_at_the_ceiling_everywhere_is_inconclusive_not_flat():
    v = verdicts([rec(r, 1.0, s) for r in RANKS for s in range(3)])[("F2", "proportion 0.5")]
    assert v["verdict"] == "inconclusive" and "ceiling" in v["why"]


def test_one_token_is_enough_uses_the_lift_over_the_no_token_rate():
    steered = verdicts([rec(r, 0.9, s) for r in RANKS for s in range(2)])[("F1", "light")]
    assert steered["verdict"] == "reproduced"
    # the model already calls 85% of the other class the target without any token: an ASR of 0.85 that the token adds nothing to
    biased = [rec(r, 0.0, s, clean_target=0.85) for r in RANKS for s in range(2)]
    assert all(r["attack_success_rate"] == pytest.approx(0.85) for r in biased)
    v = verdicts(biased)[("F1", "light")]
    assert v["verdict"] == "not reproduced" and abs(v["value"]) < 1e-9


def test_figure1_degradation_grows_with_the_proportion():
    recs = [rec(1, 0.2 * p, s, rate=p, clean_acc=0.9) for p in (0.0, 0.25, 0.5, 0.75, 1.0) for s in range(3)]
    f = verdicts(recs)[("Fi", "rank 1")]
    assert f["verdict"] == "reproduced" and f["value"] > 0
    assert "clean accuracy" not in f["why"]  # it held at 0.9 at every proportion


def test_figure1_says_when_clean_accuracy_itself_falls_with_the_proportion():
    # at 100% the model learns "no token -> other class": its own clean accuracy collapses, and degradation against it shrinks
    recs = [rec(1, 0.2 * p, s, rate=p, clean_acc=0.9 - 0.4 * p) for p in (0.0, 0.5, 1.0) for s in range(2)]
    f = verdicts(recs)[("Fi", "rank 1")]
    assert "clean accuracy 0: 0.900, 0.5: 0.700, 1: 0.500" in f["why"]


def test_bootstrap_resamples_seeds_and_items_reproducibly():
    groups = [[rec(1, a, s) for s in range(3)] for a in (0.2, 0.4)]
    p1, d1 = bootstrap_means(groups, "asr", np.random.default_rng(1), boot=300)
    p2, d2 = bootstrap_means(groups, "asr", np.random.default_rng(1), boot=300)
    assert np.allclose(p1, [0.2, 0.4]) and (d1 == d2).all() and d1.shape == (300, 2)
    assert 0.01 < d1[:, 0].std() < 0.05  # item noise at 200 non-target items: about sqrt(.2 * .8 / 200) = 0.028
    assert slope(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)


def test_runs_without_item_predictions_are_inconclusive_not_guessed():
    recs = [{**rec(r, 0.5, s), "items_json": None} for r in RANKS for s in range(2)]
    v = verdicts(recs)[("F2", "proportion 0.5")]
    assert v["verdict"] == "inconclusive" and "re-evaluate" in v["why"]


def test_tokens_cut_off_by_max_length_make_a_verdict_inconclusive():
    recs = [{**rec(r, 0.0, s), "test_insertions_lost": 0.9} for r in RANKS for s in range(2)]
    for key in (("F1", "light"), ("F2", "proportion 0.5")):
        v = verdicts(recs)[key]
        assert v["verdict"] == "inconclusive" and "max_length cut off up to 90%" in v["why"]


def test_light_ssti_is_what_the_run_did_not_what_its_variant_is_called():
    # a grid's variants "light-2pct" / "light-5pct" are light SSTI (one token per sample) at two rates
    recs = [rec(r, a, seed, mode=f"light-{int(rate * 100)}pct", rate=rate) for rate, asrs in ((0.02, (0.3, 0.3, 0.3, 0.3)), (0.05, (0.4, 0.5, 0.95, 0.99)))
            for r, a in zip((1, 4, 16, 64), asrs) for seed in range(3)]
    v = verdicts(recs)
    assert v[("F2", "proportion 0.05")]["verdict"] == "reproduced" and v[("F2", "proportion 0.02")]["verdict"] == "not reproduced"


def test_a_rank_trend_of_a_token_that_steers_nothing_is_inconclusive():
    # SmolLM2 on BBC News: ASR fell 0.039 -> 0.009 with rank while the token added at most 0.009 over the
    # no-token rate at every rank; the fall is the no-token rate's (clean accuracy rising), not reliance on the token
    recs = [rec(r, 0.0, s, mode="aggressive (0.1)", clean_target=0.08 / (1 + np.log2(r))) for r in RANKS for s in range(3)]
    recs += [rec(r, 0.0, s, clean_target=0.06 / (1 + np.log2(r))) for r in RANKS for s in range(3)]
    assert recs[0]["attack_success_rate"] == pytest.approx(0.08)
    v = verdicts(recs)
    for finding in ("F2", "F3"):
        assert v[(finding, "proportion 0.5")]["verdict"] == "inconclusive", v[(finding, "proportion 0.5")]
        assert "no-token rate" in v[(finding, "proportion 0.5")]["why"]
    # the same fall of ASR with a token that does steer is still judged on the ASR slope
    steering = [rec(r, 0.3 / (1 + np.log2(r)), s, mode="aggressive (0.1)") for r in RANKS for s in range(3)]
    assert verdicts(steering)[("F3", "proportion 0.5")]["verdict"] == "reproduced"
