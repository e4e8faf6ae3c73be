"""Planning numbers of the non-inferiority gate: P(PASS), items needed, minimum detectable effect.

For binary scores they are exact: the paired 2x2 table is trinomial, (b, c, rest) with
probabilities ((psi - delta) / 2, (psi + delta) / 2, 1 - psi), and the gate passes exactly when
Tango's (1 - 2 alpha) interval has its lower bound above -tolerance, i.e. when Tango's score
statistic at -tolerance exceeds z_{1-alpha}. For each number of discordant pairs m = b + c the
passing b form {0, ..., k_m} (a larger b only lowers the bound), so

    P(PASS) = sum_m Bin(m; n, psi) * Bin(b <= k_m; m, (psi - delta) / (2 psi)),

summed over every m of probability above 1e-14 with the k_m found by a vectorised bisection: a few
milliseconds at n = 100,000. This matters where discordant pairs are few: n = 200 at psi .5%
passes an equal candidate with probability .634, where the normal approximation claims .917, and
20 equal tasks of n = 500 at psi 1% pass together with probability .065, not .296.

Continuous scores (``binary=False``) use the normal approximation on the second moment
m2 = E[d^2] of the item differences: sqrt(m2 - delta^2) with z_alpha (the spread the gate
estimates) and sqrt(m2 - tolerance^2) with z_power, which reproduces the reference notes'
items-needed table exactly (``exact=False`` gives that table for binary scores too).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from pytest_parity.stats.binary import tango_z_array

_NORMAL = NormalDist()
_TAIL = 1e-14  # binomial mass left out of the exact sums, on each side
_MAX_N = 100_000_000


def _z(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def _check(flip_rate: float, delta: float, where: str) -> None:
    if not 0.0 <= flip_rate <= 1.0 or abs(delta) > flip_rate + 1e-12:
        raise ValueError(
            f"{where}: a flip rate of {flip_rate!r} cannot carry a true delta of {delta!r} "
            "(hint: binary scores need |delta| <= flip rate <= 1)"
        )


@lru_cache(maxsize=8192)  # a pure function of its numbers; simulations and searches repeat them
def exact_pass_probability(
    n: int, flip_rate: float, tolerance: float, alpha: float = 0.05, true_delta: float = 0.0
) -> float:
    """P(PASS) of the binary Tango gate, summed exactly over the (b, c) outcomes of n items."""
    from pytest_parity.stats.distributions import binom_cdf, binom_isf, binom_pmf, binom_ppf

    _check(flip_rate, true_delta, "pass_probability")
    psi = float(flip_rate)
    z = _z(1 - alpha)
    if psi == 0.0:
        return 1.0 if float(tango_z_array(-tolerance, 0, 0, n)) > z else 0.0
    lo = binom_ppf(_TAIL, n, psi) if psi < 1.0 else n
    hi = binom_isf(_TAIL, n, psi) if psi < 1.0 else n
    m = np.arange(max(lo - 1, 0), min(hi + 1, n) + 1)
    # Largest passing b for each m by bisection, all m at once: k in [-1, m], -1 = none passes.
    k_lo = np.full(m.size, -1, dtype=np.int64)
    k_hi = m.copy()
    while np.any(k_lo < k_hi):
        mid = (k_lo + k_hi + 1) // 2
        ok = tango_z_array(-tolerance, mid, m - mid, n) > z
        k_lo = np.where(ok, mid, k_lo)
        k_hi = np.where(ok, k_hi, mid - 1)
    share_b = min(max((psi - true_delta) / (2 * psi), 0.0), 1.0)
    total = binom_pmf(m, n, psi) @ binom_cdf(k_lo, m, share_b)
    return float(min(max(total, 0.0), 1.0))


def normal_pass_probability(
    n: int, flip_rate: float, tolerance: float, alpha: float = 0.05, true_delta: float = 0.0
) -> float:
    """P(PASS) by the normal approximation on m2 = E[d^2] (see the module docstring)."""
    sd0 = math.sqrt(max(flip_rate - tolerance * tolerance, 0.0))
    lead = (true_delta + tolerance) * math.sqrt(n)
    lead -= _z(1 - alpha) * math.sqrt(max(flip_rate - true_delta * true_delta, 0.0))
    if sd0 == 0.0:
        # No spread at all: the normal model has no answer; the sign of the lead is its limit.
        return 1.0 if lead > 0 else 0.0
    return _NORMAL.cdf(lead / sd0)


def pass_probability(
    n: int,
    flip_rate: float,
    tolerance: float,
    alpha: float = 0.05,
    true_delta: float = 0.0,
    *,
    binary: bool = True,
    exact: bool = True,
) -> float:
    """Chance that n items PASS the gate when the true delta is ``true_delta``.

    ``flip_rate`` is psi for binary scores and E[d^2] in general. Binary scores: exact over the
    2x2 table unless ``exact=False``; continuous scores: the normal approximation.
    """
    if binary and exact:
        return exact_pass_probability(n, flip_rate, tolerance, alpha, true_delta)
    return normal_pass_probability(n, flip_rate, tolerance, alpha, true_delta)


def _normal_items_needed(
    flip_rate: float, tolerance: float, alpha: float, power: float, delta: float
) -> int:
    margin = delta + tolerance
    spread = _z(1 - alpha) * math.sqrt(max(flip_rate - delta * delta, 0.0))
    spread += _z(power) * math.sqrt(max(flip_rate - tolerance * tolerance, 0.0))
    return max(1, math.ceil(spread * spread / (margin * margin) - 1e-9))


def items_needed(
    flip_rate: float,
    tolerance: float,
    alpha: float = 0.05,
    power: float = 0.8,
    delta: float = 0.0,
    *,
    binary: bool = True,
    exact: bool = True,
) -> int:
    """Total items for the gate to PASS with ``power`` when the true delta is ``delta``.

    Binary and exact: the smallest n whose exact P(PASS) reaches ``power``, found by doubling and
    bisection (the exact curve saw-tooths with the discreteness of b and c by well under a point
    of power near the answer). Otherwise the normal formula of the reference notes.
    """
    margin = delta + tolerance
    if margin <= 0.0:
        raise ValueError(
            f"items_needed: a true delta of {delta:+.4f} is at or below -tolerance "
            f"({-tolerance:+.4f}); no number of items makes such a candidate pass"
        )
    guess = _normal_items_needed(flip_rate, tolerance, alpha, power, delta)
    if not (binary and exact):
        return guess

    def enough(n: int) -> bool:
        return exact_pass_probability(n, flip_rate, tolerance, alpha, delta) >= power

    hi = max(guess, 2)
    while not enough(hi):
        hi *= 2
        if hi > _MAX_N:
            raise ValueError(f"items_needed: more than {_MAX_N:,} items would be needed")
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo


def minimum_detectable_effect(
    n: int,
    flip_rate: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    binary: bool = True,
    exact: bool = True,
) -> float:
    """Smallest tolerance at which n items PASS an equal candidate with ``power``.

    Also about the smallest regression the gate FAILs with that power. Binary and exact: bisection
    on the exact P(PASS), which rises with the tolerance; with no flips at all it is the Tango bound
    at b = c = 0, never 0. Otherwise the normal formula solved for D:
    D sqrt(n) - z_a sqrt(m2) = z_b sqrt(m2 - D^2), a quadratic in D.
    """
    if binary and exact:
        return _exact_mde(int(n), float(flip_rate), float(alpha), float(power))
    if flip_rate <= 0.0:
        return 0.0
    za, zb = _z(1 - alpha), _z(power)
    a = za * math.sqrt(flip_rate)
    qa, qb, qc = n + zb * zb, -2.0 * a * math.sqrt(n), a * a - zb * zb * flip_rate
    root = (-qb + math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))) / (2 * qa)
    return min(root, math.sqrt(flip_rate))


@lru_cache(maxsize=4096)
def _exact_mde(n: int, psi: float, alpha: float, power: float) -> float:
    """Bisection on the exact P(PASS), which rises with the tolerance, to 0.001% of the answer."""
    hi = 1.0 - 1e-9
    if exact_pass_probability(n, psi, hi, alpha) < power:
        return 1.0
    guess = minimum_detectable_effect(n, psi, alpha, power, exact=False) if psi > 0 else 0.0
    z2 = _z(1 - alpha) ** 2
    lo = 0.0
    hi = min(hi, max(2.0 * guess, 2.0 * z2 / (n + z2), 1e-6))
    if exact_pass_probability(n, psi, hi, alpha) < power:
        lo, hi = hi, 1.0 - 1e-9
    while hi - lo > 1e-5 * hi + 1e-9:
        mid = (lo + hi) / 2
        if exact_pass_probability(n, psi, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi
