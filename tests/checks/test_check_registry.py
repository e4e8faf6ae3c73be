"""A check added from a conftest.py, in one file: it becomes a test, a terminal column, JSON and HTML.

This is the seam the calibration, tone, bucket and latency checks use: nothing in the package is
touched to add one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from servers import FakeServer

CONFTEST = """
from pytest_parity import registry
from pytest_parity.checks.base import Check


class LengthCheck(Check):
    name = "length"
    title = "Answers as long as before"
    column = "length"

    def options(self, raw, where, v, task):
        return {"max_ratio": v.number(raw.get("max_ratio", 1.5), f"{where}.max_ratio", 0, 100)}

    def run(self, task, run, ctx):
        old = sum(len(r["baseline"]["text"]) for r in run.records)
        new = sum(len(r["candidate"]["text"]) for r in run.records)
        ratio = new / max(old, 1)
        ok = ratio <= self.settings(task)["max_ratio"]
        reason = f"candidate answers are {ratio:.2f}x as long as the baseline's"
        return [self.result(self.name, "PASS" if ok else "FAIL", [reason], ratio=ratio)]


registry.checks.register("length", LengthCheck, replace=True)
"""


@pytest.fixture
def pair(fake_stacks: Callable[..., tuple[FakeServer, FakeServer]]) -> tuple[str, str]:
    longer = "4, and here is a much longer explanation of it"
    a, b = fake_stacks(lambda body: "4", lambda body: longer)
    return a.base_url, b.base_url


def test_a_conftest_check_runs_everywhere(pytester: pytest.Pytester, pair: tuple[str, str]) -> None:
    old, new = pair
    pytester.makeconftest(CONFTEST)
    pytester.path.joinpath("g.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "prompt": "2+2?", "reference": "4"}) + "\n"
            for i in range(40)
        )
    )
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old}", model: m}}
        candidate: {{kind: openai, base_url: "{new}", model: m}}
        tasks:
          - {{name: qa, source: golden, path: g.jsonl, scorer: contains,
              checks: {{length: {{max_ratio: 2}}, error_direction: false}}}}
          - {{name: plain, source: golden, path: g.jsonl, scorer: contains}}
        """,
    )
    result = pytester.runpytest(
        "--parity-contract=contract.yaml",
        "--parity-no-cache",
        "--parity-json=out.json",
        "--parity-report=out.html",
        "-v",
        "-p",
        "no:cacheprovider",
    )
    out = result.stdout.str()
    # a test of its own, only where the task asks for it; error_direction turned off on qa
    assert "test_parity[qa-length] FAILED" in out
    assert "test_parity[plain-length]" not in out
    assert "test_parity[qa-error_direction]" not in out
    assert "test_parity[plain-error_direction] PASSED" in out
    # the terminal table has its column and its reason
    header = next(line for line in out.splitlines() if line.startswith("task "))
    assert header.split()[-2:] == ["length", "verdict"]
    assert "qa length FAIL: candidate answers are" in out
    doc = json.loads(pytester.path.joinpath("out.json").read_text())
    qa = next(t for t in doc["tasks"] if t["task"] == "qa")
    assert (
        qa["checks"]["length"]["status"] == "FAIL"
        and qa["checks"]["length"]["numbers"]["ratio"] > 2
    )
    assert qa["verdict"] == "FAIL" and doc["overall"] == "FAIL"
    html = pytester.path.joinpath("out.html").read_text()
    assert "Answers as long as before" in html  # its title, and a generic table of its numbers
    assert "<th>ratio</th>" in html


def test_an_unknown_check_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("g.jsonl").write_text('{"id": "1", "prompt": "p", "reference": "r"}\n')
    pytester.makefile(
        ".yaml",
        contract="""
        baseline:  {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
        candidate: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
        tasks:
          - {name: qa, source: golden, path: g.jsonl, checks: {calibraton: true}}
        """,
    )
    result = pytester.runpytest("--parity-contract=contract.yaml", "-p", "no:cacheprovider")
    assert result.ret == 4
    err = result.stderr.str()
    assert "tasks[0].checks.calibraton" in err and "unknown check 'calibraton'" in err
    assert "Traceback" not in err


def test_an_installed_package_registers_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pyproject.toml route the registry documents: a distribution's entry point in the
    ``pytest_parity.checks`` group becomes a check name (one scan serves every registry)."""
    from pytest_parity import registry as reg

    dist = tmp_path / "my_checks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-checks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest_parity.checks]\nlatency_p99 = my_checks:P99\n\n"
        "[pytest_parity.sources]\nmy_source = my_checks:Source\n\n"
        "[console_scripts]\nnot_ours = my_checks:main\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(reg, "_ENTRY_POINTS", None)
    checks = reg.Registry("check", {}, group="pytest_parity.checks")
    sources = reg.Registry("source", {}, group="pytest_parity.sources")
    assert checks.names() == ("latency_p99",) and sources.names() == ("my_source",)
    assert set(reg._entry_points()) == {"pytest_parity.checks", "pytest_parity.sources"}
