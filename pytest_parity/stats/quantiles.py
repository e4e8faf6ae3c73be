"""Quantiles of latency and their intervals: one stack's (exact) and the paired change (bootstrap).

A latency gate compares tails (p99), where a mean says little and a normal approximation says
nothing. Two intervals:

- :func:`quantile_interval`: one sample's q-quantile, distribution-free. The number of
  observations below the true quantile is Binomial(n, q), so the order statistics
  ``x_(l) <= x_(u)`` cover it with probability ``P(l <= B < u)``; the narrowest pair around
  ``n * q`` with at least 1 - 2 alpha coverage is exact at every n (no resampling), and
  unbounded (None) when n is too small for that tail (p99 needs ~300 items for a 90% interval
  with an upper end).
- :func:`paired_quantile_change`: the relative change of a quantile between two stacks that
  answered the same requests, ``q(new) / q(old) - 1``, with a paired percentile bootstrap (the
  same resampled requests for both stacks, so what made one request slow for both cancels),
  resampled in chunks to bound memory.

Pure functions over numpy arrays with an injected generator; no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["QuantileChange", "paired_quantile_change", "quantile_interval"]

CHUNK = 256  # bootstrap resamples per chunk: CHUNK x n floats in memory at once


def quantile_interval(
    x: np.ndarray, q: float, alpha: float = 0.05
) -> tuple[float, float | None, float | None]:
    """(estimate, lower, upper) of the q-quantile of ``x`` with two-sided coverage at least
    1 - 2 alpha; an end is None when n is too small for an order statistic to bound it."""
    from pytest_parity.stats.distributions import binom_cdf

    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    if n == 0:
        raise ValueError("no observations")
    est = float(np.quantile(x, q))
    # P(B < k) for k = 0..n+1 (B ~ Binomial(n, q)): x_(k) (1-based) is above the quantile
    # exactly when fewer than k observations are below it.
    cdf = np.concatenate(([0.0], binom_cdf(np.arange(0, n + 1), n, q)))  # cdf[k] = P(B < k)
    lo_tail = cdf  # P(quantile < x_(l)) = P(B < l)
    hi_tail = 1.0 - cdf  # P(quantile > x_(u)) = P(B >= u)
    # The largest l with P(B < l) <= alpha, the smallest u with P(B >= u) <= alpha.
    ls = np.nonzero(lo_tail[1 : n + 1] <= alpha)[0]
    us = np.nonzero(hi_tail[1 : n + 1] <= alpha)[0]
    lower = float(x[ls[-1]]) if len(ls) else None
    upper = float(x[us[0]]) if len(us) else None
    return est, lower, upper


@dataclass(frozen=True)
class QuantileChange:
    """The q-quantile of both stacks over the same requests and its relative change."""

    q: float
    n: int
    old: float
    new: float
    change: float  # new / old - 1 (0.10: 10% slower)
    lower: float  # bootstrap interval of the change, two-sided 1 - 2 alpha
    upper: float
    old_interval: tuple[float | None, float | None]  # exact interval of each stack's quantile
    new_interval: tuple[float | None, float | None]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["old_interval"] = list(self.old_interval)
        d["new_interval"] = list(self.new_interval)
        return d


def _ratio(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(old > 0, new / np.where(old > 0, old, 1.0) - 1.0, 0.0)
    return np.where((old <= 0) & (new > 0), np.inf, out)


def paired_quantile_change(
    old: np.ndarray,
    new: np.ndarray,
    q: float,
    rng: np.random.Generator,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
) -> QuantileChange:
    """The relative change of the q-quantile from ``old`` to ``new`` (paired by position) with a
    paired percentile bootstrap interval (1 - 2 alpha, two-sided)."""
    old = np.asarray(old, dtype=float)
    new = np.asarray(new, dtype=float)
    if old.shape != new.shape or old.ndim != 1:
        raise ValueError("old and new must be paired 1-d arrays of the same length")
    n = len(old)
    if n == 0:
        raise ValueError("no pairs")
    q_old, q_new = float(np.quantile(old, q)), float(np.quantile(new, q))
    change = float(_ratio(np.array([q_new]), np.array([q_old]))[0])
    boots = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        k = min(CHUNK, resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        bo = np.quantile(old[idx], q, axis=1)
        bn = np.quantile(new[idx], q, axis=1)
        boots[start : start + k] = _ratio(bn, bo)
    lower, upper = (float(v) for v in np.quantile(boots, [alpha, 1.0 - alpha]))
    _, ol, ou = quantile_interval(old, q, alpha)
    _, nl, nu = quantile_interval(new, q, alpha)
    return QuantileChange(q, n, q_old, q_new, change, lower, upper, (ol, ou), (nl, nu))
