"""Paired delta intervals: method choice, reference implementations, degenerate data, properties."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.optimize import minimize_scalar

from pytest_parity import stats as S


def binary_pair(n: int, pb: float, pc: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired 0/1 scores where b ~ pb * n items regress and c ~ pc * n items improve."""
    rng = np.random.default_rng(seed)
    cell = rng.choice(4, size=n, p=[pb, pc, 0.6 - pb, 0.4 - pc])
    old = np.isin(cell, (0, 2)).astype(int)  # cells: 0 = (1, 0), 1 = (0, 1), 2 = (1, 1), 3 = (0, 0)
    new = np.isin(cell, (1, 2)).astype(int)
    return old, new


# --- seeds ---------------------------------------------------------------------------------------


def test_task_seed_is_pinned_crc32_and_differs_per_task_and_run() -> None:
    assert S.task_seed(42, "mmlu") == 50826763
    assert S.task_seed(0, "arc_easy") == 198549824
    assert S.task_seed(42, "mmlu") != S.task_seed(43, "mmlu") != S.task_seed(42, "mmlu2")


def test_task_seed_is_the_same_in_a_process_with_another_hash_seed() -> None:
    code = "from pytest_parity.stats.intervals import task_seed; print(task_seed(7, 'gsm8k'))"
    env = {"PYTHONHASHSEED": "123", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == S.task_seed(7, "gsm8k")


# --- method choice and degenerate data -----------------------------------------------------------


@pytest.mark.parametrize("clusters", [None, list(range(300))])
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_identical_outputs_give_a_real_interval_without_touching_the_rng(
    kind: str, clusters: list[int] | None
) -> None:
    # No [0, 0] shortcut: zero flips in 300 items leave a flip rate up to ~1% unseen.
    gen = np.random.default_rng(3)
    scores = gen.integers(0, 2, 300) if kind == "binary" else gen.random(300)
    rng = np.random.default_rng(11)
    before = rng.bit_generator.state
    iv = S.paired_interval(scores, scores.copy(), rng=rng, clusters=clusters, method="auto")
    assert (iv.delta, iv.flip_rate) == (0.0, 0.0)
    assert iv.low < 0.0 < iv.high and iv.low == pytest.approx(-iv.high)
    if kind == "binary" and clusters is None:
        assert iv.method == "tango" and (iv.b, iv.c) == (0, 0) and iv.p_value == 1.0
        z2 = sps.norm.ppf(0.95) ** 2
        assert iv.high == pytest.approx(z2 / (300 + z2), rel=1e-3)  # Tango at b = c = 0
    else:
        # Zero-event bound: fewer than 1 - .05^(1/300) = 1.0% of units differ, each by <= 1.
        assert iv.method == "zero-spread" and (iv.score_low, iv.score_high) == (0.0, 1.0)
        assert iv.high == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-12)
    assert rng.bit_generator.state == before


def test_tango_at_zero_flips_matches_the_reference_notes() -> None:
    # STATISTICS.md section 1: n = 50 gives [-5.1, +5.1] points; ~180 items fit inside 1.5.
    low, high = S.tango_interval(0, 0, 50, 0.90)
    assert (round(100 * low, 1), round(100 * high, 1)) == (-5.1, 5.1)
    assert S.tango_interval(0, 0, 177, 0.90)[0] < -0.015 < S.tango_interval(0, 0, 178, 0.90)[0]


