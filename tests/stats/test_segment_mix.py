"""The segment-mix test of "why it drifted" (issue 19 item 4): the share of traffic per segment,
reference window against the current one (pytest_parity.stats.shift.segment_mix).

Checked against scipy.stats.chi2_contingency on the same merged table, and by seeded simulation:
the false-alarm rate under an unchanged mix stays at or below alpha, a 10% -> 40% shift of one
segment at realistic counts is found nearly always."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from pytest_parity.stats.shift import MIX, OTHER, input_shift, segment_mix

SHARES = {"chat": 0.45, "code": 0.25, "enterprise": 0.10, "search": 0.12, "rare": 0.05,
          "tiny": 0.03}  # fmt: skip


def draw(rng: np.random.Generator, n: int, shares: dict[str, float]) -> dict[str, int]:
    names = list(shares)
    p = np.asarray([shares[k] for k in names])
    counts = rng.multinomial(n, p / p.sum())
    return {k: int(c) for k, c in zip(names, counts, strict=True)}


def reference_p(res_tested: list[str], merged: list[str], ref: dict[str, int],
                cur: dict[str, int]) -> tuple[float, float, int]:  # fmt: skip
    cols = [k for k in res_tested if k != OTHER]
    rows = [[ref.get(k, 0) for k in cols], [cur.get(k, 0) for k in cols]]
    if merged:
        rows[0].append(sum(ref.get(k, 0) for k in merged))
        rows[1].append(sum(cur.get(k, 0) for k in merged))
    x2, p, df, _ = chi2_contingency(np.asarray(rows), correction=False)
    return float(x2), float(p), int(df)


def test_matches_scipy_chi2_contingency_on_random_tables() -> None:
    rng = np.random.default_rng(19)
    for _ in range(200):
        k = int(rng.integers(2, 9))
        shares = dict(zip([f"s{i}" for i in range(k)], rng.dirichlet(np.ones(k)), strict=True))
        ref = draw(rng, int(rng.integers(20, 3000)), shares)
        shifted = {s: v * float(rng.uniform(0.5, 2.0)) for s, v in shares.items()}
        cur = draw(rng, int(rng.integers(20, 3000)), shifted)
        res = segment_mix(ref, cur)
        if res is None:
            continue
        x2, p, df = reference_p(res.tested, res.merged, ref, cur)
        assert res.statistic == pytest.approx(x2, rel=1e-9, abs=1e-12)
        assert res.p_value == pytest.approx(p, rel=1e-7, abs=1e-300)
        assert res.df == df
        assert 0.0 <= res.effect_size <= 1.0


def test_the_merging_rule_keeps_every_expected_count_at_five() -> None:
    ref = {"chat": 900, "code": 80, "rare": 6, "tiny": 2, "new": 0}
    cur = {"chat": 60, "code": 30, "rare": 1, "tiny": 0, "new": 9}
    res = segment_mix(ref, cur)
    assert res is not None
    # min(n) / N = 100 / 1088: chat and code pass, rare (7), tiny (2), new (9) fall under 5
    # expected, and so does their pool (18 x 100/1088 = 1.65): code, the smallest kept, joins it
    assert res.tested == ["chat", OTHER] and res.merged == ["code", "new", "rare", "tiny"]
    x2, _, df = reference_p(res.tested, res.merged, ref, cur)
    assert (res.statistic, res.df) == (pytest.approx(x2), df)
    _, _, _, expected = chi2_contingency(np.asarray([[900, 88], [60, 40]]), correction=False)
    assert expected.min() >= 5
    # shares are of every segment, unmerged, the largest change first
    assert res.reference_shares["new"] == 0 and res.current_shares["new"] == pytest.approx(0.09)
    assert res.changes[0]["segment"] == "chat" and res.changes[0]["change"] < 0


def test_one_segment_or_an_empty_window_is_no_test() -> None:
    assert segment_mix({"chat": 50}, {"chat": 70}) is None
    assert segment_mix({"a": 5, "b": 5}, {}) is None
    assert segment_mix({"a": 500, "b": 1}, {"a": 400, "b": 2}) is None  # b pooled, then a joins
    assert segment_mix(["a", "b", "a"] * 20, ["b", "a"] * 20) is not None  # names, not counts
    with pytest.raises(ValueError, match="negative count -1 for segment 'a'"):
        segment_mix({"a": -1, "b": 3}, {"a": 2, "b": 2})


def test_no_change_false_alarm_rate_at_most_alpha() -> None:
    """2,000 seeded pairs of windows from one mix (six segments, two of them small), at the
    counts of an hourly run: the test rejects at 5% in at most 5% of them (plus 2 standard
    errors of the simulation), and the monitor's rule (with the effect floor) less often."""
    rng = np.random.default_rng(2026)
    reps, raw, called = 2000, 0, 0
    for _ in range(reps):
        n_ref, n_cur = int(rng.integers(300, 3000)), int(rng.integers(80, 800))
        res = segment_mix(draw(rng, n_ref, SHARES), draw(rng, n_cur, SHARES))
        assert res is not None
        raw += res.p_value < 0.05
        called += res.p_value < 0.05 and res.effect_size >= 0.1
    rate = raw / reps
    print(f"segment mix A/A: raw rejection {rate:.4f}, called shifted {called / reps:.4f}")
    assert rate <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)
    assert called <= raw


