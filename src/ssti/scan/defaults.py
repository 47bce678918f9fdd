"""The scanner's defaults, importable without numpy or scipy (the CLI reads them at start-up)."""

DEFAULT_THRESHOLD = 0.05
DEFAULT_TOKENIZER = "smollm2-135m"
from ssti.config import SCAN_LEVELS as ALL_LEVELS  # noqa: E402  (defined with the configs that name them)
