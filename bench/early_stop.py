"""Requests saved by early stopping, side by side with the fixed-n gate, in one run (not a test).

Run: PYTHONPATH=. .venv/bin/python bench/early_stop.py  (about 20 s on 2 cores)

Each scenario draws 2,000 seeded streams of paired differences and runs both gates on them: the
fixed-n gate (every item asked, alpha .05) and the early-stopping gate (early_stop: true, looks
after every batch of 50 at a_seq = .025, the fixed-n fallback at a_fix = .025). It prints
P(PASS), P(FAIL), the share of items asked and the requests saved (both stacks are asked the same
items, so the share of items is the share of requests). The error rows (delta at -tolerance,
and 0 for a false FAIL) show both gates at the same alpha; the goal is >= 40% saved on the
clear-cut rows at those error rates.
"""

from __future__ import annotations

import time

import numpy as np

from pytest_parity.stats.sequential import simulate_fixed, simulate_gate

TOL, ALPHA, BATCH, STREAMS = 0.015, 0.05, 50, 2000


def binary(rng: np.random.Generator, n: int, psi: float, delta: float) -> np.ndarray:
    u = rng.random((STREAMS, n))
    return np.where(u < (psi - delta) / 2, -1.0, np.where(u < psi, 1.0, 0.0))


def graded(rng: np.random.Generator, n: int, delta: float, spread: float) -> np.ndarray:
    """Bounded scores, not binary: d in {-.5, -.25, 0, .25, .5} with mean delta."""
    values = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    p = np.array([spread / 2 - delta, spread, 1 - 3 * spread, spread, spread / 2 + delta])
    return values[rng.choice(5, size=(STREAMS, n), p=p)]


SCENARIOS = (
    # (label, kind, n, psi or spread, true delta)
    ("equal, flip rate 2%", "binary", 2000, 0.02, 0.0),
    ("equal, flip rate 1%", "binary", 1000, 0.01, 0.0),
    ("clearly worse, -5 pts", "binary", 2000, 0.06, -0.05),
    ("worse, -4 pts, every flip a loss", "binary", 2000, 0.04, -0.04),
    ("worse, -4 pts, flip rate 8%", "binary", 2000, 0.08, -0.04),
    ("noise at the margin, equal, flip 8%", "binary", 2000, 0.08, 0.0),
    ("false PASS: delta = -tolerance", "binary", 2000, 0.05, -TOL),
    ("equal, graded scores", "graded", 2000, 0.02, 0.0),
    ("clearly worse, graded, -5 pts", "graded", 2000, 0.12, -0.05),
    ("false PASS: graded, -tolerance", "graded", 2000, 0.05, -TOL),
)


def main() -> None:
    rng = np.random.default_rng(2020)
    head = (
        f"{'scenario':38} {'n':>5}  {'fixed PASS/FAIL':>15}  {'early PASS/FAIL':>15}"
        f"  {'asked':>6}  {'saved':>6}"
    )
    print(f"tolerance {100 * TOL:g} pts, alpha {ALPHA}, batch {BATCH}, {STREAMS} streams each")
    print(head)
    print("-" * len(head))
    started = time.perf_counter()
    for label, kind, n, rate, delta in SCENARIOS:
        is_binary = kind == "binary"
        d = binary(rng, n, rate, delta) if is_binary else graded(rng, n, delta, rate)
        fixed = simulate_fixed(d, TOL, ALPHA, binary=is_binary)
        early, asked = simulate_gate(d, TOL, ALPHA, batch=BATCH, binary=is_binary)
        share = float(asked.mean()) / n
        print(
            f"{label:38} {n:>5}  {(fixed == 1).mean():>7.3f}/{(fixed == -1).mean():<7.3f}"
            f"  {(early == 1).mean():>7.3f}/{(early == -1).mean():<7.3f}"
            f"  {share:>6.0%}  {1 - share:>6.0%}"
        )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
