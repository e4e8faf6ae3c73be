"""The non-inferiority verdict of one task and the verdict over many tasks.

PASS when the lower bound of the two-sided (1 - 2 alpha) interval is above -tolerance, FAIL when
its upper bound is below it, INCONCLUSIVE otherwise; reasons are sentences with numbers in points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from pytest_parity.stats.binary import tango_p_below, zero_event_rate
from pytest_parity.stats.intervals import DeltaInterval
from pytest_parity.stats.planning import (
    items_needed,
    minimum_detectable_effect,
    pass_probability,
)

_NORMAL = NormalDist()


@dataclass(frozen=True)
class NonInferiority:
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE"
    warn: bool  # PASS whose upper bound is below 0: a real regression inside the tolerance
    reasons: list[str]  # sentences with numbers in points (x100)
    items_needed: int | None  # total items that would settle an INCONCLUSIVE (true delta 0)
    mde: float  # minimum detectable effect at this n
    p_fail: float  # one-sided p-value for delta < -tolerance: the input to Holm across tasks
    power: float  # chance an equal candidate passes at this n and observed spread

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _calibrated_p(iv: DeltaInterval, tolerance: float) -> float:
    """p for delta < -tolerance from an interval alone: Phi(z (centre + tol) / half-width).

    Exactly the interval's one-sided level where its upper bound sits at -tolerance, so
    p < (1 - confidence) / 2 exactly when the interval lies below -tolerance (betting and
    zero-event bounds carry no standard error to build a test from).
    """
    half = (iv.high - iv.low) / 2
    centre = (iv.high + iv.low) / 2
    z = _NORMAL.inv_cdf(0.5 + iv.confidence / 2)
    if half <= 0.0:
        return 0.5  # cannot happen for the intervals paired_interval builds
    return _NORMAL.cdf(max(min(z * (centre + tolerance) / half, 40.0), -40.0))


def _p_fail(iv: DeltaInterval, tolerance: float) -> float:
    if iv.method == "tango" and iv.b is not None and iv.c is not None:
        return tango_p_below(-tolerance, iv.b, iv.c, iv.n)
    if iv.method in ("t", "cluster-t") and iv.se > 0.0:
        from pytest_parity.stats.distributions import t_cdf

        dof = (iv.clusters if iv.method == "cluster-t" and iv.clusters else iv.n) - 1
        return t_cdf((iv.delta + tolerance) / iv.se, max(dof, 1))
    if iv.method in ("bootstrap", "cluster-bootstrap") and iv.se > 0.0:
        return _NORMAL.cdf((iv.delta + tolerance) / iv.se)  # normal with the bootstrap SE
    return _calibrated_p(iv, tolerance)


def _status(low: float, high: float, tolerance: float) -> str:
    if low > -tolerance:
        return "PASS"
    return "FAIL" if high < -tolerance else "INCONCLUSIVE"


def _planning(
    iv: DeltaInterval, tolerance: float, alpha: float, power: float, status: str
) -> tuple[float, float, int | None, str]:
    """(mde, power at delta 0, items needed or None, how) for this interval's method."""
    n = iv.n
    if iv.method == "tango":
        # Exact over the 2x2 table at the observed flip rate.
        psi = iv.flip_rate
        mde = minimum_detectable_effect(n, psi, alpha, power)
        chance = pass_probability(n, psi, tolerance, alpha)
        need: int | None = None
        if status == "INCONCLUSIVE":  # the only verdict that reports it
            try:
                need = items_needed(psi, tolerance, alpha, power)
            except ValueError:  # beyond any golden set (over 100 million items)
                need = None
        return mde, chance, need, "exact"
    if iv.method == "zero-spread":
        # Under "nothing changes" one outcome is possible: the same constant again.
        span = (iv.score_high or 1.0) - (iv.score_low or 0.0)
        units = iv.clusters or n
        tail = (1.0 - iv.confidence) / 2
        mde = zero_event_rate(units, tail) * span
        chance = 1.0 if iv.low > -tolerance else 0.0
        # Units for the bound to fit inside the tolerance: span (1 - tail^(1/u)) < tolerance.
        share = min(tolerance / span, 1.0 - 1e-12)
        need_units = math.floor(math.log(tail) / math.log1p(-share)) + 1
        return mde, chance, math.ceil(need_units * n / units), "zero-event bound"
    m2 = n * iv.se * iv.se + iv.delta * iv.delta
    a_eff = alpha
    how = "normal approximation"
    if iv.method == "betting" and iv.se > 0.0:
        # Betting is wider than t: plan with the one-sided level its observed width implies.
        k = (iv.high - iv.low) / (2 * iv.se)
        a_eff = min(max(1.0 - _NORMAL.cdf(k), 1e-12), 0.5)
        how = f"normal approximation at the betting interval's width ({k:.2f} SE each side)"
    mde = minimum_detectable_effect(n, m2, a_eff, power, binary=False)
    chance = pass_probability(n, m2, tolerance, a_eff, binary=False) if m2 > 0 else 1.0
    need = items_needed(m2, tolerance, a_eff, power, binary=False)
    return mde, chance, need, how


def decide(interval: DeltaInterval, tolerance: float) -> tuple[str, bool, float]:
    """The verdict of :func:`noninferiority` alone: (status, warn, p_fail), without the planning
    numbers (items needed, MDE, power), which cost far more on binary scores and which a
    breakdown of many slices does not show."""
    if not tolerance > 0.0:
        raise ValueError(f"noninferiority: tolerance must be > 0, got {tolerance!r}")
    status = _status(interval.low, interval.high, tolerance)
    return status, status == "PASS" and interval.high < 0.0, _p_fail(interval, tolerance)


