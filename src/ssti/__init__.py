"""ssti: stress-test and audit LoRA fine-tuning against Seamless Spurious Token Injection (SSTI).

The pipeline, one module per stage: data -> inject -> [scan | defend] -> train -> evaluate -> sweep -> report.
"""

from ssti.version import __version__

from ssti.errors import SSTIError  # noqa: E402


def load_run(run_dir):
    """The trained classifier of a run folder (backbone + saved adapter + head), ready to predict.

    `ssti.evaluate.predict(clf, texts)` gives its predicted classes.
    """
    from ssti.models.build import load_run as _load_run

    return _load_run(run_dir)


__all__ = ["SSTIError", "__version__", "load_run"]
