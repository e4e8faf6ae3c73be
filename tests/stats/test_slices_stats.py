"""The per-slice paired delta (stats/slices.py): grouping, means, flips and the interval of each
slice, against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_parity import stats


def _slices(
    labels: list[str], old: list[float], new: list[float], **kw: object
) -> list[stats.SliceEstimate]:
    return stats.slice_estimates(
        labels, old, new, tolerance=0.05, alpha=0.05, rng=np.random.default_rng(0), **kw
    )


def test_each_slice_has_its_own_items_means_flips_and_delta() -> None:
    # math: 8 items, the baseline right on all, the candidate wrong on 2 -> b=2, c=0, -25 pts
    # art: 4 items, the baseline wrong on 1 that the candidate gets right -> b=0, c=1, +25 pts
    labels = ["math"] * 8 + ["art"] * 4
    old = [1.0] * 8 + [0.0, 1.0, 1.0, 1.0]
    new = [0.0, 0.0] + [1.0] * 6 + [1.0] * 4
    math_, art = _slices(labels, old, new)
    assert (math_.value, math_.n, art.value, art.n) == ("math", 8, "art", 4)  # largest first
    assert math_.baseline == 1.0 and math_.candidate == 0.75
    assert art.baseline == 0.75 and art.candidate == 1.0
    assert math_.interval.delta == pytest.approx(-0.25)
    assert art.interval.delta == pytest.approx(0.25)
    assert (math_.interval.b, math_.interval.c) == (2, 0)
    assert (art.interval.b, art.interval.c) == (0, 1)
    assert math_.interval.method == "tango" and math_.interval.confidence == pytest.approx(0.9)
    row = math_.to_dict()
    assert row["value"] == "math" and row["b"] == 2 and row["status"] == math_.status


def test_a_slice_is_the_task_interval_on_its_items_alone() -> None:
    rng = np.random.default_rng(7)
    old = rng.random(90)
    new = np.clip(old - 0.02 + rng.normal(0, 0.05, 90), 0, 1)
    labels = [("a", "b", "c")[i % 3] for i in range(90)]
    got = {s.value: s for s in _slices(labels, list(old), list(new))}
    for value in "abc":
        idx = [i for i, x in enumerate(labels) if x == value]
        alone = stats.paired_interval(
            old[idx], new[idx], confidence=0.9, rng=np.random.default_rng(1)
        )
        # betting is deterministic for bounded scores: the same bounds, whatever the RNG
        assert got[value].interval.method == alone.method == "betting"
        assert got[value].interval.low == pytest.approx(alone.low)
        assert got[value].interval.high == pytest.approx(alone.high)
        assert got[value].n == 30


def test_a_clear_drop_in_one_slice_fails_it_and_not_the_others() -> None:
    labels = ["bad"] * 200 + ["good"] * 200
    old = [1.0] * 400
    new = [0.0 if i < 60 else 1.0 for i in range(200)] + [1.0] * 200  # bad: -30 pts
    bad, good = sorted(_slices(labels, old, new), key=lambda s: s.value)
    assert bad.status == "FAIL" and bad.p_fail < 1e-6
    assert good.status == "PASS" and good.interval.delta == 0.0


def test_ties_in_size_are_ordered_by_label_and_labels_must_match_the_items() -> None:
    got = _slices(["z", "a", "z", "a"], [1, 1, 1, 1], [1, 1, 1, 1])
    assert [s.value for s in got] == ["a", "z"]
    with pytest.raises(ValueError, match="one label per paired item"):
        _slices(["a"], [1.0, 1.0], [1.0, 1.0])


def test_clusters_are_used_within_a_slice_that_holds_several() -> None:
    labels = ["x"] * 12 + ["y"] * 6
    old = [1.0, 0.0] * 9
    new = [1.0, 1.0, 0.0] * 6
    clusters = [f"c{i // 3}" for i in range(18)]
    got = {s.value: s for s in _slices(labels, old, new, clusters=clusters)}
    assert got["x"].interval.clusters == 4 and got["x"].interval.method.startswith("cluster")
    one = _slices(["x"] * 6, old[:6], new[:6], clusters=["c0"] * 6)[0]
    assert one.interval.clusters is None  # one cluster: the item-level interval


@pytest.mark.parametrize("flips", [(0, 0), (4, 0), (30, 2), (3, 9)])
def test_a_slices_status_is_the_tasks_rule_without_the_planning_numbers(
    flips: tuple[int, int],
) -> None:
    from pytest_parity.stats.gate import decide

    b, c = flips
    old = [1.0] * b + [0.0] * c + [1.0] * 60
    new = [0.0] * b + [1.0] * c + [1.0] * 60
    iv = stats.paired_interval(old, new, confidence=0.9, rng=np.random.default_rng(0))
    full = stats.noninferiority(iv, 0.05, alpha=0.05)
    assert decide(iv, 0.05) == (full.status, full.warn, full.p_fail)
