"""The type sweep: does inserting one token of a type steer a trained classifier toward a class?

Black-box, predictions only. For held-out labelled texts (up to a number per class, drawn with a seeded
generator by `held_out`) one insertion place per text is drawn once (`ssti.inject.insertion_positions`); every token
type is inserted at exactly those places, and so is a control of ordinary frequent words
(`CONTROL_WORDS`). All sets go through the model in one pass (each distinct text predicted once).

Per type T and class k, over the texts whose true class is not k and that the model does not already
call k (the ones that can be steered there):
- steer rate = share predicted k once T is inserted, with a Wilson 95% interval;
- control rate = the same for the control words; effect = steer rate minus control rate;
- p = one-sided exact McNemar test on the paired outcomes (T flips and the control does not, against
  the reverse), Holm-corrected over every (type, class) pair tested.
A (type, class) is called steering when its corrected p <= `alpha` and its effect >= `min_effect`.
This is the test-time half of the paper's protocol (PAPER.md section 3: the same token type injected
into held-out samples), made into an audit in the way trigger-search work (e.g. STRIP-style input
perturbation) asks "which inserted tokens change the decision" for a model whose training data is unknown.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ssti.errors import SSTIError
from ssti.inject import get_source, insert_at_words, insertion_positions
from ssti.models.build import Classifier
from ssti.models.inference import predict_sets

from ssti.probe.spec import ALPHA, BUILT_IN_TYPES, MIN_EFFECT  # noqa: E402,F401  (re-exported)
# ordinary frequent English words: inserting one at a random place is the "any token" baseline
CONTROL_WORDS = ("the", "and", "of", "to", "in", "is", "it", "that", "this", "with", "for", "as", "on", "was", "but", "so")
EXAMPLES = 3


@dataclass
class SteerTest:
    """Whether inserting something moves held-out texts toward class `cls`, against a control inserted at
    the same places (the statistics of the module docstring; `steer_test` computes them)."""

    cls: str = ""
    eligible: int = 0  # held-out texts of other classes not already predicted as cls
    steered: int = 0  # of those, predicted cls with the insertion
    rate: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 0.0
    control_rate: float = 0.0
    effect: float = 0.0  # rate minus control_rate
    p_value: float = 1.0  # one-sided exact McNemar, insertion against control
    p_adjusted: float = 1.0  # Holm over every test of the search
    steering: bool = False


def steer_test(cls: str, hit: np.ndarray, control: np.ndarray, eligible: np.ndarray) -> dict[str, Any]:
    """The fields of a `SteerTest` from boolean arrays over held-out texts: `hit` (moved to cls with the
    insertion), `control` (moved with the control) and `eligible` (other class, not already cls)."""
    hit, control = hit & eligible, control & eligible
    n, s = int(eligible.sum()), int(hit.sum())
    lo, hi = _wilson(s, n) if n else (0.0, 0.0)
    ctrl = float(control.sum() / max(n, 1))
    p = _mcnemar_greater(int((hit & ~control).sum()), int((~hit & control).sum()))
    return {"cls": cls, "eligible": n, "steered": s, "rate": s / max(n, 1), "ci_low": lo, "ci_high": hi, "control_rate": ctrl,
            "effect": s / max(n, 1) - ctrl, "p_value": p, "p_adjusted": p}


def judge(tests: Sequence[SteerTest], alpha: float, min_effect: float) -> None:
    """Holm-correct the tests' p-values together and mark the steering ones (corrected p <= alpha, effect >= min_effect)."""
    for t, p_adj in zip(tests, _holm([t.p_value for t in tests])):
        t.p_adjusted = p_adj
        t.steering = p_adj <= alpha and t.effect >= min_effect


@dataclass
class TypeFinding(SteerTest):
    """One (token type, class) test of the type sweep, with a few texts it moved."""

    type: str = ""
    examples: list[dict[str, str]] = field(default_factory=list)


@dataclass
class TypeSweep:
    """The whole type sweep: every finding (most effective first), the settings and the verdict."""

    findings: list[TypeFinding]
    class_names: list[str]
    per_class: dict[str, int]
    clean_accuracy: float
    location: str
    seed: int
    alpha: float
    min_effect: float
    types: list[str]
    texts_predicted: int
    seconds: float
    texts_cut: int = 0  # held-out texts cut to what the model reads (with room for the insertion)
    insertions_cut: dict[str, int] = field(default_factory=dict)  # per type: texts whose inserted token max_length cuts (in part)
    untested: list[str] = field(default_factory=list)  # classes no held-out text could be steered toward (all already predicted so)

    @property
    def steering(self) -> list[TypeFinding]:
        return [f for f in self.findings if f.steering]

    @property
    def verdict(self) -> str:
        return "steered" if self.steering else "not steered"

    def summary(self) -> str:
        """'steered by date toward fresh (rate 0.93 [0.89, 0.96], effect +0.91)' or 'no steering found among N candidates'."""
        if not self.steering:
            tested = len(self.class_names) - len(self.untested)
            untested = (f" (not tested toward {', '.join(self.untested)}: the model already predicts it for every held-out text "
                        f"of the other classes)") if self.untested else ""
            return f"no steering found among {len(self.types)} token types x {tested} classes{untested}"
        return "; ".join(f"steered by {f.type} toward {f.cls} (rate {f.rate:.2f} [{f.ci_low:.2f}, {f.ci_high:.2f}], effect {f.effect:+.2f})"
                         for f in self.steering)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "summary": self.summary(), **{k: v for k, v in asdict(self).items() if k != "findings"},
                "findings": [asdict(f) for f in self.findings]}