def test_method_is_chosen_by_the_data() -> None:
    old, new = binary_pair(500, 0.05, 0.03, seed=1)
    assert S.paired_interval(old, new).method == "tango"
    cont = np.random.default_rng(2).random(500)
    assert S.paired_interval(cont, cont + 0.01 * (cont > 0.5)).method == "t"
    groups = [i // 10 for i in range(500)]
    assert S.paired_interval(old, new, clusters=groups).method == "cluster-t"
    iv = S.paired_interval(old, new, clusters=groups, method="cluster-bootstrap", n_boot=500)
    assert iv.method == "cluster-bootstrap" and iv.clusters == 50


def test_binary_counts_follow_the_b_c_convention() -> None:
    old = [1, 1, 1, 0, 0, 1, 0]
    new = [0, 0, 1, 1, 0, 1, 0]
    iv = S.paired_interval(old, new)
    assert (iv.b, iv.c, iv.n) == (2, 1, 7)  # b = old right & new wrong
    assert iv.delta == pytest.approx(-1 / 7)
    assert iv.flip_rate == pytest.approx(3 / 7)
    assert iv.p_value == pytest.approx(S.mcnemar_exact(2, 1))


@pytest.mark.parametrize("shift", [0.25, -0.01])
def test_a_constant_shift_gives_the_zero_event_bound_not_a_zero_width_interval(
    shift: float,
) -> None:
    old = np.linspace(0.1, 0.5, 40)
    for method in ("auto", "t", "bootstrap", "betting"):
        iv = S.paired_interval(old, old + shift, method=method, n_boot=200)
        assert iv.method == "zero-spread" and iv.se == 0.0
        rate = 1 - 0.05 ** (1 / 40)  # share of items that could still differ unseen
        # Each of them could differ by as much as the [0, 1] range allows (d in [-1, 1]).
        assert iv.low == pytest.approx(shift - rate * (shift + 1))
        assert iv.high == pytest.approx(shift + rate * (1 - shift))
        assert iv.low < iv.delta < iv.high


def test_every_cluster_with_the_same_mean_gives_the_zero_event_bound_over_clusters() -> None:
    d = np.tile([0.1, -0.1], 100)  # 50 clusters of 4: spread inside, none between
    groups = np.repeat(np.arange(50), 4)
    iv = S.paired_interval(np.full(200, 0.5), 0.5 + d, clusters=list(groups))
    assert iv.method == "zero-spread" and iv.clusters == 50
    assert iv.high == pytest.approx(1 - 0.05 ** (1 / 50))


@pytest.mark.parametrize(
    ("old", "new", "kwargs", "message"),
    [
        ([1, 0], [1], {}, "old has 2 scores but new has 1"),
        ([], [], {}, "no paired items"),
        ([1.0, float("nan")], [1.0, 0.0], {}, "index 1 is not a finite number"),
        ([1, 0], [0, 0], {"confidence": 1.5}, "confidence must be in (0, 1)"),
        ([1, 0], [0, 0], {"clusters": ["a"]}, "1 cluster keys for 2 items"),
        ([1, 0], [0, 0], {"clusters": ["a", "a"]}, "at least 2 clusters"),
        ([1, 0], [0, 0], {"method": "wald"}, "unknown method 'wald'"),
        ([0.5, 0.2], [0.1, 0.2], {"method": "tango"}, "needs scores in {0, 1}"),
        ([1, 0], [0, 0], {"method": "cluster-t"}, "needs clusters="),
        ([0.5, 0.3], [0.2, 0.1], {"method": "t", "score_range": (0, 0.25)}, "outside the declared"),
        ([1.5, 2.0], [0.2, 0.1], {"method": "betting"}, "method 'betting' needs bounded scores"),
    ],
)
def test_bad_input_is_one_line_naming_the_problem(
    old: list[float], new: list[float], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        S.paired_interval(old, new, **kwargs)  # type: ignore[arg-type]
    assert message in str(info.value) and "\n" not in str(info.value)


def test_to_dict_is_plain_json_builtins() -> None:
    old, new = binary_pair(400, 0.05, 0.02, seed=5)
    for iv in (
        S.paired_interval(old, new),
        S.paired_interval(old, new, method="bootstrap", n_boot=300),
        S.paired_interval(old, old),
    ):
        record = iv.to_dict()
        assert json.loads(json.dumps(record, allow_nan=False)) == record
        assert all(type(v) in (int, float, str, bool, type(None)) for v in record.values())


# --- Tango ---------------------------------------------------------------------------------------


def _restricted_mle_numeric(b: int, c: int, n: int, delta: float) -> float:
    def nll(p: float) -> float:
        return -(
            b * math.log(p) + c * math.log(p + delta) + (n - b - c) * math.log(1 - 2 * p - delta)
        )

    lo, hi = max(1e-12, -delta + 1e-12), (1 - delta) / 2 - 1e-12
    return float(
        minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-13}).x
    )


