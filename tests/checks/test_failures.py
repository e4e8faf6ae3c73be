"""No new failure modes, direction of error, and the disagreement sample, on constructed records."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from task_specs import task_spec

from pytest_parity.checks.disagreements import (
    disagreement_kind,
    review_focus,
    sample_disagreements,
)
from pytest_parity.checks.error_direction import (
    check_error_direction,
    stuart_maxwell_p,
    transition_table,
)
from pytest_parity.checks.failure_modes import check_failure_modes
from pytest_parity.checks.pairs import one_sided_p
from pytest_parity.records import ItemRecord, SideRecord
from pytest_parity.scoring.categories import direction_of

TASK = task_spec("qa", tolerance=0.015)


def side(category: str, direction: str | None = None, text: str | None = None) -> SideRecord:
    code = direction or direction_of(category)
    score = None if code == "X" else (1.0 if category == "correct" else 0.0)
    return {
        "text": text if text is not None else f"<{category}>",
        "finish_reason": "length" if category == "truncated" else "stop",
        "score": score,
        "parsed": category != "format_error",
        "category": category,
        "direction": code,  # type: ignore[typeddict-item]
        "error": "down" if code == "X" else None,
        "latency_s": 0.1,
        "cached": False,
    }


def rec(i: int, old: str | SideRecord, new: str | SideRecord) -> ItemRecord:
    return {
        "id": f"q{i}",
        "prompt": f"question {i}",
        "reference": f"answer {i}",
        "cluster": None,
        "baseline": side(old) if isinstance(old, str) else old,
        "candidate": side(new) if isinstance(new, str) else new,
    }


def records(*blocks: tuple[int, str, str]) -> list[ItemRecord]:
    """Blocks of (count, baseline category, candidate category), ids numbered in order."""
    out: list[ItemRecord] = []
    for count, old, new in blocks:
        out.extend(rec(len(out), old, new) for _ in range(count))
    return out


def plain(value: Any) -> Any:
    """Round-trips through JSON unchanged: the numbers must be plain builtins (xdist, reports)."""
    assert json.loads(json.dumps(value)) == value
    return value


# ----------------------------------------------------------------------------------------------
# the exact test


def test_one_sided_p_matches_the_reference_numbers() -> None:
    # STATISTICS.md section 5: from zero, 5 new items reach p < .05, 4 do not
    assert one_sided_p(4, 0) == pytest.approx(0.0625)
    assert one_sided_p(5, 0) == pytest.approx(0.03125)
    assert one_sided_p(7, 1) < 0.05 < one_sided_p(6, 1)
    assert one_sided_p(0, 0) == 1.0
    assert one_sided_p(0, 9) == 1.0
    assert one_sided_p(5, 5) == pytest.approx(0.623046875)


# ----------------------------------------------------------------------------------------------
# failure modes


def test_a_new_category_at_equal_accuracy_fails_and_names_it() -> None:
    recs = records((150, "correct", "correct"), (13, "wrong_answer", "wrong_answer"))
    recs += records((37, "wrong_answer", "truncated"))
    for i, r in enumerate(recs):
        r["id"] = f"q{i}"
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "FAIL"
    assert result["name"] == "failure_modes"
    assert result["reasons"][0].startswith("new failure category 'truncated': 0 -> 37 of 200 items")
    assert "entered 37, left 0" in result["reasons"][0]
    assert "e.g. q163, q164, q165, q166, q167, ..." in result["reasons"][0]
    t = plain(result["numbers"])["categories"]["truncated"]
    assert (t["baseline"], t["candidate"], t["entered"], t["left"]) == (0, 37, 37, 0)
    assert t["status"] == "new" and t["p_value"] < 1e-10
    assert result["numbers"]["failed"] == ["truncated"]


def test_a_new_category_below_the_minimum_passes_with_a_note() -> None:
    recs = records((190, "correct", "correct"), (6, "wrong_answer", "wrong_answer"))
    recs += records((4, "wrong_answer", "repetition"))
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "PASS"
    assert any(
        "'repetition' appeared on 4 item(s), below the minimum of 5" in r for r in result["reasons"]
    )
    assert result["numbers"]["categories"]["repetition"]["status"] == "new_below_min"
    at_min = records((195, "correct", "correct"), (5, "wrong_answer", "repetition"))
    assert check_failure_modes(at_min, TASK)["status"] == "FAIL"
    assert check_failure_modes(at_min, replace(TASK, failure_min_count=6))["status"] == "PASS"


def test_safety_critical_tasks_fail_on_a_single_new_failure() -> None:
    recs = records((199, "correct", "correct"), (1, "correct", "refusal"))
    assert check_failure_modes(recs, TASK)["status"] == "PASS"
    safety = replace(TASK, safety_critical=True, tolerance=0.005)
    result = check_failure_modes(recs, safety)
    assert result["status"] == "FAIL"
    assert result["numbers"]["min_count"] == 1
    assert "new failure category 'refusal': 0 -> 1 of 200" in result["reasons"][0]
    assert "e.g. q199" in result["reasons"][0]


def test_a_category_that_grew_beyond_the_margin_fails() -> None:
    recs = records(
        (440, "correct", "correct"),
        (10, "refusal", "refusal"),
        (35, "correct", "refusal"),
        (5, "refusal", "correct"),
        (10, "wrong_answer", "wrong_answer"),
    )
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "FAIL"
    reason = result["reasons"][0]
    assert reason.startswith("failure category 'refusal' grew: 15 -> 45 of 500 items")
    assert "entered 35, left 5, net +6.0% > margin 1.5%" in reason
    assert result["numbers"]["categories"]["refusal"]["status"] == "grown"


def test_a_significant_growth_inside_the_margin_passes() -> None:
    # entered 60, left 10 of 5,000: p ~ 1e-10, but a net 1.0 points is under the 1.5 point margin
    recs = records(
        (4830, "correct", "correct"),
        (100, "refusal", "refusal"),
        (60, "correct", "refusal"),
        (10, "refusal", "correct"),
    )
    result = check_failure_modes(recs, TASK)
    refusal = result["numbers"]["categories"]["refusal"]
    assert refusal["p_value"] < 1e-6 and refusal["net_share"] == pytest.approx(0.01)
    assert result["status"] == "PASS"
    assert check_failure_modes(recs, replace(TASK, tolerance=0.009))["status"] == "FAIL"


def test_a_large_but_not_significant_growth_passes() -> None:
    # 3 -> 6 of 100: net 3 points, but 4 entered vs 1 left is not significant (p ~ 0.19)
    recs = records((93, "correct", "correct"), (2, "abstain", "abstain"), (4, "correct", "abstain"))
    recs += records((1, "abstain", "correct"))
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "PASS"
    assert result["numbers"]["categories"]["abstain"]["p_value"] == pytest.approx(0.1875)


def test_growth_tests_are_holm_adjusted_over_the_categories_the_baseline_shows() -> None:
    # abstain 6 -> 15 of 300 (entered 14, left 5): p = .032 alone, a false alarm in 3 tests
    grew = records(
        (266, "correct", "correct"), (1, "abstain", "abstain"), (14, "correct", "abstain")
    )
    grew += records((5, "abstain", "correct"))
    alone = check_failure_modes(grew + records((14, "correct", "correct")), TASK)
    assert alone["numbers"]["categories"]["abstain"]["p_value"] == pytest.approx(0.0318, abs=1e-4)
    assert alone["status"] == "FAIL"
    assert "Holm-adjusted over 1 categories 0.032" in alone["reasons"][0]
    steady = records((7, "refusal", "refusal"), (7, "truncated", "truncated"))
    among = check_failure_modes(grew + steady, TASK)
    abstain = among["numbers"]["categories"]["abstain"]
    assert abstain["p_holm"] == pytest.approx(3 * abstain["p_value"])
    assert among["status"] == "PASS"


def test_infrastructure_failures_never_count_as_failure_modes() -> None:
    recs = records((150, "correct", "correct"), (50, "correct", "timeout"))
    recs += records((20, "transport_error", "wrong_answer"))
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "PASS"
    assert result["numbers"]["n_paired"] == 150
    assert result["numbers"]["excluded_infra"] == 70
    assert "timeout" not in result["numbers"]["categories"]
    assert "wrong_answer" not in result["numbers"]["categories"]  # only on unpaired items


def test_wrong_answers_are_reported_but_left_to_the_delta_and_direction_checks() -> None:
    recs = records((100, "correct", "correct"), (100, "correct", "wrong_answer"))
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "PASS"
    assert result["numbers"]["categories"]["wrong_answer"]["status"] == "not_gated"
    assert result["numbers"]["categories"]["wrong_answer"]["candidate"] == 100
    # issue 21: the pass never reads as "no failure category on either stack" beside 0 -> 100
    text = " ".join(result["reasons"])
    assert "no failure category on either stack" not in text
    assert "not tested by this check (accuracy is the delta check's): wrong_answer 0 -> 100" in text


def test_custom_categories_are_gated_by_their_direction() -> None:
    new_w = records((190, "correct", "correct"), (10, "correct", "promised_refund"))
    assert check_failure_modes(new_w, TASK)["status"] == "FAIL"
    benign = [rec(i, "correct", side("short_answer", direction="C")) for i in range(10)]
    result = check_failure_modes(records((190, "correct", "correct")) + benign, TASK)
    assert result["status"] == "PASS"
    assert result["numbers"]["categories"]["short_answer"]["status"] == "not_gated"


def test_nothing_paired_is_inconclusive() -> None:
    recs = records((10, "timeout", "correct"))
    assert check_failure_modes(recs, TASK)["status"] == "INCONCLUSIVE"
    assert check_error_direction(recs, TASK)["status"] == "INCONCLUSIVE"


def test_identical_stacks_pass_and_say_what_was_compared() -> None:
    recs = records(
        (180, "correct", "correct"), (12, "abstain", "abstain"), (8, "refusal", "refusal")
    )
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "PASS"
    assert result["reasons"] == [
        "no new or grown failure category over 200 paired items (abstain 12 -> 12, refusal 8 -> 8)"
    ]
    plain(result)


# ----------------------------------------------------------------------------------------------
# direction of error


def swap_at_equal_accuracy() -> list[ItemRecord]:
    """STATISTICS.md section 6: accuracy unchanged, cautious errors replaced by confident ones."""
    return records(
        (700, "correct", "correct"),
        (80, "abstain", "abstain"),
        (120, "abstain", "wrong_answer"),
        (95, "wrong_answer", "wrong_answer"),
        (5, "wrong_answer", "abstain"),
    )


def test_a_swap_of_cautious_for_confident_errors_at_equal_accuracy_fails() -> None:
    recs = swap_at_equal_accuracy()
    old = sum(r["baseline"]["score"] or 0 for r in recs)
    new = sum(r["candidate"]["score"] or 0 for r in recs)
    assert old == new  # the delta check sees nothing
    result = check_error_direction(recs, TASK)
    assert result["status"] == "FAIL"
    assert result["name"] == "error_direction"
    reason = result["reasons"][0]
    assert reason.startswith(
        "cautious errors became confident errors: 120 cautious -> confident, 5 confident ->"
        " cautious of 1000 paired items (net +11.5% > margin 0.5%"
    )
    assert "abstentions were 67% of errors, now 28%" in reason
    assert "e.g. q780, q781, q782, q783, q784, ..." in reason
    numbers = plain(result["numbers"])
    assert numbers["table"]["A"] == {"C": 0, "A": 80, "W": 120}
    assert numbers["table"]["W"] == {"C": 0, "A": 5, "W": 95}
    assert numbers["baseline"] == {"C": 700, "A": 200, "W": 100}
    assert numbers["candidate"] == {"C": 700, "A": 85, "W": 215}
    assert numbers["p_value"] < 1e-20


def test_confident_errors_becoming_cautious_pass() -> None:
    recs = records(
        (700, "correct", "correct"), (120, "wrong_answer", "refusal"), (80, "abstain", "abstain")
    )
    result = check_error_direction(recs, TASK)
    assert result["status"] == "PASS"
    assert result["reasons"][0].startswith(
        "direction of error preserved: 0 cautious -> confident, 120"
    )


def test_every_confident_failure_category_counts_as_confident() -> None:
    recs = records((900, "correct", "correct"))
    for cat in ("truncated", "format_error", "repetition", "language_switch", "empty"):
        recs += records((20, "refusal", cat))
    for i, r in enumerate(recs):
        r["id"] = f"q{i}"
    result = check_error_direction(recs, TASK)
    assert result["numbers"]["a_to_w"] == 100
    assert result["status"] == "FAIL"


def test_direction_margin_and_significance_are_both_required() -> None:
    # significant (p ~ 1e-6) but a net 0.3 points of 10,000 is under tolerance/3 = 0.5 points
    small = records(
        (9950, "correct", "correct"),
        (40, "abstain", "wrong_answer"),
        (10, "wrong_answer", "abstain"),
    )
    r1 = check_error_direction(small, TASK)
    assert r1["numbers"]["p_value"] < 1e-4 and r1["status"] == "PASS"
    # a 2 point net move on 100 items, but 2 vs 0 is not significant
    few = records((98, "correct", "correct"), (2, "abstain", "wrong_answer"))
    r2 = check_error_direction(few, TASK)
    assert r2["numbers"]["net_share"] == pytest.approx(0.02) and r2["status"] == "PASS"
    # a tighter tolerance turns the first into a FAIL
    assert check_error_direction(small, replace(TASK, tolerance=0.006))["status"] == "FAIL"


def as_table(rows: list[list[int]]) -> dict[str, dict[str, int]]:
    return {a: dict(zip("CAW", row, strict=True)) for a, row in zip("CAW", rows, strict=True)}


@pytest.mark.parametrize(
    "rows",
    [[[700, 3, 10], [0, 80, 0], [1, 0, 95]], [[50, 10, 3], [4, 30, 20], [6, 2, 40]]],
)
def test_stuart_maxwell_matches_statsmodels(rows: list[list[int]]) -> None:
    import numpy as np
    from statsmodels.stats.contingency_tables import SquareTable

    expected = SquareTable(np.array(rows), shift_zeros=False).homogeneity().pvalue
    assert stuart_maxwell_p(as_table(rows)) == pytest.approx(expected, rel=1e-9)


def test_stuart_maxwell_degenerate_tables() -> None:
    assert stuart_maxwell_p(as_table([[700, 0, 0], [0, 80, 0], [0, 0, 95]])) == 1.0
    assert stuart_maxwell_p(as_table([[700, 5, 5], [5, 80, 5], [5, 5, 95]])) == 1.0
    # moves between A and W only: the statistic is McNemar's (120 - 5)^2 / 125 on one df
    from scipy.stats import chi2

    only_aw = as_table([[700, 0, 0], [0, 80, 120], [0, 5, 95]])
    assert stuart_maxwell_p(only_aw) == pytest.approx(chi2.sf(115**2 / 125, 1))
    reported = check_error_direction(swap_at_equal_accuracy(), TASK)["numbers"]
    assert reported["stuart_maxwell_p"] == pytest.approx(chi2.sf(115**2 / 125, 1))


def test_error_direction_ignore_skips_with_a_reason() -> None:
    result = check_error_direction(
        swap_at_equal_accuracy(), replace(TASK, error_direction="ignore")
    )
    assert result["status"] == "SKIP"
    assert result["reasons"] == ["the contract sets error_direction: ignore for task qa"]


def test_infrastructure_items_leave_the_transition_table() -> None:
    recs = records(
        (10, "abstain", "timeout"),
        (5, "transport_error", "wrong_answer"),
        (3, "abstain", "wrong_answer"),
    )
    table = transition_table(recs)
    assert table["A"]["W"] == 3 and sum(sum(r.values()) for r in table.values()) == 3
    assert check_error_direction(recs, TASK)["numbers"]["excluded_infra"] == 15


SIDES = st.sampled_from(["correct", "abstain", "refusal", "wrong_answer", "truncated", "timeout"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SIDES, SIDES), min_size=1, max_size=80))
def test_swapping_the_stacks_mirrors_both_checks(pairs: list[tuple[str, str]]) -> None:
    forward = [rec(i, a, b) for i, (a, b) in enumerate(pairs)]
    backward = [rec(i, b, a) for i, (a, b) in enumerate(pairs)]
    f, b = check_error_direction(forward, TASK), check_error_direction(backward, TASK)
    assert (f["numbers"]["a_to_w"], f["numbers"]["w_to_a"]) == (
        b["numbers"]["w_to_a"],
        b["numbers"]["a_to_w"],
    )
    assert not (f["status"] == "FAIL" and b["status"] == "FAIL")
    fm, bm = check_failure_modes(forward, TASK), check_failure_modes(backward, TASK)
    for name, row in fm["numbers"]["categories"].items():
        mirror = bm["numbers"]["categories"][name]
        assert (row["entered"], row["left"]) == (mirror["left"], mirror["entered"])
        assert (row["baseline"], row["candidate"]) == (mirror["candidate"], mirror["baseline"])


def noisy_run(seed: int, n: int = 400) -> list[ItemRecord]:
    """Two equally good stacks: each item's candidate answer is the baseline's, or with 15%
    chance a fresh draw from the same mix of outcomes."""
    rng = random.Random(seed)
    mix = ["correct"] * 70 + ["wrong_answer"] * 14 + ["abstain"] * 8 + ["refusal"] * 4
    mix += ["format_error"] * 3 + ["truncated"] * 1
    out = []
    for i in range(n):
        old = rng.choice(mix)
        new = rng.choice(mix) if rng.random() < 0.15 else old
        out.append(rec(i, old, new))
    return out


def test_noise_between_equal_stacks_rarely_trips_either_check() -> None:
    runs = [noisy_run(seed) for seed in range(100)]
    modes = sum(check_failure_modes(r, TASK)["status"] == "FAIL" for r in runs)
    direction = sum(check_error_direction(r, TASK)["status"] == "FAIL" for r in runs)
    # the checks are one-sided tests at alpha = .05 with a practical margin on top
    assert modes <= 5 and direction <= 5, (modes, direction)


# ----------------------------------------------------------------------------------------------
# disagreements


def mixed() -> list[ItemRecord]:
    return records(
        (30, "correct", "correct"),
        (20, "correct", "wrong_answer"),  # regressions q30..q49
        (10, "abstain", "refusal"),  # category changes q50..q59
        (15, "wrong_answer", "correct"),  # improvements q60..q74
        (5, "correct", "timeout"),  # infrastructure: not a disagreement
        (5, "abstain", "abstain"),
    )


def test_disagreements_are_ordered_regressions_first() -> None:
    sample, total = sample_disagreements(mixed(), 100, seed=1)
    assert total == 45
    kinds = [row["kind"] for row in sample]
    assert kinds == ["regression"] * 20 + ["category_change"] * 10 + ["improvement"] * 15
    assert [row["id"] for row in sample[:3]] == ["q30", "q31", "q32"]


def test_the_sample_is_capped_and_fills_from_regressions() -> None:
    sample, total = sample_disagreements(mixed(), 25, seed=1)
    assert total == 45 and len(sample) == 25
    assert [row["kind"] for row in sample] == ["regression"] * 20 + ["category_change"] * 5
    only = sample_disagreements(mixed(), 8, seed=1)[0]
    assert {row["kind"] for row in only} == {"regression"}
    assert sample_disagreements(mixed(), 0, seed=1) == ([], 45)


def test_the_sample_is_reproducible_per_seed() -> None:
    ids = [[row["id"] for row in sample_disagreements(mixed(), 25, seed=s)[0]] for s in (7, 7, 8)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]
    # every regression kept, five of the ten category changes drawn, in record order
    changes = ids[0][20:]
    assert ids[0][:20] == [f"q{i}" for i in range(30, 50)]
    assert len(set(changes)) == 5 and set(changes) <= {f"q{i}" for i in range(50, 60)}
    assert changes == sorted(changes, key=lambda x: int(x[1:]))


def test_a_disagreement_row_has_everything_a_reviewer_needs() -> None:
    old = side("correct", text="Paris")
    new = side("truncated", text="The capital of France is")
    r = rec(3, old, new)
    (row,), total = sample_disagreements([r], 50, seed=0)
    assert total == 1
    assert plain(row) == {
        "id": "q3",
        "kind": "regression",
        "prompt": "question 3",
        "reference": "answer 3",
        "baseline_output": "Paris",
        "candidate_output": "The capital of France is",
        "baseline_category": "correct",
        "candidate_category": "truncated",
        "baseline_score": 1.0,
        "candidate_score": 0.0,
        "baseline_finish_reason": "stop",
        "candidate_finish_reason": "length",
        "reviewer_verdict": "",
    }


def test_what_counts_as_a_disagreement() -> None:
    assert disagreement_kind(rec(0, "correct", "correct")) is None
    assert disagreement_kind(rec(0, "abstain", "abstain")) is None
    assert disagreement_kind(rec(0, "abstain", "wrong_answer")) == "category_change"
    assert disagreement_kind(rec(0, "wrong_answer", "correct")) == "improvement"
    assert disagreement_kind(rec(0, "timeout", "correct")) is None
    partial = rec(0, "correct", "correct")
    partial["candidate"]["score"] = 0.75  # graded scores: any drop is a regression
    assert disagreement_kind(partial) == "regression"


def test_focus_categories_are_always_in_the_sample() -> None:
    recs = records((60, "correct", "wrong_answer"), (20, "abstain", "truncated"))  # q60..q79
    plain_sample, total = sample_disagreements(recs, 50, seed=3)
    assert total == 80
    assert {row["kind"] for row in plain_sample} == {"regression"}  # 60 regressions fill it
    focused, _ = sample_disagreements(recs, 50, seed=3, focus={"truncated"})
    kinds = [row["kind"] for row in focused]
    assert kinds == ["regression"] * 30 + ["category_change"] * 20  # still regressions first
    assert {row["id"] for row in focused if row["kind"] == "category_change"} == {
        f"q{i}" for i in range(60, 80)
    }
    few, _ = sample_disagreements(recs, 5, seed=3, focus={"truncated"})
    assert {row["candidate_category"] for row in few} == {"truncated"}


def test_review_focus_names_failed_and_new_categories() -> None:
    recs = records(
        (180, "correct", "correct"),
        (10, "wrong_answer", "truncated"),  # new: fails
        (2, "wrong_answer", "repetition"),  # new, below the minimum: still worth reading
        (8, "abstain", "abstain"),
    )
    check = check_failure_modes(recs, TASK)
    assert check["status"] == "FAIL"
    assert review_focus(check) == ["truncated", "repetition"]
    assert review_focus(check_failure_modes(records((5, "abstain", "abstain")), TASK)) == []


# ----------------------------------------------------------------------------------------------
# the rate-ratio rule for categories the baseline already shows


def test_a_tenfold_growth_inside_the_margin_fails_by_the_rate_ratio() -> None:
    # refusals 0.1% -> 1% of 1,000 items: a net 0.9 points is inside the 1.5-point tolerance,
    # but ten times the baseline's rate on 9 more items
    recs = records(
        (989, "correct", "correct"), (1, "refusal", "refusal"), (9, "correct", "refusal")
    )
    recs += records((1, "correct", "correct"))
    result = check_failure_modes(recs, TASK)
    assert result["status"] == "FAIL"
    assert "10.0x the baseline's rate >= ratio 3" in result["reasons"][0]
    assert result["numbers"]["p_alarm"] == pytest.approx(0.5**9)
    # a higher ratio, or more new items required, lets it pass
    assert check_failure_modes(recs, replace(TASK, failure_ratio=20))["status"] == "PASS"
    assert check_failure_modes(recs, TASK, min_count=10)["status"] == "PASS"


def simulate_detection(n: int, p0: float, p1: float, trials: int, seed: int) -> float:
    """Share of seeded trials in which the check FAILs: refusals at p0 (baseline) and p1
    (candidate), independent per item."""
    rng = random.Random(seed)
    caught = 0
    for _ in range(trials):
        pairs = [
            ("refusal" if rng.random() < p0 else "correct",
             "refusal" if rng.random() < p1 else "correct")
            for _ in range(n)
        ]  # fmt: skip
        counts: dict[tuple[str, str], int] = {}
        for p in pairs:
            counts[p] = counts.get(p, 0) + 1
        recs = records(*((k, a, b) for (a, b), k in counts.items()))
        caught += check_failure_modes(recs, TASK)["status"] == "FAIL"
    return caught / trials


def test_measured_detection_of_a_tenfold_refusal_rate() -> None:
    # README: refusals 0.1% -> 1% on 1,000 items are caught about 0.8 of the time (0.4 with the
    # margin alone); equal rates (1% both) raise a false alarm rarely
    detected = simulate_detection(1000, 0.001, 0.01, trials=60, seed=11)
    assert detected >= 0.7, detected
    false_alarm = simulate_detection(1000, 0.01, 0.01, trials=60, seed=12)
    assert false_alarm <= 0.05, false_alarm


def test_the_alarm_p_is_the_failing_categorys_not_a_smaller_one_that_did_not_fail() -> None:
    # refusals grew significantly (p = 2^-12) yet within the margin and the ratio ('ok'); abstain
    # grew 2 -> 8 and fails by the ratio with Holm p .0156: the run's Holm must read .0156,
    # or across 40 alarms this FAIL would 'hold' (40 x .00049 = .02) on the refusals' evidence
    recs = records(
        (100, "refusal", "refusal"),
        (12, "correct", "refusal"),
        (2, "abstain", "abstain"),
        (6, "correct", "abstain"),
        (880, "correct", "correct"),
    )
    result = check_failure_modes(recs, TASK)
    table = result["numbers"]["categories"]
    assert result["status"] == "FAIL"
    assert result["numbers"]["failed"] == ["abstain"]
    assert table["refusal"]["status"] == "ok"
    assert table["refusal"]["p_holm"] < table["abstain"]["p_holm"]
    assert result["numbers"]["p_alarm"] == pytest.approx(table["abstain"]["p_holm"])


def test_a_huge_answer_is_shown_by_its_head_and_tail_not_copied_whole() -> None:
    # 20 answers of 15 MB (under the 16 MiB cap) made a 315 MB parity.json and disagreement
    # file: a sampled row shows 64,000 characters of each text, head and tail, and says so
    from pytest_parity.checks.disagreements import SHOWN_CHARS

    huge = "BEGIN " + "x" * 15_000_000 + " END"
    recs = [rec(0, side("correct", text=huge), side("wrong_answer", text="short"))]
    recs[0]["prompt"] = huge
    (row,), total = sample_disagreements(recs, 10, seed=1)
    assert total == 1
    for key in ("prompt", "baseline_output"):
        assert len(row[key]) < SHOWN_CHARS + 100
        assert row[key].startswith("BEGIN ") and row[key].endswith(" END")
        assert f"[... {len(huge) - SHOWN_CHARS:,} characters not shown ...]" in row[key]
    assert row["candidate_output"] == "short"  # short texts are shown whole
    assert recs[0]["baseline"]["text"] == huge  # the record itself keeps the whole answer
