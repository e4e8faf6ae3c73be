"""Project-wide test configuration: pytester runs the plugin as a user would."""

from __future__ import annotations

# In-process pytester runs restore sys.modules after each run; numpy and scipy refuse to be
# imported twice in one process, so the modules the plugin imports lazily are loaded up front.
import datasets  # noqa: F401  (lm-eval's data layer: pyarrow registers types once per process)
import numpy  # noqa: F401
import requests  # noqa: F401
import scipy.stats  # noqa: F401
import yaml  # noqa: F401

collect_ignore = ["example_suite/live/models"]
