"""Paired statistics of the parity gate: delta intervals, the non-inferiority verdict, many tasks.

Pure functions over numpy arrays; every resampling draws from an injected ``np.random.Generator``
(seed it per task with :func:`task_seed`, so xdist workers and reruns draw the same resamples).
Conventions: d_i = new_i - old_i, so a negative delta means the candidate is worse; for binary
scores b counts items the baseline got right and the candidate wrong, c the reverse.
Recipes and reference numbers: shared/design/STATISTICS.md.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

METHODS = ("exact-zero", "tango", "bootstrap", "t", "cluster-t", "cluster-bootstrap")
CHUNK = 250  # resamples per chunk: ~8 MiB of indices at n=2,000 where all at once takes ~300 MiB
_NORMAL = NormalDist()
_EDGE = 1.0 - 1e-12  # Tango's restricted MLE has no valid root at exactly delta = +-1


def task_seed(run_seed: int, task: str) -> int:
    """Per-task seed from zlib.crc32, which (unlike ``hash()``) is the same in every process."""
    return zlib.crc32(f"{run_seed}:{task}".encode())


def task_rng(run_seed: int, task: str) -> np.random.Generator:
    return np.random.default_rng(task_seed(run_seed, task))


@dataclass(frozen=True)
class DeltaInterval:
    """Two-sided interval for delta = mean(new - old); ``se`` is the standard error of delta."""

    delta: float
    low: float
    high: float
    confidence: float
    method: str
    n: int
    se: float
    flip_rate: float  # binary: (b + c) / n; continuous: share of items with d != 0
    b: int | None
    c: int | None
    p_value: float | None  # exact McNemar (binary) or Wilcoxon signed-rank (continuous)
    clusters: int | None = None  # number of clusters when the interval is cluster-robust
    # Percentile bootstrap at the same level, shown next to t and cluster-t (the gate stays on
    # those): resamples items, or whole clusters for cluster-t. None for Tango and exact-zero.
    bootstrap_low: float | None = None
    bootstrap_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_pair(old: ArrayLike, new: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    o = np.asarray(old, dtype=np.float64).ravel()
    w = np.asarray(new, dtype=np.float64).ravel()
    if o.size != w.size:
        raise ValueError(
            f"paired_interval: old has {o.size} scores but new has {w.size} "
            "(hint: pair the items first; both stacks must answer the same items)"
        )
    if o.size == 0:
        raise ValueError("paired_interval: no paired items (hint: check the task's item source)")
    bad = np.flatnonzero(~(np.isfinite(o) & np.isfinite(w)))
    if bad.size:
        raise ValueError(
            f"paired_interval: score at index {int(bad[0])} is not a finite number "
            "(hint: drop items that failed on either stack before pairing)"
        )
    return o, w


def paired_interval(
    old: ArrayLike,
    new: ArrayLike,
    *,
    confidence: float = 0.90,
    rng: np.random.Generator | None = None,
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = 10_000,
    method: str = "auto",
    cross_check: bool = True,
) -> DeltaInterval:
    """Interval for the paired delta, the method chosen by the data unless ``method`` names one.

    Identical outputs give the exact interval [0, 0] without touching ``rng``. Declared clusters
    give the cluster-robust t interval; binary scores give Tango's score interval; other scores the
    paired t interval. ``rng`` (default: seed 0) draws the bootstrap resamples: of the bootstrap
    methods, and of the cross-check that t and cluster-t carry in ``bootstrap_low`` /
    ``bootstrap_high`` unless ``cross_check`` is False (simulations that only need the interval).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"paired_interval: confidence must be in (0, 1), got {confidence!r}")
    confidence = float(confidence)
    o, w = _as_pair(old, new)
    d = w - o
    n = d.size
    binary = bool(np.all((o == 0) | (o == 1)) and np.all((w == 0) | (w == 1)))
    b = int(np.count_nonzero(d < 0)) if binary else None
    c = int(np.count_nonzero(d > 0)) if binary else None
    groups = None if clusters is None else _cluster_ids(clusters, n)
    n_groups = None if groups is None else int(groups.max()) + 1
    flip_rate = float(np.count_nonzero(d)) / n
    if flip_rate == 0.0:
        # All d_i are zero: any resampling gives 0 and BCa would divide by zero.
        return DeltaInterval(
            0.0, 0.0, 0.0, confidence, "exact-zero", n, 0.0, 0.0, b, c, None, n_groups
        )
    if method == "auto":
        # Continuous scores use the t interval rather than the percentile bootstrap: in seeded
        # simulations of skewed, heavy-tailed score differences (n = 30 ... 1,000) the t interval
        # covered as well or better (e.g. .92 vs .91 vs .88 for t / percentile / BCa at n = 100),
        # and it is deterministic. The bootstrap stays available for statistics t cannot handle.
        # Binary scores always use Tango: its exact coverage stays in .93-.97 from ~7 discordant
        # pairs up (and above .95 below that), so no switch at b + c = 30 is needed.
        method = "cluster-t" if groups is not None else "tango" if binary else "t"
    if method not in METHODS[1:]:
        raise ValueError(
            f"paired_interval: unknown method {method!r}; known: auto, " + ", ".join(METHODS[1:])
        )
    if method.startswith("cluster") and groups is None:
        raise ValueError(f"paired_interval: method {method!r} needs clusters=")
    if method == "tango" and (b is None or c is None):
        raise ValueError("paired_interval: method 'tango' needs scores in {0, 1}")
    if n < 2 and method != "tango":
        raise ValueError(f"paired_interval: method {method!r} needs at least 2 paired items")
    # McNemar ignores declared clusters: it is reported, never gated on.
    p_value = mcnemar_exact(b, c) if b is not None and c is not None else _wilcoxon(d)
    delta = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    gen = rng if rng is not None else np.random.default_rng(0)
    boot: tuple[float, float] | None = None
    if method == "tango":
        assert b is not None and c is not None
        # For binary d, E[d^2] = flip rate, so var(d) = psi - delta^2 (the score test's scale).
        se = math.sqrt(max(flip_rate - delta * delta, 0.0) / n)
        low, high = tango_interval(b, c, n, confidence)
    elif method in ("t", "bootstrap"):
        if method == "t":
            low, high = _t_interval(delta, se, n - 1, confidence)
        if method == "bootstrap" or cross_check:
            means = bootstrap_means(d, n_boot, gen)
            boot = _percentile(means, confidence)
        if method == "bootstrap":
            assert boot is not None
            low, high = boot
            se = float(means.std(ddof=1))
    else:
        assert groups is not None and n_groups is not None
        if n_groups < 2:
            raise ValueError(
                "paired_interval: cluster-robust intervals need at least 2 clusters "
                "(hint: drop the cluster key or declare finer clusters)"
            )
        sums = np.bincount(groups, weights=d - delta, minlength=n_groups)
        se = math.sqrt(n_groups / (n_groups - 1) * float(sums @ sums)) / n
        if method == "cluster-t":
            low, high = _t_interval(delta, se, n_groups - 1, confidence)
        if method == "cluster-bootstrap" or cross_check:
            ratios = cluster_bootstrap_means(d, groups, n_boot, gen)
            boot = _percentile(ratios, confidence)
        if method == "cluster-bootstrap":
            assert boot is not None
            low, high = boot
            se = float(ratios.std(ddof=1))
    return DeltaInterval(delta, float(low), float(high), confidence, method, n, se, flip_rate,
                         b, c, p_value, clusters=n_groups,
                         bootstrap_low=None if boot is None else boot[0],
                         bootstrap_high=None if boot is None else boot[1])  # fmt: skip


