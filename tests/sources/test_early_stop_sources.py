"""Early stopping (``early_stop: {batch: N}``) on the multi-turn and generated sources: a tool-use
task (``source: tool-use``, three requests per episode) and a long-context task (``source:
long-context``), each against real HTTP servers on 127.0.0.1 with the requests counted there.

Stacks that agree stop with PASS after as many looks as the sequential test needs on all-zero
differences (computed here from :class:`SequentialTest`, the statistic the runner feeds), having
asked a fraction of the items; a clearly worse candidate stops early with FAIL. Nothing of a
later batch is ever sent: each stack's requests are exactly the items asked (times the turns of
an episode)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, closed_port
from test_longcontext import reader
from test_tooluse import agent, episode, write_items

from pytest_parity import load_contract
from pytest_parity.contract.spec import TaskSpec
from pytest_parity.runner import Runner
from pytest_parity.stats.sequential import SequentialTest, split_alpha
from pytest_parity.verdict import evaluate

BATCH = 50
# 5 points: at the default 1.5 points, identical stacks need 10 looks of 50 (500 items) to PASS
TOLERANCE = 0.05
TURNS = 3  # a tool-use episode: search, book (or cancel), final answer


def looks_to_pass_on_zeros(task: TaskSpec, available: int) -> int:
    """The looks after which the sequential test says PASS on identical scores."""
    assert task.early_stop is not None
    a_seq, _ = split_alpha(task.alpha, task.early_stop.alpha_share)
    test = SequentialTest(task.tolerance, a_seq)
    for look in range(1, available // task.early_stop.batch + 1):
        if test.update([0.0] * task.early_stop.batch) is not None:
            assert test.decision == "PASS"
            return look
    raise AssertionError("identical stacks never decide within the task's items")


def run_task(path: Path) -> tuple[TaskSpec, Any, dict[str, Any]]:
    c = load_contract(path)
    task = c.tasks[0]
    tr = Runner(c).run(task)
    return task, tr, evaluate(task, tr, c.defaults.seed, 10)


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {name: c["status"] for name, c in result["checks"].items()}


# -- tool use ---------------------------------------------------------------------------------

EPISODES = 400


def tool_contract(tmp_path: Path, old: str, new: str) -> Path:
    write_items(tmp_path, [episode(k) for k in range(EPISODES)])
    path = tmp_path / "contract.yaml"
    path.write_text(
        f"baseline: {{kind: openai, base_url: '{old}', model: m}}\n"
        f"candidate: {{kind: openai, base_url: '{new}', model: m}}\n"
        "tasks:\n  - {name: trips, source: tool-use, path: trips.jsonl, tool_use: {},"
        f" tolerance: {TOLERANCE}, early_stop: {{batch: {BATCH}}}}}\n"
    )
    return path


def test_tool_use_stacks_that_agree_stop_early_with_pass(tmp_path: Path) -> None:
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent()) as new:
        task, tr, result = run_task(tool_contract(tmp_path, old.base_url, new.base_url))
        sent = (len(old.received), len(new.received))
    es = tr.early_stop
    looks = looks_to_pass_on_zeros(task, EPISODES)
    assert es["decision"] == "PASS" and es["stopped"]
    assert es["looks"] == looks and es["asked"] == looks * BATCH < EPISODES / 2
    assert es["available"] == EPISODES and es["paired"] == es["asked"]
    # counted at the servers: every turn of each episode asked, and not one more episode
    assert sent == (TURNS * es["asked"], TURNS * es["asked"])
    assert len(tr.records) == es["asked"]
    assert all(r["candidate"]["score"] == 1.0 for r in tr.records)
    assert result["verdict"] == "PASS", result["checks"]
    assert statuses(result)["delta"] == "PASS"
    assert statuses(result)["failure_modes"] == "PASS"


def test_tool_use_a_candidate_that_cancels_half_the_trips_stops_early_with_fail(
    tmp_path: Path,
) -> None:
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(wrong_every=2)) as new:
        _, tr, result = run_task(tool_contract(tmp_path, old.base_url, new.base_url))
        sent = (len(old.received), len(new.received))
    es = tr.early_stop
    assert es["decision"] == "FAIL" and es["stopped"]
    assert es["asked"] <= 2 * BATCH and es["asked"] % BATCH == 0
    assert sent == (TURNS * es["asked"], TURNS * es["asked"])  # a cancel is a turn as well
    assert es["ci_high"] < -task_tolerance(tr)
    wrong = sum(1 for r in tr.records if r["candidate"]["score"] == 0.0)
    assert wrong > 0.3 * es["asked"]
    assert statuses(result)["delta"] == "FAIL"
    fm = result["checks"]["failure_modes"]
    assert fm["status"] == "FAIL" and "'wrong_tool'" in " ".join(fm["reasons"])
    assert result["verdict"] == "FAIL"


def task_tolerance(tr: Any) -> float:
    return float(tr.task.tolerance)


# -- long context -----------------------------------------------------------------------------

LC = {
    "tasks": ["niah_single"],
    "lengths": [256, 512],
    "depths": [0, 25, 50, 75, 100],
    "samples": 40,
    "tokenizer": "estimate",
}
LC_ITEMS = 2 * 5 * 40


def lc_contract(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(
        f"baseline: {{kind: openai, base_url: '{old}', model: m}}\n"
        f"candidate: {{kind: openai, base_url: '{new}', model: m}}\n"
        f"tasks:\n  - {{name: lc, source: long-context, long_context: {json.dumps(LC)},"
        f" tolerance: {TOLERANCE}, early_stop: {{batch: {BATCH}}}}}\n"
    )
    return path


def test_long_context_stacks_that_agree_stop_early_with_pass(tmp_path: Path) -> None:
    with FakeServer(answer=reader()) as old, FakeServer(answer=reader()) as new:
        task, tr, result = run_task(lc_contract(tmp_path, old.base_url, new.base_url))
        sent = (len(old.received), len(new.received))
    es = tr.early_stop
    looks = looks_to_pass_on_zeros(task, LC_ITEMS)
    assert es["available"] == LC_ITEMS
    assert es["decision"] == "PASS" and es["stopped"]
    assert es["looks"] == looks and es["asked"] == looks * BATCH < LC_ITEMS / 2
    assert sent == (es["asked"], es["asked"])  # one request per item, none of a later batch
    assert all(r["baseline"]["score"] == r["candidate"]["score"] == 1.0 for r in tr.records)
    # the items asked are the seeded order's first ones, across lengths and depths
    asked = {(r["metadata"]["length"], r["metadata"]["depth"]) for r in tr.records}
    assert len(asked) == 10
    assert result["verdict"] == "PASS", result["checks"]


def test_long_context_a_candidate_that_loses_the_needle_stops_early_with_fail(
    tmp_path: Path,
) -> None:
    def forgetful(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        # loses the needle on about half of the items (the prompt's length decides, stably)
        return reader(wrong=len(prompt) % 2 == 0)(body)

    with FakeServer(answer=reader()) as old, FakeServer(answer=forgetful) as new:
        _, tr, result = run_task(lc_contract(tmp_path, old.base_url, new.base_url))
        sent = (len(old.received), len(new.received))
    es = tr.early_stop
    assert es["decision"] == "FAIL" and es["stopped"]
    assert es["asked"] <= 2 * BATCH < LC_ITEMS
    assert sent == (es["asked"], es["asked"])
    lost = sum(1 for r in tr.records if r["candidate"]["score"] == 0.0)
    assert 0.25 * es["asked"] < lost < 0.75 * es["asked"]
    assert statuses(result)["delta"] == "FAIL" and result["verdict"] == "FAIL"


def test_the_gate_shows_the_early_stop_of_a_tool_use_task(pytester: pytest.Pytester) -> None:
    """Through pytest: the terminal line and the exit status of an early-stopped tool-use task."""
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(wrong_every=2)) as new:
        path = tool_contract(pytester.path, old.base_url, new.base_url)
        result = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-cache",
            "--parity-no-preflight",
            "--parity-json=out.json",
            "-p",
            "no:cacheprovider",
        )
        sent = len(new.received)
    assert result.ret == 1
    es = json.loads((pytester.path / "out.json").read_text())["tasks"][0]["early_stop"]
    assert sent == TURNS * es["asked"]
    out = result.stdout.str()
    assert re.search(rf"early stop: FAIL, stopped early after {es['asked']} of 400 items", out)


def test_a_dead_candidate_on_an_early_stopped_tool_use_task_is_an_error_not_a_verdict(
    tmp_path: Path,
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    with FakeServer(answer=agent()) as old:
        path = tool_contract(tmp_path, old.base_url, down)
        text = path.read_text().replace(f"base_url: '{down}', model: m", f"base_url: '{down}',"
                                        " model: m, max_retries: 0")  # fmt: skip
        path.write_text(text)
        _, tr, result = run_task(path)
    assert result["verdict"] == "ERROR" and result["error"]
    assert tr.early_stop["asked"] <= BATCH  # the first batch's failures stop it there
