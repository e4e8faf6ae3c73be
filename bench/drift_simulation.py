"""Why an hourly drift check needs an anytime-valid monitor: false alarms and detection delays of
naive repeated fixed-n testing next to ``pytest_parity.stats.drift.DriftMonitor``.

    .venv/bin/python bench/drift_simulation.py            # 100 streams per row (~1-2 min, 2 cores)
    .venv/bin/python bench/drift_simulation.py --quick    # 30 streams per row

Streams are judged paired scores in {-1, 0, +1} (the pairwise judge; 80% ties by default), one
check every 100 pairs, 20,000 pairs (about a week of hourly checks at 120 pairs an hour),
tolerance 5 points, alert line -2.5 points (half the tolerance). Rows:

* A/A (mean 0) and a stream sitting on the alert line (mean -tolerance/2, the worst case the
  guarantee covers): every alarm is a false alarm; meant: at most alpha = 5%.
* A drift to -1, -2, -4 x tolerance at pair 5,000: alarms before the change are false, the median
  delay counts the pairs from the change to the check that alarmed.

"naive" re-runs a fixed-n one-sided test at level alpha (the normal upper bound of the mean
below the line) at every check, over all pairs so far or over the last 2,000 pairs ("window"):
each check alone is a valid 5% test, together they are not (STATISTICS.md section 10: 37% where
5% was meant). The window reacts faster and false-alarms more.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_parity.stats.drift import DriftMonitor

ALPHA, TOL, CHECK, N, T0 = 0.05, 0.05, 100, 20_000, 5_000
Z = 1.6448536269514722  # one-sided 95% normal quantile


def streams(rng: np.random.Generator, reps: int, before: float, after: float, ties: float):
    def draw(mean: float, n: int) -> np.ndarray:
        p_win = (1 - ties + mean) / 2
        u = rng.random((reps, n))
        return np.where(u < p_win, 1.0, np.where(u < 1 - ties, -1.0, 0.0))

    return np.concatenate([draw(before, T0), draw(after, N - T0)], axis=1)


def naive_alarms(d: np.ndarray, line: float, window: int | None = None) -> np.ndarray:
    """First check (as the index of its last pair) whose fixed-n upper bound, over all pairs so
    far or over the last ``window`` pairs, fell below the line."""
    n = np.arange(1, d.shape[1] + 1, dtype=np.float64)
    s, s2 = np.cumsum(d, axis=1), np.cumsum(d * d, axis=1)
    if window is not None:
        s[:, window:] -= s[:, :-window].copy()
        s2[:, window:] -= s2[:, :-window].copy()
        n = np.minimum(n, window)
    mean = s / n
    var = np.maximum(s2 / n - mean**2, 1e-12) * n / np.maximum(n - 1, 1)
    upper = mean + Z * np.sqrt(var / n)
    looks = np.arange(CHECK - 1, d.shape[1], CHECK)
    hit = upper[:, looks] < line
    first = np.where(hit.any(axis=1), looks[np.argmax(hit, axis=1)], -1)
    return first


def monitor_alarms(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stream: the index of the last pair of the check that first showed the alert, and the
    monitor's own alarm index (the pair at which it fired), or -1."""
    seen, at = np.full(d.shape[0], -1), np.full(d.shape[0], -1)
    for r in range(d.shape[0]):
        mon = DriftMonitor(TOL, alpha=ALPHA)
        for s in range(0, d.shape[1], CHECK):
            st = mon.update(d[r, s : s + CHECK])
            if st.alert:
                seen[r] = s + CHECK - 1
                at[r] = st.alarmed_at if st.alarmed_at is not None else -1
                break
    return seen, at


def describe(first: np.ndarray, change: bool) -> str:
    if not change:
        return f"false alarms {np.mean(first >= 0):6.1%}"
    early = np.mean((first >= 0) & (first < T0))
    found = first >= T0
    med = f"{np.median(first[found] - T0):7,.0f}" if found.any() else "      -"
    return f"early {early:5.1%}  found {found.mean():5.1%}  median delay {med}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 streams per row instead of 100")
    ap.add_argument("--ties", type=float, default=0.8, help="share of tied judgements (0.8)")
    ap.add_argument("--seed", type=int, default=20261203)
    args = ap.parse_args()
    reps = 30 if args.quick else 100
    rng = np.random.default_rng(args.seed)
    line = -TOL / 2
    rows = [
        ("A/A (mean 0)", 0.0, 0.0, False),
        ("on the alert line (-tol/2)", line, line, False),
        ("drift -1 x tol at 5,000", 0.0, -TOL, True),
        ("drift -2 x tol at 5,000", 0.0, -2 * TOL, True),
        ("drift -4 x tol at 5,000", 0.0, -4 * TOL, True),
    ]
    print(
        f"{reps} streams per row, {N:,} pairs, a check every {CHECK}, tolerance"
        f" {100 * TOL:g} pts, alert line {100 * line:g} pts, {args.ties:.0%} ties, alpha {ALPHA}"
    )
    print(
        f"{'':28} {'naive fixed-n test, all pairs so far':<50}"
        f" {'naive fixed-n test, last 2,000 pairs':<50} anytime-valid monitor"
    )
    t = time.perf_counter()
    for name, before, after, change in rows:
        d = streams(rng, reps, before, after, args.ties)
        naive = naive_alarms(d, line)
        window = naive_alarms(d, line, 2_000)
        seen, _ = monitor_alarms(d)
        print(
            f"{name:28} {describe(naive, change):<50} {describe(window, change):<50}"
            f" {describe(seen, change)}"
        )
    print(f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
