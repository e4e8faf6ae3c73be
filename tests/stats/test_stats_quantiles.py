"""Quantile intervals of latency: exact order-statistic intervals keep their coverage, the paired
bootstrap of a quantile's relative change finds a known slowdown."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_parity.stats.quantiles import paired_quantile_change, quantile_interval


@pytest.mark.parametrize(("q", "n"), [(0.5, 40), (0.5, 400), (0.99, 500)])
def test_exact_quantile_interval_covers_at_least_its_level(q: float, n: int) -> None:
    rng = np.random.default_rng(11)
    true = float(np.exp(np.quantile(rng.standard_normal(2_000_000), q)))  # lognormal quantile
    hits = 0
    sims = 1000
    for _ in range(sims):
        x = np.exp(rng.standard_normal(n))
        _, lo, hi = quantile_interval(x, q, alpha=0.05)
        assert lo is not None and hi is not None
        hits += lo <= true <= hi
    # two-sided 90%: exact at every n, so at least 0.90 up to simulation noise (sd ~0.01)
    assert hits / sims >= 0.88, hits / sims


def test_a_tail_too_far_for_the_sample_has_no_upper_end() -> None:
    x = np.arange(1.0, 101.0)
    est, lo, hi = quantile_interval(x, 0.99, alpha=0.05)
    assert hi is None and lo is not None and est == pytest.approx(np.quantile(x, 0.99))


def test_paired_change_finds_a_doubling_and_nothing_in_identical_stacks() -> None:
    rng = np.random.default_rng(3)
    old = np.exp(rng.standard_normal(300)) / 10
    same = paired_quantile_change(old, old.copy(), 0.5, np.random.default_rng(1))
    assert same.change == 0 and same.lower == 0 and same.upper == 0
    double = paired_quantile_change(old, 2 * old, 0.99, np.random.default_rng(1))
    assert double.change == pytest.approx(1.0) and double.lower == pytest.approx(1.0)
    # 20% slower on a noisy stack: the interval holds the truth and excludes no change
    noisy = old * 1.2 * np.exp(0.05 * rng.standard_normal(300))
    ch = paired_quantile_change(old, noisy, 0.5, np.random.default_rng(1))
    assert ch.lower < 0.2 < ch.upper and ch.lower > 0
    again = paired_quantile_change(old, noisy, 0.5, np.random.default_rng(1))
    assert again == ch, "same seed, same interval"
