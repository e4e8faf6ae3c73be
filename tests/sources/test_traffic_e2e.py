"""Production replay as a user runs it: pytester gates of captured traffic against real local
HTTP servers (tests/support/servers.py), with a paired scorer standing in for the pairwise judge (no
reference: the scorer's preference and the failure categories carry the verdict)."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from servers import FakeServer
from traffic_data import gateway_lines, write_gateway

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")

# A paired scorer: both answers at once, as the pairwise judge does; 1 for the right sum.
PAIRED = """
import re
from pytest_parity.scoring.builtin import Score
from pytest_parity.scoring.context import paired

Q = re.compile(r"What is (\\d+) \\+ (\\d+)\\?")


def _right(ctx):
    text = next(m["content"] for m in reversed(ctx.item.messages) if m["role"] == "user")
    a, b = map(int, Q.search(text).groups())
    return f"is {a + b}."


@paired
async def sums(ctx):
    want = _right(ctx)
    return (Score(float(want in ctx.baseline.text)), Score(float(want in ctx.candidate.text)))
"""


def right(body: dict[str, Any]) -> str:
    user = next(m for m in reversed(body["messages"]) if m["role"] == "user")
    m = QUESTION.search(user["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def wrong_on(share_pct: int) -> Callable[[dict[str, Any]], str]:
    def answer(body: dict[str, Any]) -> str:
        user = next(m for m in reversed(body["messages"]) if m["role"] == "user")
        if zlib.crc32(user["content"].encode()) % 100 < share_pct:
            return "The answer is 1000000."
        return right(body)

    return answer


@pytest.fixture
def server(fake_servers: Callable[..., FakeServer]) -> Callable[..., FakeServer]:
    return fake_servers


def gate(
    pytester: pytest.Pytester,
    baseline: str,
    candidate: str,
    traffic: str,
    *args: str,
    task: str = "",
) -> tuple[pytest.RunResult, dict[str, Any]]:
    pytester.makepyfile(judge_stub=PAIRED)
    pytester.syspathinsert()
    path = pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {baseline}
        candidate: {candidate}
        tasks:
          - name: prod
            source: traffic
            path: traffic.jsonl
            scorer: "judge_stub:sums"
            traffic: {traffic}
            {task}
        """,
    )
    result = pytester.runpytest(
        f"--parity-contract={path}", "--parity-json=out.json", "--parity-no-preflight", *args
    )
    out = pytester.path / "out.json"
    return result, json.loads(out.read_text()) if out.exists() else {}


def test_captured_baseline_gates_the_candidate_without_the_old_stack(
    pytester: pytest.Pytester, server: Any
) -> None:
    write_gateway(pytester.path / "traffic.jsonl", 400)
    new = server(wrong_on(20))
    result, report = gate(
        pytester,
        "{kind: captured}",
        f'{{kind: openai, base_url: "{new.base_url}", model: m}}',
        "{format: openai, segment: metadata.route, conversation: metadata.conversation_id,"
        " signals: {thumbs: feedback.thumbs}, count: 300, seed: 1}",
        "--parity-no-cache",
    )
    assert result.ret == 1, result.stdout.str()
    task = report["tasks"][0]
    assert report["contract"]["baseline"]["kind"] == "captured"
    assert task["error"] is None and task["n_paired"] == 300
    assert task["baseline_score"] == 1.0  # production's answers were right
    assert task["checks"]["delta"]["status"] == "FAIL"
    notes = task["notes"]
    assert any(n.startswith("baseline: the production answers captured") for n in notes)
    assert any("300 selected (count 300, seed 1)" in n for n in notes)
    assert sum(n.startswith("segment ") for n in notes) == 3
    assert any(n.startswith("signal thumbs: ") for n in notes)
    assert task["endpoints"]["baseline"]["engine"]["baseline"].startswith("captured production")
    # the candidate got the requests as production sent them: sampling, system prompt, tools
    assert len(new.received) == 300
    assert {b["temperature"] for b in new.received} == {0.7}
    tool_turns = [b for b in new.received if b.get("tools")]
    assert tool_turns and all(len(b["messages"]) == 5 for b in tool_turns)
    assert all(b["messages"][0]["role"] == "system" for b in new.received)
    assert "stream" not in new.received[0] and "user" not in new.received[0]
    # conversations are clusters
    assert task["checks"]["delta"]["numbers"]["method"] != "tango", task["checks"]["delta"]
    out = result.stdout.str()
    assert "prod: baseline: the production answers captured" in out