def held_out(labels: Sequence[int], max_per_class: int, rng: np.random.Generator) -> list[int]:
    """Row indices: up to `max_per_class` rows of each class drawn with `rng`, in row order."""
    labels = np.asarray(labels)
    rows = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        rows.extend(rng.choice(members, size=min(max_per_class, len(members)), replace=False).tolist())
    return sorted(rows)


def type_sweep(clf: Classifier, texts: Sequence[str], labels: Sequence[int], types: Sequence[str] = BUILT_IN_TYPES,
               location: str = "random", seed: int = 0, alpha: float = ALPHA, min_effect: float = MIN_EFFECT,
               batch_size: int = 32) -> TypeSweep:
    """Run the type sweep of the module docstring on `clf` with labelled held-out `texts` (all of them: draw
    a per-class sample first with `held_out`, as `ssti.probe.probe` does).

    `types` are token-source specs (`ssti sources`: built-in names, `fixed:TEXT`, `list:a,b`, `file:PATH`).
    Raises SSTIError for fewer than two classes or an empty class among the held-out texts, and for an
    unknown token type.
    """
    started = time.time()
    labels = np.asarray(labels)
    present = np.unique(labels)
    if len(texts) == 0 or len(present) < 2:
        raise SSTIError(f"data: the held-out texts have {len(present)} class(es); the probe needs labelled texts of at least two classes")
    sources = {t: get_source(t) for t in types}
    texts = list(texts)
    positions = insertion_positions(texts, random.Random(f"{seed}:positions"), location)
    sets, records = {"clean": list(texts)}, {}
    control_rng = random.Random(f"{seed}:control")
    sets["control"], _ = insert_at_words(texts, [(control_rng.choice(CONTROL_WORDS),) for _ in texts], positions)
    for t, source in sources.items():
        rng = random.Random(f"{seed}:type:{t}")
        sets[t], records[t] = insert_at_words(texts, [source.draw(rng) for _ in texts], positions)
    preds = predict_sets(clf, sets, batch_size=batch_size)
    insertions_cut = {t: cut_insertions(clf, sets[t], records[t]) for t in sources}
    clean = preds["clean"]
    tests = []
    for t in sources:
        for k, name in enumerate(clf.class_names):
            eligible = (labels != k) & (clean != k)
            if not eligible.any():
                continue
            hit, ctrl = preds[t] == k, preds["control"] == k
            examples = [{"text": sets[t][i], "clean_prediction": clf.class_names[clean[i]], "prediction": name}
                        for i in np.flatnonzero(hit & ~ctrl & eligible)[:EXAMPLES]]
            tests.append(TypeFinding(**steer_test(name, hit, ctrl, eligible), type=t, examples=examples))
    judge(tests, alpha, min_effect)
    tests.sort(key=lambda f: (-f.effect, f.p_adjusted))
    per_class = {clf.class_names[k]: int((labels == k).sum()) for k in range(len(clf.class_names))}
    untested = [name for k, name in enumerate(clf.class_names) if not ((labels != k) & (clean != k)).any()]
    return TypeSweep(tests, list(clf.class_names), per_class, float((clean == labels).mean()), location, seed, alpha, min_effect,
                     list(types), sum(len(v) for v in sets.values()), round(time.time() - started, 2),
                     insertions_cut=insertions_cut, untested=untested)


def cut_insertions(clf: Classifier, texts: Sequence[str], records: Sequence[list[dict]]) -> int:
    """How many of `texts` have an inserted string (`records` from `insert_at_words`) that ends past what the model
    reads (`Classifier.kept_chars`, truncation to max_length): the model sees it in part or not at all. 0 when the
    tokenizer cannot tell."""
    kept = clf.kept_chars(list(texts))
    if kept is None:
        return 0
    return sum(any(r["end"] > k for r in recs) for recs, k in zip(records, kept))


def _wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _mcnemar_greater(b: int, c: int) -> float:
    """One-sided exact McNemar p-value that b (type flips, control does not) exceeds c (the reverse)."""
    from scipy.stats import binomtest

    return float(binomtest(b, b + c, 0.5, alternative="greater").pvalue) if b + c else 1.0


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error over all tests), in the input order."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
