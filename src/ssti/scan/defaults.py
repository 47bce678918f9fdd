"""The scanner's defaults, importable without numpy or scipy (the CLI reads them at start-up)."""

DEFAULT_THRESHOLD = 0.05
DEFAULT_TOKENIZER = "smollm2-135m"
ALL_LEVELS = ("word", "phrase", "subword", "shape", "pattern", "position")
