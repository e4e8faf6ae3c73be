"""What the plugin costs a pytest run that gives no contract (target: < 50 ms).

The pytest11 entry point loads pytest_parity.plugin in every pytest run of the environment, so
this runs the same small test session with the plugin and with ``-p no:parity``, interleaved,
in fresh processes, and prints medians and the difference measured side by side in one run. It
also lists the heavy modules the plugin must not import at load time.

    python bench/bench_plugin_import.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("numpy", "scipy", "httpx", "aiohttp", "lm_eval", "pytest_html", "yaml", "sqlite3")


def run_once(folder: Path, disable: bool) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one pytest process."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)]
    if disable:
        cmd[4:4] = ["-p", "no:parity"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=folder)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def direct_import_ms() -> float:
    """The plugin's own import, timed inside a process that already has pytest (as a run does)."""
    code = (
        "import time, pytest; t = time.perf_counter(); import pytest_parity.plugin;"
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout) * 1000


def heavy_modules_loaded() -> list[str]:
    code = (
        "import sys, pytest_parity.plugin;"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        run_once(folder, False)  # warm the file cache and bytecode
        run_once(folder, True)
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for disable in (False, True):  # interleaved: both feel the same machine noise
                runs[disable].append(run_once(folder, disable))
    for i, what in ((0, "wall"), (1, "CPU ")):
        a = statistics.median(r[i] for r in runs[False])
        b = statistics.median(r[i] for r in runs[True])
        diff = statistics.median(x[i] - y[i] for x, y in zip(runs[False], runs[True], strict=True))
        print(
            f"{what}: plugin loaded {a * 1000:7.1f} ms, -p no:parity {b * 1000:7.1f} ms,"
            f" cost {diff * 1000:+6.1f} ms (paired median; target < 50 ms), ratio {a / b:.3f}x"
        )
    print(f"({args.rounds} rounds, medians)")
    direct = statistics.median(direct_import_ms() for _ in range(args.rounds))
    print(f"import of pytest_parity.plugin alone, pytest already loaded: {direct:.1f} ms (median)")
    heavy = heavy_modules_loaded()
    print(f"heavy modules imported by the plugin at load: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
