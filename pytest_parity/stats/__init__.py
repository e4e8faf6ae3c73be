"""Paired statistics of the parity gate (pure functions over numpy arrays, injected RNGs).

``from pytest_parity import stats`` gives the whole public surface; the submodules hold one
concept each.
"""

from __future__ import annotations

from pytest_parity.stats.intervals import (
    CHUNK,
    METHODS,
    DeltaInterval,
    NonInferiority,
    Overall,
    _tango_z,
    bootstrap_means,
    cluster_bootstrap_means,
    holm,
    items_needed,
    mcnemar_exact,
    minimum_detectable_effect,
    noninferiority,
    one_sided_exact,
    overall_pass_probability,
    overall_verdict,
    paired_interval,
    pass_probability,
    tango_interval,
    task_rng,
    task_seed,
)

__all__ = [
    "CHUNK",
    "METHODS",
    "DeltaInterval",
    "NonInferiority",
    "Overall",
    "_tango_z",
    "bootstrap_means",
    "cluster_bootstrap_means",
    "holm",
    "items_needed",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "noninferiority",
    "one_sided_exact",
    "overall_pass_probability",
    "overall_verdict",
    "paired_interval",
    "pass_probability",
    "tango_interval",
    "task_rng",
    "task_seed",
]
