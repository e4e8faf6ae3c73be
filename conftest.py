"""Project-wide test configuration: pytester runs the plugin as a user would.

In-process pytester runs restore ``sys.modules`` after each run. Modules the plugin imports
lazily would then be imported a second time by a later test: numpy and pyarrow refuse that, and
lm-eval's classes would no longer be the ones a cached subclass derives from. So everything the
plugin loads lazily is loaded once, up front, for the whole test session.
"""

from __future__ import annotations

import datasets  # noqa: F401
import lm_eval.api.model
import lm_eval.evaluator
import lm_eval.models.openai_completions
import lm_eval.tasks  # noqa: F401
import numpy  # noqa: F401
import requests  # noqa: F401
import scipy.stats  # noqa: F401
import yaml  # noqa: F401

import pytest_parity.sources.lmeval.bridge
import pytest_parity.sources.lmeval.models  # noqa: F401

collect_ignore = ["example_suite/live/models"]
