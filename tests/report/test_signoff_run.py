"""The sign-off facts from a real gate run (issue 21 items 1 and 7): a jittery baseline measured
against itself (--parity-aa=rerun), a locked run, and the standalone report, the Markdown summary
and the pytest-html page each carrying the verdict, the grouped reasons, the A/A flip rate and
the lock digest, read from the run's own JSON."""

from __future__ import annotations

import html
import json
import re
import zlib
from typing import Any

import pytest
from run_builders import SCHEMA, validate
from servers import FakeServer


def _right(body: dict[str, Any]) -> str:
    m = re.search(r"What is (\d+) \+ (\d+)\?", body["messages"][-1]["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def _text(markup: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


@pytest.mark.slow
def test_a_real_run_signs_off_the_same_facts_in_every_report(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    calls: dict[str, int] = {}

    def jittery(body: dict[str, Any]) -> str:
        # the baseline's second answer to about 1 prompt in 10 differs: its own noise floor
        prompt = body["messages"][-1]["content"]
        calls[prompt] = calls.get(prompt, 0) + 1
        if calls[prompt] == 2 and zlib.crc32(prompt.encode()) % 10 == 0:
            return "The answer is 1000000."
        return _right(body)

    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + {i * 7 % 13}?",
                    "reference": str(i + i * 7 % 13)})
        for i in range(200)
    ]  # fmt: skip
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(lines) + "\n")
    with FakeServer(answer=jittery) as a, FakeServer(answer=_right) as b:
        path = pytester.makefile(
            ".yaml",
            contract=f"""
            description: "fp16 -> fp8 on the arithmetic bot"
            baseline:  {{kind: openai, base_url: "{a.base_url}", model: m}}
            candidate: {{kind: openai, base_url: "{b.base_url}", model: m}}
            tasks:
              - {{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric,
                  params: {{max_tokens: 8}}}}
            """,
        )
        result = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-cache",
            "--parity-aa=rerun",
            "--parity-lock=parity.lock",
            "--parity-report=parity.html",
            "--parity-markdown=summary.md",
            "--parity-json=parity.json",
            "--html=pytest.html",
            "--self-contained-html",
        )
    assert result.ret == 0, result.stdout.str()
    doc = json.loads((pytester.path / "parity.json").read_text())
    schema = json.loads(SCHEMA.read_text())
    assert validate(doc, schema, schema) == []  # lock, task params: described by the schema
    assert doc["contract"]["tasks"][0]["params"] == {"max_tokens": 8}
    aa = doc["tasks"][0]["aa"]
    assert 5 <= aa["flips"] <= 40
    aa_text = f"{aa['flip_rate'] * 100:.1f}% ({aa['flips']} of {aa['n']})"
    digest = doc["lock"]["digest"]
    assert digest == json.loads((pytester.path / "parity.lock").read_text())["digest"]
    page = (pytester.path / "parity.html").read_text()
    first = _text(page[page.index('class="pp-first"') : page.index('id="summary"')])
    markdown = (pytester.path / "summary.md").read_text().replace("\\_", "_")
    pytest_html = _text((pytester.path / "pytest.html").read_text())
    for where, text in (("html", first), ("markdown", markdown), ("pytest-html", pytest_html)):
        assert "Passed (1 task)" in text, where
        assert "arithmetic: new minus old +0.00 pts" in text, where
        assert aa_text in text, where
        assert digest in text, where
    assert "old vs new: items that flipped" in first and "0.0%" in first
    # what the task really ran with, not the endpoint's default of 512
    tasks = _text(page[page.index("<h3>Tasks and tolerances") : page.index('id="tasks"')])
    assert "max_tokens=8" in tasks and "max_tokens=512" not in tasks