def _cluster_ids(clusters: Sequence[Hashable], n: int) -> NDArray[np.intp]:
    if len(clusters) != n:
        raise ValueError(
            f"paired_interval: {len(clusters)} cluster keys for {n} items "
            "(hint: give one cluster key per paired item)"
        )
    index: dict[Hashable, int] = {}
    return np.fromiter((index.setdefault(k, len(index)) for k in clusters), np.intp, count=n)


def _t_interval(delta: float, se: float, dof: int, confidence: float) -> tuple[float, float]:
    if se == 0.0:
        return delta, delta  # every d_i equal: no spread to build an interval from
    from scipy.stats import t

    q = float(t.ppf(0.5 + confidence / 2, max(dof, 1)))
    return delta - q * se, delta + q * se


def _percentile(samples: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    # Percentile rather than BCa: BCa's skew correction undercovered on rare large score drops.
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def _wilcoxon(d: NDArray[np.float64]) -> float:
    """Two-sided Wilcoxon signed-rank p-value, zeros dropped, as ``scipy.stats.wilcoxon(d)``."""
    nonzero = d[d != 0.0]
    m = nonzero.size
    if m <= 50:  # scipy's exact distribution where it applies
        from scipy.stats import wilcoxon

        return float(wilcoxon(d).pvalue)
    # scipy's normal approximation (tie-corrected variance), without its per-call overhead
    # that dominated coverage simulations.
    from scipy.stats import rankdata

    ranks = rankdata(np.abs(nonzero))
    _, ties = np.unique(ranks, return_counts=True)
    var = m * (m + 1) * (2 * m + 1) / 24 - float((ties**3 - ties).sum()) / 48
    z = (float(ranks[nonzero > 0].sum()) - m * (m + 1) / 4) / math.sqrt(var)
    return 2.0 * _NORMAL.cdf(-abs(z))


def bootstrap_means(d: ArrayLike, n_boot: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Means of ``n_boot`` paired resamples of d (same indices for both stacks, as d = new - old).

    Few distinct values of d (binary or 3-way outcomes): one multinomial draw over the distinct
    values, the same distribution as index resampling at a fraction of the cost. Otherwise
    index resampling in chunks of :data:`CHUNK` resamples to bound memory.
    """
    x = np.asarray(d, dtype=np.float64).ravel()
    n = x.size
    values, first, counts = np.unique(x, return_index=True, return_counts=True)
    if values.size <= 16:
        # Cells in order of first appearance, so negating d (swapping the stacks) keeps the
        # cell order and the same seed gives exactly the mirrored resamples.
        order = np.argsort(first)
        values, counts = values[order], counts[order]
        draws = rng.multinomial(n, counts / n, size=n_boot)
        return np.asarray(draws @ values / n, dtype=np.float64)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, CHUNK):
        m = min(CHUNK, n_boot - start)
        # 32-bit indices: half the random bits and index memory of numpy's default int64.
        idx = rng.integers(0, n, size=(m, n), dtype=np.int32)
        out[start : start + m] = x[idx].mean(axis=1)
    return out


def cluster_bootstrap_means(
    d: ArrayLike, groups: ArrayLike, n_boot: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Item-weighted means of d over ``n_boot`` resamples of whole clusters (ids 0..G-1)."""
    g = np.asarray(groups, dtype=np.intp).ravel()
    sums = np.bincount(g, weights=np.asarray(d, dtype=np.float64).ravel())
    sizes = np.bincount(g).astype(np.float64)
    n_groups = sums.size
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, CHUNK):
        m = min(CHUNK, n_boot - start)
        idx = rng.integers(0, n_groups, size=(m, n_groups), dtype=np.int32)
        out[start : start + m] = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    return out


def _tango_z(delta: float, b: int, c: int, n: int) -> float:
    # Score statistic at a hypothesised delta = p_c - p_b, with p_b at its restricted MLE
    # (the root of 2n p^2 + B p + C = 0; Tango 1998, with old/new roles as defined above).
    big_b = -(b + c) + (2 * n - c + b) * delta
    big_c = -b * delta * (1.0 - delta)
    p_b = (math.sqrt(max(big_b * big_b - 8.0 * n * big_c, 0.0)) - big_b) / (4.0 * n)
    var = n * (2.0 * p_b + delta * (1.0 - delta))
    num = c - b - n * delta
    if var <= 0.0:
        return 0.0 if num == 0.0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def tango_interval(b: int, c: int, n: int, confidence: float = 0.90) -> tuple[float, float]:
    """Tango's score interval for the paired difference (c - b) / n; sound with few discordants."""
    from scipy.optimize import brentq

    if min(b, c) < 0 or b + c > n:
        raise ValueError(f"tango_interval: need 0 <= b, c and b + c <= n, got {b}, {c}, {n}")
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    est = (c - b) / n

    def bound(sign: float) -> float:
        # sign +1: lower bound, where Z = +z; sign -1: upper bound, where Z = -z. Z falls as delta
        # rises, so each bound is the single crossing between the estimate and the edge.
        edge = -sign * _EDGE
        if sign * est <= -_EDGE or sign * _tango_z(edge, b, c, n) < z:
            return -sign
        inner = min(max(est, -_EDGE), _EDGE)
        lo, hi = min(edge, inner), max(edge, inner)
        return float(brentq(lambda x: sign * _tango_z(x, b, c, n) - z, lo, hi, xtol=1e-12))

    return bound(1.0), bound(-1.0)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: binomtest(b, b + c, 0.5). Not significant is not parity."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, 2.0 * binom.cdf(min(b, c), b + c, 0.5)))


def one_sided_exact(k_more: int, k_less: int) -> float:
    """P(X >= k_more) for X ~ Bin(k_more + k_less, 1/2); 1.0 when both are zero."""
    if k_more + k_less == 0:
        return 1.0
    from scipy.stats import binom

    return float(binom.sf(k_more - 1, k_more + k_less, 0.5))


# --- the non-inferiority verdict -------------------------------------------------------------
# Planning formulas take the second moment m2 = E[d^2] of the item differences; for binary scores
# that is the flip rate psi, and noninferiority() uses n * se^2 + delta^2, which also carries a
# cluster design effect. Variances follow the reference notes: sqrt(m2 - delta^2) with z_alpha
# (the spread the gate estimates) and sqrt(m2 - tolerance^2) with z_power, which reproduces their
# items-needed table exactly and puts P(PASS) at exactly alpha when delta = -tolerance.


def _z(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def items_needed(
    flip_rate: float,
    tolerance: float,
    alpha: float = 0.05,
    power: float = 0.8,
    delta: float = 0.0,
) -> int:
    """Total items for the gate to PASS with ``power`` when the true delta is ``delta``.

    ``flip_rate`` is psi for binary scores and E[d^2] in general (see the note above).
    """
    margin = delta + tolerance
    if margin <= 0.0:
        raise ValueError(
            f"items_needed: a true delta of {delta:+.4f} is at or below -tolerance "
            f"({-tolerance:+.4f}); no number of items makes such a candidate pass"
        )
    spread = _z(1 - alpha) * math.sqrt(max(flip_rate - delta * delta, 0.0))
    spread += _z(power) * math.sqrt(max(flip_rate - tolerance * tolerance, 0.0))
    return max(1, math.ceil(spread * spread / (margin * margin) - 1e-9))


def pass_probability(
    n: int, flip_rate: float, tolerance: float, alpha: float = 0.05, true_delta: float = 0.0
) -> float:
    """Chance that n items PASS the gate when the true delta is ``true_delta``.

    Normal approximation; within .01 of the exact binary Tango gate at psi .08 (see the tests).
    """
    sd0 = math.sqrt(max(flip_rate - tolerance * tolerance, 0.0))
    lead = (true_delta + tolerance) * math.sqrt(n)
    lead -= _z(1 - alpha) * math.sqrt(max(flip_rate - true_delta * true_delta, 0.0))
    if sd0 == 0.0:
        return 1.0 if lead > 0 else 0.0
    return _NORMAL.cdf(lead / sd0)


def minimum_detectable_effect(
    n: int, flip_rate: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest tolerance at which n items PASS an equal candidate with ``power``.

    Also the smallest regression the gate FAILs with that power. Solves items_needed for the
    tolerance D: D sqrt(n) - z_a sqrt(m2) = z_b sqrt(m2 - D^2), a quadratic in D.
    """
    if flip_rate <= 0.0:
        return 0.0
    za, zb = _z(1 - alpha), _z(power)
    a = za * math.sqrt(flip_rate)
    qa, qb, qc = n + zb * zb, -2.0 * a * math.sqrt(n), a * a - zb * zb * flip_rate
    root = (-qb + math.sqrt(max(qb * qb - 4 * qa * qc, 0.0))) / (2 * qa)
    return min(root, math.sqrt(flip_rate))


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


def _p_fail(iv: DeltaInterval, tolerance: float) -> float:
    shift = iv.delta + tolerance
    if iv.method == "exact-zero":
        return 1.0
    if iv.method == "tango" and iv.b is not None and iv.c is not None:
        return _NORMAL.cdf(max(min(_tango_z(-tolerance, iv.b, iv.c, iv.n), 40.0), -40.0))
    if iv.se == 0.0:
        return 1.0 if shift > 0 else 0.0
    if iv.method in ("t", "cluster-t"):
        from scipy.stats import t

        dof = (iv.clusters if iv.method == "cluster-t" and iv.clusters else iv.n) - 1
        return float(t.cdf(shift / iv.se, max(dof, 1)))
    return _NORMAL.cdf(shift / iv.se)  # bootstrap: normal with the bootstrap SE


def _status(low: float, high: float, tolerance: float) -> str:
    if low > -tolerance:
        return "PASS"
    return "FAIL" if high < -tolerance else "INCONCLUSIVE"


def noninferiority(
    interval: DeltaInterval, tolerance: float, alpha: float = 0.05, power: float = 0.8
) -> NonInferiority:
    """PASS when low > -tolerance, FAIL when high < -tolerance, else INCONCLUSIVE.

    ``interval`` should be the two-sided (1 - 2 alpha) interval; alpha and power size the
    planning numbers (items needed, minimum detectable effect).
    """
    if not tolerance > 0.0:
        raise ValueError(f"noninferiority: tolerance must be > 0, got {tolerance!r}")
    iv, n = interval, interval.n
    status = _status(iv.low, iv.high, tolerance)
    relation = {"PASS": "lies above", "FAIL": "lies below"}.get(status, "straddles")
    warn = status == "PASS" and iv.high < 0.0
    m2 = n * iv.se * iv.se + iv.delta * iv.delta
    mde = minimum_detectable_effect(n, m2, alpha, power)
    power_eq = pass_probability(n, m2, tolerance, alpha) if m2 > 0 else 1.0
    reasons = [
        f"delta {_pts(iv.delta)} pts, {iv.confidence:.0%} CI [{_pts(iv.low)}, {_pts(iv.high)}] "
        f"{relation} {_pts(-tolerance)}"
    ]
    if abs(iv.confidence - (1 - 2 * alpha)) > 1e-9:
        reasons.append(
            f"the interval is {iv.confidence:.0%}, alpha {alpha:g} expects "
            f"{1 - 2 * alpha:.0%}: the verdict's error rates differ from alpha"
        )
    if iv.method == "exact-zero":
        reasons.append(f"outputs scored identically on all {n:,} items: delta is exactly 0")
    else:
        test = "exact McNemar" if iv.b is not None else "Wilcoxon"
        reasons.append(
            f"n={n:,}, {'flip rate' if iv.b is not None else 'items changed'} "
            f"{100 * iv.flip_rate:.1f}%, method {iv.method}; {test} "
            f"p={iv.p_value:.3g} tests delta = 0 and is not evidence of parity"
        )
    if iv.method in ("t", "cluster-t") and iv.bootstrap_low is not None:
        assert iv.bootstrap_high is not None
        kind = "cluster" if iv.method == "cluster-t" else "paired"
        check = (
            f"cross-check: {kind} bootstrap {iv.confidence:.0%} CI "
            f"[{_pts(iv.bootstrap_low)}, {_pts(iv.bootstrap_high)}]"
        )
        other = _status(iv.bootstrap_low, iv.bootstrap_high, tolerance)
        if other != status:
            # Skewed or heavy-tailed score differences; the verdict stays on t, whose coverage
            # held up better in simulation, but a reader should see the disagreement.
            check += f" would give {other}; the verdict stays on {iv.method}"
        reasons.append(check)
    if warn:
        reasons.append(f"upper bound {_pts(iv.high)} pts < 0: a real regression, within tolerance")
    needed = None
    if status == "INCONCLUSIVE":
        needed = items_needed(m2, tolerance, alpha, power)
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
    if iv.method != "exact-zero":
        reasons.append(
            f"minimum detectable effect at n={n:,}: {100 * mde:.2f} pts; an equal candidate "
            f"passes with probability {power_eq:.0%}"
        )
    if iv.clusters is not None and iv.method.startswith("cluster") and iv.clusters < 30:
        reasons.append(f"only {iv.clusters} clusters: cluster-robust intervals need about 30+")
    return NonInferiority(status, warn, reasons, needed, mde, _p_fail(iv, tolerance), power_eq)


# --- many tasks ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Overall:
    status: str  # "PASS" only when every task passes (intersection-union: no correction needed)
    reasons: list[str]
    p_fail_holm: list[float]  # per task, in input order
    fail_confirmed: list[bool]  # FAIL tasks whose alarm survives Holm across tasks
    pass_probability: float  # chance an all-equal migration passes overall at these n

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def overall_verdict(
    tasks: Sequence[NonInferiority], names: Sequence[str] | None = None, alpha: float = 0.05
) -> Overall:
    labels = list(names) if names is not None else [f"task {i}" for i in range(len(tasks))]
    if len(labels) != len(tasks):
        raise ValueError(f"overall_verdict: {len(labels)} names for {len(tasks)} tasks")
    adjusted = holm([t.p_fail for t in tasks])
    confirmed = [t.status == "FAIL" and p < alpha for t, p in zip(tasks, adjusted, strict=True)]
    chance = overall_pass_probability([t.power for t in tasks])
    counts = {s: sum(t.status == s for t in tasks) for s in ("PASS", "FAIL", "INCONCLUSIVE")}
    reasons = [
        f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['INCONCLUSIVE']} INCONCLUSIVE "
        f"of {len(tasks)} tasks; overall PASS needs every task to pass"
    ]
    for label, t, p, ok in zip(labels, tasks, adjusted, confirmed, strict=True):
        if t.status == "FAIL" and not ok:
            reasons.append(f"{label}: FAIL alarm not confirmed after Holm (adjusted p={p:.3g})")
    reasons.append(f"an all-equal migration would pass overall with probability {chance:.1%}")
    if any(confirmed):
        status = "FAIL"
        failed = ", ".join(lb for lb, ok in zip(labels, confirmed, strict=True) if ok)
        reasons.insert(1, f"regression beyond tolerance confirmed after Holm: {failed}")
    elif tasks and counts["PASS"] == len(tasks):
        status = "PASS"
    else:
        status = "INCONCLUSIVE"
    return Overall(status, reasons, adjusted, confirmed, chance)
