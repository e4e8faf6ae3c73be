"""Non-inferiority verdict, planning numbers and the many-task verdict, against the reference notes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from pytest_parity import stats as S

TOL = 0.015


def interval(delta: float, low: float, high: float, **kw: object) -> S.DeltaInterval:
    fields: dict[str, object] = {
        "confidence": 0.90,
        "method": "t",
        "n": 1000,
        "se": 0.008,
        "flip_rate": 0.08,
        "b": None,
        "c": None,
        "p_value": 0.3,
    }
    fields.update(kw)
    return S.DeltaInterval(delta, low, high, **fields)  # type: ignore[arg-type]


def tango_gate_pass_probability(n: int, psi: float, tol: float, delta: float) -> float:
    """Exact P(PASS) of the Tango gate by summing over the discordant counts (no simulation)."""
    total = 0.0
    for m in range(n + 1):
        weight = binom.pmf(m, n, psi)
        if weight < 1e-12:
            continue

        def passes(b: int, m: int = m) -> bool:
            return S.tango_interval(b, m - b, n, 0.90)[0] > -tol

        if not passes(0):
            continue
        lo, hi = 0, m  # the lower bound falls as b grows: the passing b form {0..k}
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if passes(mid) else (lo, mid - 1)
        total += weight * binom.cdf(lo, m, (psi - delta) / 2 / psi)
    return float(total)


# --- the verdict ---------------------------------------------------------------------------------


def test_pass_reason_matches_the_documented_sentence() -> None:
    v = S.noninferiority(interval(-0.004, -0.011, 0.003), TOL)
    assert v.status == "PASS" and not v.warn and v.items_needed is None
    assert v.reasons[0] == "delta -0.40 pts, 90% CI [-1.10, +0.30] lies above -1.50"
    assert "Wilcoxon p=0.3 tests delta = 0 and is not evidence of parity" in v.reasons[1]


def test_pass_with_upper_bound_below_zero_warns_of_a_real_regression() -> None:
    v = S.noninferiority(interval(-0.008, -0.012, -0.004), TOL)
    assert v.status == "PASS" and v.warn
    assert any("upper bound -0.40 pts < 0" in r for r in v.reasons)


def test_fail_when_the_whole_interval_is_below_minus_tolerance() -> None:
    v = S.noninferiority(interval(-0.03, -0.04, -0.02, se=0.006), TOL)
    assert v.status == "FAIL" and not v.warn and v.items_needed is None
    assert v.reasons[0].endswith("lies below -1.50")
    assert v.p_fail < 0.05


def test_inconclusive_says_how_many_items_would_settle_it() -> None:
    # psi .08 at n = 1,000 with delta 0: the reference notes need 2,197 items.
    iv = interval(0.0, -0.0155, 0.0155, se=math.sqrt(0.08 / 1000), method="tango", b=40, c=40)
    v = S.noninferiority(iv, TOL)
    # Exact over the 2x2 table: 2,222 (the notes' normal formula says 2,197).
    assert v.status == "INCONCLUSIVE" and v.items_needed == 2222
    assert v.items_needed == S.items_needed(0.08, TOL)
    assert any("about 2,222 items in total (1,222 more)" in r for r in v.reasons)
    assert v.reasons[0].endswith("straddles -1.50")


def test_inconclusive_with_enough_items_points_at_the_observed_regression() -> None:
    iv = interval(-0.012, -0.02, -0.004, n=5000, se=0.004)
    v = S.noninferiority(iv, TOL)
    assert v.status == "INCONCLUSIVE" and v.items_needed is not None and v.items_needed <= 5000
    assert any("points to a real regression" in r for r in v.reasons)


def test_a_non_significant_mcnemar_is_not_parity() -> None:
    # The notes' real example: McNemar p ~ .3 while the 90% CI runs from about -3 to +0.5 pts.
    old = [1] * 60 + [0] * 47 + [1] * 600 + [0] * 293
    new = [0] * 60 + [1] * 47 + [1] * 600 + [0] * 293
    iv = S.paired_interval(old, new)
    v = S.noninferiority(iv, TOL)
    assert iv.p_value is not None and iv.p_value > 0.2
    assert iv.low < -0.028 and iv.high > 0.003
    assert v.status == "INCONCLUSIVE"
    assert "flip rate 10.7%, method tango; exact McNemar p=0.246" in v.reasons[1]


@pytest.mark.parametrize("n", [3, 50])
def test_identical_outputs_on_few_items_do_not_pass(n: int) -> None:
    # Zero flips in 50 items: a flip rate near 6% could go unseen, so no certainty of parity.
    v = S.noninferiority(S.paired_interval([1] * n, [1] * n), TOL)
    assert v.status == "INCONCLUSIVE" and not v.warn
    assert any(f"no item flipped in {n:,}" in r for r in v.reasons)
    assert not any("exactly 0" in r for r in v.reasons)
    assert 0.05 < v.p_fail < 1.0  # the score test at -tolerance: no FAIL alarm, no certainty
    assert v.power == 0.0 and v.mde > TOL  # at this n even identical outputs cannot pass
    assert v.items_needed == 178  # Tango at b = c = 0 fits inside 1.5 pts from 178 items


def test_identical_outputs_on_enough_items_pass() -> None:
    v = S.noninferiority(S.paired_interval([1] * 400, [1] * 400), TOL)
    assert v.status == "PASS" and v.power == 1.0 and v.p_fail > 0.99


def test_a_constant_shift_of_minus_one_point_is_not_a_pass() -> None:
    old = np.linspace(0.2, 0.9, 200)
    iv = S.paired_interval(old, old - 0.01)
    v = S.noninferiority(iv, TOL)
    assert iv.high - iv.low > 0.02 and v.status == "INCONCLUSIVE"
    assert any("changed by exactly -1.00 pts over 200 items" in r for r in v.reasons)
    assert (v.p_fail < 0.05) == (v.status == "FAIL")
    # Large n: the zero-event bound narrows to ~3/n and the -1 pt regression is caught as a
    # WARN inside the tolerance, never as "exactly -1".
    big = np.linspace(0.2, 0.9, 5000)
    w = S.noninferiority(S.paired_interval(big, big - 0.01), TOL)
    assert w.status == "PASS" and w.warn


def test_bootstrap_cross_check_is_reported_and_a_disagreement_is_said_not_obeyed() -> None:
    agree = S.noninferiority(
        interval(-0.004, -0.011, 0.003, bootstrap_low=-0.0112, bootstrap_high=0.0031), TOL
    )
    assert agree.status == "PASS"
    assert "cross-check: paired bootstrap 90% CI [-1.12, +0.31]" in agree.reasons
    # Skewed differences: the bootstrap's lower bound crosses -tolerance, t's does not.
    differ = S.noninferiority(
        interval(-0.004, -0.011, 0.003, bootstrap_low=-0.016, bootstrap_high=0.002), TOL
    )
    assert differ.status == "PASS"
    assert (
        "cross-check: paired bootstrap 90% CI [-1.60, +0.20] would give INCONCLUSIVE;"
        " the verdict stays on t" in differ.reasons
    )
    clustered = S.noninferiority(
        interval(
            -0.03,
            -0.05,
            -0.02,
            method="cluster-t",
            clusters=40,
            bootstrap_low=-0.045,
            bootstrap_high=-0.021,
        ),
        TOL,
    )
    assert clustered.status == "FAIL"
    assert "cross-check: cluster bootstrap 90% CI [-4.50, -2.10]" in clustered.reasons
    tango = S.noninferiority(interval(0.0, -0.01, 0.01, method="tango", b=4, c=4), TOL)
    assert not any("cross-check" in r for r in tango.reasons)


def test_few_clusters_are_flagged() -> None:
    v = S.noninferiority(interval(0.0, -0.01, 0.01, method="cluster-t", clusters=12), TOL)
    assert any("only 12 clusters" in r for r in v.reasons)


def test_an_interval_at_the_wrong_level_is_called_out() -> None:
    v = S.noninferiority(interval(0.0, -0.01, 0.01, confidence=0.95), TOL, alpha=0.05)
    assert any("the interval is 95%, alpha 0.05 expects 90%" in r for r in v.reasons)
    v = S.noninferiority(interval(0.0, -0.01, 0.01, confidence=0.95), TOL, alpha=0.025)
    assert not any("expects" in r for r in v.reasons)


def test_tolerance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="tolerance must be > 0"):
        S.noninferiority(interval(0.0, -0.01, 0.01), 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_fail_p_value_agrees_with_the_interval_verdict(seed: int) -> None:
    """p_fail < alpha exactly when the (1 - 2 alpha) interval lies below -tolerance."""
    gen = np.random.default_rng(seed)
    n = 800
    pb, pc = 0.05 + 0.01 * seed, 0.03
    cells = gen.choice(4, size=n, p=[pb, pc, 0.6 - pb, 0.4 - pc])
    old, new = np.isin(cells, (0, 2)).astype(int), np.isin(cells, (1, 2)).astype(int)
    cont_old = gen.random(n)
    cont_new = cont_old + gen.normal(-0.01 * seed, 0.1, n)
    for iv in (S.paired_interval(old, new), S.paired_interval(cont_old, cont_new)):
        v = S.noninferiority(iv, TOL)
        assert (v.p_fail < 0.05) == (v.status == "FAIL"), (iv, v)


def test_to_dict_is_plain() -> None:
    record = S.noninferiority(interval(0.0, -0.02, 0.02), TOL).to_dict()
    assert set(record) >= {"status", "warn", "reasons", "items_needed", "mde", "p_fail", "power"}
    assert isinstance(record["reasons"], list) and isinstance(record["mde"], float)


# --- planning numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("psi", "tol", "expected"),
    [
        (0.02, TOL, 548),
        (0.05, TOL, 1372),
        (0.08, TOL, 2197),
        (0.10, TOL, 2746),
        (0.20, TOL, 5494),
        (0.03, 0.005, 7417),
    ],
)
def test_items_needed_reproduces_the_reference_table(psi: float, tol: float, expected: int) -> None:
    assert S.items_needed(psi, tol, exact=False) == expected
    assert S.items_needed(psi, tol, binary=False) == expected
    # The exact count is within a few percent of the formula where discordant pairs are many.
    assert expected <= S.items_needed(psi, tol) <= 1.2 * expected


def test_items_needed_grows_as_the_true_delta_nears_the_tolerance() -> None:
    assert (
        S.items_needed(0.08, TOL, delta=-0.005)
        > S.items_needed(0.08, TOL)
        > (S.items_needed(0.08, TOL, delta=0.005))
    )
    with pytest.raises(ValueError, match="no number of items"):
        S.items_needed(0.08, TOL, delta=-TOL)


def test_pass_probability_is_power_at_items_needed_and_alpha_at_the_margin() -> None:
    n = S.items_needed(0.08, TOL, exact=False)
    assert S.pass_probability(n, 0.08, TOL, exact=False) == pytest.approx(0.80, abs=0.002)
    assert S.pass_probability(n, 0.08, TOL, true_delta=-TOL, exact=False) == pytest.approx(0.05)
    exact = S.items_needed(0.08, TOL)
    assert S.pass_probability(exact, 0.08, TOL) >= 0.80 > S.pass_probability(exact - 5, 0.08, TOL)


@pytest.mark.parametrize(("n", "notes"), [(500, 0.35), (1000, 0.46), (2000, 0.76), (4000, 0.94)])
def test_pass_probability_matches_the_notes_and_the_normal_approximation(
    n: int, notes: float
) -> None:
    exact = S.pass_probability(n, 0.08, TOL)
    # Many discordant pairs (psi .08): the normal approximation is accurate to .01.
    assert S.pass_probability(n, 0.08, TOL, exact=False) == pytest.approx(exact, abs=0.01)
    # The notes' numbers were simulated: .32 / .51 / .76 / .96 exactly, within their noise.
    assert exact == pytest.approx(notes, abs=0.06)


@pytest.mark.parametrize(
    ("n", "psi", "delta"),
    [(500, 0.08, 0.0), (200, 0.005, 0.0), (500, 0.01, 0.0), (300, 0.05, -TOL)],
)
def test_exact_pass_probability_matches_a_scalar_reference_sum(
    n: int, psi: float, delta: float
) -> None:
    """The vectorised sum against one written with the scalar Tango interval, (b, c) by (b, c)."""
    reference = tango_gate_pass_probability(n, psi, TOL, delta)
    assert S.pass_probability(n, psi, TOL, true_delta=delta) == pytest.approx(reference, abs=1e-9)


def test_exact_pass_probability_reference_cases_where_the_normal_one_is_far_off() -> None:
    # One task, n = 200, psi .5%: exact .634 where the normal approximation claims .917.
    assert S.pass_probability(200, 0.005, TOL) == pytest.approx(0.634, abs=5e-4)
    assert S.pass_probability(200, 0.005, TOL, exact=False) == pytest.approx(0.917, abs=5e-4)
    # 20 equal tasks of n = 500 at psi 1%: together .065, not the normal model's .42.
    each = S.pass_probability(500, 0.01, TOL)
    assert S.overall_pass_probability([each] * 20) == pytest.approx(0.065, abs=5e-4)
    assert S.overall_pass_probability([S.pass_probability(500, 0.01, TOL, exact=False)] * 20) > 0.4


def test_noninferiority_power_is_the_exact_pass_probability_for_binary_scores() -> None:
    old = [1] * 199 + [0]
    new = [1] * 198 + [0, 1]  # b = 1, c = 1 at n = 200: psi 1%
    v = S.noninferiority(S.paired_interval(old, new), TOL)
    assert v.power == pytest.approx(S.pass_probability(200, 0.01, TOL), abs=1e-12)
    assert v.mde == pytest.approx(S.minimum_detectable_effect(200, 0.01), abs=1e-12)


@pytest.mark.parametrize("n", [500, 2000])
def test_false_pass_rate_at_minus_tolerance_is_at_most_alpha_exactly(n: int) -> None:
    """The binary gate, summed exactly over all outcomes, when the true delta is -tolerance."""
    assert tango_gate_pass_probability(n, 0.08, TOL, -TOL) <= 0.05 + 0.02
    assert S.pass_probability(n, 0.08, TOL, true_delta=-0.03) < 0.01


@pytest.mark.parametrize(("n", "psi"), [(500, 0.08), (2197, 0.08), (10_000, 0.02), (300, 0.5)])
def test_minimum_detectable_effect_inverts_items_needed(n: int, psi: float) -> None:
    mde = S.minimum_detectable_effect(n, psi, exact=False)
    assert S.pass_probability(n, psi, mde, exact=False) == pytest.approx(0.80, abs=1e-6)
    assert (
        S.items_needed(psi, mde * 1.0001, exact=False)
        <= n
        <= S.items_needed(psi, mde * 0.9999, exact=False)
    )
    assert S.minimum_detectable_effect(n, 0.0, exact=False) == 0.0
    exact = S.minimum_detectable_effect(n, psi)
    assert S.pass_probability(n, psi, exact) >= 0.80 > S.pass_probability(n, psi, exact * 0.999)
    # No flips at all: the exact MDE is Tango's bound at b = c = 0, about z^2 / (n + z^2).
    z2 = 1.6448536269514722**2
    assert S.minimum_detectable_effect(n, 0.0) == pytest.approx(z2 / (n + z2), rel=1e-3)


# --- many tasks ----------------------------------------------------------------------------------


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.0001, 0.04, 1.0, 0.5]
    expected = multipletests(p, method="holm")[1]
    assert S.holm(p) == pytest.approx(list(expected), rel=1e-12)
    assert S.holm([]) == []


def test_holm_keeps_family_wise_false_alarms_near_alpha_for_thirty_tasks() -> None:
    gen = np.random.default_rng(21)
    p = gen.random((4000, 30))  # 30 tasks, no real regression: uniform p-values
    raw = np.mean((p < 0.05).any(axis=1))
    adjusted = np.mean([min(S.holm(row)) < 0.05 for row in p])
    assert raw == pytest.approx(0.785, abs=0.03)  # the notes: 78% uncorrected
    assert adjusted <= 0.05 + 0.01  # the notes: 4.7% with Holm


def test_overall_pass_probability_multiplies_powers() -> None:
    assert S.overall_pass_probability([0.8] * 30) == pytest.approx(0.00124, abs=1e-5)
    assert S.overall_pass_probability([]) == 1.0


def _verdict(status: str, p_fail: float, power: float = 0.9) -> S.NonInferiority:
    return S.NonInferiority(status, False, [], None, 0.01, p_fail, power)
