"""Per-feature statistics of label association, all vectorised over features (numpy/scipy).

For a feature t present in n(t) training documents, c_k(t) of them of class k, with class prior
p_k = N_k / N:

- document frequency per class: the matrix ``counts[f, k] = c_k``;
- conditional label entropy H(y|t) = -sum_k P(k|t) log2 P(k|t), with P(k|t) = c_k / n (bits; 0 means
  the feature occurs in one class only — the paper's diagnostic of injected tokens);
- the class of the skew: argmax_k of the z statistic below;
- Gardner et al. (2021, "Competency Problems") one-sided binomial z-test of the skew against the
  prior: z = (c_k - n p_k) / sqrt(n p_k (1 - p_k)), with its exact binomial tail
  P(Bin(n, p_k) >= c_k) as the p-value, corrected with **Bonferroni** over every (feature, class)
  test made (family-wise control: a reported p-value below 0.05 means "significant even after
  looking at every feature");
- PMI(t, k) = log2( P(k|t) / p_k );
- effect size: the log odds ratio of presence in class k against the other classes, with the
  Haldane-Anscombe +0.5 correction so that pure features get a finite value;
- leakage: the number of documents carrying t outside class k, and the leakage test used by the
  scanner's verdict (see `leakage_pvalue`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, special, stats

from ssti.scan.features import FeatureSet


@dataclass
class FeatureStats:
    """Per-feature arrays (length F) plus the class sizes; row f describes feature code f."""

    counts: np.ndarray  # (F, K) document frequency per class
    class_sizes: np.ndarray  # (K,)
    support: np.ndarray  # (F,)
    cls: np.ndarray  # (F,) class of the skew
    entropy: np.ndarray  # (F,) H(y|t), bits
    z: np.ndarray  # (F,)
    p_value: np.ndarray  # (F,) one-sided binomial tail, Bonferroni-corrected, capped at 1
    pmi: np.ndarray  # (F,) PMI with the skew class, bits
    log_odds: np.ndarray  # (F,) effect size, natural log
    leakage: np.ndarray  # (F,) documents outside the skew class
    n_tests: int


def doc_freq(features: FeatureSet, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Document frequency per class, ``counts[f, k]``, by one sparse sum (entries are distinct pairs)."""
    n_feat = len(features.names)
    lab = np.asarray(labels, dtype=np.int64)[features.doc]
    m = sparse.coo_matrix((np.ones(len(lab), dtype=np.int64), (features.code, lab)), shape=(n_feat, n_classes))
    return np.asarray(m.toarray(), dtype=np.int64)


def conditional_entropy(counts: np.ndarray) -> np.ndarray:
    """H(y|t) in bits for each row of a (F, K) count matrix (0 log 0 = 0)."""
    n = counts.sum(axis=1, keepdims=True).astype(float)
    p = np.divide(counts, n, out=np.zeros(counts.shape, dtype=float), where=n > 0)
    return -np.sum(special.xlogy(p, p), axis=1) / np.log(2)


def compute(counts: np.ndarray, class_sizes: np.ndarray) -> FeatureStats:
    """Every statistic of the module docstring for a (F, K) count matrix and the class sizes."""
    counts = np.asarray(counts, dtype=np.int64)
    class_sizes = np.asarray(class_sizes, dtype=np.int64)
    n_feat, k = counts.shape
    total = class_sizes.sum()
    prior = class_sizes / total
    n = counts.sum(axis=1)
    nf = n[:, None].astype(float)
    expected = nf * prior[None, :]
    z_all = (counts - expected) / np.sqrt(np.maximum(nf * prior * (1 - prior), 1e-300))
    cls = np.argmax(z_all, axis=1) if n_feat else np.zeros(0, dtype=np.int64)
    rows = np.arange(n_feat)
    c = counts[rows, cls]
    pk = prior[cls]
    z = z_all[rows, cls]
    n_tests = max(1, n_feat * (k if k > 2 else 1))  # two classes: the two tests are one test mirrored
    raw_p = stats.binom.sf(c - 1, n, pk)
    p_value = np.minimum(1.0, raw_p * n_tests)
    pmi = np.log2(np.maximum(c, 1e-300) / np.maximum(n * pk, 1e-300))
    nk = class_sizes[cls]
    other_in = n - c
    other_total = total - nk
    log_odds = (np.log(c + 0.5) - np.log(nk - c + 0.5)) - (np.log(other_in + 0.5) - np.log(other_total - other_in + 0.5))
    return FeatureStats(counts, class_sizes, n, cls, conditional_entropy(counts), z, p_value, pmi, log_odds, other_in, n_tests)


