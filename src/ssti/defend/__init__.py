"""Dataset defences against planted spurious tokens, and what each removes and damages.

    from ssti.config import DefenceSpec
    from ssti.defend import defend_dataset, write_defended
    result = defend_dataset("runs/rt-date", DefenceSpec(name="scan-strip"))
    write_defended(result, "runs/rt-date-stripped")

Defences (`ssti.defend.registry`): scan-strip, scan-drop, onion, paraphrase, grammar.
"""

from ssti.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DEFENCES": "registry", "DefenceResult": "run", "defend_dataset": "run", "write_defended": "run",
    "measure_defence": "measure",
})
