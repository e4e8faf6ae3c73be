"""--parity-audit: the four kinds of eval and the four failure modes, covered or not; nothing sent."""

from __future__ import annotations

import json

import pytest
from servers import FakeServer


def test_the_audit_names_every_gap_and_sends_nothing(pytester: pytest.Pytester) -> None:
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"p{i % 40}", "reference": "r"}) for i in range(50)
    ]
    pytester.path.joinpath("g.jsonl").write_text("\n".join(lines) + "\n")
    with FakeServer() as server:
        pytester.makefile(
            ".yaml",
            contract=f"""
            baseline:  {{kind: openai, base_url: "{server.base_url}", model: m}}
            candidate: {{kind: openai, base_url: "{server.base_url}", model: m}}
            tasks:
              - {{name: qa, source: golden, path: g.jsonl,
                  params: {{tools: [{{type: function, function: {{name: f, parameters: {{}}}}}}]}}}}
            """,
        )
        result = pytester.runpytest("--parity-contract=contract.yaml", "--parity-audit")
        assert server.received == []
    assert result.ret == 0
    out = result.stdout.str()
    assert "6 of 8 kinds of eval and failure modes not covered, 2 golden-set warnings" in out
    assert "kind of eval: workload golden set: covered by qa" in out
    assert "failure mode: tool use: covered by qa" in out
    assert "kind of eval: standard benchmarks: MISSING (add a task with source: lm-eval" in out
    assert "failure mode: calibration drift: MISSING" in out
    assert "golden set qa: 50 items, fewer than 200" in out
    assert "golden set qa: 10 duplicated prompt(s)" in out
