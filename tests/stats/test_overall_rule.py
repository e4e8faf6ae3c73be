"""The one overall rule (verdict.summarize): what the terminal, the JSON and every report show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_parity import stats
from pytest_parity.contract import contract_from_data
from pytest_parity.records import CheckResult, Status, TaskResult, check
from pytest_parity.verdict import error_result, summarize


def _contract(names: list[str], tmp_path: Path) -> Any:
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": "1", "prompt": "p", "reference": "r"}\n')
    raw = {
        "baseline": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "a"},
        "candidate": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "b"},
        "tasks": [{"name": n, "source": "golden", "path": str(data)} for n in names],
    }
    return contract_from_data(raw, tmp_path / "contract.yaml")


def _task(name: str, *checks: CheckResult) -> TaskResult:
    from pytest_parity.records import worst

    spec = type("T", (), {})()
    for k, v in dict(
        name=name, source="golden", safety_critical=False, tolerance=0.015, alpha=0.05
    ).items():
        setattr(spec, k, v)
    result = error_result(spec, "")  # type: ignore[arg-type]
    result.update({"error": None, "n_items": 100, "n_paired": 100})  # type: ignore[typeddict-item]
    result["checks"] = {c["name"]: c for c in checks}
    result["verdict"] = worst([c["status"] for c in checks])
    return result


def _delta(status: Status, p: float) -> CheckResult:
    return check("delta", status, [f"delta {status}"], p_alarm=p, power=0.9, n=100)


def test_a_fail_that_does_not_hold_across_twenty_tasks_is_inconclusive(tmp_path: Path) -> None:
    names = [f"task{i:02d}" for i in range(20)]
    tasks = [_task(n, _delta("PASS", 0.9)) for n in names]
    tasks[8] = _task("task08", _delta("FAIL", 0.04))
    run = summarize(_contract(names, tmp_path), tasks, "2026-01-01T00:00:00+00:00", "t")
    adjusted = stats.holm([0.9] * 8 + [0.04] + [0.9] * 11)[8]
    assert run["overall"] == "INCONCLUSIVE"
    assert run["holm"]["task08/delta"] == pytest.approx(adjusted)
    assert any(
        r.startswith("task08 delta FAIL does not hold across 20 alarms of the run")
        and f"p={adjusted:.2g}" in r
        for r in run["overall_reasons"]
    ), run["overall_reasons"]
    assert tasks[8]["verdict"] == "FAIL"  # the task's own test still shows its own verdict


def test_a_fail_that_holds_after_holm_fails_the_run(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    tasks = [_task("a", _delta("FAIL", 0.001)), _task("b", _delta("PASS", 0.8))]
    tasks.append(_task("c", _delta("PASS", 0.7)))
    run = summarize(_contract(names, tmp_path), tasks, "s", "t")
    assert run["overall"] == "FAIL"
    assert run["overall_reasons"][0].startswith("a delta FAIL holds across 3 alarms")


def test_alarms_of_every_check_share_one_family(tmp_path: Path) -> None:
    fm = check("failure_modes", "FAIL", ["refusal grew"], p_alarm=0.01)
    di = check("error_direction", "PASS", ["kept"], p_alarm=0.5)
    tasks = [_task("a", _delta("PASS", 0.9), fm, di), _task("b", _delta("PASS", 0.9))]
    run = summarize(_contract(["a", "b"], tmp_path), tasks, "s", "t")
    assert set(run["holm"]) == {"a/delta", "a/failure_modes", "a/error_direction", "b/delta"}
    assert run["holm"]["a/failure_modes"] == pytest.approx(0.04)
    assert run["overall"] == "FAIL"


def test_a_policy_alarm_holds_without_a_p_value(tmp_path: Path) -> None:
    fm = check("failure_modes", "FAIL", ["new failure category 'refusal'"], policy_alarm=True)
    run = summarize(_contract(["a"], tmp_path), [_task("a", _delta("PASS", 0.9), fm)], "s", "t")
    assert run["overall"] == "FAIL"
    assert run["overall_reasons"][0] == "a failure_modes FAIL: new failure category 'refusal'"


def test_pass_only_when_every_task_ran_and_passed_every_check(tmp_path: Path) -> None:
    contract = _contract(["a", "b"], tmp_path)
    both = [_task("a", _delta("PASS", 0.9)), _task("b", _delta("PASS", 0.9))]
    assert summarize(contract, both, "s", "t")["overall"] == "PASS"
    one = summarize(contract, both[:1], "s", "t")
    assert one["overall"] == "INCONCLUSIVE"
    assert any(r.startswith("not run: b") for r in one["overall_reasons"])
    settle = check("delta", "INCONCLUSIVE", ["straddles"], p_alarm=0.3, items_needed=900, n=100)
    open_ = summarize(contract, [both[0], _task("b", settle)], "s", "t")
    assert open_["overall"] == "INCONCLUSIVE"
    assert (
        "b delta INCONCLUSIVE: about 900 items (800 more) would settle it"
        in (open_["overall_reasons"])
    )


def test_an_error_is_never_a_verdict(tmp_path: Path) -> None:
    contract = _contract(["a", "b"], tmp_path)
    down = _task("b")
    down["error"] = "candidate down"
    down["verdict"] = "ERROR"
    run = summarize(contract, [_task("a", _delta("FAIL", 1e-6)), down], "s", "t")
    assert run["overall"] == "ERROR"
    assert run["overall_reasons"][0] == "b: ERROR (candidate down)"


def test_fewer_items_than_the_task_holds_is_said(tmp_path: Path) -> None:
    short = _task("a", _delta("PASS", 0.9))
    short["n_paired"] = 60
    run = summarize(_contract(["a"], tmp_path), [short], "s", "t")
    assert any("fewer items than the task holds" in r for r in run["overall_reasons"])
    assert run["overall_reasons"][-1] == "the task passed every check"
