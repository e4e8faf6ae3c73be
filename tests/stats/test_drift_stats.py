"""The drift monitor's statistics (issue 19, STATISTICS.md section 10), by seeded simulation.

Streams are judged paired scores d in {-1, 0, +1} (the pairwise judge: the new stack wins, ties,
loses). The simulations with many replications run the monitor's own change detector
(``change_detector``, vectorised over replications: bit-for-bit what ``DriftMonitor`` computes,
checked below) and the betting sequence's own capital functions; a few whole streams also go
through ``DriftMonitor`` itself, checked every 100 pairs as an hourly cron would.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_parity.stats import betting
from pytest_parity.stats.drift import (
    DriftMonitor,
    DriftStatus,
    change_detector,
    detector_start,
)

ALPHA = 0.05
CHECK = 100  # pairs per hourly check


def stream(
    rng: np.random.Generator, shape: tuple[int, ...], mean: float, ties: float
) -> np.ndarray:
    """d in {-1, 0, 1}: P(0) = ties, P(1) - P(-1) = mean."""
    p_win = (1 - ties + mean) / 2
    u = rng.random(shape)
    return np.where(u < p_win, 1.0, np.where(u < 1 - ties, -1.0, 0.0))


def detector_alarms(d: np.ndarray, line: float, chunk: int = 2000) -> np.ndarray:
    """Per replication (rows of d), the first pair at which the change detector alarmed, or -1."""
    reps, n = d.shape
    state = detector_start((reps,))
    first = np.full(reps, -1)
    thr = math.log(2 / ALPHA)
    for s in range(0, n, chunk):
        log_r, state = change_detector(d[:, s : s + chunk], s, state, line)
        hit = log_r >= thr
        new = (first < 0) & hit.any(axis=1)
        first[new] = s + np.argmax(hit[new], axis=1)
    return first


def true_mean_excluded_from_above(x_row: np.ndarray, mean: float) -> bool:
    """Did the sequence's "the mean is lower" gambler ever exclude the true mean? Its false alarms
    are a subset: an upper bound below the line excludes every mean above it, the true one too,
    and not by the other gambler (its capital falls with m, so excluding the true mean from below
    excludes every smaller mean and the set stays above the truth). Bound: alpha / 2."""
    x = (x_row + 1.0) / 2.0
    m = np.array([(mean + 1.0) / 2.0])
    s2, _, _ = betting._variances(x, 0, 0.0, 0.0)
    i = np.arange(1, x.size + 1, dtype=np.float64)
    lam = np.sqrt(2.0 * math.log(2.0 / ALPHA) / (s2 * i * np.log1p(i)))
    _, dn, _, _, _ = betting._log_capital(x, lam, m)
    thr = math.log(2.0 / ALPHA)
    return bool(dn[0] >= thr)


def run_checked(mon: DriftMonitor, d: np.ndarray, every: int = CHECK) -> DriftStatus:
    status = mon.status()
    for s in range(0, d.size, every):
        status = mon.update(d[s : s + every])
    return status


# -- false alarms --------------------------------------------------------------------------------


@pytest.mark.slow
def test_aa_streams_checked_hourly_alarm_at_most_alpha_over_100k_pairs() -> None:
    """200 A/A streams of 100,000 pairs: the change detector (exact) and the sequence (through a
    superset event) alarm in at most alpha of them; 3 whole streams through DriftMonitor checked
    every 100 pairs never alarm and match the vectorised detector bit for bit."""
    rng = np.random.default_rng(20261203)
    reps, n, tol = 200, 100_000, 0.05
    line = -tol * 0.5
    det = np.empty(reps, dtype=np.int64)
    cs = np.zeros(reps, dtype=bool)
    for block in range(0, reps, 50):
        d = stream(rng, (50, n), 0.0, ties=0.6)
        det[block : block + 50] = detector_alarms(d, line)
        cs[block : block + 50] = [true_mean_excluded_from_above(row, 0.0) for row in d]
        if block == 0:
            for r in range(3):
                mon = DriftMonitor(tol, alpha=ALPHA)
                status = run_checked(mon, d[r])
                assert not status.alert, status.reason
                _, st = change_detector(d[r : r + 1], 0, detector_start((1,)), line)
                assert mon._det[2].tolist() == st[2][0].tolist(), "same code, same bits"
    rate_det = float(np.mean(det >= 0))
    rate_cs = float(np.mean(cs))
    rate_any = float(np.mean((det >= 0) | cs))
    print(
        f"\nA/A, {reps} streams x {n:,} pairs, checked every {CHECK}: change detector alarmed"
        f" in {rate_det:.3f} (bound {ALPHA / 2}), the sequence excluded the true mean from above"
        f" in {rate_cs:.3f} (bound {ALPHA / 2}), either {rate_any:.3f} (bound {ALPHA})"
    )
    assert rate_any <= ALPHA


@pytest.mark.slow
def test_a_stream_sitting_exactly_on_the_alert_line_alarms_at_most_alpha_half() -> None:
    """The worst case of the change detector's null: the mean exactly at -tolerance/2. Its
    guarantee is alpha/2 at every look; measured over 400 streams of 20,000 pairs. A plain
    repeated fixed-n test here alarms in about a third of the streams (bench/drift_simulation)."""
    rng = np.random.default_rng(7)
    reps, n, tol = 400, 20_000, 0.1
    line = -tol * 0.5
    det = np.concatenate(
        [detector_alarms(stream(rng, (100, n), line, ties=0.4), line) for _ in range(4)]
    )
    rate = float(np.mean(det >= 0))
    se = math.sqrt(ALPHA / 2 * (1 - ALPHA / 2) / reps)
    print(
        f"\nmean on the alert line: change detector alarmed in {rate:.4f} of {reps} (bound {ALPHA / 2})"
    )
    assert rate <= ALPHA / 2 + 2 * se


# -- detection ---------------------------------------------------------------------------------


def test_injected_drift_is_detected_after_it_never_before_with_its_delay() -> None:
    """A drift of -tolerance (5 points on a pairwise judge with 80% ties) injected at pair 3,000
    of 16 streams, DriftMonitor checked every 100 pairs: every alarm comes after the change and
    all 16 alarm within 22,000 pairs; the median delay is printed (measured: 5,392 pairs)."""
    rng = np.random.default_rng(19)
    tol, t0, n = 0.05, 3_000, 25_000
    delays = []
    for _ in range(16):
        d = np.concatenate([stream(rng, (t0,), 0.0, 0.8), stream(rng, (n - t0,), -tol, 0.8)])
        mon = DriftMonitor(tol, alpha=ALPHA)
        status = mon.status()
        for s in range(0, n, CHECK):
            status = mon.update(d[s : s + CHECK])
            if status.alert:
                break
        assert status.alert, status.reason
        assert status.alarmed_at is not None and status.alarmed_at >= t0, status.reason
        assert status.alarmed_at < mon.n  # an index of a pair already counted
        delays.append(status.alarmed_at - t0)
    med = float(np.median(delays))
    print(f"\n-tol drift (tol 5 pts, var 0.2): median delay {med:,.0f} pairs, {sorted(delays)}")
    assert 300 < med < 12_000


@pytest.mark.slow
def test_section_10_drifts_detection_delays_against_the_plain_cusum() -> None:
    """STATISTICS.md section 10's setting: tolerance 1.5 points, binary flips psi = 0.08, a drift
    of -1.5 and -3 points after 20,000 stable pairs, 100 streams each (the change detector: the
    sequence adds nothing after a long stable period). Section 10's plain CUSUM (h = 30) finds
    them in ~3,000 / ~1,200 pairs but false-alarms every ~146k pairs (about half of all 100k A/A
    streams); this detector keeps alarms under alpha/2 ever and pays for it in delay."""
    rng = np.random.default_rng(10)
    tol, t0, post = 0.015, 20_000, 80_000
    line = -tol * 0.5
    out = {}
    for drift in (-0.015, -0.03):
        d = np.concatenate(
            [stream(rng, (100, t0), 0.0, 0.92), stream(rng, (100, post), drift, 0.92)], axis=1
        )
        first = detector_alarms(d, line)
        early = float(np.mean((first >= 0) & (first < t0)))
        found = first >= t0
        med = float(np.median(np.where(found, first - t0, post)))
        out[drift] = (early, float(found.mean()), med)
        assert early <= ALPHA / 2 + 0.03, "alarms before the change are false alarms"
    print(
        "\nsection 10 setting (tol 1.5 pts, psi .08, change after 20k pairs), change detector:"
        + "".join(
            f"\n  drift {100 * k:+.1f} pts: alarmed before the change {e:.2f}, found within 80k"
            f" {f:.2f}, median delay {m:,.0f} pairs"
            for k, (e, f, m) in out.items()
        )
        + "\n  section 10's plain CUSUM (h=30): ~3,000 / ~1,200 pairs, a false alarm every ~146k"
    )
    assert out[-0.03][1] >= 0.95 and out[-0.03][2] < out[-0.015][2]


def test_a_gross_drift_is_found_in_tens_of_pairs() -> None:
    """A broken stack (the new one loses 80% of pairs) after 50 A/A pairs, tolerance 0.1, checks
    of 25 pairs: found within 60 pairs of the change, in each of 20 streams."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        d = np.concatenate(
            [stream(rng, (50,), 0.0, 0.4), np.where(rng.random(200) < 0.8, -1.0, 0.0)]
        )
        status = run_checked(DriftMonitor(0.1), d, every=25)
        assert status.alert and status.alarmed_at is not None
        assert 50 <= status.alarmed_at < 110, status