def test_a_10_to_40_percent_shift_is_detected_at_realistic_counts() -> None:
    """enterprise 10% -> 40% of requests (the others shrink in proportion), reference 1,000
    requests, current 200 (an hour of a small service): called shifted, after Holm with the six
    request features of a segment, in at least 99% of 500 seeded runs; its headline names it."""
    rng = np.random.default_rng(7)
    rest = {k: v for k, v in SHARES.items() if k != "enterprise"}
    after = {k: 0.6 * v / sum(rest.values()) for k, v in rest.items()} | {"enterprise": 0.4}
    reqs = [{"prompt_chars": 10 + i % 17, "turns": 1 + i % 2, "model": "m"} for i in range(60)]
    hits = 0
    for _ in range(500):
        res = segment_mix(draw(rng, 1000, SHARES), draw(rng, 200, after))
        assert res is not None
        rows = input_shift(reqs, reqs, mix=res)
        (row,) = [r for r in rows if r.feature == MIX]
        hits += row.shifted
        assert row.p_holm >= row.p_value
        assert row.changes[0]["segment"] == "enterprise"
        assert re.match(r"segment mix changed: enterprise \d+% -> \d+%", row.description)
        assert row.changes[0]["after"] - row.changes[0]["before"] > 0.15
    print(f"segment mix 10% -> 40%: detected in {hits / 500:.3f}")
    assert hits / 500 >= 0.99


def test_the_mix_is_one_more_row_of_the_holm_family() -> None:
    ref = {"a": 100, "enterprise": 10}
    cur = {"a": 100, "enterprise": 25}
    mix = segment_mix(ref, cur)
    assert mix is not None
    reqs = [{"x": i % 5, "y": "u" if i % 3 else "v"} for i in range(100)]
    rows = input_shift(reqs, reqs, mix=mix)
    assert [r.feature for r in rows] == ["x", "y", MIX]
    (row,) = [r for r in rows if r.feature == MIX]
    # Holm with three tests and the two others at p = 1: the smallest p is multiplied by 3
    assert row.p_value == pytest.approx(mix.p_value)
    assert row.p_holm == pytest.approx(min(1.0, 3 * mix.p_value))
    assert row.test == "chi-square" and row.effect == "cramers_v"
    assert row.reference_summary["shares"]["enterprise"] == pytest.approx(10 / 110)
    alone = input_shift(reqs, reqs)
    assert MIX not in [r.feature for r in alone]
    assert row.to_dict()["changes"][0]["segment"] == "enterprise"
