"""Early stopping end to end: pytester runs against real local servers, requests counted there."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer

from pytest_parity.report import SCHEMA_PATH

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")


def golden(n: int) -> str:
    rows = (
        {"id": f"q{i}", "prompt": f"What is {i} + {i * 7 % 13}?", "reference": str(i + i * 7 % 13)}
        for i in range(n)
    )
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def right(body: dict[str, Any]) -> str:
    m = QUESTION.search(body["messages"][-1]["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def wrong_on(share_pct: int) -> Callable[[dict[str, Any]], str]:
    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if zlib.crc32(prompt.encode()) % 100 < share_pct:
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


def write_contract(
    pytester: pytest.Pytester, old: FakeServer, new: FakeServer, n: int, early: str
) -> Path:
    pytester.path.joinpath("golden.jsonl").write_text(golden(n))
    return pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old.base_url}", model: m}}
        candidate: {{kind: openai, base_url: "{new.base_url}", model: m}}
        tasks:
          - {{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric,
              early_stop: {early}}}
        """,
    )


def completions(server: FakeServer) -> int:
    return sum(1 for body in server.received if "messages" in body or "prompt" in body)


def run_json(pytester: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / "out.json").read_text())
    return data


def test_a_clear_regression_stops_within_the_first_batches(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(right, wrong_on(30))
    path = write_contract(pytester, old, new, 2000, "{batch: 50}")
    result = pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-no-cache",
        "--parity-no-preflight",
        "--parity-json=out.json",
    )
    assert result.ret == 1
    task = run_json(pytester)["tasks"][0]
    es = task["early_stop"]
    assert es["decision"] == "FAIL" and es["stopped"]
    assert es["asked"] <= 150, es  # within the first three batches of 50
    # Counted at the servers: exactly the items asked, nothing of a later batch ever sent.
    assert completions(old) == completions(new) == es["asked"]
    assert task["checks"]["delta"]["status"] == "FAIL"
    assert es["ci_high"] < -0.015
    out = result.stdout.str()
    assert f"early stop: FAIL, stopped early after {es['asked']} of 2,000 items" in out
    note = f"on the {es['asked']} of 2,000 items asked before the early stop"
    assert note in " ".join(task["checks"]["failure_modes"]["reasons"])
    assert note in " ".join(task["checks"]["error_direction"]["reasons"])


def test_an_identical_candidate_stops_as_pass_before_the_end(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(right, right)
    path = write_contract(pytester, old, new, 1500, "true")
    result = pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-no-cache",
        "--parity-no-preflight",
        "--parity-json=out.json",
        "--parity-markdown=summary.md",
        "--parity-report=report.html",
    )
    assert result.ret == 0, result.stdout.str()
    es = run_json(pytester)["tasks"][0]["early_stop"]
    assert es["decision"] == "PASS" and es["stopped"]
    assert es["asked"] < 1500 and es["asked"] % 50 == 0
    assert completions(old) == completions(new) == es["asked"]
    assert es["ci_low"] > -0.015
    assert "OVERALL: PASS" in result.stdout.str()

    out = result.stdout.str()
    line = f"early stop: PASS, stopped early after {es['asked']:,} of 1,500 items"
    assert f"arithmetic: {line}" in out  # shown although the task passed
    assert line in (pytester.path / "summary.md").read_text()
    assert line in (pytester.path / "report.html").read_text()
    # The coverage audit is part of every report.
    audit = run_json(pytester)["audit"]
    assert audit[0].startswith("coverage audit of contract.yaml: 7 of 8")
    assert "kind of eval: live shadow traffic: MISSING" in "\n".join(audit)
    assert "not covered: standard benchmarks, production replay, live shadow traffic," in out
    assert "### Coverage audit" in (pytester.path / "summary.md").read_text()
    assert "Coverage audit</h2>" in (pytester.path / "report.html").read_text()
    schema = json.loads(SCHEMA_PATH.read_text())["$defs"]["task"]["properties"]["early_stop"]
    assert set(schema["required"]) <= set(es)


def test_cached_answers_stop_at_the_same_look(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(30))
    path = write_contract(pytester, old, new, 1000, "{batch: 40}")
    args = [f"--parity-contract={path}", "--parity-no-preflight", "--parity-json=out.json"]
    first = pytester.runpytest(*args)
    assert first.ret == 1
    es = run_json(pytester)["tasks"][0]["early_stop"]
    sent = completions(old)
    assert sent == completions(new) == es["asked"] < 1000
    again = pytester.runpytest(*args, "--parity-cache=reuse")
    assert again.ret == 1
    assert run_json(pytester)["tasks"][0]["early_stop"] == es  # same order, same stop
    assert completions(old) == sent and completions(new) == sent  # nothing asked again


def salted(share_pct: int, salt: str) -> Callable[[dict[str, Any]], str]:
    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if zlib.crc32((salt + prompt).encode()) % 100 < share_pct:
            return "The answer is 1000000."
        return right(body)

    return answer


def test_an_undecided_task_falls_back_to_the_fixed_n_verdict(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(salted(5, "a"), salted(5, "b"))
    path = write_contract(pytester, old, new, 200, "{batch: 50}")
    result = pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-no-cache",
        "--parity-no-preflight",
        "--parity-json=out.json",
    )
    assert result.ret == 1
    task = run_json(pytester)["tasks"][0]
    es = task["early_stop"]
    assert es["decision"] is None and not es["stopped"]
    assert es["asked"] == 200 == completions(old) == completions(new)  # every item asked
    delta = task["checks"]["delta"]
    assert delta["status"] == "INCONCLUSIVE"
    text = " ".join(delta["reasons"])
    assert "early stop: not decided after 200 of 200 items (4 looks of 50)" in text
    assert "the fixed-n verdict at alpha 0.025 decides" in text
    assert "items in total" in text and "would settle it" in text  # its items-needed figure
    assert delta["numbers"]["confidence"] == pytest.approx(0.95)  # 1 - 2 a_fix
