"""Slices from a real gate run: the plugin against two local HTTP stacks on a golden set whose
items carry a ``subject``, as a user runs it with ``--parity-json``, ``--parity-report`` and
``--parity-markdown``. The candidate loses half of one subject and gains as much elsewhere: the
task passes, the slice shows as worse, and no test is added for it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer

QUESTION = re.compile(r"Q(\d+): What is (\d+) \+ (\d+)\?")
SUBJECTS = ("physics", "math", "law", "<b>bold</b>\u202eevil")
SCHEMA = Path(__file__).resolve().parents[2] / "pytest_parity" / "report" / "schema.json"


def _parts(body: dict[str, Any]) -> tuple[int, int]:
    m = QUESTION.search(body["messages"][-1]["content"])
    assert m is not None
    return int(m.group(1)), int(m.group(2)) + int(m.group(3))


def _old(body: dict[str, Any]) -> str:
    # wrong on every sixth item outside physics
    i, total = _parts(body)
    return f"{total + 1}" if i % 4 != 0 and (i // 4) % 6 == 0 else f"{total}"


def _new(body: dict[str, Any]) -> str:
    # right wherever the old stack was wrong, wrong on half of physics (items i % 4 == 0)
    i, total = _parts(body)
    return f"{total + 1}" if i % 4 == 0 and (i // 4) % 2 == 0 else f"{total}"


@pytest.fixture
def gate(pytester: pytest.Pytester) -> Iterator[tuple[Path, Path]]:
    old, new = FakeServer(answer=_old).start(), FakeServer(answer=_new).start()
    lines = [
        json.dumps({
            "id": f"q{i}",
            "prompt": f"Q{i}: What is {i} + {i % 13}?",
            "reference": str(i + i % 13),
            "metadata": {"subject": SUBJECTS[i % 4], "row": i},
        })
        for i in range(240)
    ]  # fmt: skip
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(lines) + "\n")
    paths = []
    for name, extra in (("sliced", ""), ("unsliced", ", slice_by: false")):
        paths.append(
            pytester.makefile(
                ".yaml",
                **{
                    name: f"""
        baseline:  {{kind: openai, base_url: "{old.base_url}", model: old-model}}
        candidate: {{kind: openai, base_url: "{new.base_url}", model: new-model}}
        tasks:
          - {{name: quiz, source: golden, path: golden.jsonl, scorer: numeric,
              tolerance: 0.1{extra}}}
        """
                },
            )
        )
    yield paths[0], paths[1]
    old.stop()
    new.stop()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_real_run_reports_slices_without_a_test_or_a_verdict_of_their_own(
    pytester: pytest.Pytester, gate: tuple[Path, Path], workers: list[str]
) -> None:
    from run_builders import validate

    sliced, unsliced = gate
    result = pytester.runpytest(
        f"--parity-contract={sliced}",
        "--parity-no-cache",
        "-v",
        "--parity-report=out/parity.html",
        "--parity-json=out/parity.json",
        "--parity-markdown=out/summary.md",
        *workers,
    )
    out = result.stdout.str()
    assert result.ret == 0, out  # the task passes: slices never fail a run
    result.assert_outcomes(passed=3)  # delta, failure_modes, error_direction: no slices test
    assert "slices" not in " ".join(re.findall(r"test_parity\[[^\]]*\]", out))
    assert "quiz: slices by subject (4, exploratory): worst physics \u221250.00 [" in out
    assert "(worse; p < 0.001 of being worse than the tolerance" in out
    assert "1 of 4 look worse than the tolerance" in out
    assert "quiz: slices are exploratory: with 4 slices, some will look worse by chance" in out
    assert "\u202e" not in out

    doc = json.loads((pytester.path / "out" / "parity.json").read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert validate(doc, schema, schema) == []
    task = doc["tasks"][0]
    assert task["verdict"] == "PASS" and doc["overall"] == "PASS"
    assert not any(name.startswith("slice") for name in task["checks"])
    field = task["slices"]["fields"]
    assert [f["field"] for f in field] == ["subject"]  # auto: row has 240 values, no slice
    physics = {s["value"]: s for s in field[0]["slices"]}["physics"]
    # by hand: 60 physics items, the old stack right on all, the new one wrong on 30
    assert (physics["n"], physics["b"], physics["c"]) == (60, 30, 0)
    assert physics["baseline_score"] == 1.0 and physics["candidate_score"] == 0.5
    assert physics["status"] == "FAIL" and physics["ci_high"] < -0.1
    others = [s for s in field[0]["slices"] if s["value"] != "physics"]
    assert all((s["n"], s["b"], s["c"]) == (60, 0, 10) for s in others)

    page = (pytester.path / "out" / "parity.html").read_text(encoding="utf-8")
    assert 'class="pp-slices-block"' in page and ">worse</text>" in page
    assert "&lt;b&gt;bold&lt;/b&gt;&lt;U+202E&gt;evil" in page
    assert "<b>bold</b>" not in page and "\u202e" not in page
    md = (pytester.path / "out" / "summary.md").read_text(encoding="utf-8")
    assert "### Slices (exploratory, not part of the verdict)" in md and "\u202e" not in md

    # slice_by: false: the same tests and verdict, no slices anywhere
    off = pytester.runpytest(
        f"--parity-contract={unsliced}", "--parity-no-cache", "--parity-json=out/off.json"
    )
    assert off.ret == 0
    off.assert_outcomes(passed=3)
    doc_off = json.loads((pytester.path / "out" / "off.json").read_text(encoding="utf-8"))
    assert "slices" not in doc_off["tasks"][0]
    assert doc_off["tasks"][0]["checks"] == task["checks"]
    assert "slices by" not in off.stdout.str()
