"""Paired delta intervals: the method chosen by the data, never a zero-width interval.

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

from pytest_parity.stats.betting import betting_interval
from pytest_parity.stats.binary import (
    mcnemar_exact,
    one_sided_exact,
    tango_interval,
    zero_event_rate,
)
from pytest_parity.stats.multiplicity import holm

__all__ = [  # one_sided_exact and holm stay importable from here (checks/failures.py)
    "CHUNK",
    "METHODS",
    "DeltaInterval",
    "bootstrap_means",
    "cluster_bootstrap_means",
    "holm",
    "mcnemar_exact",
    "one_sided_exact",
    "paired_interval",
    "task_rng",
    "task_seed",
]

METHODS = ("tango", "betting", "t", "bootstrap", "cluster-t", "cluster-bootstrap", "zero-spread")
CHUNK = 250  # resamples per chunk: ~8 MiB of indices at n=2,000 where all at once takes ~300 MiB
_NORMAL = NormalDist()
# The auto rule for bounded continuous scores (see paired_interval): t only from this many items
# and when t's predicted one-sided error excess stays below this share.
AUTO_MIN_T = 500
AUTO_MAX_SKEW_ERROR = 0.005


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
    # Percentile bootstrap at the same level, shown next to t, cluster-t and betting (the gate
    # stays on those): resamples items, or whole clusters for cluster-t. None for Tango.
    bootstrap_low: float | None = None
    bootstrap_high: float | None = None
    # The other intervals beside the gate's: t next to betting, betting next to t.
    t_low: float | None = None
    t_high: float | None = None
    betting_low: float | None = None
    betting_high: float | None = None
    # The score range the bounded-score methods (betting, zero-spread) assumed; None for t alone.
    score_low: float | None = None
    score_high: float | None = None
    range_declared: bool = False  # True: the caller declared the range; False: [0, 1] was seen

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


def _score_range(
    o: NDArray[np.float64], w: NDArray[np.float64], declared: tuple[float, float] | None
) -> tuple[float, float] | None:
    """The range scores are known to lie in: declared, or [0, 1] when every score is inside it."""
    lo, hi = float(min(o.min(), w.min())), float(max(o.max(), w.max()))
    if declared is not None:
        a, b = float(declared[0]), float(declared[1])
        if not b > a:
            raise ValueError(f"paired_interval: score_range needs low < high, got {declared!r}")
        if lo < a or hi > b:
            raise ValueError(
                f"paired_interval: a score of {lo if lo < a else hi:g} lies outside the declared "
                f"score_range [{a:g}, {b:g}] (hint: declare the scorer's true range)"
            )
        return a, b
    return (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else None


def _skew_error(d: NDArray[np.float64], confidence: float) -> float:
    """t's predicted one-sided error excess from the sample skewness (first Edgeworth term).

    |gamma| (2 z^2 + 1) phi(z) / (6 sqrt(n)): .034 for 2% of items dropping by .8 at n = 500.
    """
    n = d.size
    centred = d - d.mean()
    sd = math.sqrt(float(centred @ centred) / n)
    if sd == 0.0:
        return 0.0
    gamma = float(np.mean(centred**3)) / sd**3
    z = _NORMAL.inv_cdf(0.5 + confidence / 2)
    return (
        abs(gamma)
        * (2 * z * z + 1)
        * math.exp(-z * z / 2)
        / math.sqrt(2 * math.pi)
        / (6 * math.sqrt(n))
    )


def _zero_spread(
    shift: float, units: int, confidence: float, score_range: tuple[float, float]
) -> tuple[float, float]:
    """Zero-event bound when every unit's difference equals ``shift``.

    The share of units that differ from the shift is below 1 - tail^(1/units) (one-sided, tail =
    (1 - confidence) / 2); each of those could move the mean as far as the score range allows.
    """
    span = score_range[1] - score_range[0]
    rate = zero_event_rate(units, (1.0 - confidence) / 2)
    return shift - rate * (shift + span), shift + rate * (span - shift)


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
    score_range: tuple[float, float] | None = None,
) -> DeltaInterval:
    """Interval for the paired delta, the method chosen by the data unless ``method`` names one.

    ``method="auto"``:

    - declared clusters: the cluster-robust t interval (G - 1 dof);
    - binary scores: Tango's score interval, also at b = c = 0 (n = 50: +-5.1 pts at 90%);
    - continuous scores in a known range (``score_range``, or [0, 1] when every score lies in it):
      the betting interval (Waudby-Smith & Ramdas 2023) when n < AUTO_MIN_T (500) or t's predicted
      one-sided error excess from the sample skewness exceeds AUTO_MAX_SKEW_ERROR (.005), else t;
    - other continuous scores: the paired t interval.

    Why this rule (seeded simulation, nominal 90%, 1,000 runs a cell;
    tests/stats/test_stats_betting.py):
    with 2% of items dropping by .75 (delta = -1.5 pts) t's lower bound misses .50 / .15 / .10 /
    .07 of the time at n = 30 / 100 / 300 / 1,000 where it should miss .05, while betting misses
    .00 / .00 / .00 / .02: valid at every n for every distribution on the range, at the price of
    width (1.5x t at n = 1,000, 2-7x below 300, where no valid interval can be narrow: a 2% drop is
    simply unseen at n = 30). Below 500 items an unseen rare drop is too likely for t (a 1.5% drop
    of a full point goes unseen at n = 300 one time in 90), so t needs n >= 500 and near-symmetric
    differences; the skewness term reaches .005 for 2% drops only at n ~ 20,000.

    Where coverage at nominal 90% holds within [.88, .97] (tests/stats/test_stats_error_rates.py):
    Tango from about 3 expected discordant pairs (n psi >= 3; exact sums, .886-.94 over n = 30 ...
    1,000), and conservative, never below .88, under that; t where auto keeps it (.903 / .900 at
    n = 1,000 / 2,000); cluster-t with 50 clusters (.897). Betting is valid rather than exact:
    its coverage is at least nominal everywhere and above .97 at small n (.975 at n = 1,000 and
    1.00 below 300 on rare drops), which is the price of holding for every distribution.
    False PASS at delta = -tolerance (tolerance 1.5 pts, alpha .05): binary, exact, at most .054
    over n = 30 ... 1,000 and every flip rate; rare large drops through auto .000 / .000 / .000 /
    .010 at n = 30 / 100 / 300 / 1,000 (t alone: .46 / .17 / .085 / .060); t where auto keeps it
    .043 / .053; cluster-t .055.

    Whenever every difference is equal (identical outputs, a constant shift), every method but
    Tango gives the zero-event bound for bounded scores ("zero-spread"), never a zero-width
    interval; a cluster-robust interval does the same over clusters when every cluster has the same
    mean. Scores outside [0, 1] without a declared range take the observed range for that bound.

    ``rng`` (default: seed 0) draws the bootstrap resamples: of the bootstrap methods, and of the
    cross-check that t, cluster-t and betting carry in ``bootstrap_low`` / ``bootstrap_high``
    unless ``cross_check`` is False (simulations that only need the interval); t and betting also
    carry each other as a cross-check.
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
    bounds = _score_range(o, w, score_range)
    flip_rate = float(np.count_nonzero(d)) / n
    delta = float(d.mean())
    scale = max(1.0, float(np.abs(d).max()))
    constant = float(d.max() - d.min()) <= 1e-12 * scale
    if method == "auto":
        if groups is not None:
            method = "cluster-t"
        elif binary:
            method = "tango"
        elif bounds is not None and (
            n < AUTO_MIN_T or constant or _skew_error(d, confidence) > AUTO_MAX_SKEW_ERROR
        ):
            method = "betting"
        else:
            method = "t"
    if method not in METHODS[:-1]:
        raise ValueError(
            f"paired_interval: unknown method {method!r}; known: auto, " + ", ".join(METHODS[:-1])
        )
    if method.startswith("cluster") and groups is None:
        raise ValueError(f"paired_interval: method {method!r} needs clusters=")
    if method == "tango" and (b is None or c is None):
        raise ValueError("paired_interval: method 'tango' needs scores in {0, 1}")
    if method == "betting" and bounds is None:
        raise ValueError(
            "paired_interval: method 'betting' needs bounded scores "
            "(hint: pass score_range=(low, high), the scorer's possible range)"
        )
    if n < 2 and method in ("t", "bootstrap") and not constant:
        raise ValueError(f"paired_interval: method {method!r} needs at least 2 paired items")
    # McNemar ignores declared clusters: it is reported, never gated on.
    p_value = mcnemar_exact(b, c) if b is not None and c is not None else _wilcoxon(d)
    se = float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    gen = rng if rng is not None else np.random.default_rng(0)
    span = bounds if bounds is not None else _observed_range(o, w)
    extra: dict[str, Any] = {}
    if bounds is not None:
        extra.update(score_low=bounds[0], score_high=bounds[1])
        extra["range_declared"] = score_range is not None
    boot: tuple[float, float] | None = None
    if method == "tango":
        assert b is not None and c is not None
        # For binary d, E[d^2] = flip rate, so var(d) = psi - delta^2 (the score test's scale).
        se = math.sqrt(max(flip_rate - delta * delta, 0.0) / n)
        low, high = tango_interval(b, c, n, confidence)
    elif constant and not method.startswith("cluster"):
        low, high = _zero_spread(delta, n, confidence, span)
        method, se = "zero-spread", 0.0
        extra.update(score_low=span[0], score_high=span[1])
    elif method in ("t", "bootstrap", "betting"):
        t_iv = _t_interval(delta, se, n - 1, confidence) if n > 1 else None
        if (method == "betting" or cross_check) and bounds is not None:
            d_span = bounds[1] - bounds[0]
            bet = betting_interval(d, -d_span, d_span, confidence)
            extra.update(betting_low=bet.low, betting_high=bet.high)
        if (method == "bootstrap" or cross_check) and n > 1:
            means = bootstrap_means(d, n_boot, gen)
            boot = _percentile(means, confidence)
        if method == "t":
            assert t_iv is not None
            low, high = t_iv
        elif method == "betting":
            low, high = extra["betting_low"], extra["betting_high"]
            if t_iv is not None:
                extra.update(t_low=t_iv[0], t_high=t_iv[1])
        else:
            assert boot is not None
            low, high = boot
            se = float(means.std(ddof=1))
            if t_iv is not None:
                extra.update(t_low=t_iv[0], t_high=t_iv[1])
    else:
        assert groups is not None and n_groups is not None
        if n_groups < 2:
            raise ValueError(
                "paired_interval: cluster-robust intervals need at least 2 clusters "
                "(hint: drop the cluster key or declare finer clusters)"
            )
        sums = np.bincount(groups, weights=d - delta, minlength=n_groups)
        se = math.sqrt(n_groups / (n_groups - 1) * float(sums @ sums)) / n
        if se <= 1e-12 * scale / n:
            # Every cluster has the same mean: the zero-event bound over clusters, not zero width.
            low, high = _zero_spread(delta, n_groups, confidence, span)
            method, se = "zero-spread", 0.0
            extra.update(score_low=span[0], score_high=span[1])
        else:
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
                         bootstrap_high=None if boot is None else boot[1], **extra)  # fmt: skip


