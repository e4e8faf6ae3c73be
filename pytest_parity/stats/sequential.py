"""Anytime-valid sequential non-inferiority test of the paired delta: early stopping.

Items come in a seeded random order, so their paired differences d_i = s_new - s_old in [-1, 1]
(binary scores give d_i in {-1, 0, 1}; bounded scores are rescaled to [0, 1] first) are
exchangeable draws with the golden set's mean delta, the same model the fixed-n gate assumes.
After each batch the test asks the confidence sequence of
:class:`~pytest_parity.stats.betting.BettingSequence` (Waudby-Smith & Ramdas 2023) whether the
point -tolerance is still inside it, on each side. It does so exactly, without the sequence's
grid: the two capitals of the candidate mean m0 = -tolerance,

    K+_t = prod_i (1 + l+_i (x_i - m0)),   K-_t = prod_i (1 - l-_i (x_i - m0)),

with the sequence's own predictable bets (x and m0 on the [0, 1] scale). K+ is a nonnegative
supermartingale whenever delta <= -tolerance, K- whenever delta >= -tolerance, so by Ville's
inequality P(sup_t K+ >= 1/a) <= a under the first and P(sup_t K- >= 1/a) <= a under the second,
at every stopping time, however often one looks. The task stops

* as PASS when K+ reaches 1/a_seq: the sequence's lower bound has cleared -tolerance;
* as FAIL when K- reaches 1/a_seq: its upper bound has fallen below -tolerance;

and otherwise runs to the end, where the fixed-n gate decides at the rest of alpha.

Error spending. The contract's alpha is the chance of a false PASS at delta = -tolerance (and of
a false FAIL there from the other side). ``alpha_share`` of it goes to the sequential looks,
a_seq = share x alpha, and the fixed-n verdict after a run to the end is taken at
a_fix = alpha - a_seq (its two-sided interval at 1 - 2 a_fix). A false PASS needs either the
sequence to clear -tolerance at some look (probability <= a_seq, whatever the looks) or, with no
stop, the fixed-n interval to clear it (probability <= a_fix), so by the union bound the whole
procedure passes a candidate that is exactly -tolerance worse with probability <= a_seq + a_fix =
alpha; the same holds for a false FAIL at any delta >= -tolerance (at delta = 0 it is far
smaller). The price: the fixed-n fallback runs at a_fix < alpha, so a run that never stops needs
a few more items than the plain gate for the same power (see ``planning.items_needed`` at a_fix).

The anytime p-value of the FAIL alarm is min(1, 1 / sup_t K-_t) (valid for H0: delta >=
-tolerance at any stopping time), which enters Holm's adjustment across the run like any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pytest_parity.stats.betting import BettingSequence

_C = 0.5  # the bet cap of stats.betting: every factor of the capital stays >= 1/2
DEFAULT_BATCH = 50
DEFAULT_ALPHA_SHARE = 0.5

__all__ = [
    "DEFAULT_ALPHA_SHARE",
    "DEFAULT_BATCH",
    "SequentialTest",
    "simulate",
    "split_alpha",
]


def split_alpha(alpha: float, share: float) -> tuple[float, float]:
    """(a_seq, a_fix): the one-sided error spent on the sequential looks and on the fallback."""
    if not 0.0 < alpha < 0.5 or not 0.0 < share < 1.0:
        raise ValueError(
            f"split_alpha: need 0 < alpha < 0.5 and 0 < share < 1, got {alpha}, {share}"
        )
    a_seq = alpha * share
    return a_seq, alpha - a_seq


@dataclass
class _State:
    """Running sums of the predictable bets and the two log capitals, one row per stream."""

    n: int
    sum_x: NDArray[np.float64]
    sum_sq: NDArray[np.float64]
    log_up: NDArray[np.float64]
    log_dn: NDArray[np.float64]
    max_dn: NDArray[np.float64]

    @classmethod
    def empty(cls, rows: int) -> _State:
        z = np.zeros(rows)
        return cls(0, z.copy(), z.copy(), z.copy(), z.copy(), z.copy())


def _advance(
    state: _State, x: NDArray[np.float64], m0: float, a_seq: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Add columns x (rows = streams, values in [0, 1]); returns log K+ and log K- after each
    column. The bets are those of BettingSequence at confidence 1 - 2 a_seq."""
    k = x.shape[1]
    i = state.n + np.arange(1, k + 1, dtype=np.float64)
    mu = (0.5 + state.sum_x[:, None] + np.cumsum(x, axis=1)) / (i + 1.0)
    sq = state.sum_sq[:, None] + np.cumsum((x - mu) ** 2, axis=1)
    s2 = (0.25 + sq) / (i + 1.0)
    prev = np.concatenate((((0.25 + state.sum_sq) / (state.n + 1.0))[:, None], s2[:, :-1]), axis=1)
    lam = np.sqrt(2.0 * math.log(1.0 / a_seq) / (prev * i * np.log1p(i)))
    gap = x - m0
    up = np.cumsum(np.log1p(np.minimum(lam, _C / m0) * gap), axis=1) + state.log_up[:, None]
    dn = np.cumsum(np.log1p(-np.minimum(lam, _C / (1.0 - m0)) * gap), axis=1)
    dn += state.log_dn[:, None]
    state.n += k
    state.sum_x = state.sum_x + x.sum(axis=1)
    state.sum_sq = sq[:, -1]
    state.log_up, state.log_dn = up[:, -1], dn[:, -1]
    state.max_dn = np.maximum(state.max_dn, dn.max(axis=1))
    return up, dn