def noninferiority(
    interval: DeltaInterval, tolerance: float, alpha: float = 0.05, power: float = 0.8
) -> NonInferiority:
    """PASS when low > -tolerance, FAIL when high < -tolerance, else INCONCLUSIVE.

    ``interval`` should be the two-sided (1 - 2 alpha) interval; alpha and power size the
    planning numbers (items needed, minimum detectable effect), exact for binary scores.
    """
    if not tolerance > 0.0:
        raise ValueError(f"noninferiority: tolerance must be > 0, got {tolerance!r}")
    iv, n = interval, interval.n
    status = _status(iv.low, iv.high, tolerance)
    relation = {"PASS": "lies above", "FAIL": "lies below"}.get(status, "straddles")
    warn = status == "PASS" and iv.high < 0.0
    mde, power_eq, needed_total, how = _planning(iv, tolerance, alpha, power, status)
    reasons = [
        f"delta {_pts(iv.delta)} pts, {iv.confidence:.0%} CI [{_pts(iv.low)}, {_pts(iv.high)}] "
        f"{relation} {_pts(-tolerance)}"
    ]
    if abs(iv.confidence - (1 - 2 * alpha)) > 1e-9:
        reasons.append(
            f"the interval is {iv.confidence:.0%}, alpha {alpha:g} expects "
            f"{1 - 2 * alpha:.0%}: the verdict's error rates differ from alpha"
        )
    tail = (1.0 - iv.confidence) / 2
    if iv.method == "zero-spread":
        units = f"{iv.clusters:,} clusters" if iv.clusters else f"{n:,} items"
        what = "every cluster's mean" if iv.clusters else "every item's score"
        reasons.append(
            f"{what} changed by exactly {_pts(iv.delta)} pts over {units}: no spread, yet a share "
            f"up to {zero_event_rate(iv.clusters or n, tail):.2%} could still differ unseen "
            f"(one-sided {1 - tail:.0%}), each by as much as the score range "
            f"[{iv.score_low:g}, {iv.score_high:g}] allows; the interval is that bound"
        )
    else:
        test = "exact McNemar" if iv.b is not None else "Wilcoxon"
        p = "n/a" if iv.p_value is None else f"{iv.p_value:.3g}"
        reasons.append(
            f"n={n:,}, {'flip rate' if iv.b is not None else 'items changed'} "
            f"{100 * iv.flip_rate:.1f}%, method {iv.method}; {test} "
            f"p={p} tests delta = 0 and is not evidence of parity"
        )
    if iv.method == "tango" and iv.b == 0 and iv.c == 0:
        reasons.append(
            f"no item flipped in {n:,}; a flip rate up to {zero_event_rate(n, tail):.2%} could "
            f"still go unseen (one-sided {1 - tail:.0%}), so the interval keeps that width"
        )
    if iv.method == "betting":
        rng = f"[{iv.score_low:g}, {iv.score_high:g}]"
        source = "declared" if iv.range_declared else "every score lies in"
        reasons.append(
            f"betting interval: valid at every n for scores in {rng} ({source}), where t can "
            "miss rare large drops"
        )
    _cross_checks(iv, status, tolerance, reasons)
    if warn:
        reasons.append(f"upper bound {_pts(iv.high)} pts < 0: a real regression, within tolerance")
    needed = None
    if status == "INCONCLUSIVE" and needed_total is not None:
        needed = needed_total
        if needed > n:
            reasons.append(
                f"about {needed:,} items in total ({needed - n:,} more) would settle it with "
                f"{power:.0%} power if the stacks are truly equal (from the observed spread)"
            )
        else:
            reasons.append(
                f"{n:,} items would settle it if the stacks were equal; the observed delta "
                f"{_pts(iv.delta)} pts points to a real regression near the tolerance"
            )
    reasons.append(
        f"minimum detectable effect at n={n:,}: {100 * mde:.2f} pts; an equal candidate "
        f"passes this check with probability {power_eq:.0%} ({how}; the failure-mode and"
        " direction checks are not in this figure)"
    )
    if iv.clusters is not None and iv.method.startswith("cluster") and iv.clusters < 30:
        reasons.append(f"only {iv.clusters} clusters: cluster-robust intervals need about 30+")
    return NonInferiority(status, warn, reasons, needed, mde, _p_fail(iv, tolerance), power_eq)


def _cross_checks(iv: DeltaInterval, status: str, tolerance: float, reasons: list[str]) -> None:
    """The other intervals beside the gate's, and whether they would change the verdict."""
    others: list[tuple[str, float, float]] = []
    if iv.method in ("t", "cluster-t", "betting") and iv.bootstrap_low is not None:
        assert iv.bootstrap_high is not None
        kind = "cluster" if iv.method == "cluster-t" else "paired"
        others.append((f"{kind} bootstrap", iv.bootstrap_low, iv.bootstrap_high))
    if iv.method == "betting" and iv.t_low is not None and iv.t_high is not None:
        others.append(("t", iv.t_low, iv.t_high))
    if iv.method == "t" and iv.betting_low is not None and iv.betting_high is not None:
        others.append(("betting", iv.betting_low, iv.betting_high))
    for name, low, high in others:
        check = f"cross-check: {name} {iv.confidence:.0%} CI [{_pts(low)}, {_pts(high)}]"
        other = _status(low, high, tolerance)
        if other != status:
            # The verdict stays on the method chosen for these data (see paired_interval), but
            # a reader should see the disagreement.
            check += f" would give {other}; the verdict stays on {iv.method}"
        reasons.append(check)