def _observed_range(o: NDArray[np.float64], w: NDArray[np.float64]) -> tuple[float, float]:
    """Scores of no declared range: the observed one, at least 1 wide (a heuristic, said so)."""
    lo, hi = float(min(o.min(), w.min())), float(max(o.max(), w.max()))
    pad = max(0.0, 1.0 - (hi - lo)) / 2
    return lo - pad, hi + pad


def _cluster_ids(clusters: Sequence[Hashable], n: int) -> NDArray[np.intp]:
    if len(clusters) != n:
        raise ValueError(
            f"paired_interval: {len(clusters)} cluster keys for {n} items "
            "(hint: give one cluster key per paired item)"
        )
    index: dict[Hashable, int] = {}
    return np.fromiter((index.setdefault(k, len(index)) for k in clusters), np.intp, count=n)


def _t_interval(delta: float, se: float, dof: int, confidence: float) -> tuple[float, float]:
    from pytest_parity.stats.distributions import t_ppf

    q = t_ppf(0.5 + confidence / 2, max(dof, 1))
    return delta - q * se, delta + q * se


def _percentile(samples: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    # Percentile rather than BCa: BCa's skew correction undercovered on rare large score drops.
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def _wilcoxon(d: NDArray[np.float64]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value, zeros dropped, as ``scipy.stats.wilcoxon(d)``.

    None when every difference is zero (the test has nothing to rank).
    """
    nonzero = d[d != 0.0]
    m = nonzero.size
    if m == 0:
        return None
    if m <= 50:  # scipy's exact distribution where it applies
        from scipy.stats import wilcoxon

        return float(wilcoxon(d).pvalue)
    # scipy's normal approximation (tie-corrected variance), without its per-call overhead
    # that dominated coverage simulations.
    ranks = _average_ranks(np.abs(nonzero))
    _, ties = np.unique(ranks, return_counts=True)
    var = m * (m + 1) * (2 * m + 1) / 24 - float((ties**3 - ties).sum()) / 48
    if var <= 0.0:
        return 1.0
    z = (float(ranks[nonzero > 0].sum()) - m * (m + 1) / 4) / math.sqrt(var)
    return 2.0 * _NORMAL.cdf(-abs(z))


def _average_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n of x, ties given their average rank (``scipy.stats.rankdata``'s default)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    counts = np.diff(np.r_[starts, xs.size])
    avg = starts + (counts + 1) / 2.0  # the mean of ranks start+1 .. start+count
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, counts)
    return ranks


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
