"""Speed of the parity statistics, measured side by side in one run (not a test).

Run: PYTHONPATH=. .venv/bin/python bench/bench_stats.py
Targets on the 2-core CI machine: paired bootstrap of 2,000 items x 10,000 resamples under
150 ms and 50 MiB; the full statistics of 20 tasks x 2,000 items under 3 s. The code is
single-threaded, so targets are judged on CPU time, which is what wall time is on an idle
machine; on a shared one wall time also counts the wait for a core (load average printed).
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_parity import stats as S

N_ITEMS, N_BOOT, N_TASKS, REPEATS = 2000, 10_000, 20, 5


def naive_bootstrap(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """All resamples at once: one (n_boot, n) index matrix."""
    return np.asarray(d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1))


def measure(fn: Callable[[], Any]) -> tuple[float, float, float]:
    """Median wall and CPU seconds over REPEATS runs, then peak traced MiB of one more run.

    CPU time is printed beside wall time because the CI machine is shared: wall time includes
    waiting for a core, CPU time does not.
    """
    fn()  # warm up imports and allocator
    walls, cpus = [], []
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(walls), statistics.median(cpus), peak / 2**20


def row(label: str, m: tuple[float, float, float], target: str = "") -> None:
    wall, cpu, mib = m
    numbers = f"{1000 * wall:8.1f} ms wall {1000 * cpu:8.1f} ms cpu {mib:7.1f} MiB"
    print(f"  {label:<42} {numbers}  {target}")


def bench_bootstrap() -> None:
    d = np.random.default_rng(0).normal(0.0, 0.3, N_ITEMS)
    print(f"paired bootstrap, {N_ITEMS:,} items x {N_BOOT:,} resamples (median of {REPEATS})")
    chunked = measure(lambda: S.bootstrap_means(d, N_BOOT, np.random.default_rng(1)))
    naive = measure(lambda: naive_bootstrap(d, N_BOOT, np.random.default_rng(1)))
    ok = chunked[1] < 0.150 and chunked[2] < 50
    verdict = "target <150 ms, <50 MiB: " + ("met" if ok else "MISSED")
    row(f"chunked index resampling ({S.CHUNK}/chunk)", chunked, verdict)
    row("naive all-at-once numpy", naive)
    print(
        f"  ratio naive/chunked: wall x{naive[0] / chunked[0]:.1f}, cpu x"
        f"{naive[1] / chunked[1]:.1f}, memory x{naive[2] / chunked[2]:.1f}"
    )
    three_way = np.random.default_rng(2).choice([-1.0, 0.0, 1.0], N_ITEMS, p=[0.05, 0.92, 0.03])
    cells = measure(lambda: S.bootstrap_means(three_way, N_BOOT, np.random.default_rng(3)))
    index = measure(lambda: naive_bootstrap(three_way, N_BOOT, np.random.default_rng(3)))
    row("3-way outcomes: one multinomial over cells", cells)
    row("3-way outcomes: naive all-at-once numpy", index)
    print(f"  ratio naive/cells: time x{index[0] / cells[0]:.0f}")


def tasks(gen: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, list[int] | None]]:
    """20 tasks: 10 binary (flip rates 2-10%), 6 continuous, 4 clustered (40 items per passage)."""
    out: list[tuple[str, np.ndarray, np.ndarray, list[int] | None]] = []
    for i in range(N_TASKS):
        if i < 10:
            old = (gen.random(N_ITEMS) < 0.7).astype(float)
            flip = gen.random(N_ITEMS) < 0.02 + 0.008 * i
            new = np.where(flip, 1.0 - old, old)
            out.append((f"binary-{i}", old, new, None))
        else:
            old = gen.random(N_ITEMS)
            new = np.clip(old + gen.normal(-0.002 * (i - 10), 0.05, N_ITEMS), 0.0, 1.0)
            groups = [j // 40 for j in range(N_ITEMS)] if i >= 16 else None
            out.append((f"{'clustered' if groups else 'continuous'}-{i}", old, new, groups))
    return out


def full_statistics(data: list[Any], continuous_method: str, cross_check: bool = True) -> str:
    verdicts = []
    for name, old, new, groups in data:
        binary = name.startswith("binary")
        method = "auto" if binary or groups else continuous_method
        rng = S.task_rng(20, name)
        iv = S.paired_interval(
            old, new, rng=rng, clusters=groups, method=method, cross_check=cross_check
        )
        verdicts.append(S.noninferiority(iv, 0.015))
    adjusted = S.holm([v.p_fail for v in verdicts])  # the alarms as verdict.summarize adjusts them
    held = sum(v.status == "FAIL" and p < 0.05 for v, p in zip(verdicts, adjusted, strict=True))
    return f"{sum(v.status == 'PASS' for v in verdicts)} PASS, {held} FAIL holding after Holm"


def bench_full() -> None:
    data = tasks(np.random.default_rng(4))
    print(f"\nfull statistics, {N_TASKS} tasks x {N_ITEMS:,} items (intervals, verdicts, Holm)")
    # The default carries a bootstrap cross-check on every t / cluster-t task, so it pays for
    # t and bootstrap both; the row without it shows what the cross-check costs.
    labels = {
        ("auto", True): "t + bootstrap cross-check (the default)",
        ("auto", False): "t only (cross_check=False)",
        ("bootstrap", True): "continuous by bootstrap",
    }
    for (method, check), label in labels.items():
        m = measure(lambda method=method, check=check: full_statistics(data, method, check))  # type: ignore[misc]
        row(label, m, "target <3 s: " + ("met" if m[1] < 3 else "MISSED"))
    print("  overall:", full_statistics(data, "auto"))


if __name__ == "__main__":
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    bench_bootstrap()
    bench_full()
