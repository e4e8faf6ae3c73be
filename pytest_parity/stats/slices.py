"""Exploratory slices of one task: the paired delta within each value of a categorical field.

The same interval and non-inferiority rule as the task's own delta (:func:`paired_interval`,
:func:`~pytest_parity.stats.gate.decide`), once per slice. Slices are exploratory: with K
slices, one of them looks worse by chance far more often than alpha, so no slice is a verdict;
Holm's adjustment of the slices' one-sided p-values (delta < -tolerance, ``p_fail``) across
every slice looked at says how surprising the worst one is (the caller adjusts: it knows which
slices were looked at).

Pure: arrays in, dataclasses out; any resampling draws from an injected
``np.random.Generator``, the slices in their shown order. The bootstrap shown beside the task's
own interval is left out per slice (``cross_check=False``): it is the costly part.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pytest_parity.stats.gate import decide
from pytest_parity.stats.intervals import DeltaInterval, paired_interval

__all__ = ["SliceEstimate", "slice_estimates"]


@dataclass(frozen=True)
class SliceEstimate:
    """One slice: its items, both stacks' mean scores, the paired interval, and its status
    against the tolerance (PASS / FAIL / INCONCLUSIVE, exploratory) with the one-sided p of
    delta < -tolerance."""

    value: str
    n: int
    baseline: float
    candidate: float
    interval: DeltaInterval
    status: str
    warn: bool  # PASS whose upper bound is below 0: a real drop inside the tolerance
    p_fail: float

    def to_dict(self) -> dict[str, Any]:
        iv = self.interval
        return {
            "value": self.value,
            "n": self.n,
            "baseline_score": self.baseline,
            "candidate_score": self.candidate,
            "delta": iv.delta,
            "ci_low": iv.low,
            "ci_high": iv.high,
            "confidence": iv.confidence,
            "method": iv.method,
            "b": iv.b,
            "c": iv.c,
            "flip_rate": iv.flip_rate,
            "status": self.status,
            "warn": self.warn,
            "p_fail": self.p_fail,
        }


def slice_estimates(
    labels: Sequence[str],
    old: ArrayLike,
    new: ArrayLike,
    *,
    tolerance: float,
    alpha: float,
    rng: np.random.Generator,
    clusters: Sequence[Hashable] | None = None,
    score_range: tuple[float, float] | None = None,
) -> list[SliceEstimate]:
    """Per distinct label, largest slice first (ties by label): the paired delta's two-sided
    (1 - 2 alpha) interval and its non-inferiority status against ``tolerance``.

    ``clusters`` (one key per item) make a slice's interval cluster-robust when the slice holds
    at least two clusters; a slice inside one cluster gets the item-level interval.
    """
    o = np.asarray(old, dtype=np.float64).ravel()
    w = np.asarray(new, dtype=np.float64).ravel()
    if not (o.size == w.size == len(labels)) or (clusters is not None and len(clusters) != o.size):
        raise ValueError(
            f"slice_estimates: {len(labels)} labels for {o.size} old and {w.size} new scores"
            " (hint: one label per paired item)"
        )
    members: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(str(label), []).append(i)
    order = sorted(members, key=lambda v: (-len(members[v]), v))
    out: list[SliceEstimate] = []
    for value in order:
        idx = np.asarray(members[value], dtype=np.intp)
        keys = None
        if clusters is not None:
            keys = [clusters[int(i)] for i in idx]
            keys = keys if len(set(keys)) >= 2 else None
        iv = paired_interval(
            o[idx],
            w[idx],
            confidence=1 - 2 * alpha,
            rng=rng,
            clusters=keys,
            score_range=score_range,
            cross_check=False,  # the bootstrap beside the gate's interval: not shown per slice
        )
        status, warn, p_fail = decide(iv, tolerance)
        a, b = float(o[idx].mean()), float(w[idx].mean())
        out.append(SliceEstimate(value, int(idx.size), a, b, iv, status, warn, p_fail))
    return out
