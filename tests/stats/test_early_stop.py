"""Early stopping: the contract's early_stop, the sequential test, and its error rates simulated.

The simulations run the whole procedure as the gate does: looks after every batch at a_seq, and
the fixed-n verdict at a_fix = alpha - a_seq when no look decided (Tango for binary scores, t for
the bounded continuous ones). Seeded and vectorised: a few seconds in all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_parity.contract.spec import ContractError, EarlyStopSpec, contract_from_data
from pytest_parity.stats.sequential import SequentialTest, simulate, simulate_gate, split_alpha

TOL, ALPHA = 0.015, 0.05
STREAMS = 2000
SLACK = 0.012  # about 2.5 Monte Carlo standard errors at 2,000 streams and a rate of .05


def binary_d(rng: np.random.Generator, shape: tuple[int, int], psi: float, delta: float):
    u = rng.random(shape)
    return np.where(u < (psi - delta) / 2, -1.0, np.where(u < psi, 1.0, 0.0))


def graded_d(rng: np.random.Generator, shape: tuple[int, int], delta: float):
    """Bounded, not binary: d in {-.5, -.25, 0, .25, .5}, mean exactly ``delta``."""
    values = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    p = np.array([0.05 - delta, 0.1, 0.7, 0.1, 0.05 + delta])
    return values[rng.choice(5, size=shape, p=p)]


def gate_binary(d: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """+1 PASS / -1 FAIL / 0 INCONCLUSIVE of the early-stopping gate, and the items asked."""
    return simulate_gate(d, TOL, ALPHA, share=0.5, batch=batch, binary=True)


def gate_t(d: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    return simulate_gate(d, TOL, ALPHA, share=0.5, batch=batch, binary=False)


@pytest.mark.parametrize("psi", [0.03, 0.10])
def test_binary_false_pass_at_minus_tolerance_and_false_fail_at_zero(psi: float) -> None:
    rng = np.random.default_rng(20)
    verdict, _ = gate_binary(binary_d(rng, (STREAMS, 1000), psi, -TOL), batch=10)
    false_pass = float((verdict == 1).mean())
    assert false_pass <= ALPHA + SLACK, false_pass
    verdict, _ = gate_binary(binary_d(rng, (STREAMS, 1000), psi, 0.0), batch=10)
    false_fail = float((verdict == -1).mean())
    assert false_fail <= ALPHA + SLACK, false_fail


def test_continuous_false_pass_at_minus_tolerance_and_false_fail_at_zero() -> None:
    rng = np.random.default_rng(21)
    verdict, _ = gate_t(graded_d(rng, (STREAMS, 1000), -TOL), batch=10)
    assert float((verdict == 1).mean()) <= ALPHA + SLACK
    verdict, _ = gate_t(graded_d(rng, (STREAMS, 1000), 0.0), batch=10)
    assert float((verdict == -1).mean()) <= ALPHA + SLACK


def test_the_looks_alone_spend_no_more_than_their_share() -> None:
    """Stopping after every batch of 5 over 2,000 items: P(any false stop) <= a_seq."""
    rng = np.random.default_rng(22)
    a_seq = 0.025
    decision, _ = simulate(binary_d(rng, (STREAMS, 2000), 0.05, -TOL), TOL, a_seq, 5)
    assert float((decision == 1).mean()) <= a_seq + 0.009
    decision, _ = simulate(graded_d(rng, (STREAMS, 2000), -TOL), TOL, a_seq, 5)
    assert float((decision == 1).mean()) <= a_seq + 0.009
    assert float((decision == -1).mean()) <= a_seq + 0.009


def test_clear_cases_stop_early() -> None:
    rng = np.random.default_rng(23)
    verdict, asked = gate_binary(binary_d(rng, (500, 2000), 0.02, 0.0), batch=50)
    assert (verdict == 1).mean() > 0.9 and asked.mean() / 2000 < 0.6
    verdict, asked = gate_binary(binary_d(rng, (500, 2000), 0.06, -0.05), batch=50)
    assert (verdict == -1).mean() > 0.99 and asked.mean() / 2000 < 0.3


def test_batches_agree_with_the_confidence_sequence_and_simulate() -> None:
    rng = np.random.default_rng(24)
    d = binary_d(rng, (8, 1500), 0.05, -0.03)
    decision, asked = simulate(d, TOL, 0.025, 50)
    for row in range(d.shape[0]):
        test = SequentialTest(TOL, 0.025)
        for start in range(0, 1500, 50):
            if test.update(d[row, start : start + 50]) is not None:
                break
        code = {"PASS": 1, "FAIL": -1, None: 0}[test.decision]
        assert (code, test.n) == (int(decision[row]), int(asked[row]))
        low, high = test.bounds()
        if test.decision == "FAIL":
            # The reported bound is the confidence sequence's: below -tolerance at the stop.
            assert high <= -TOL and test.p_fail <= 0.025
        if test.decision == "PASS":
            assert low >= -TOL


def test_sequential_rejects_values_outside_the_range() -> None:
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        SequentialTest(TOL, 0.025).update([0.5, 1.5])
    with pytest.raises(ValueError, match="alpha"):
        split_alpha(0.05, 1.0)


def _contract(tmp_path: Path, task: dict, defaults: dict | None = None):
    (tmp_path / "g.jsonl").write_text('{"id": "a", "prompt": "p", "reference": "r"}\n')
    data = {
        "baseline": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"},
        "candidate": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m"},
        "tasks": [{"name": "t", "source": "golden", "path": "g.jsonl", **task}],
    }
    if defaults is not None:
        data["defaults"] = defaults
    return contract_from_data(data, tmp_path / "contract.yaml")


def test_contract_early_stop_settings(tmp_path: Path) -> None:
    assert _contract(tmp_path, {}).tasks[0].early_stop is None  # off by default
    assert _contract(tmp_path, {"early_stop": True}).tasks[0].early_stop == EarlyStopSpec()
    spec = _contract(tmp_path, {"early_stop": {"batch": 20}}, {"early_stop": {"alpha_share": 0.3}})
    assert spec.tasks[0].early_stop == EarlyStopSpec(batch=20, alpha_share=0.3)
    assert _contract(tmp_path, {}, {"early_stop": True}).tasks[0].early_stop == EarlyStopSpec()
    assert (
        _contract(tmp_path, {"early_stop": False}, {"early_stop": True}).tasks[0].early_stop is None
    )
    described = _contract(tmp_path, {"early_stop": True}).describe()["tasks"][0]
    assert described["early_stop"] == {"batch": 50, "alpha_share": 0.5}


@pytest.mark.parametrize(
    ("task", "where", "says"),
    [
        ({"early_stop": "yes"}, "tasks[0].early_stop", "expected true, false or a mapping"),
        ({"early_stop": {"batch": 0}}, "tasks[0].early_stop.batch", "whole number"),
        ({"early_stop": {"alpha_share": 1.0}}, "tasks[0].early_stop.alpha_share", "(0, 1)"),
        ({"early_stop": {"batches": 5}}, "tasks[0].early_stop.batches", "did you mean 'batch'"),
        (
            {"early_stop": True, "cluster_key": "passage"},
            "tasks[0].early_stop",
            "clustered items are not",
        ),
    ],
)
def test_contract_early_stop_errors_are_one_line(
    tmp_path: Path, task: dict, where: str, says: str
) -> None:
    with pytest.raises(ContractError) as err:
        _contract(tmp_path, task)
    text = str(err.value)
    assert "\n" not in text and where in text and says in text, text
