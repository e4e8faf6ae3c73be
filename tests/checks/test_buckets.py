"""Parity per context-length bucket and the trend of the paired difference on log2(length)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from task_specs import task_spec

from pytest_parity.checks.buckets import BucketsCheck, bucket_label, bucket_labels, trend_test
from pytest_parity.contract.rules import _V
from pytest_parity.contract.spec import ContractError, TaskSpec
from pytest_parity.records import ItemRecord

TASK = task_spec("lc", source="long-context")


def with_opts(**opts: Any) -> TaskSpec:
    v = _V("c.yaml")
    got = BucketsCheck().options(opts, "tasks[0].checks.buckets", v, {})
    return replace(TASK, checks=MappingProxyType({"buckets": got}))


def side(score: float | None) -> dict[str, Any]:
    return {"text": "", "finish_reason": "stop", "score": score, "parsed": True,
            "category": "correct" if score else "wrong_answer", "direction": "C" if score else "W",
            "error": None if score is not None else "down", "latency_s": 0.0, "cached": False,
            "facts": None, "trajectory": None}  # fmt: skip


def rec(i: int, length: float | None, old: float | None, new: float | None) -> ItemRecord:
    return {  # type: ignore[typeddict-item]
        "id": f"i{i}",
        "prompt": "p",
        "reference": "r",
        "cluster": None,
        "metadata": None if length is None else {"context_tokens": length},
        "baseline": side(old),
        "candidate": side(new),
    }


def degrading(n_per: int, lengths: list[int], fail_from: int, rate: float, seed: int = 0
              ) -> list[ItemRecord]:  # fmt: skip
    """Both stacks right on every item, except the candidate is wrong on a share ``rate`` of
    the items at ``fail_from`` tokens or more."""
    rng = np.random.default_rng(seed)
    out = []
    for length in lengths:
        for _ in range(n_per):
            bad = length >= fail_from and rng.random() < rate
            out.append(rec(len(out), length, 1.0, 0.0 if bad else 1.0))
    return out


def test_labels_follow_the_edges_and_buckets_are_half_open() -> None:
    assert bucket_labels([2048, 8192, 32768]) == ["0-2k", "2k-8k", "8k-32k", "32k+"]
    assert bucket_labels([1000]) == ["0-1000", "1000+"]
    assert bucket_label(2047, [2048, 8192]) == "0-2k"
    assert bucket_label(2048, [2048, 8192]) == "2k-8k"
    assert bucket_label(10**6, [2048, 8192]) == "8k+"


def test_test_ids_are_one_per_bucket_plus_the_trend() -> None:
    assert BucketsCheck().test_ids(with_opts(edges=[4096])) == (
        "buckets:0-4k",
        "buckets:4k+",
        "buckets:trend",
    )
    assert BucketsCheck().test_ids(with_opts(edges=[4096], trend=False)) == (
        "buckets:0-4k",
        "buckets:4k+",
    )


def test_a_candidate_that_degrades_past_4k_fails_there_and_nowhere_else() -> None:
    records = degrading(40, [1024, 2048, 3000, 6000, 8000], fail_from=4096, rate=0.5)
    out = {r["name"]: r for r in BucketsCheck().evaluate(with_opts(edges=[4096]), records, 0)}
    assert out["buckets:0-4k"]["status"] == "PASS"
    assert out["buckets:4k+"]["status"] == "FAIL"
    assert out["buckets:4k+"]["numbers"]["n"] == 80
    assert out["buckets:trend"]["status"] == "FAIL"
    assert out["buckets:trend"]["numbers"]["p_alarm"] < 0.01
    assert "4k+" in out["buckets:4k+"]["reasons"][0]
    json.dumps(out)  # plain builtins: records cross xdist


def test_an_equal_candidate_passes_every_bucket_and_the_trend() -> None:
    records = degrading(80, [1024, 3000, 6000], fail_from=10**9, rate=0.0)
    out = BucketsCheck().evaluate(with_opts(edges=[2048, 4096]), records, 0)
    assert [r["status"] for r in out] == ["PASS", "PASS", "PASS", "PASS"]


def test_empty_buckets_skip_small_ones_stay_inconclusive_and_failed_pairs_are_left_out() -> None:
    records = degrading(80, [1000], 10**9, 0.0) + degrading(5, [3000], 10**9, 0.0)
    records.append(rec(999, 3000, None, 1.0))  # the baseline's request failed
    records.append(rec(1000, None, 1.0, 1.0))  # no length
    out = {r["name"]: r for r in BucketsCheck().evaluate(with_opts(edges=[2048, 4096]), records, 0)}
    assert out["buckets:0-2k"]["status"] == "PASS"
    assert out["buckets:2k-4k"]["status"] == "INCONCLUSIVE"
    assert out["buckets:2k-4k"]["numbers"]["n"] == 5
    assert out["buckets:4k+"]["status"] == "SKIP"
    assert any("1 paired items have no numeric" in x for x in out["buckets:0-2k"]["reasons"])


def test_no_lengths_at_all_is_an_error_naming_the_field() -> None:
    records = [rec(i, None, 1.0, 1.0) for i in range(10)]
    out = BucketsCheck().evaluate(with_opts(by="n_tokens"), records, 0)
    assert {r["status"] for r in out} == {"ERROR"}
    assert "metadata.n_tokens" in out[0]["reasons"][0]


def test_the_length_may_come_from_the_baseline_answers_facts() -> None:
    records = degrading(80, [1000, 5000], fail_from=4096, rate=0.6)
    for r in records:
        r["baseline"]["facts"] = {"prompt_tokens": r["metadata"]["context_tokens"]}  # type: ignore[index]
        r["metadata"] = None
    out = {r["name"]: r for r in BucketsCheck().evaluate(with_opts(by="prompt_tokens", edges=[4096]), records, 0)}  # fmt: skip
    assert out["buckets:0-4k"]["status"] == "PASS"
    assert out["buckets:4k+"]["status"] == "FAIL"


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"edges": [4096, 2048]}, "edges[1]: 2048 is not above 4096"),
        ({"edges": "2k"}, "edges: expected a list of numbers"),
        ({"edges": [0]}, "edges[0]: expected a positive number"),
        ({"bucket": "x"}, "buckets.bucket: unknown key"),
    ],
)
def test_bad_options_are_one_line_naming_the_field(opts: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError) as err:
        with_opts(**opts)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------
# the trend test


def test_trend_matches_statsmodels_ols_with_hc3() -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(3)
    lengths = rng.choice([1000, 2000, 4000, 8000, 16000], size=300)
    d = rng.choice([-1.0, 0.0, 1.0], p=[0.1, 0.82, 0.08], size=300) - 0.01 * np.log2(lengths)
    ours = trend_test(lengths.tolist(), d.tolist())
    assert ours is not None
    fit = sm.OLS(d, sm.add_constant(np.log2(lengths))).fit(cov_type="HC3")
    assert ours.slope == pytest.approx(fit.params[1], rel=1e-10)
    assert ours.se == pytest.approx(fit.bse[1], rel=1e-10)


def test_trend_needs_varying_lengths() -> None:
    assert trend_test([4096] * 10, [0.0] * 10) is None
    assert trend_test([1, 2], [0.0, 1.0]) is None
    flat = trend_test([1000, 2000, 4000] * 5, [0.0] * 15)
    assert flat is not None and flat.p_value == 1.0


@pytest.mark.slow
def test_trend_false_alarm_rate_holds_and_a_real_decline_is_found() -> None:
    """Seeded simulation, vectorised: 2,000 null runs of 200 items, flips independent of the
    length but more frequent at long contexts (heteroscedastic null), one-sided alpha 0.05."""
    rng = np.random.default_rng(11)
    reps, n = 2000, 200
    lengths = rng.choice([1024, 2048, 4096, 8192, 16384], size=(reps, n))
    x = np.log2(lengths)
    flip = rng.random((reps, n)) < 0.02 * (x - 9)  # 2% at 1k ... 10% at 16k, symmetric
    sign = np.where(rng.random((reps, n)) < 0.5, -1.0, 1.0)
    d_null = flip * sign
    alarms = sum(trend_test(lengths[i], d_null[i]).p_value < 0.05 for i in range(reps))  # type: ignore[union-attr]
    assert 0.03 < alarms / reps < 0.07, alarms / reps
    # A candidate losing 8 more points per doubling past 1k: found almost always.
    lose = rng.random((reps, n)) < 0.08 * (x - 10).clip(0)
    d_alt = np.where(lose, -1.0, d_null)
    power = sum(trend_test(lengths[i], d_alt[i]).p_value < 0.05 for i in range(300)) / 300  # type: ignore[union-attr]
    assert power > 0.9, power


def test_options_parse_from_a_real_contract_file(tmp_path: Path) -> None:
    # Through the validator the contract uses: the same one-line errors a user sees.
    v = _V(str(tmp_path / "c.yaml"))
    opts = BucketsCheck().options({"edges": [1024, 4096], "tolerance": 0.02}, "w", v, {})
    assert opts["edges"] == (1024.0, 4096.0)
    assert opts["tolerance"] == 0.02
