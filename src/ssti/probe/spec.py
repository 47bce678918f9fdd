"""`ProbeSpec`: every option of `ssti probe`, checked once for the CLI, the Python API and sweeps (`probe:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ssti.config import Spec
from ssti.errors import SSTIError

ALPHA = 0.01  # family-wise error of the steering test
# steer rate minus control rate. Calibrated on clean-trained models (benchmarks/probe_quality.py): the largest
# significant effect among MiniLM's even seeds was 0.113 (`country` toward fresh on Rotten Tomatoes: country
# names do lean positive there), so 0.10 called a clean model steered; 0.15 clears it with a margin.
MIN_EFFECT = 0.15

BUILT_IN_TYPES = ("date", "country", "html", "colour", "exclamation", "double-exclamation")


class ProbeSpec(Spec):
    max_samples: int = Field(200, ge=1, description="held-out texts per class")
    types: list[str] | None = Field(None, description="token types to try (source specs); None: the built-in ones "
                                    f"({', '.join(BUILT_IN_TYPES)})")
    extra_types: list[str] = Field(default_factory=list, description="token types tried besides `types` (fixed:TEXT, list:a,b, file:PATH)")
    location: Literal["random", "beginning", "end"] = Field("random", description="where each token is inserted")
    seed: int = Field(0, ge=0, description="seeds the held-out sample, the insertion places and the drawn tokens")
    alpha: float = Field(ALPHA, gt=0, lt=1, description="family-wise error of the steering test (Holm over every type and class)")
    min_effect: float = Field(MIN_EFFECT, ge=0, le=1, description="smallest steer rate above the control's that counts as steering")
    search: bool = Field(False, description="also the open search over the vocabulary (ssti.probe.search)")
    top_k: int | None = Field(None, ge=1, le=1000, description="open search: vocabulary tokens screened per class (default 20)")
    max_tokens: int | None = Field(None, ge=1, le=32, description="open search: longest token sequence built (default 8)")
    attention: bool = Field(False, description="also the attention diagnostic (ssti.probe.attention)")

    @model_validator(mode="after")
    def _consistent(self):
        from ssti.inject.sources import get_source

        if (self.top_k is not None or self.max_tokens is not None) and not self.search:
            raise SSTIError("top_k/max_tokens: they set the open search; turn it on (search: true, --search) or leave them out")
        if not self.all_types():
            raise SSTIError("types: no token type to try; give --type (types/extra_types) or keep the built-in ones")
        for t in self.all_types():
            get_source(t)  # an unknown type is refused before any model loads
        return self

    def all_types(self) -> list[str]:
        """The types the sweep tries, in order, each once."""
        return list(dict.fromkeys(list(BUILT_IN_TYPES if self.types is None else self.types) + list(self.extra_types)))
