"""Interval coverage and false PASS rates: seeded simulations, plus exact sums where data are binary.

Coverage is checked at nominal 0.95 against the band 0.93-0.97. With 2,000 replications the
simulation's own standard error is 0.005, so the band is about four of them either side.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import pytest
from scipy.stats import binom

from pytest_parity import stats as S

TOL = 0.015
Draw = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


def simulate(
    draw: Draw,
    reps: int,
    seed: int,
    *,
    method: str = "auto",
    clusters: Sequence[Hashable] | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
) -> list[S.DeltaInterval]:
    gen = np.random.default_rng(seed)
    out = []
    for _ in range(reps):
        old, new = draw(gen)
        out.append(
            S.paired_interval(
                old,
                new,
                confidence=confidence,
                method=method,
                clusters=clusters,
                rng=gen,
                n_boot=n_boot,
                cross_check=False,  # coverage of the gate's own interval only
            )
        )
    return out


def coverage(intervals: list[S.DeltaInterval], true_delta: float) -> float:
    return float(np.mean([iv.low <= true_delta <= iv.high for iv in intervals]))


def binary_draw(n: int, pb: float, pc: float) -> Draw:
    def draw(gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cells = gen.choice(4, size=n, p=[pb, pc, 0.6 - pb, 0.4 - pc])
        return np.isin(cells, (0, 2)).astype(float), np.isin(cells, (1, 2)).astype(float)

    return draw


def heavy_tailed_draw(n: int) -> Draw:
    """Small noise, 8% items with a large drop, 4% with a large gain: mean -0.016."""

    def draw(gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        u = gen.random(n)
        d = np.where(u < 0.08, -gen.exponential(0.3, n), gen.normal(0.0, 0.05, n))
        d = np.where(u > 0.96, gen.exponential(0.2, n), d)
        old = gen.random(n)
        return old, old + d

    return draw


def clustered_draw(groups: np.ndarray, delta: float) -> Draw:
    """A shared shift per cluster (passage / subject) on top of item noise."""
    n_groups = int(groups.max()) + 1

    def draw(gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        d = delta + gen.normal(0.0, 0.05, n_groups)[groups] + gen.normal(0.0, 0.1, groups.size)
        old = gen.random(groups.size)
        return old, old + d

    return draw


def exact_tango_coverage(n: int, pb: float, pc: float, confidence: float = 0.95) -> float:
    """Coverage of paired_interval on binary data, summed over every (b, c) of weight > 1e-10."""
    true, psi, total = pc - pb, pb + pc, 0.0
    for m in range(n + 1):
        weight = binom.pmf(m, n, psi)
        if weight < 1e-10:
            continue
        bs = np.arange(m + 1)
        wb = binom.pmf(bs, m, pb / psi)
        for b in bs[wb > 1e-10]:
            low, high = S.tango_interval(int(b), m - int(b), n, confidence)
            total += weight * wb[b] * (low <= true <= high)
    return float(total)


# --- binary and rare flips -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "pb", "pc"),
    [
        (1000, 0.05, 0.03),  # typical int8 flip rate
        (300, 0.10, 0.05),
        (1000, 0.01, 0.01),  # rare flips, equal
        (2000, 0.006, 0.004),  # rare flips: ~20 discordant pairs
        (5000, 0.002, 0.001),
        (1000, 0.005, 0.002),  # ~7 discordant pairs: the hardest case in the band
        (500, 0.01, 0.004),
    ],
)
def test_binary_coverage_is_in_band_exactly(n: int, pb: float, pc: float) -> None:
    assert 0.93 <= exact_tango_coverage(n, pb, pc) <= 0.97


def test_one_expected_flip_is_conservative_never_anti_conservative() -> None:
    # Wald and bootstrap collapse here (65% in the notes); the score interval over-covers.
    assert exact_tango_coverage(200, 0.0025, 0.0025) >= 0.95


@pytest.mark.parametrize(
    ("n", "pb", "pc", "seed"), [(1000, 0.05, 0.03, 1), (2000, 0.006, 0.004, 2)]
)
def test_binary_coverage_through_paired_interval(n: int, pb: float, pc: float, seed: int) -> None:
    intervals = simulate(binary_draw(n, pb, pc), 1000, seed)
    assert {iv.method for iv in intervals} == {"tango"}
    assert 0.93 <= coverage(intervals, pc - pb) <= 0.97


# --- continuous ----------------------------------------------------------------------------------


def test_continuous_t_coverage_on_heavy_tailed_differences() -> None:
    # Unbounded differences (scores leave [0, 1]), so auto keeps t, as it must without a range.
    intervals = simulate(heavy_tailed_draw(400), 2000, 3)
    assert {iv.method for iv in intervals} == {"t"}
    assert 0.93 <= coverage(intervals, -0.016) <= 0.97


def test_continuous_bootstrap_coverage_on_bounded_scores() -> None:
    def draw(gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        old = gen.beta(5, 2, 300)
        new = np.clip(old + gen.normal(-0.01, 0.08, 300), 0.0, 1.0)
        return old, new

    # True delta of the clipped scores, from one large sample (Monte Carlo error ~1e-4).
    gen = np.random.default_rng(99)
    old = gen.beta(5, 2, 1_000_000)
    true_delta = float(np.mean(np.clip(old + gen.normal(-0.01, 0.08, old.size), 0, 1) - old))
    intervals = simulate(draw, 1500, 4, method="bootstrap", n_boot=1000)
    assert 0.93 <= coverage(intervals, true_delta) <= 0.97


# --- clustered -----------------------------------------------------------------------------------

GROUPS = np.repeat(np.arange(50), 20)  # 50 passages x 20 questions


@pytest.mark.parametrize(("method", "seed"), [("auto", 5), ("cluster-bootstrap", 6)])
def test_clustered_coverage(method: str, seed: int) -> None:
    intervals = simulate(
        clustered_draw(GROUPS, -0.01), 1500, seed, method=method, clusters=list(GROUPS)
    )
    assert {iv.method for iv in intervals} == {"cluster-t" if method == "auto" else method}
    assert 0.93 <= coverage(intervals, -0.01) <= 0.97


def test_ignoring_declared_clusters_would_undercover() -> None:
    intervals = simulate(clustered_draw(GROUPS, -0.01), 500, 7)
    assert coverage(intervals, -0.01) < 0.85


# --- false PASS at the margin --------------------------------------------------------------------


def _false_pass_rate(intervals: list[S.DeltaInterval]) -> float:
    return float(np.mean([S.noninferiority(iv, TOL).status == "PASS" for iv in intervals]))


def test_false_pass_rate_at_minus_tolerance_binary() -> None:
    # pb - pc = tolerance with flip rate .08
    intervals = simulate(binary_draw(1000, 0.0475, 0.0325), 2000, 8, confidence=0.90)
    assert _false_pass_rate(intervals) <= 0.05 + 0.02


def test_false_pass_rate_at_minus_tolerance_continuous() -> None:
    def draw(gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        old = gen.random(300)
        return old, old - TOL + gen.normal(0.0, 0.1, 300) * gen.choice([0.2, 2.0], 300)

    assert _false_pass_rate(simulate(draw, 2000, 9, confidence=0.90)) <= 0.05 + 0.02


def test_false_pass_rate_at_minus_tolerance_clustered() -> None:
    intervals = simulate(
        clustered_draw(GROUPS, -TOL), 1500, 10, clusters=list(GROUPS), confidence=0.90
    )
    assert _false_pass_rate(intervals) <= 0.05 + 0.02


def test_clustered_items_without_cluster_key_pass_a_regression_far_too_often() -> None:
    # The README's number: 50 passages of 10 questions (passage effect sd .05, item sd .05) at a
    # true delta of exactly -tolerance. Without cluster_key the t interval treats 500 items as
    # independent and PASSes .24 of the time; with it, cluster-t keeps alpha (.05).
    keys = list(np.repeat(np.arange(50), 10))

    def false_pass(declared: bool, seed: int) -> float:
        rng = np.random.default_rng(seed)
        passed = 0
        for _ in range(600):
            d = np.repeat(rng.normal(0, 0.05, 50), 10) + rng.normal(0, 0.05, 500) - TOL
            iv = S.paired_interval(
                np.full(500, 0.5), 0.5 + d, confidence=0.90, rng=rng, cross_check=False,
                clusters=keys if declared else None,
            )  # fmt: skip
            passed += S.noninferiority(iv, TOL).status == "PASS"
        return passed / 600

    assert 0.18 < false_pass(False, 5) < 0.30
    assert false_pass(True, 6) <= 0.07
