"""ssti: stress-test and audit LoRA fine-tuning against Seamless Spurious Token Injection (SSTI).

The pipeline, one module per stage: data -> inject -> [scan | defend] -> train -> evaluate -> sweep -> report.
"""

__version__ = "0.1.0"

from ssti.errors import SSTIError  # noqa: E402

__all__ = ["SSTIError", "__version__"]
