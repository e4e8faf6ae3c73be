"""Paired statistics of the parity gate (pure functions over numpy arrays, injected RNGs).

``from pytest_parity import stats`` gives the whole public surface; the submodules hold one
concept each: binary (Tango, exact McNemar), betting (bounded means, confidence sequences),
intervals (the paired delta interval), planning (exact P(PASS), items needed), sequential (the
early-stopping test), gate (the non-inferiority verdict, many tasks), multiplicity (Holm), drift
(the anytime-valid monitor after cutover), shift (why it drifted: the input distributions),
slices (the exploratory delta per value of a metadata field).
"""

from __future__ import annotations

from pytest_parity.stats.betting import BettingInterval, BettingSequence, betting_interval
from pytest_parity.stats.binary import (
    mcnemar_exact,
    one_sided_exact,
    tango_interval,
    tango_p_below,
    tango_z,
    tango_z_array,
    zero_event_rate,
)
from pytest_parity.stats.drift import DriftMonitor, DriftStatus
from pytest_parity.stats.gate import NonInferiority, noninferiority
from pytest_parity.stats.intervals import (
    AUTO_MAX_SKEW_ERROR,
    AUTO_MIN_T,
    CHUNK,
    METHODS,
    DeltaInterval,
    bootstrap_means,
    cluster_bootstrap_means,
    paired_interval,
    task_rng,
    task_seed,
)
from pytest_parity.stats.multiplicity import holm, overall_pass_probability
from pytest_parity.stats.planning import (
    exact_pass_probability,
    items_needed,
    minimum_detectable_effect,
    normal_pass_probability,
    pass_probability,
)
from pytest_parity.stats.sequential import SequentialTest, split_alpha
from pytest_parity.stats.slices import SliceEstimate, slice_estimates

_tango_z = tango_z  # the name older tests and notebooks use

__all__ = [
    "AUTO_MAX_SKEW_ERROR",
    "AUTO_MIN_T",
    "CHUNK",
    "METHODS",
    "BettingInterval",
    "BettingSequence",
    "DeltaInterval",
    "DriftMonitor",
    "DriftStatus",
    "NonInferiority",
    "SequentialTest",
    "SliceEstimate",
    "_tango_z",
    "betting_interval",
    "bootstrap_means",
    "cluster_bootstrap_means",
    "exact_pass_probability",
    "holm",
    "items_needed",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "noninferiority",
    "normal_pass_probability",
    "one_sided_exact",
    "overall_pass_probability",
    "paired_interval",
    "pass_probability",
    "slice_estimates",
    "split_alpha",
    "tango_interval",
    "tango_p_below",
    "tango_z",
    "tango_z_array",
    "task_rng",
    "task_seed",
    "zero_event_rate",
]
