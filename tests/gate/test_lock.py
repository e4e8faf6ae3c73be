"""The lock (issue 21 item 6): --parity-lock writes the digests of the verdict's inputs, and
--parity-lock-check stops a later run with exit 4 and one line naming what changed, before a
single request is sent (not even the preflight's)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer


def right(body: dict[str, Any]) -> str:
    m = re.search(r"What is (\d+) \+ (\d+)\?", body["messages"][-1]["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def contract(pytester: pytest.Pytester, old_url: str, new_url: str, n: int) -> Path:
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + {i * 7 % 13}?",
                    "reference": str(i + i * 7 % 13)})
        for i in range(n)
    ]  # fmt: skip
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(lines) + "\n")
    return pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old_url}", model: m}}
        candidate: {{kind: openai, base_url: "{new_url}", model: m}}
        tasks:
          - {{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric}}
        """,
    )


def _lock(pytester: pytest.Pytester) -> dict[str, object]:
    doc: dict[str, object] = json.loads((pytester.path / "parity.lock").read_text())
    return doc


def test_lock_names_every_input_and_an_unchanged_rerun_passes_the_check(
    pytester: pytest.Pytester,
) -> None:
    with FakeServer(answer=right) as a, FakeServer(answer=right) as b:
        path = contract(pytester, a.base_url, b.base_url, 200)
        first = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "--parity-lock=parity.lock"
        )
        assert first.ret == 0
        lock = _lock(pytester)
        entries = lock["entries"]
        assert isinstance(entries, dict)
        assert set(entries) == {
            "contract",
            "pytest-parity version",
            "data of task arithmetic",
            "scorer code of task arithmetic (numeric)",
        }
        assert all(len(v) == 64 for v in entries.values())
        second = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-cache",
            "--parity-lock-check=parity.lock",
            "--parity-report=parity.html",
            "--parity-json=parity.json",
        )
    assert second.ret == 0, second.stdout.str()
    doc = json.loads((pytester.path / "parity.json").read_text())
    assert doc["lock"]["digest"] == lock["digest"]
    assert doc["lock"]["checked"].endswith("parity.lock")
    # the sign-off block of the report carries the lock digest
    page = (pytester.path / "parity.html").read_text()
    block = page[page.index('class="pp-signoff"') :]
    assert str(lock["digest"]) in block[: block.index("</section>")]


def test_a_changed_data_file_stops_the_run_with_exit_4_before_any_request(
    pytester: pytest.Pytester,
) -> None:
    with FakeServer(answer=right) as a, FakeServer(answer=right) as b:
        path = contract(pytester, a.base_url, b.base_url, 200)
        pytester.runpytest(
            f"--parity-contract={path}", "--collect-only", "--parity-lock=parity.lock"
        )
        assert (pytester.path / "parity.lock").is_file()
        data = pytester.path / "golden.jsonl"
        data.write_text(data.read_text().replace('"reference": "0"', '"reference": "1"'))
        result = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "--parity-lock-check=parity.lock"
        )
        sent = len(a.received) + len(b.received) + len(a.headers_seen) + len(b.headers_seen)
    assert result.ret == 4
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    assert "data of task arithmetic changed (locked " in errors[0]
    assert "contract changed" not in errors[0]
    assert sent == 0


def test_a_changed_scorer_module_and_contract_are_both_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myscorer="def score(response, reference, options):\n    return 1.0\n")
    pytester.path.joinpath("golden.jsonl").write_text('{"id": "a", "prompt": "p"}\n')
    text = (
        'baseline:  {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}\n'
        'candidate: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}\n'
        "tasks:\n"
        "  - {name: qa, source: golden, path: golden.jsonl, scorer: 'myscorer:score'}\n"
    )
    path = pytester.path / "contract.yaml"
    path.write_text(text)
    pytester.syspathinsert()
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nparity_contract = "contract.yaml"\n'
        'parity_lock = "locks/parity.lock"\n'
    )
    assert pytester.runpytest("--collect-only").ret == 0
    lock = json.loads((pytester.path / "locks" / "parity.lock").read_text())
    assert "scorer code of task qa (myscorer:score)" in lock["entries"]
    pytester.makepyfile(myscorer="def score(response, reference, options):\n    return 0.0\n")
    path.write_text(text + "defaults: {tolerance: 0.02}\n")
    # the ini twin of the check; the command line's lock is not written when the check fails
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nparity_contract = "contract.yaml"\n'
        'parity_lock_check = "locks/parity.lock"\n'
    )
    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider")
    assert result.ret == 4
    line = next(x for x in result.errlines if x.startswith("ERROR:"))
    assert "contract changed" in line and "scorer code of task qa (myscorer:score) changed" in line
    assert "hint:" in line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found (hint: write one first with --parity-lock="),
        ("{not json", "not a lock file (JSONDecodeError)"),
        ('{"format": "other"}', "not a pytest-parity/lock file"),
    ],
)
def test_a_missing_or_foreign_lock_file_is_one_line(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    path = contract(pytester, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1", 10)
    lock = Path(pytester.path / "parity.lock")
    if content is not None:
        lock.write_text(content)
    result = pytester.runpytest(
        f"--parity-contract={path}", "--collect-only", "--parity-lock-check=parity.lock"
    )
    assert result.ret == 4
    assert any(message in line for line in result.errlines), result.errlines


def test_a_judge_prompt_is_locked_and_a_new_rubric_is_named(tmp_path: Path) -> None:
    from pytest_parity.contract.spec import load_contract
    from pytest_parity.session.lock import differences, entries

    (tmp_path / "golden.jsonl").write_text('{"id": "a", "prompt": "p", "reference": "r"}\n')
    text = (
        'baseline:  {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}\n'
        'candidate: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}\n'
        'judge: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: j}\n'
        "tasks:\n"
        "  - {name: graded, path: golden.jsonl,"
        " scorer: {name: judge-rubric, rubric: 'RUBRIC', scale: 1-5}}\n"
    )
    path = tmp_path / "contract.yaml"
    path.write_text(text.replace("RUBRIC", "Grade the quality."))
    before = entries(load_contract(path), "0.1.0")
    assert len(before["judge prompt of task graded"]) == 64
    assert "scorer code of task graded (judge-rubric)" in before
    path.write_text(text.replace("RUBRIC", "Grade the quality, strictly."))
    changed = differences(before, entries(load_contract(path), "0.1.0"))
    assert [c.split(" (locked")[0] for c in changed] == [
        "contract changed",
        "judge prompt of task graded changed",
    ]
    assert differences(before, entries(load_contract(path), "0.2.0"))[-1].startswith(
        "pytest-parity version changed"
    ) or any(c.startswith("pytest-parity version changed") for c in
             differences(before, entries(load_contract(path), "0.2.0")))  # fmt: skip


def test_a_replayed_stacks_recording_is_an_input_of_the_lock() -> None:
    from pytest_parity.contract.spec import load_contract
    from pytest_parity.session.lock import entries

    root = Path(__file__).resolve().parents[2]
    found = entries(load_contract(root / "example_suite/recorded/precision.yaml"), "0.1.0")
    assert {"recording of the baseline", "recording of the candidate"} <= set(found)
    assert found["recording of the baseline"] != found["recording of the candidate"]
