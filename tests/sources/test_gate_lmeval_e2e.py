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

DATA = Path(__file__).resolve().parents[1] / "data" / "lmeval"
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


def test_an_lm_eval_task_recorded_then_replayed_offline_gives_the_same_numbers(
    pytester: pytest.Pytester,
) -> None:
    """The migration recipe for benchmarks: record the old stack once, gate later candidates
    against the recording after it is gone; lm-eval requests go through the endpoint layer."""
    shutil.copytree(DATA, pytester.path / "tasks")
    task = (
        "tasks:\n  - name: arith\n    source: lm-eval\n    path: tasks\n    min_items: 5\n"
        "    tolerance: 0.25\n"
        "    lm_eval: {task: parity_arith, metrics: [exact_match], filter: flexible}\n"
    )
    with FakeServer(adder(set())) as old, FakeServer(adder({"2 + 3"})) as new:
        live = pytester.makefile(
            ".yaml",
            live=f'baseline: {{kind: openai, base_url: "{old.base_url}", model: m, api: completions}}'
            f'\ncandidate: {{kind: openai, base_url: "{new.base_url}", model: m,'
            f" api: completions}}\n{task}",
        )
        first = pytester.runpytest(
            f"--parity-contract={live}", "--parity-no-cache", "--parity-record=old.jsonl",
            "--parity-json=live.json",
        )  # fmt: skip
        asked = len(old.received)
        candidate_url = new.base_url
        # the baseline server is gone from here on; the candidate keeps serving
        old.stop()
        replayed = pytester.makefile(
            ".yaml",
            replayed="baseline: {kind: replay, recording: old.jsonl, model: m, api: completions}"
            f'\ncandidate: {{kind: openai, base_url: "{candidate_url}", model: m,'
            f" api: completions}}\n{task}",
        )
        second = pytester.runpytest(
            f"--parity-contract={replayed}", "--parity-no-cache", "--parity-json=replay.json"
        )
    assert first.ret == second.ret == 0
    assert asked > 0
    lines = (pytester.path / "old.jsonl").read_text().splitlines()
    assert len([json.loads(x) for x in lines if '"request_hash"' in x]) >= asked - 1
    a = json.loads((pytester.path / "live.json").read_text())["tasks"][0]
    b = json.loads((pytester.path / "replay.json").read_text())["tasks"][0]
    for key in ("n_paired", "baseline_score", "candidate_score"):
        assert a[key] == b[key], key
    da, db = a["checks"]["delta"]["numbers"], b["checks"]["delta"]["numbers"]
    assert (da["delta"], da["ci_low"], da["ci_high"]) == (db["delta"], db["ci_low"], db["ci_high"])
    assert b["endpoints"]["baseline"]["kind"] == "replay"