def _m0(tolerance: float) -> float:
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"sequential test: tolerance must be in (0, 1), got {tolerance!r}")
    return (1.0 - tolerance) / 2.0  # -tolerance on the [0, 1] scale of d in [-1, 1]


class SequentialTest:
    """The early-stopping test of one task (see the module docstring), fed batch by batch.

    ``update(d)`` adds a batch of paired differences in [-1, 1] and returns "PASS", "FAIL" or
    None (keep asking). Once decided it stays decided. ``bounds()`` is the confidence sequence's
    current interval for delta (a BettingSequence at 1 - 2 a_seq: what a report shows at the
    stop); ``p_fail`` the anytime p-value of delta < -tolerance.
    """

    def __init__(self, tolerance: float, a_seq: float, grid: int = 65_537) -> None:
        if not 0.0 < a_seq < 0.5:
            raise ValueError(f"SequentialTest: a_seq must be in (0, 0.5), got {a_seq!r}")
        self.tolerance, self.a_seq = float(tolerance), float(a_seq)
        self._m0 = _m0(tolerance)
        self._state = _State.empty(1)
        self._cs = BettingSequence(-1.0, 1.0, confidence=1.0 - 2.0 * a_seq, grid=grid)
        self.decision: str | None = None
        self.looks = 0

    @property
    def n(self) -> int:
        return self._state.n

    def update(self, d: ArrayLike) -> str | None:
        values = np.asarray(d, dtype=np.float64).ravel()
        if values.size == 0:
            return self.decision
        if not np.all(np.isfinite(values)) or values.min() < -1.0 or values.max() > 1.0:
            raise ValueError("SequentialTest.update: paired differences must lie in [-1, 1]")
        self._cs.update(values)
        self.looks += 1
        if self.decision is not None:
            return self.decision
        _advance(self._state, ((values + 1.0) / 2.0)[None, :], self._m0, self.a_seq)
        thresh = math.log(1.0 / self.a_seq)
        # Only the capital at the look counts: the test looks after each batch.
        if self._state.log_up[0] >= thresh:
            self.decision = "PASS"
        elif self._state.log_dn[0] >= thresh:
            self.decision = "FAIL"
        return self.decision

    def bounds(self) -> tuple[float, float]:
        """The sequence's interval; once decided, the side that decided is the exact test's
        (the grid of BettingSequence may leave a bound up to one step short of -tolerance)."""
        low, high = self._cs.interval()
        if self.decision == "PASS":
            low = max(low, -self.tolerance)
        elif self.decision == "FAIL":
            high = min(high, -self.tolerance)
        return low, high

    @property
    def estimate(self) -> float:
        return self._cs.estimate

    @property
    def p_fail(self) -> float:
        """Anytime p-value for delta < -tolerance: 1 / the largest K- seen, at most 1."""
        return float(min(1.0, math.exp(-float(self._state.max_dn[0]))))


