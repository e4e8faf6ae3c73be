"""Betting intervals and confidence sequences for bounded means, and the auto rule that uses them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from pytest_parity import stats as S

TOL = 0.015


def drops(n: int, gen: np.random.Generator, share: float = 0.02, size: float = 0.75) -> np.ndarray:
    """Differences where ``share`` of items fall by ``size`` and the rest move by +-5 pts noise."""
    u = gen.random(n)
    return np.where(u < share, -size, gen.uniform(-0.05, 0.05, n))


def reference_log_capital(x: np.ndarray, m: float, alpha: float) -> tuple[float, float]:
    """Running maxima of log K+ and log K- at m, written item by item from the paper's recipe."""
    n = x.size
    mu, s2 = 0.5, 0.25
    sum_x, sum_sq = 0.0, 0.0
    up = dn = best_up = best_dn = 0.0
    for i, xi in enumerate(x, start=1):
        lam = math.sqrt(2 * math.log(2 / alpha) / (n * s2))
        up += math.log(1 + min(lam, 0.5 / m) * (xi - m))
        dn += math.log(1 - min(lam, 0.5 / (1 - m)) * (xi - m))
        best_up, best_dn = max(best_up, up), max(best_dn, dn)
        sum_x += xi
        mu = (0.5 + sum_x) / (i + 1)
        sum_sq += (xi - mu) ** 2
        s2 = (0.25 + sum_sq) / (i + 1)
    return best_up, best_dn


def test_betting_bounds_are_where_the_hedged_capital_crosses_two_over_alpha() -> None:
    gen = np.random.default_rng(1)
    v = np.clip(gen.normal(0.6, 0.15, 200), 0, 1)
    iv = S.betting_interval(v, 0.0, 1.0, 0.90)
    x = v[np.random.default_rng(0x5EED).permutation(v.size)]  # the documented fixed order
    threshold = math.log(2 / 0.10)
    for bound, side in ((iv.low, 0), (iv.high, 1)):
        outside = reference_log_capital(x, bound, 0.10)
        inward = reference_log_capital(x, bound + (1e-6 if side == 0 else -1e-6), 0.10)
        assert max(outside) >= threshold - 1e-9 and max(inward) < threshold
    assert iv.low < v.mean() < iv.high and iv.estimate == pytest.approx(v.mean())


def test_betting_interval_mirrors_and_rescales() -> None:
    d = drops(300, np.random.default_rng(2))
    a = S.betting_interval(d, -1.0, 1.0)
    b = S.betting_interval(-d, -1.0, 1.0)
    assert (b.low, b.high) == pytest.approx((-a.high, -a.low), abs=1e-8)
    c = S.betting_interval(10 * d + 5, -5.0, 15.0)
    assert (c.low, c.high) == pytest.approx((10 * a.low + 5, 10 * a.high + 5), abs=1e-6)


def test_betting_is_a_real_interval_on_one_value_and_on_identical_values() -> None:
    one = S.betting_interval([0.0], -1.0, 1.0)
    assert one.low < 0.0 < one.high
    flat = S.betting_interval(np.zeros(50), -1.0, 1.0)
    assert -0.2 < flat.low < -0.05 and flat.high == pytest.approx(-flat.low)