# -- state across runs ------------------------------------------------------------------------


def test_a_restart_through_json_state_continues_exactly() -> None:
    rng = np.random.default_rng(11)
    d = np.concatenate([stream(rng, (4_000,), 0.0, 0.4), stream(rng, (4_000,), -0.1, 0.4)])
    whole = DriftMonitor(0.05)
    first = DriftMonitor(0.05)
    history_whole, history_split = [], []
    for s in range(0, d.size, CHECK):
        history_whole.append(whole.update(d[s : s + CHECK]))
    mon = first
    for s in range(0, d.size, CHECK):
        if s in (2_000, 5_000):  # two scheduled runs end here: the state goes through JSON
            text = json.dumps(mon.to_state(), allow_nan=False)
            assert len(text) < 40_000, "no per-pair storage"
            mon = DriftMonitor.from_state(json.loads(text), tolerance=0.05, alpha=0.05)
        history_split.append(mon.update(d[s : s + CHECK]))
    assert history_split == history_whole
    assert history_whole[-1].alert and history_whole[-1].alarmed_at is not None
    # batches of other sizes (one run, many runs) reach the same bits
    other = DriftMonitor(0.05)
    i = 0
    for size in [1, 7, 333, 2_500, 10_000]:
        other.update(d[i : i + size])
        i += size
    assert other.status() == history_whole[-1]
    assert len(json.dumps(whole.to_state())) < 10_000


