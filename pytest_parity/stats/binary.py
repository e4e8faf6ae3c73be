"""Paired binary outcomes: Tango's score interval and the exact binomial tests of the 2x2 table.

Convention: b counts items the baseline got right and the candidate wrong, c the reverse, so the
paired difference is delta = (c - b) / n. The score statistic is vectorised over (b, c) so that the
planning functions can sum over every outcome of the table exactly.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike, NDArray

_NORMAL = NormalDist()
_EDGE = 1.0 - 1e-12  # Tango's restricted MLE has no valid root at exactly delta = +-1


def tango_z_array(delta: float, b: ArrayLike, c: ArrayLike, n: int) -> NDArray[np.float64]:
    """Tango's score statistic at a hypothesised delta for arrays of counts (same shape).

    p_b takes its restricted MLE, the root of 2n p^2 + B p + C = 0 (Tango 1998, old/new roles as
    above). Z falls as delta rises, so the interval's bounds are where Z = +-z.
    """
    bb = np.asarray(b, dtype=np.float64)
    cc = np.asarray(c, dtype=np.float64)
    big_b = -(bb + cc) + (2 * n - cc + bb) * delta
    big_c = -bb * delta * (1.0 - delta)
    p_b = (np.sqrt(np.maximum(big_b * big_b - 8.0 * n * big_c, 0.0)) - big_b) / (4.0 * n)
    var = n * (2.0 * p_b + delta * (1.0 - delta))
    num = cc - bb - n * delta
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / np.sqrt(var)
    flat = var <= 0.0
    if np.any(flat):
        z = np.where(flat, np.where(num == 0.0, 0.0, np.copysign(np.inf, num)), z)
    return np.asarray(z, dtype=np.float64)


def tango_z(delta: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic for one table (see :func:`tango_z_array`)."""
    return float(tango_z_array(delta, b, c, n))


def tango_interval(b: int, c: int, n: int, confidence: float = 0.90) -> tuple[float, float]:
    """Tango's score interval for the paired difference (c - b) / n; sound with few discordants.

    Well defined at b = c = 0 too: n = 50 gives +-5.1 points at 90%, about z^2 / (n + z^2) either
    side, so identical outputs on few items are never read as certainty.
    """
    from pytest_parity.stats.distributions import bisect_root

    if min(b, c) < 0 or b + c > n:
        raise ValueError(f"tango_interval: need 0 <= b, c and b + c <= n, got {b}, {c}, {n}")
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    est = (c - b) / n

    def bound(sign: float) -> float:
        # sign +1: lower bound, where Z = +z; sign -1: upper bound, where Z = -z. Z falls as delta
        # rises, so each bound is the single crossing between the estimate and the edge.
        edge = -sign * _EDGE
        if sign * est <= -_EDGE or sign * tango_z(edge, b, c, n) < z:
            return -sign
        inner = min(max(est, -_EDGE), _EDGE)
        lo, hi = min(edge, inner), max(edge, inner)
        return bisect_root(lambda x: sign * tango_z(x, b, c, n) - z, lo, hi, xtol=1e-12)

    return bound(1.0), bound(-1.0)


def tango_p_below(margin: float, b: int, c: int, n: int) -> float:
    """One-sided score-test p-value for H0: delta >= margin against delta < margin."""
    return _NORMAL.cdf(max(min(tango_z(margin, b, c, n), 40.0), -40.0))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomtest(b, b + c, 0.5). Not significant is not parity."""
    if b + c == 0:
        return 1.0
    from pytest_parity.stats.distributions import binom_cdf

    return min(1.0, 2.0 * float(binom_cdf(min(b, c), b + c, 0.5)))


def one_sided_exact(k_more: int, k_less: int) -> float:
    """P(X >= k_more) for X ~ Bin(k_more + k_less, 1/2); 1.0 when both are zero."""
    if k_more + k_less == 0:
        return 1.0
    from pytest_parity.stats.distributions import binom_sf

    return float(binom_sf(k_more - 1, k_more + k_less, 0.5))


def zero_event_rate(n: int, tail: float) -> float:
    """Upper (1 - tail) bound on a rate when none of n items showed the event: 1 - tail^(1/n).

    About 3/n at tail .05 (the rule of three).
    """
    return -math.expm1(math.log(tail) / n)
