"""Imports every module that defines `ssti` CLI commands, so they register with the app."""

import ssti.data.cli  # noqa: F401  (ssti datasets)
import ssti.inject.cli  # noqa: F401  (ssti inject, ssti show)
import ssti.scan.cli  # noqa: F401  (ssti scan)
import ssti.models.cli  # noqa: F401  (ssti models)
import ssti.run_cli  # noqa: F401  (ssti train, eval, run, demo)
import ssti.sweep.cli  # noqa: F401  (ssti sweep, ssti results)
import ssti.report.cli  # noqa: F401  (ssti report)