def leakage_pvalue(support: np.ndarray, leakage: np.ndarray, prior_k: np.ndarray, ratio: float) -> np.ndarray:
    """P(Bin(n, ratio * (1 - p_k)) <= leakage): how unlikely so little leakage is for a natural cue.

    A natural word that predicts class k still occurs in other classes at some fraction of the
    chance rate (1 - p_k); `ratio` is the smallest such fraction we accept as natural. A feature whose
    out-of-class count is improbably low even under that generous allowance predicts the label
    "far better than language does".
    """
    q = np.clip(ratio * (1.0 - prior_k), 1e-12, 1.0)
    return stats.binom.cdf(leakage, support, q)


def log10_leakage_pvalue(support: np.ndarray, leakage: np.ndarray, prior_k: np.ndarray, ratio: np.ndarray | float) -> np.ndarray:
    """`leakage_pvalue` on a log10 scale (no underflow for features in thousands of documents)."""
    q = np.clip(np.asarray(ratio) * (1.0 - prior_k), 1e-12, 1.0)
    return stats.binom.logcdf(leakage, support, q) / np.log(10)


def tarone_count(min_log10_p: np.ndarray, alpha: float) -> int:
    """Tarone's (1990) number of *testable* hypotheses: the smallest k with #{f: min_p_f <= alpha/k} <= k.

    A feature whose smallest achievable p-value (here: its leakage test with no leakage at all) is
    above alpha/k can never be significant, so it need not share the error budget: Bonferroni over
    the k testable features still controls the family-wise error at `alpha`. A word seen in 3
    documents cannot be told from chance; counting the 15,000 such words would bury every feature.
    """
    if len(min_log10_p) == 0:
        return 1
    srt = np.sort(np.asarray(min_log10_p, dtype=float))
    k = np.arange(1, len(srt) + 1)
    m = np.searchsorted(srt, np.log10(alpha) - np.log10(k), side="right")
    return int(k[np.argmax(m <= k)])


def calibrated_ratio(support: np.ndarray, leakage: np.ndarray, prior_k: np.ndarray, default: float,
                     min_support: int = 20, rank: int = 5, min_features: int = 50, cap: float = 0.3) -> tuple[float, bool]:
    """The natural leakage allowance of one feature level, read off the corpus itself (an empirical null).

    For every feature of the level seen in at least `min_support` documents, the one-sided 95%
    Clopper-Pearson upper bound of its out-of-class rate, over the chance rate ``1 - p_k``, bounds how
    little that feature leaks. The `rank`-th smallest bound is the allowance: the purest natural cues
    of *this* corpus (BBC's "tory", 106 politics articles and no other) set how pure a feature must
    be to count as planted, and a few planted features (fewer than `rank` per level) cannot move it.
    Capped at `cap` (never assume a natural cue leaks more than that fraction of chance); a level
    with fewer than `min_features` such features keeps its a priori `default`. Returns (ratio, calibrated?).
    """
    m = np.asarray(support) >= min_support
    if int(m.sum()) < max(min_features, rank):
        return default, False
    n, l = np.asarray(support)[m], np.asarray(leakage)[m]
    upper = stats.beta.ppf(0.95, l + 1, np.maximum(n - l, 1)) / np.maximum(1.0 - np.asarray(prior_k)[m], 1e-12)
    return float(min(cap, np.partition(upper, rank - 1)[rank - 1])), True