def test_state_refuses_other_settings_and_versions_with_one_line() -> None:
    mon = DriftMonitor(0.05, alpha=0.05)
    mon.update([0.0, 1.0, -1.0])
    state = mon.to_state()
    with pytest.raises(
        ValueError, match=r"started with tolerance 0.05, the contract now says 0.03"
    ):
        DriftMonitor.from_state(state, tolerance=0.03)
    with pytest.raises(ValueError, match="alpha"):
        DriftMonitor.from_state(state, alpha=0.1)
    with pytest.raises(ValueError, match="state version 99"):
        DriftMonitor.from_state({**state, "version": 99})
    with pytest.raises(ValueError, match="damaged state"):
        DriftMonitor.from_state({k: v for k, v in state.items() if k != "detector"})
    bad_seq = {**state, "sequence": {**state["sequence"], "log_up": "AAAA"}}
    with pytest.raises(ValueError, match="damaged state"):
        DriftMonitor.from_state(bad_seq)


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match=r"tolerance must be in \(0, 1\], got 0"):
        DriftMonitor(0)
    with pytest.raises(ValueError, match="alpha"):
        DriftMonitor(0.05, alpha=1.5)
    with pytest.raises(ValueError, match=r"alert_at"):
        DriftMonitor(0.05, alert_at=0)
    mon = DriftMonitor(0.05)
    with pytest.raises(ValueError, match=r"in \[-1, 1\], got 2.0"):
        mon.update([0.0, 2.0])
    with pytest.raises(ValueError, match="got nan"):
        mon.update([float("nan")])
    assert mon.n == 0, "a refused batch counts nothing"


def test_status_before_and_after_pairs() -> None:
    mon = DriftMonitor(0.04, alert_at=0.5)
    s0 = mon.update([])
    assert (s0.n, s0.lower, s0.upper, s0.alert, s0.alarmed_at) == (0, -1.0, 1.0, False, None)
    assert s0.reason == "No judged pairs yet."
    s1 = mon.update(np.zeros(500))
    assert s1.n == 500 and s1.estimate == 0.0 and s1.lower < 0 < s1.upper and not s1.alert
    assert s1.alert_line == pytest.approx(-0.02) and s1.cusum < s1.cusum_threshold
    assert s1.reason.startswith("No drift shown") and "\n" not in s1.reason
    d = s1.to_dict()
    assert set(d) >= {"n", "estimate", "lower", "upper", "alert", "reason", "cusum",
                      "cusum_threshold", "alarmed_at"}  # fmt: skip
    json.dumps(d, allow_nan=False)
    # a latched alert stays, whatever comes after
    s2 = mon.update(-np.ones(300))
    assert s2.alert and s2.alarmed_at is not None and 500 <= s2.alarmed_at < 800
    s3 = mon.update(np.ones(3000))
    assert s3.alert and s3.alarmed_at == s2.alarmed_at and s3.reason.startswith("Drift")
