"""The numpy-only distributions (stats/distributions.py) against scipy, and a plain task's
evaluation without importing scipy at all (what made evaluation of 5,000 items take ~1.7 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from pytest_parity.stats import distributions as dist

ROOT = Path(__file__).resolve().parents[2]


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    keep = want > 1e-250
    return float(np.max(np.abs(got - want)[keep] / want[keep])) if keep.any() else 0.0


@pytest.mark.parametrize("n", [1, 7, 50, 500, 5000, 100_000])
@pytest.mark.parametrize("p", [1e-4, 0.013, 0.3, 0.5, 0.97])
def test_binomial_agrees_with_scipy(n: int, p: float) -> None:
    k = np.unique(np.linspace(-2, n + 2, 301).astype(int))
    # relative, down to 1e-250: lgamma's rounding at n = 100,000 (~1e6 in log space) gives 1e-9
    tol = 1e-9 if n > 5000 else 1e-10
    assert rel_err(dist.binom_cdf(k, n, p), stats.binom.cdf(k, n, p)) < tol
    assert rel_err(dist.binom_sf(k, n, p), stats.binom.sf(k, n, p)) < tol
    assert rel_err(dist.binom_pmf(k, n, p), stats.binom.pmf(k, n, p)) < tol
    for q in (1e-9, 0.025, 0.5, 0.975):
        assert dist.binom_ppf(q, n, p) == stats.binom.ppf(q, n, p)
        assert dist.binom_isf(q, n, p) == stats.binom.isf(q, n, p)


def test_binomial_edges() -> None:
    assert list(dist.binom_cdf([-1, 0, 3], 3, 0.0)) == [0.0, 1.0, 1.0]
    assert list(dist.binom_cdf([-1, 2, 3], 3, 1.0)) == [0.0, 0.0, 1.0]
    assert list(dist.binom_pmf([0, 1], 1, 1.0)) == [0.0, 1.0]
    # varying n in one call (planning's binom.cdf(k_lo, m, share))
    m = np.arange(0, 40)
    k = m // 3 - 1
    assert rel_err(dist.binom_cdf(k, m, 0.4), stats.binom.cdf(k, m, 0.4)) < 1e-12


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 10, 49, 499, 4999])
def test_student_t_agrees_with_scipy(dof: int) -> None:
    for x in (-40.0, -3.0, -1.5, -0.1, 0.0, 0.2, 1.96, 4.0, 50.0):
        assert dist.t_cdf(x, dof) == pytest.approx(stats.t.cdf(x, dof), rel=1e-10, abs=1e-300)
        assert dist.t_sf(x, dof) == pytest.approx(stats.t.sf(x, dof), rel=1e-10, abs=1e-300)
    for q in (0.001, 0.05, 0.5, 0.9, 0.95, 0.975, 0.9995):
        assert dist.t_ppf(q, dof) == pytest.approx(stats.t.ppf(q, dof), rel=1e-11, abs=1e-12)


def test_bisect_root_matches_brentq() -> None:
    def f(x: float) -> float:
        return x**3 - 2 * x - 5

    assert dist.bisect_root(f, 2.0, 3.0) == pytest.approx(optimize.brentq(f, 2.0, 3.0), abs=1e-12)
    with pytest.raises(ValueError, match="same sign"):
        dist.bisect_root(f, 3.0, 4.0)


PLAIN_EVALUATION = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from pathlib import Path
    from pytest_parity.contract.spec import load_contract
    from pytest_parity.records import TaskRun
    from pytest_parity.verdict import evaluate

    rng = np.random.default_rng(1)
    out = {}
    kinds = {"binary": lambda: float(rng.random() < 0.9),
             "continuous": lambda: round(float(rng.random()), 3)}
    for name, scores in kinds.items():
        scorer = "exact"
        Path("g.jsonl").write_text('{"id": "q0", "prompt": "p", "reference": "r"}\\n')
        Path("c.yaml").write_text(
            "baseline: {kind: openai, base_url: 'http://127.0.0.1:1/v1', model: m}\\n"
            "candidate: {kind: openai, base_url: 'http://127.0.0.1:1/v1', model: m}\\n"
            f"tasks: [{{name: t, source: golden, path: g.jsonl, scorer: {scorer}}}]\\n")
        contract = load_contract("c.yaml")
        task = contract.tasks[0]
        def side(s):
            return {"text": "x", "finish_reason": "stop", "score": s, "parsed": True,
                    "category": "correct" if s else "wrong_answer", "direction": "C" if s else "W",
                    "error": None, "latency_s": 0.01, "cached": False, "facts": None,
                    "trajectory": None}
        records = [{"id": f"q{i}", "prompt": "p", "reference": "r", "cluster": None,
                    "metadata": None, "baseline": side(scores()), "candidate": side(scores())}
                   for i in range(600)]
        run = TaskRun(task=task, records=records, endpoints={}, n_items=600,
                      failed={"baseline": 0, "candidate": 0},
                      last_error={"baseline": None, "candidate": None})
        result = evaluate(task, run, 0, contract.defaults.disagreements)
        out[name] = result["verdict"]
    out["scipy"] = sorted(m for m in sys.modules if m.split(".")[0] == "scipy")
    print(json.dumps(out))
    """
)


def test_plain_evaluation_imports_no_scipy(tmp_path: Path) -> None:
    got = subprocess.run(
        [sys.executable, "-c", PLAIN_EVALUATION],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert got.returncode == 0, got.stderr[-3000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    assert out["binary"] in ("PASS", "FAIL", "INCONCLUSIVE"), out
    assert out["continuous"] in ("PASS", "FAIL", "INCONCLUSIVE"), out
    assert out["scipy"] == [], f"a plain task's evaluation imported {out['scipy']}"