@pytest.mark.parametrize("delta", [-0.3, -0.05, 0.0, 0.1, 0.4])
def test_tango_statistic_uses_the_restricted_mle(delta: float) -> None:
    b, c, n = 7, 3, 50
    p_b = _restricted_mle_numeric(b, c, n, delta)
    expected = (c - b - n * delta) / math.sqrt(n * (2 * p_b + delta * (1 - delta)))
    assert S._tango_z(delta, b, c, n) == pytest.approx(expected, rel=1e-6)


def test_tango_bounds_are_where_the_score_test_is_exactly_at_z() -> None:
    b, c, n = 30, 12, 600
    low, high = S.tango_interval(b, c, n, 0.90)
    z = sps.norm.ppf(0.95)
    assert S._tango_z(low, b, c, n) == pytest.approx(z, abs=1e-7)
    assert S._tango_z(high, b, c, n) == pytest.approx(-z, abs=1e-7)
    assert low < (c - b) / n < high


def test_tango_stays_inside_minus_one_and_one_at_the_extremes() -> None:
    low, high = S.tango_interval(50, 0, 50, 0.95)
    assert low == -1.0 and -1.0 < high < -0.8
    low, high = S.tango_interval(0, 1, 200, 0.95)
    assert -0.02 < low < 0.0 < 0.005 < high < 0.03  # one flip: still a real, narrow interval


def test_tango_rejects_counts_that_cannot_come_from_n_items() -> None:
    with pytest.raises(ValueError, match="b \\+ c <= n"):
        S.tango_interval(30, 30, 50)


# --- reference implementations -------------------------------------------------------------------


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 5), (4, 0), (7, 3), (30, 45), (120, 80), (1, 1)])
def test_mcnemar_exact_matches_statsmodels_and_scipy(b: int, c: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    expected = float(mcnemar([[100, b], [c, 100]], exact=True).pvalue)
    assert S.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)
    if b + c:
        assert S.mcnemar_exact(b, c) == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue)


@pytest.mark.parametrize(("more", "less"), [(5, 0), (4, 0), (7, 1), (6, 1), (0, 3), (12, 9)])
def test_one_sided_exact_matches_binomtest_greater(more: int, less: int) -> None:
    expected = sps.binomtest(more, more + less, 0.5, alternative="greater").pvalue
    assert S.one_sided_exact(more, less) == pytest.approx(expected, rel=1e-12)


def test_one_sided_exact_reference_thresholds() -> None:
    assert S.one_sided_exact(0, 0) == 1.0
    assert S.one_sided_exact(5, 0) == pytest.approx(0.03125)  # k_old = 0: 5 new ones reach p < .05
    assert S.one_sided_exact(4, 0) == pytest.approx(0.0625)
    assert S.one_sided_exact(7, 1) < 0.05 < S.one_sided_exact(6, 1)