def simulate(
    d: ArrayLike, tolerance: float, a_seq: float, batch: int
) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    """The sequential test on many streams at once (rows of ``d``, all of length n).

    Returns (decision, stopped_at): decision +1 PASS, -1 FAIL, 0 no stop by the end; stopped_at
    the items asked when the test stopped (n when it did not). The same looks and bets as
    :class:`SequentialTest`: after every ``batch`` items and at the end.
    """
    x = (np.asarray(d, dtype=np.float64) + 1.0) / 2.0
    if x.ndim != 2:
        raise ValueError("simulate: d must be 2-D (streams x items)")
    rows, n = x.shape
    up, dn = _advance(_State.empty(rows), x, _m0(tolerance), a_seq)
    looks = np.arange(batch, n + 1, batch) - 1
    if looks.size == 0 or looks[-1] != n - 1:
        looks = np.append(looks, n - 1)
    thresh = math.log(1.0 / a_seq)
    hit_up, hit_dn = up[:, looks] >= thresh, dn[:, looks] >= thresh
    never = looks.size + 1
    first_up = np.where(hit_up.any(axis=1), hit_up.argmax(axis=1), never)
    first_dn = np.where(hit_dn.any(axis=1), hit_dn.argmax(axis=1), never)
    passed = (first_up < never) & (first_up <= first_dn)  # PASS is checked first, as in update
    failed = ~passed & (first_dn < never)
    decision = np.where(passed, 1, np.where(failed, -1, 0)).astype(np.int8)
    first = np.minimum(first_up, first_dn)
    stopped = np.where(decision != 0, looks[np.minimum(first, looks.size - 1)] + 1, n)
    return decision, stopped.astype(np.int64)


def simulate_fixed(
    d: ArrayLike, tolerance: float, alpha: float, *, binary: bool
) -> NDArray[np.int8]:
    """The fixed-n verdict on every stream: +1 PASS, -1 FAIL, 0 INCONCLUSIVE at one-sided alpha.

    Binary d in {-1, 0, 1}: Tango's score test at -tolerance (what the gate uses); otherwise the
    paired t interval (the gate's choice for n >= 500 near-symmetric differences).
    """
    from statistics import NormalDist

    from pytest_parity.stats.binary import tango_z_array
    from pytest_parity.stats.distributions import t_ppf

    arr = np.asarray(d, dtype=np.float64)
    n = arr.shape[1]
    if binary:
        b, c = (arr == -1).sum(axis=1), (arr == 1).sum(axis=1)
        z = tango_z_array(-tolerance, b, c, n)
        crit = NormalDist().inv_cdf(1 - alpha)
        return np.where(z > crit, 1, np.where(z < -crit, -1, 0)).astype(np.int8)
    mean, se = arr.mean(axis=1), arr.std(axis=1, ddof=1) / math.sqrt(n)
    q = t_ppf(1 - alpha, n - 1)
    lo, hi = mean - q * se, mean + q * se
    return np.where(lo > -tolerance, 1, np.where(hi < -tolerance, -1, 0)).astype(np.int8)


def simulate_gate(
    d: ArrayLike,
    tolerance: float,
    alpha: float,
    *,
    share: float = DEFAULT_ALPHA_SHARE,
    batch: int = DEFAULT_BATCH,
    binary: bool,
) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    """The whole early-stopping gate on every stream: the looks at a_seq, else the fixed-n
    verdict at a_fix (see the module docstring). Returns (verdict, items asked)."""
    a_seq, a_fix = split_alpha(alpha, share)
    decision, asked = simulate(d, tolerance, a_seq, batch)
    fixed = simulate_fixed(d, tolerance, a_fix, binary=binary)
    return np.where(decision != 0, decision, fixed).astype(np.int8), asked
