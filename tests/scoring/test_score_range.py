"""Scores outside [0, 1] are an error naming task, item and scorer; a declared range rescales them.
The same answer on both stacks never counts as a category change."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from servers import FakeServer, Reply

SCORERS = """
def rubric(text, reference, **opts):
    return 87.0 if "good" in text else 40.0


def nan(text, reference, **opts):
    return float("nan")
"""


@pytest.fixture
def pair(fake_stacks: Callable[..., tuple[FakeServer, FakeServer]]) -> tuple[str, str]:
    a, b = fake_stacks(lambda body: "a good answer", lambda body: "a good answer")
    return a.base_url, b.base_url


def _contract(pytester: pytest.Pytester, old: str, new: str, task: str) -> None:
    pytester.makepyfile(my_scorers=SCORERS)
    pytester.path.joinpath("g.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "prompt": f"p{i}", "reference": "r"}) + "\n"
            for i in range(40)
        )
    )
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old}", model: m, params: {{max_tokens: 4}}}}
        candidate: {{kind: openai, base_url: "{new}", model: m, params: {{max_tokens: 4}}}}
        tasks:
          - {task}
        """,
    )


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.syspathinsert()
    return pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-no-cache", "--parity-json=out.json",
        "-p", "no:cacheprovider",
    )  # fmt: skip


def test_a_score_outside_zero_one_is_an_error_naming_the_item(
    pytester: pytest.Pytester, pair: tuple[str, str]
) -> None:
    _contract(pytester, *pair, "{name: rubric, source: golden, path: g.jsonl,"
              " scorer: 'my_scorers:rubric'}")  # fmt: skip
    result = _run(pytester)
    out = result.stdout.str()
    assert re.search(r"task rubric: item q\d+: scorer 'my_scorers:rubric' gave 87.0", out), out
    assert "outside [0, 1] (declare score_range: [low, high]" in out
    assert json.loads(pytester.path.joinpath("out.json").read_text())["overall"] == "ERROR"


def test_nan_is_an_error_too(pytester: pytest.Pytester, pair: tuple[str, str]) -> None:
    _contract(pytester, *pair, "{name: n, source: golden, path: g.jsonl, scorer: 'my_scorers:nan'}")
    out = _run(pytester).stdout.str()
    assert "scorer 'my_scorers:nan' gave nan" in out


def test_a_declared_range_rescales(pytester: pytest.Pytester, pair: tuple[str, str]) -> None:
    _contract(pytester, *pair, "{name: rubric, source: golden, path: g.jsonl,"
              " scorer: 'my_scorers:rubric', score_range: [0, 100], tolerance: 0.2}")  # fmt: skip
    _run(pytester).assert_outcomes(passed=3)
    doc = json.loads(pytester.path.joinpath("out.json").read_text())
    assert doc["tasks"][0]["baseline_score"] == pytest.approx(0.87)


def test_the_same_text_is_never_a_category_change(pytester: pytest.Pytester) -> None:
    # Both stacks say the same wrong thing; only the candidate reports hitting the token limit.
    a = FakeServer(answer=lambda body: "I think").start()
    b = FakeServer(answer=lambda body: Reply("I think", finish_reason="length")).start()
    try:
        _contract(pytester, a.base_url, b.base_url,
                  "{name: qa, source: golden, path: g.jsonl, scorer: numeric}")  # fmt: skip
        _run(pytester)
    finally:
        a.stop()
        b.stop()
    doc = json.loads(pytester.path.joinpath("out.json").read_text())
    fm = doc["tasks"][0]["checks"]["failure_modes"]
    assert fm["status"] == "PASS"
    assert "truncated" not in fm["numbers"]["categories"]
