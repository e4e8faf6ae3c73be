"""--parity-plan: a pilot, an A/A recording or a previous run in; items needed, cost, audit out."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from servers import FakeServer

from pytest_parity import stats
from pytest_parity.stats.sequential import simulate_fixed

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")
TOL, ALPHA = 0.015, 0.05


def right(body: dict[str, Any]) -> str:
    m = QUESTION.search(body["messages"][-1]["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def wrong_on(share_pct: int) -> Callable[[dict[str, Any]], str]:
    def answer(body: dict[str, Any]) -> str:
        if zlib.crc32(body["messages"][-1]["content"].encode()) % 100 < share_pct:
            return "The answer is 1000000."
        return right(body)

    return answer


@pytest.fixture
def stacks() -> Iterator[Callable[..., tuple[FakeServer, FakeServer]]]:
    started: list[FakeServer] = []

    def start(old: Any, new: Any) -> tuple[FakeServer, FakeServer]:
        a, b = FakeServer(answer=old).start(), FakeServer(answer=new).start()
        started.extend([a, b])
        return a, b

    yield start
    for s in started:
        s.stop()


def contract(pytester: pytest.Pytester, old: FakeServer, new: FakeServer, n: int) -> None:
    rows = (
        {"id": f"q{i}", "prompt": f"What is {i} + {i * 7 % 13}?", "reference": str(i + i * 7 % 13)}
        for i in range(n)
    )
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old.base_url}", model: m, max_concurrency: 4}}
        candidate: {{kind: openai, base_url: "{new.base_url}", model: m, max_concurrency: 4}}
        tasks:
          - {{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric}}
        """,
    )


def asked(server: FakeServer) -> int:
    return sum(1 for body in server.received if "messages" in body)


def test_a_pilot_plans_each_task_and_gates_nothing(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(4))
    contract(pytester, old, new, 3000)
    result = pytester.runpytest(
        "--parity-contract=contract.yaml",
        "--parity-plan=plan.json",
        "--parity-plan-pilot=200",
        "--parity-no-cache",
    )
    assert result.ret == 0, result.stdout.str()
    assert asked(old) == asked(new) == 200  # the pilot, nothing more
    plan = json.loads((pytester.path / "plan.json").read_text())
    task = plan["tasks"][0]
    seen = task["observed"]
    assert seen["n"] == 200 and seen["binary"] and seen["available"] == 3000
    psi = seen["spread"]
    assert 0.01 < psi < 0.1
    assert task["needed"]["80%"] == stats.items_needed(psi, TOL, ALPHA, 0.8)
    assert task["needed"]["90%"] == stats.items_needed(psi, TOL, ALPHA, 0.9)
    assert task["has_them"]["80%"] == (task["needed"]["80%"] <= 3000)
    assert task["requests"] == 2 * min(task["needed"]["80%"], 3000)
    assert task["wall_s"] is not None and task["wall_s"] > 0
    assert plan["pass_probability"] == pytest.approx(task["pass_chance"])
    assert any(a["name"] == "live shadow traffic" and not a["covered"] for a in plan["audit"])
    out = result.stdout.str()
    assert "arithmetic: pilot, 200 items: flip rate" in out
    assert "80% power:" in out and "90% power:" in out
    assert "chance the whole contract passes if nothing really changed" in out
    assert "the failure-mode and direction checks are not in this figure" in out  # delta only
    assert "coverage audit of contract.yaml" in out  # the audit is part of the plan


def test_a_previous_run_plans_without_sending(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(4))
    contract(pytester, old, new, 300)
    pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-no-cache", "--parity-json=run.json"
    )
    sent = asked(old), asked(new)
    result = pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-plan", "--parity-plan-from=run.json"
    )
    assert result.ret == 0, result.stdout.str()
    assert (asked(old), asked(new)) == sent
    out = result.stdout.str()
    assert "arithmetic: previous run, 300 items" in out
    assert "wall time" not in out or "unknown" in out


def test_an_aa_recording_asks_only_the_baseline(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(50))
    contract(pytester, old, new, 120)
    pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-no-cache", "--parity-record=base.jsonl"
    )
    before_old, before_new = asked(old), asked(new)
    result = pytester.runpytest(
        "--parity-contract=contract.yaml",
        "--parity-plan",
        "--parity-plan-from=base.jsonl",
        "--parity-plan-pilot=60",
        "--parity-no-cache",
    )
    assert result.ret == 0, result.stdout.str()
    assert asked(new) == before_new  # the candidate is not part of an A/A plan
    assert asked(old) == before_old + 60
    assert "arithmetic: A/A recording, 60 items: flip rate 0.00%" in result.stdout.str()


@pytest.mark.parametrize("psi", [0.03, 0.08])
def test_items_needed_reach_their_power_in_simulation(psi: float) -> None:
    """The plan's items needed give the asked power (2,000 seeded runs of the Tango gate)."""
    rng = np.random.default_rng(7)
    for power in (0.8, 0.9):
        n = stats.items_needed(psi, TOL, ALPHA, power)
        u = rng.random((2000, n))
        d = np.where(u < psi / 2, -1.0, np.where(u < psi, 1.0, 0.0))
        got = float((simulate_fixed(d, TOL, ALPHA, binary=True) == 1).mean())
        assert abs(got - power) < 0.03, (psi, power, n, got)
        short = simulate_fixed(d[:, : int(0.7 * n)], TOL, ALPHA, binary=True)
        assert float((short == 1).mean()) < power - 0.05  # fewer items would not do


def test_the_pilot_answers_are_reused_by_the_run(pytester: pytest.Pytester, stacks: Any) -> None:
    """The pilot asks the first items of early stopping's seeded order, into the cache."""
    old, new = stacks(right, wrong_on(30))
    contract(pytester, old, new, 1000)
    path = pytester.path / "contract.yaml"
    path.write_text(
        path.read_text().replace("scorer: numeric}", "scorer: numeric, early_stop: true}")
    )
    plan = pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-plan", "--parity-plan-pilot=100"
    )
    assert plan.ret == 0, plan.stdout.str()
    assert asked(old) == asked(new) == 100
    run = pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-no-preflight", "--parity-json=out.json"
    )
    assert run.ret == 1
    es = json.loads((pytester.path / "out.json").read_text())["tasks"][0]["early_stop"]
    assert es["decision"] == "FAIL"
    assert asked(old) == 100 + max(es["asked"] - 100, 0)  # none of the pilot's items again


def test_continuous_items_needed_reach_their_power_in_simulation() -> None:
    """Graded scores: the normal-approximation plan against 2,000 seeded runs of the t gate."""
    rng = np.random.default_rng(8)
    values = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    p = np.array([0.02, 0.04, 0.88, 0.04, 0.02])
    m2 = float(p @ values**2)
    for power in (0.8, 0.9):
        n = stats.items_needed(m2, TOL, ALPHA, power, binary=False)
        d = values[rng.choice(5, size=(2000, n), p=p)]
        got = float((simulate_fixed(d, TOL, ALPHA, binary=False) == 1).mean())
        assert abs(got - power) < 0.03, (power, n, got)


def test_a_plan_path_must_be_a_json_file(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, right)
    contract(pytester, old, new, 50)
    result = pytester.runpytest("--parity-contract=contract.yaml", "--parity-plan", "tests")
    assert result.ret == 4
    assert "--parity-plan=tests: the plan is written as JSON to a .json file" in result.stderr.str()
    assert asked(old) == asked(new) == 0
