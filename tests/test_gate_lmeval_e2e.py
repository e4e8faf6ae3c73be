"""A benchmark task through the whole gate: an lm-eval task from local YAML in a contract, with a
delta test per gated filter, run by pytest against two real local HTTP servers."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer

DATA = Path(__file__).parent / "data" / "lmeval"
SUM = re.compile(r"What is (\d+) \+ (\d+)\?")


def adder(verbose_on: set[str]) -> Any:
    """Bare sums, except chatty answers ("The answer is N.") on the chosen questions."""

    def answer(body: dict[str, Any]) -> str:
        a, b = map(int, SUM.findall(str(body["prompt"]))[-1])
        return f" The answer is {a + b}." if f"{a} + {b}" in verbose_on else f" {a + b}"

    return answer


def test_lm_eval_task_gates_each_filter_as_its_own_test(pytester: pytest.Pytester) -> None:
    shutil.copytree(DATA, pytester.path / "tasks")
    questions = [
        json.loads(line)["question"]
        for line in (DATA / "data" / "arith.jsonl").read_text().splitlines()
    ]
    # The candidate turns chatty on every question: the strict filter (a bare number) loses them
    # all, the flexible one (the last number anywhere) keeps them all.
    with FakeServer(adder(set())) as old, FakeServer(adder(set(questions))) as new:
        path = pytester.makefile(
            ".yaml",
            contract=f"""
            baseline:  {{kind: openai, base_url: "{old.base_url}", model: m, api: completions}}
            candidate: {{kind: openai, base_url: "{new.base_url}", model: m, api: completions}}
            tasks:
              - name: arith
                source: lm-eval
                path: tasks
                min_items: 5
                tolerance: 0.25  # 12 identical items: Tango's zero-flip bound is +-18.4 pts
                lm_eval: {{task: parity_arith, metrics: [exact_match], filter: [flexible, strict]}}
            """,
        )
        result = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "-v", "--parity-json=out.json"
        )
    result.stdout.re_match_lines(
        [
            r".*test_parity\[arith-delta\] PASSED.*",
            r".*test_parity\[arith-delta:exact_match,strict\] FAILED.*",
        ]
    )
    doc = json.loads((pytester.path / "out.json").read_text())
    checks = doc["tasks"][0]["checks"]
    assert checks["delta"]["numbers"]["n"] == len(questions)
    assert checks["delta:exact_match,strict"]["numbers"]["delta"] == -1.0
