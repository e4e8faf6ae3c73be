"""What the plugin costs a pytest run that gives no contract (target: < 50 ms).

The pytest11 entry point loads pytest_parity.plugin in every pytest run of the environment, so
this runs the same small test session with the plugin and with ``-p no:parity``, interleaved,
in fresh processes, and prints medians and the difference measured side by side in one run. It
also lists the heavy modules the plugin must not import at load time.

    python bench/bench_plugin_import.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("numpy", "scipy", "httpx", "aiohttp", "lm_eval", "pytest_html", "yaml", "sqlite3")


def run_once(folder: Path, disable: bool) -> float:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)]
    if disable:
        cmd[4:4] = ["-p", "no:parity"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=folder)
    return time.perf_counter() - t0


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
        with_plugin: list[float] = []
        without: list[float] = []
        for _ in range(args.rounds):
            with_plugin.append(run_once(folder, False))
            without.append(run_once(folder, True))
    a, b = statistics.median(with_plugin), statistics.median(without)
    diffs = sorted(x - y for x, y in zip(with_plugin, without, strict=True))
    print(f"pytest run, plugin loaded    : median {a * 1000:7.1f} ms  ({args.rounds} rounds)")
    print(f"pytest run, -p no:parity     : median {b * 1000:7.1f} ms")
    print(
        f"cost of the plugin (paired)  : median {statistics.median(diffs) * 1000:+7.1f} ms"
        f"  (target < 50 ms)   ratio {a / b:.3f}x"
    )
    heavy = heavy_modules_loaded()
    print(f"heavy modules imported by the plugin at load: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