def test_t_interval_and_wilcoxon_match_scipy() -> None:
    gen = np.random.default_rng(8)
    old = gen.random(150)
    new = old + gen.normal(-0.01, 0.05, 150)
    iv = S.paired_interval(old, new, confidence=0.90)
    ci = sps.ttest_1samp(new - old, 0.0).confidence_interval(0.90)
    assert (iv.low, iv.high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert iv.p_value == pytest.approx(sps.wilcoxon(new - old).pvalue)


def test_cluster_robust_se_matches_statsmodels_cluster_ols() -> None:
    import statsmodels.api as sm

    gen = np.random.default_rng(9)
    groups = np.repeat(np.arange(40), 25)
    d = 0.05 * gen.normal(size=40)[groups] + 0.1 * gen.normal(size=1000) - 0.01
    old = gen.random(1000)
    iv = S.paired_interval(old, old + d, clusters=list(groups))
    fit = sm.OLS(d, np.ones((1000, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert iv.se == pytest.approx(float(fit.bse[0]), rel=1e-6)
    q = sps.t.ppf(0.95, 39)
    assert (iv.low, iv.high) == pytest.approx((iv.delta - q * iv.se, iv.delta + q * iv.se))
    naive = S.paired_interval(old, old + d)
    assert iv.se > 1.5 * naive.se  # clustering widens the interval, as it must


def test_cluster_keys_may_be_any_hashable_in_any_order() -> None:
    gen = np.random.default_rng(10)
    d = gen.normal(size=200)
    ints = [i % 20 for i in range(200)]
    names = [f"passage-{(i % 20) * 7919 % 23}" for i in range(200)]
    a = S.paired_interval(np.zeros(200), d, clusters=ints)
    b = S.paired_interval(np.zeros(200), d, clusters=names)
    assert (a.low, a.high, a.clusters) == pytest.approx((b.low, b.high, b.clusters))


# --- bootstrap -----------------------------------------------------------------------------------


def test_chunked_bootstrap_matches_the_naive_all_at_once_distribution() -> None:
    d = np.random.default_rng(12).exponential(size=300) - 1.0
    chunked = S.bootstrap_means(d, 6000, np.random.default_rng(1))
    naive = d[np.random.default_rng(2).integers(0, 300, size=(6000, 300))].mean(axis=1)
    assert chunked.shape == (6000,)
    assert sps.ks_2samp(chunked, naive).pvalue > 0.01
    assert chunked.std() == pytest.approx(d.std() / math.sqrt(300), rel=0.05)


def test_multinomial_cell_bootstrap_matches_index_resampling() -> None:
    d = np.repeat([-1.0, 0.0, 1.0, 0.5], [30, 400, 20, 50])
    cells = S.bootstrap_means(d, 6000, np.random.default_rng(3))
    naive = d[np.random.default_rng(4).integers(0, d.size, size=(6000, d.size))].mean(axis=1)
    assert sps.ks_2samp(cells, naive).pvalue > 0.01
    assert cells.mean() == pytest.approx(
        d.mean(), abs=3 * d.std() / math.sqrt(d.size * 6000) + 1e-4
    )


def test_same_seed_same_interval_different_seed_different_interval() -> None:
    d = np.random.default_rng(13).normal(size=400)
    z = np.zeros(400)

    def boot(seed: int) -> tuple[float, float]:
        iv = S.paired_interval(z, d, method="bootstrap", rng=S.task_rng(seed, "t1"), n_boot=2000)
        return iv.low, iv.high

    assert boot(1) == boot(1)
    assert boot(1) != boot(2)


# --- the bootstrap cross-check next to t and cluster-t ---------------------------------------------


def test_t_interval_carries_a_seeded_paired_bootstrap_that_leaves_the_verdict_on_t() -> None:
    gen = np.random.default_rng(14)
    old = gen.random(800)
    new = np.clip(old + gen.normal(-0.01, 0.08, 800), 0.0, 1.0)
    iv = S.paired_interval(old, new, rng=S.task_rng(3, "rubric"))
    plain = S.paired_interval(old, new, cross_check=False)
    assert iv.method == plain.method == "t"
    assert (iv.low, iv.high, iv.se) == (plain.low, plain.high, plain.se)
    assert plain.bootstrap_low is None and plain.bootstrap_high is None
    assert iv.bootstrap_low is not None and iv.bootstrap_high is not None
    # The same resamples as bootstrap_means with the same seed: the percentile interval of them.
    means = S.bootstrap_means(new - old, 10_000, S.task_rng(3, "rubric"))
    expected = np.quantile(means, [0.05, 0.95])
    assert (iv.bootstrap_low, iv.bootstrap_high) == pytest.approx(tuple(expected), rel=1e-12)
    # Near-normal differences: the two intervals agree to a few percent of their width.
    width = iv.high - iv.low
    assert abs(iv.bootstrap_low - iv.low) < 0.05 * width
    assert abs(iv.bootstrap_high - iv.high) < 0.05 * width
    again = S.paired_interval(old, new, rng=S.task_rng(3, "rubric"))
    other = S.paired_interval(old, new, rng=S.task_rng(4, "rubric"))
    assert again == iv and other.bootstrap_low != iv.bootstrap_low
    assert json.loads(json.dumps(iv.to_dict()))["bootstrap_low"] == iv.bootstrap_low


def test_cluster_t_is_cross_checked_by_resampling_whole_clusters() -> None:
    gen = np.random.default_rng(15)
    groups = np.repeat(np.arange(40), 10)
    d = 0.06 * gen.normal(size=40)[groups] + 0.05 * gen.normal(size=400)
    old = gen.random(400)
    iv = S.paired_interval(old, old + d, clusters=list(groups), rng=np.random.default_rng(1))
    items = S.paired_interval(old, old + d, rng=np.random.default_rng(1))
    assert iv.method == "cluster-t" and iv.bootstrap_low is not None
    assert iv.bootstrap_high is not None and items.bootstrap_low is not None
    assert items.bootstrap_high is not None
    boot_width = iv.bootstrap_high - iv.bootstrap_low
    # Resampling clusters keeps the shared passage effect that item resampling averages away.
    assert boot_width > 1.8 * (items.bootstrap_high - items.bootstrap_low)
    assert boot_width == pytest.approx(iv.high - iv.low, rel=0.15)


def test_no_cross_check_for_tango_or_identical_outputs_and_bootstrap_is_its_own() -> None:
    old, new = binary_pair(400, 0.05, 0.02, seed=16)
    tango = S.paired_interval(old, new)
    same = S.paired_interval(old, old)
    assert tango.method == same.method == "tango"
    for iv in (tango, same):
        assert (iv.bootstrap_low, iv.bootstrap_high) == (None, None)
    boot = S.paired_interval(old, new, method="bootstrap", n_boot=400)
    assert (boot.bootstrap_low, boot.bootstrap_high) == (boot.low, boot.high)


def test_cross_check_false_leaves_the_rng_untouched() -> None:
    old = np.linspace(0.0, 1.0, 50)
    rng = np.random.default_rng(17)
    before = rng.bit_generator.state
    S.paired_interval(old, old[::-1], rng=rng, cross_check=False)
    assert rng.bit_generator.state == before


# --- properties ----------------------------------------------------------------------------------

bits = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=300)
reals = st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=40)


def _mirrored(a: S.DeltaInterval, b: S.DeltaInterval) -> None:
    assert b.delta == -a.delta
    assert b.low == pytest.approx(-a.high, rel=1e-9, abs=1e-9)
    assert b.high == pytest.approx(-a.low, rel=1e-9, abs=1e-9)
    assert (b.b, b.c) == (a.c, a.b)
    assert b.method == a.method


@settings(max_examples=60, deadline=None)
@given(pairs=bits, method=st.sampled_from(["auto", "bootstrap"]))
def test_swapping_old_and_new_mirrors_binary_intervals(
    pairs: list[tuple[int, int]], method: str
) -> None:
    assume(method == "auto" or len(pairs) > 1)  # one item: only Tango has an interval
    old, new = (np.array(x) for x in zip(*pairs, strict=True))
    a = S.paired_interval(old, new, method=method, rng=np.random.default_rng(5), n_boot=500)
    b = S.paired_interval(new, old, method=method, rng=np.random.default_rng(5), n_boot=500)
    _mirrored(a, b)
    assert a.low <= a.delta <= a.high


@settings(max_examples=60, deadline=None)
@given(pairs=reals, method=st.sampled_from(["auto", "bootstrap"]))
def test_swapping_old_and_new_mirrors_continuous_intervals(
    pairs: list[tuple[float, float]], method: str
) -> None:
    old, new = (np.array(x) for x in zip(*pairs, strict=True))
    a = S.paired_interval(old, new, method=method, rng=np.random.default_rng(6), n_boot=500)
    b = S.paired_interval(new, old, method=method, rng=np.random.default_rng(6), n_boot=500)
    _mirrored(a, b)


@settings(max_examples=25, deadline=None)
@given(pairs=reals, seed=st.integers(0, 2**32 - 1))
def test_same_seed_gives_the_same_interval(pairs: list[tuple[float, float]], seed: int) -> None:
    old, new = (np.array(x) for x in zip(*pairs, strict=True))
    runs = [
        S.paired_interval(old, new, method="bootstrap", rng=np.random.default_rng(seed), n_boot=300)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@settings(max_examples=60, deadline=None)
@given(
    scores=st.one_of(
        st.lists(st.integers(0, 1), min_size=1, max_size=200),
        st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
    ),
    confidence=st.floats(0.5, 0.999),
)
def test_identical_inputs_give_a_symmetric_interval_of_real_width(
    scores: list[float], confidence: float
) -> None:
    iv = S.paired_interval(scores, list(scores), confidence=confidence)
    assert iv.delta == 0.0 and iv.low < 0.0 < iv.high
    assert iv.low == pytest.approx(-iv.high, rel=1e-6)
    assert iv.method in ("tango", "zero-spread")
