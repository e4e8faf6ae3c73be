"""Calibration and tone statistics (STATISTICS.md sections 7 and 8): pure numpy/scipy.

Confidence ``c_i`` in [0, 1] per answer, correctness ``y_i`` in [0, 1] (the task's score).

* Brier score: mean of ``(c_i - y_i)**2``; per item it is a sum, so its paired delta is a mean of
  per-item differences and takes the ordinary paired interval.
* AURC: area under the risk-coverage curve. Answers sorted by confidence, highest first; at
  coverage k/n the selective risk is the error rate of the k most confident answers; AURC is the
  mean of those n risks. Ties in confidence are averaged (the expected AURC over the orders a tie
  allows), so a constant confidence gives exactly the error rate. It depends on every item's
  rank, so its paired delta is bootstrapped: the same resampled items for both stacks.
* ECE: 15 equal-width bins, weighted mean of ``|accuracy - mean confidence|``. Reported, never
  gated: a perfectly calibrated system shows ECE of about ``1.17 / sqrt(n)`` by chance (.073 /
  .037 / .019 at n = 250 / 1,000 / 4,000).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "AurcDelta",
    "Tost",
    "aurc",
    "aurc_delta",
    "brier_items",
    "ece",
    "ece_noise_floor",
    "reliability",
    "tost_paired",
]

ECE_BINS = 15


def _arr(x: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(x, dtype=np.float64).ravel()


def brier_items(confidence: ArrayLike, correct: ArrayLike) -> NDArray[np.float64]:
    """Each item's Brier contribution ``(c - y)**2``; the Brier score is their mean."""
    c, y = _arr(confidence), _arr(correct)
    return (c - y) ** 2


def _aurc_sorted(c: NDArray[np.float64], e: NDArray[np.float64]) -> float:
    n = c.size
    order = np.argsort(-c, kind="stable")
    cs, es = c[order], e[order]
    # Ties: every order within a tie is equally likely; the expected risk curve is that of the
    # errors replaced by their mean over the tie.
    counts = np.unique(-cs, return_counts=True)[1]
    if counts.size < n:
        group = np.repeat(np.arange(counts.size), counts)
        means = np.bincount(group, weights=es) / counts
        es = means[group]
    risk = np.cumsum(es) / np.arange(1, n + 1)
    return float(risk.mean())


def aurc(confidence: ArrayLike, errors: ArrayLike) -> float:
    """Area under the risk-coverage curve (lower is better); ``errors`` = 1 - correctness."""
    c, e = _arr(confidence), _arr(errors)
    if c.size == 0:
        raise ValueError("aurc: no items")
    return _aurc_sorted(c, e)


@dataclass(frozen=True)
class AurcDelta:
    """Paired bootstrap of AURC(new) - AURC(old): positive is worse."""

    old: float
    new: float
    delta: float
    low: float  # percentile interval at ``confidence``
    high: float
    se: float
    confidence: float
    n: int
    n_boot: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aurc_delta(
    conf_old: ArrayLike,
    err_old: ArrayLike,
    conf_new: ArrayLike,
    err_new: ArrayLike,
    *,
    confidence: float = 0.90,
    rng: np.random.Generator | None = None,
    n_boot: int = 2000,
) -> AurcDelta:
    """AURC of both stacks and the paired percentile bootstrap of its delta (same items drawn
    for both stacks in each resample)."""
    co, eo, cn, en = _arr(conf_old), _arr(err_old), _arr(conf_new), _arr(err_new)
    n = co.size
    if n < 2 or not (eo.size == cn.size == en.size == n):
        raise ValueError("aurc_delta: needs at least 2 paired items on both stacks")
    gen = rng if rng is not None else np.random.default_rng(0)
    a_old, a_new = _aurc_sorted(co, eo), _aurc_sorted(cn, en)
    deltas = np.empty(n_boot)
    for b in range(n_boot):
        idx = gen.integers(0, n, n)
        deltas[b] = _aurc_sorted(cn[idx], en[idx]) - _aurc_sorted(co[idx], eo[idx])
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    return AurcDelta(
        a_old,
        a_new,
        a_new - a_old,
        float(low),
        float(high),
        float(deltas.std(ddof=1)),
        confidence,
        n,
        n_boot,
    )


def reliability(
    confidence: ArrayLike, correct: ArrayLike, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Equal-width bins of confidence: each non-empty bin's range, count, mean confidence and
    accuracy (the points of a reliability diagram)."""
    c, y = _arr(confidence), _arr(correct)
    idx = np.minimum((c * bins).astype(int), bins - 1)
    out: list[dict[str, float]] = []
    for b in range(bins):
        m = idx == b
        k = int(m.sum())
        if k:
            out.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "n": k,
                    "confidence": float(c[m].mean()),
                    "accuracy": float(y[m].mean()),
                }
            )
    return out


def ece(confidence: ArrayLike, correct: ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-width bins (weighted mean |accuracy - confidence|)."""
    c = _arr(confidence)
    if c.size == 0:
        raise ValueError("ece: no items")
    rows = reliability(c, correct, bins)
    return float(sum(r["n"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / c.size)


def ece_noise_floor(n: int) -> float:
    """Typical ECE of a perfectly calibrated system at n items (15 bins): 1.17 / sqrt(n)."""
    return 1.17 / math.sqrt(max(n, 1))


@dataclass(frozen=True)
class Tost:
    """Two one-sided t tests that the mean of paired differences lies within +-margin."""

    mean: float
    se: float
    n: int
    margin: float
    low: float  # (1 - 2 alpha) two-sided t interval: inside +-margin <=> TOST rejects at alpha
    high: float
    p_equivalence: float  # max of the two one-sided p-values (small: equivalent)
    p_outside: float  # one-sided p that the mean lies beyond the margin on its own side
    status: str  # PASS (equivalent) | FAIL (significantly outside) | INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tost_paired(d: ArrayLike, margin: float, alpha: float = 0.05) -> Tost:
    """Equivalence of mean(d) to 0 within +-margin (TOST, t distribution, n - 1 df).

    PASS when both one-sided tests reject (the 1 - 2 alpha interval lies inside the margin);
    FAIL when the interval lies wholly outside it (the mean is beyond the margin, one-sided test
    at alpha); INCONCLUSIVE otherwise.
    """
    from pytest_parity.stats.distributions import t_cdf, t_ppf, t_sf

    x = _arr(d)
    n = x.size
    if n < 2:
        raise ValueError("tost_paired: needs at least 2 paired items")
    if not margin > 0:
        raise ValueError(f"tost_paired: margin must be > 0, got {margin!r}")
    mean = float(x.mean())
    se = float(x.std(ddof=1)) / math.sqrt(n)
    dof = n - 1
    if se == 0.0:
        inside = abs(mean) < margin
        p_eq = 0.0 if inside else 1.0
        p_out = 1.0 if inside else 0.0
        low = high = mean
    else:
        p_lower = t_sf((mean + margin) / se, dof)  # H0: mean <= -margin
        p_upper = t_cdf((mean - margin) / se, dof)  # H0: mean >= +margin
        p_eq = max(p_lower, p_upper)
        p_out = float(
            t_cdf((mean + margin) / se, dof) if mean < 0 else t_sf((mean - margin) / se, dof)
        )
        q = t_ppf(1 - alpha, dof)
        low, high = mean - q * se, mean + q * se
    if -margin < low and high < margin:
        status = "PASS"
    elif high < -margin or low > margin:
        status = "FAIL"
    else:
        status = "INCONCLUSIVE"
    return Tost(mean, se, n, margin, low, high, p_eq, p_out, status)