def test_betting_rejects_values_outside_the_range() -> None:
    with pytest.raises(ValueError, match=r"values must lie in the declared range \[0, 1\]"):
        S.betting_interval([0.5, 1.2], 0.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        S.BettingSequence(1.0, 1.0)


@pytest.mark.parametrize(("n", "kind"), [(30, "drops"), (100, "drops"), (300, "drops"),
                                          (100, "normal"), (1000, "normal")])  # fmt: skip
def test_betting_interval_covers_at_every_n(n: int, kind: str) -> None:
    """Valid at every n for every bounded distribution: coverage >= nominal, lower misses <= 5%."""
    gen = np.random.default_rng(n)
    true = -0.015 if kind == "drops" else -0.01
    reps = 400 if n < 1000 else 150
    lows, highs = np.empty(reps), np.empty(reps)
    for r in range(reps):
        d = drops(n, gen) if kind == "drops" else np.clip(gen.normal(-0.01, 0.1, n), -1, 1)
        iv = S.betting_interval(d, -1.0, 1.0, 0.90)
        lows[r], highs[r] = iv.low, iv.high
    assert np.mean((lows <= true) & (true <= highs)) >= 0.88
    assert np.mean(lows > true) <= 0.05 + 0.01


def test_betting_interval_is_fast_at_a_hundred_thousand_items() -> None:
    import time

    d = np.clip(np.random.default_rng(3).normal(-0.01, 0.1, 100_000), -1, 1)
    start = time.process_time()
    iv = S.betting_interval(d, -1.0, 1.0)
    assert time.process_time() - start < 5.0  # ~0.3 s of CPU on an idle core
    t = sps.ttest_1samp(d, 0.0).confidence_interval(0.90)
    # Asymptotically about sqrt(2 log(2/alpha)) / z = 1.49 times t's width, here at most 1.5.
    assert 1.2 < (iv.high - iv.low) / (t.high - t.low) < 1.5


# --- the confidence sequence -----------------------------------------------------------------


def test_sequence_does_not_depend_on_how_the_stream_is_batched() -> None:
    d = drops(3000, np.random.default_rng(4))
    results = []
    for size in (1, 100, 3000):
        seq = S.BettingSequence(-1.0, 1.0, 0.90, grid=4097)
        for start in range(0, d.size, size):
            seq.update(d[start : start + size])
        results.append(seq.interval())
    assert results[0] == results[1] == results[2]
    assert results[0][0] < d.mean() < results[0][1]


def test_sequence_starts_at_the_whole_range_and_narrows() -> None:
    seq = S.BettingSequence(-1.0, 1.0, 0.90)
    assert seq.interval() == (-1.0, 1.0) and seq.n == 0
    widths = [np.subtract(*seq.update(np.full(200, 0.01))[::-1]) for _ in range(5)]
    assert all(a > b for a, b in itertools.pairwise(widths)) and seq.n == 1000
    assert seq.estimate == pytest.approx(0.01)


@pytest.mark.slow
def test_sequence_looked_at_after_every_batch_keeps_its_error_rate() -> None:
    """Time-uniform: the chance the mean EVER leaves the interval over 20 looks stays <= alpha.

    A fixed-n interval checked after every batch would leave it far more often (checked below
    with t on the same streams), which is why early stopping and drift monitoring need this one.
    """
    gen = np.random.default_rng(5)
    streams, batches, size, true = 200, 20, 100, -0.015
    ever_seq = ever_t = 0
    for _ in range(streams):
        d = drops(batches * size, gen)
        seq = S.BettingSequence(-1.0, 1.0, 0.90, grid=4097)
        miss_seq = miss_t = False
        for k in range(batches):
            low, high = seq.update(d[k * size : (k + 1) * size])
            miss_seq |= not low <= true <= high
            part = d[: (k + 1) * size]
            ci = sps.t.interval(0.90, part.size - 1, part.mean(), sps.sem(part))
            miss_t |= not ci[0] <= true <= ci[1]
        ever_seq += miss_seq
        ever_t += miss_t
    assert ever_seq / streams <= 0.10
    assert ever_t / streams > 0.25  # repeated fixed-n looks inflate the 10% error rate


# --- the auto rule ---------------------------------------------------------------------------


def test_auto_uses_betting_at_small_n_and_on_heavy_tails_and_t_otherwise() -> None:
    gen = np.random.default_rng(6)
    old = gen.uniform(0.8, 0.95, 3000)
    benign = old + gen.uniform(-0.05, 0.05, 3000)
    heavy = old + drops(3000, gen)
    assert S.paired_interval(old[:400], benign[:400]).method == "betting"
    iv = S.paired_interval(old, benign)
    assert iv.method == "t" and iv.betting_low is not None and iv.betting_high is not None
    assert iv.betting_low < iv.low < iv.high < iv.betting_high  # t is the narrower
    heavy_iv = S.paired_interval(old, heavy)
    assert heavy_iv.method == "betting" and heavy_iv.t_low is not None
    assert heavy_iv.bootstrap_low is not None
    # Scores outside [0, 1] with no declared range: no betting (it needs the true range) ...
    assert S.paired_interval(10 * old[:400], 10 * benign[:400]).method == "t"
    # ... unless the caller declares it.
    declared = S.paired_interval(10 * old[:400], 10 * benign[:400], score_range=(0, 10))
    assert declared.method == "betting" and declared.range_declared
    assert (declared.score_low, declared.score_high) == (0.0, 10.0)


def test_noninferiority_reports_t_and_bootstrap_beside_betting() -> None:
    gen = np.random.default_rng(7)
    old = gen.uniform(0.8, 0.95, 300)
    new = old + drops(300, gen)
    iv = S.paired_interval(old, new, rng=S.task_rng(0, "rubric"))
    v = S.noninferiority(iv, TOL)
    assert iv.method == "betting" and iv.t_low is not None and iv.t_high is not None
    text = " | ".join(v.reasons)
    assert "betting interval: valid at every n for scores in [0, 1]" in text
    assert "cross-check: t 90% CI [" in text and "cross-check: paired bootstrap 90% CI [" in text
    assert (v.p_fail < 0.05) == (v.status == "FAIL")
