"""Many tasks at once: Holm's step-down adjustment and the chance an all-equal migration passes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m, dtype=np.float64)
    out[order] = stepped
    return [float(x) for x in out]


def overall_pass_probability(powers: Sequence[float]) -> float:
    """Chance an all-equal migration passes every task: the per-task powers multiply."""
    return math.prod(float(x) for x in powers)