def test_live_pair_with_redaction_override_and_split_segments(
    pytester: pytest.Pytester, server: Any
) -> None:
    lines = [json.loads(x) for x in gateway_lines(120, email=True)]
    (pytester.path / "traffic.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    pytester.makeconftest(
        """
        def pytest_parity_redact(task, field, text):
            return text.replace("Reply to", "[ASK]")
        """
    )
    old, new = server(right), server(right)
    result, report = gate(
        pytester,
        f'{{kind: openai, base_url: "{old.base_url}", model: m}}',
        f'{{kind: openai, base_url: "{new.base_url}", model: m}}',
        "{format: openai, segment: metadata.route, split_by_segment: true, redact: [email],"
        " sampling: {temperature: 0}}",
        "--parity-record=rec.jsonl",
        "--parity-cache-dir=cache",
        "--parity-report=report.html",
        "--parity-markdown=summary.md",
        "-v",
        task="min_items: 10\n            tolerance: 0.2",
    )
    assert result.ret == 0, result.stdout.str()
    assert [t["task"] for t in report["tasks"]] == ["prod.billing", "prod.search", "prod.support"]
    assert all(t["verdict"] == "PASS" and t["n_paired"] == 40 for t in report["tasks"])
    result.stdout.fnmatch_lines(["*test_parity?prod.search-delta? PASSED*"])
    for srv in (old, new):
        assert len(srv.received) == 120
        assert {b["temperature"] for b in srv.received} == {0}
        sent = json.dumps(srv.received)
        assert "@example.com" not in sent and "[EMAIL]" in sent and "[ASK]" in sent
    notes = report["tasks"][0]["notes"]
    assert any("sampling overridden by the contract: temperature 0" in n for n in notes)
    assert any("redacted before anything is sent or written: email" in n for n in notes)
    html = (pytester.path / "report.html").read_text()
    assert "sampling overridden by the contract: temperature 0" in html  # the notes, per task
    md = (pytester.path / "summary.md").read_text()
    assert "### Notes" in md and "**prod.search**: sampling overridden" in md
    # nothing the run wrote holds the raw address
    written = [
        pytester.path / "rec.jsonl",
        pytester.path / "out.json",
        pytester.path / "report.html",
        *sorted((pytester.path / "cache").rglob("*")),
    ]
    written += sorted((pytester.path / "parity-out").rglob("*"))
    for f in written:
        if f.is_file():
            assert b"@example.com" not in f.read_bytes(), f


def test_failure_categories_and_direction_without_reference(
    pytester: pytest.Pytester, server: Any
) -> None:
    lines = [json.loads(x) for x in gateway_lines(240)]
    for i, line in enumerate(lines):
        if i % 4 == 0:  # production abstained on these
            line["response"]["choices"][0]["message"]["content"] = "I'm not sure."
    (pytester.path / "traffic.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    def candidate(body: dict[str, Any]) -> str:
        text = next(m for m in reversed(body["messages"]) if m["role"] == "user")["content"]
        i = int(QUESTION.search(text).group(1))  # type: ignore[union-attr]
        if i % 4 == 0:
            return "The answer is 1000000."  # confident and wrong where production abstained
        if i % 7 == 1:
            return "I can't help with that."
        return right(body)

    new = server(candidate)
    result, report = gate(
        pytester,
        "{kind: captured}",
        f'{{kind: openai, base_url: "{new.base_url}", model: m}}',
        "{format: openai}",
        "--parity-no-cache",
    )
    assert result.ret == 1
    checks = report["tasks"][0]["checks"]
    cats = checks["failure_modes"]["numbers"]["categories"]
    assert checks["failure_modes"]["status"] == "FAIL" and cats["refusal"]["candidate"] > 20
    assert cats["abstain"]["baseline"] == 60
    direction = checks["error_direction"]
    assert direction["status"] == "FAIL" and direction["numbers"]["a_to_w"] == 60


def test_malformed_past_the_threshold_stops_the_run_naming_lines(
    pytester: pytest.Pytester,
) -> None:
    lines = gateway_lines(50)
    lines[9] = "{oops"
    lines[19] = '{"request": {"messages": "hi"}}'
    (pytester.path / "traffic.jsonl").write_text("\n".join(lines) + "\n")
    result, _ = gate(
        pytester,
        "{kind: captured}",
        '{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}',
        "{format: openai, max_malformed: 0.02}",
    )
    assert result.ret == 4
    err = result.stderr.str()
    assert "2 of 50 records are malformed" in err and "line 10: not valid JSON" in err
    assert "line 20: no chat messages" in err
