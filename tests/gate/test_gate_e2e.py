"""The gate as a user runs it: pytester runs of contracts against real local HTTP servers."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, closed_port

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")


def golden_lines(n: int) -> list[str]:
    return [
        json.dumps(
            {
                "id": f"q{i}",
                "prompt": f"What is {i} + {i * 7 % 13}?",
                "reference": str(i + i * 7 % 13),
            }
        )
        for i in range(n)
    ]


def right(body: dict[str, Any]) -> str:
    m = QUESTION.search(body["messages"][-1]["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def wrong_on(share_pct: int, salt: str = "") -> Callable[[dict[str, Any]], str]:
    """Right, except on a deterministic share of items (by a hash of the prompt)."""

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if zlib.crc32((salt + prompt).encode()) % 100 < share_pct:
            return "The answer is 1000000."
        return right(body)

    return answer


@pytest.fixture
def stacks(
    fake_stacks: Callable[..., tuple[FakeServer, FakeServer]],
) -> Callable[..., tuple[str, str]]:
    def start(old: Callable[..., Any], new: Callable[..., Any]) -> tuple[str, str]:
        a, b = fake_stacks(old, new)
        return a.base_url, b.base_url

    return start


def contract(
    pytester: pytest.Pytester, old_url: str, new_url: str, n: int, extra_task: str = ""
) -> Path:
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(golden_lines(n)) + "\n")
    return pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old_url}", model: m}}
        candidate: {{kind: openai, base_url: "{new_url}", model: m}}
        tasks:
          - {{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric}}
        {extra_task}
        """,
    )


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return result.parseoutcomes()


def verdict_row(result: pytest.RunResult, task: str) -> str:
    rows = [line for line in result.outlines if line.startswith(task + " ")]
    assert rows, result.stdout.str()
    return rows[0]


def test_identical_stacks_pass(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, right)
    path = contract(pytester, old, new, 400)
    result = pytester.runpytest(
        f"--parity-contract={path}", "--parity-no-cache", "--parity-json=out.json"
    )
    assert result.ret == 0
    assert outcomes(result) == {"passed": 3}
    row = verdict_row(result, "arithmetic")
    # No [0, 0]: Tango's interval at b = c = 0, about z^2 / (n + z^2) either side.
    assert "+0.00" in row and "[-0.67, +0.67]" in row and row.rstrip().endswith("PASS")
    assert "OVERALL: PASS" in result.stdout.str()
    delta = json.loads((pytester.path / "out.json").read_text())["tasks"][0]["checks"]["delta"]
    assert "no item flipped in 400; a flip rate up to 0.75%" in " ".join(delta["reasons"])


def test_regression_fails_with_reasons(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(6))
    path = contract(pytester, old, new, 1000)
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    assert result.ret == 1
    result.stdout.re_match_lines([r".*test_parity\[arithmetic-delta\].*", r"delta FAIL: delta -\d"])
    assert "lies below -1.50" in result.stdout.str()
    assert "OVERALL: FAIL" in result.stdout.str()


def test_small_symmetric_noise_is_inconclusive_with_items_needed(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(wrong_on(5, "a"), wrong_on(5, "b"))
    path = contract(pytester, old, new, 100)
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    assert result.ret == 1  # INCONCLUSIVE fails by default and never shows as a pass
    out = result.stdout.str()
    assert "delta INCONCLUSIVE" in out
    m = re.search(r"about ([\d,]+) items in total \(([\d,]+) more\) would settle it", out)
    assert m is not None, out
    needed, more = (int(g.replace(",", "")) for g in m.groups())
    assert needed > 100 and more == needed - 100


def test_inconclusive_warn_policy_is_xfail_not_pass(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(wrong_on(5, "a"), wrong_on(5, "b"))
    path = contract(pytester, old, new, 100)
    path.write_text(
        path.read_text().replace("scorer: numeric}", "scorer: numeric, inconclusive: warn}")
    )
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    assert outcomes(result).get("xfailed") == 1
    assert result.ret == 0


def test_endpoint_down_is_an_error_not_a_verdict(pytester: pytest.Pytester, stacks: Any) -> None:
    old, _ = stacks(right, right)
    down = f"http://127.0.0.1:{closed_port()}/v1"
    path = contract(pytester, old, down, 50)
    path.write_text(
        path.read_text().replace("model: m}\ntasks", "model: m, max_retries: 1}\ntasks")
    )
    # Without the preflight (it would stop the run with exit 4, see test_preflight.py): an
    # endpoint that goes down during the run still makes the tasks ERROR, never PASS.
    result = pytester.runpytest(
        f"--parity-contract={path}", "--parity-no-cache", "--parity-no-preflight"
    )
    assert result.ret == 1
    assert outcomes(result) == {"errors": 3}
    out = result.stdout.str()
    assert "passed" not in out.splitlines()[-1]
    assert f"candidate endpoint ({down})" in out
    assert (
        "2 requests failed; the task allows 1 failed request (max_error_rate 0.02 of its 50" in out
    )
    assert "OVERALL: ERROR" in out


def test_bad_contract_exits_4_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("golden.jsonl").write_text(golden_lines(1)[0] + "\n")
    path = pytester.makefile(
        ".yaml",
        contract="""
        baseline:  {kind: openai, base_url: "http://127.0.0.1:1/v1", model: m}
        candidate: {kind: openai, base_url: "http://127.0.0.1:2/v1", model: m}
        tasks:
          - {name: arithmetic, path: golden.jsonl, scorer: numeric, tolerance: 1.5}
        """,
    )
    result = pytester.runpytest_subprocess(f"--parity-contract={path}")
    assert result.ret == 4
    assert result.stderr.lines[0] == (
        f"ERROR: {path}: tasks[0].tolerance: expected a number in (0, 1), got 1.5"
        " (hint: tolerances are absolute points on a 0-1 metric: write 0.015)"
    )


def test_runs_in_a_directory_without_test_files_and_selects_with_k(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(right, right)
    # 200 identical items: enough for Tango's zero-flip interval to fit inside 1.5 pts (178+).
    path = contract(pytester, old, new, 200)
    result = pytester.runpytest(
        f"--parity-contract={path}", "--parity-no-cache", "-k", "delta", "-v"
    )
    assert outcomes(result) == {"passed": 1, "deselected": 2}
    result.stdout.re_match_lines([r".*contract\.yaml::test_parity\[arithmetic-delta\] PASSED.*"])


def test_without_contract_the_plugin_stays_out_of_the_way(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest()
    assert outcomes(result) == {"passed": 1}
    assert "parity verdict" not in result.stdout.str()


def test_safety_critical_marker_applies_the_tight_tolerance(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(right, wrong_on(1))  # about -1 point: inside 1.5, outside 0.5
    path = contract(pytester, old, new, 1500)
    plain = pytester.runpytest(f"--parity-contract={path}", "-k", "delta")
    assert outcomes(plain) == {"passed": 1, "deselected": 2}
    pytester.makeconftest(
        "import pytest\n"
        "def pytest_collection_modifyitems(items):\n"
        "    for item in items:\n"
        "        item.add_marker(pytest.mark.safety_critical)\n"
    )
    marked = pytester.runpytest(f"--parity-contract={path}", "-k", "delta")
    assert outcomes(marked).get("failed") == 1
    assert "lies below -0.50" in marked.stdout.str() or "INCONCLUSIVE" in marked.stdout.str()


def test_parity_fixture_in_a_users_own_test(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(50))
    path = contract(pytester, old, new, 60)
    pytester.makepyfile(
        "def test_mine(parity):\n"
        "    result = parity.compare('arithmetic')\n"
        "    assert result['checks']['delta']['status'] == 'FAIL'\n"
        "    assert parity.tasks == ['arithmetic']\n"
        "    answers = parity.ask('What is 2 + 3?')\n"
        "    assert answers['baseline'].text == 'The answer is 5.'\n"
    )
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache", "-k", "mine")
    assert outcomes(result) == {"passed": 1, "deselected": 3}
    assert verdict_row(result, "arithmetic").rstrip().endswith("FAIL")


def test_xdist_gives_the_same_verdict_section(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, wrong_on(6))
    path = contract(
        pytester,
        old,
        new,
        300,
        extra_task="  - {name: again, source: golden, path: golden.jsonl, scorer: numeric}",
    )
    serial = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    parallel = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache", "-n", "2")

    def section(r: pytest.RunResult) -> list[str]:
        lines = r.outlines
        start = next(i for i, line in enumerate(lines) if "parity verdict" in line)
        end = next(i for i, line in enumerate(lines) if line.startswith("OVERALL"))
        return [line for line in lines[start : end + 1] if not line.startswith("wrote ")]

    assert section(serial) == section(parallel)
    assert outcomes(serial) == outcomes(parallel)


def test_aa_noise_floor_is_shown_next_to_old_vs_new(pytester: pytest.Pytester) -> None:
    calls: dict[str, int] = {}

    def jittery(body: dict[str, Any]) -> str:
        # A nondeterministic baseline: its second answer to 1 prompt in 10 differs.
        prompt = body["messages"][-1]["content"]
        calls[prompt] = calls.get(prompt, 0) + 1
        if calls[prompt] == 2 and zlib.crc32(prompt.encode()) % 10 == 0:
            return "The answer is 1000000."
        return right(body)

    with FakeServer(answer=jittery) as a, FakeServer(answer=right) as b:
        path = contract(pytester, a.base_url, b.base_url, 200)
        result = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "--parity-aa=rerun"
        )
    header = next(line for line in result.outlines if line.startswith("task "))
    assert "A/A flips" in header
    row = verdict_row(result, "arithmetic")
    m = re.search(r"0/0\s+(\d+) \((\d+\.\d)%\)", row)
    assert m is not None, row
    assert 5 <= int(m.group(1)) <= 40  # about 1 in 10 of 200 items flipped against itself


def test_recorded_baseline_gates_a_candidate_after_the_old_stack_is_gone(
    pytester: pytest.Pytester,
) -> None:
    with FakeServer(answer=right) as old, FakeServer(answer=wrong_on(6)) as new:
        path = contract(pytester, old.base_url, new.base_url, 300)
        live = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "--parity-record=baseline.jsonl"
        )
        # The old stack is switched off: the baseline now answers from the recording.
        old.stop()
        replayed = pytester.makefile(
            ".yaml",
            replayed=path.read_text().replace(
                f'{{kind: openai, base_url: "{old.base_url}", model: m}}',
                "{kind: replay, recording: baseline.jsonl, model: m}",
            ),
        )
        again = pytester.runpytest(f"--parity-contract={replayed}", "--parity-no-cache")
        assert verdict_row(again, "arithmetic") == verdict_row(live, "arithmetic")
        assert outcomes(again) == outcomes(live) == {"failed": 1, "passed": 2}

        # A golden set changed since the recording: a clear error naming the item, never a verdict.
        golden = pytester.path / "golden.jsonl"
        golden.write_text(golden.read_text().replace("What is 3 + 8?", "What is 3 + 9?"))
        changed = pytester.runpytest(f"--parity-contract={replayed}", "--parity-no-cache")
    assert outcomes(changed) == {"errors": 3}
    assert "arithmetic/q3" in changed.stdout.str()


def test_progress_lines_on_long_tasks_and_silence_under_q(
    pytester: pytest.Pytester, stacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_parity.session import progress

    monkeypatch.setattr(progress, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "PROGRESS_EVERY_S", 0.0)
    old, new = stacks(right, right)
    path = contract(pytester, old, new, 40)
    loud = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    lines = [line for line in loud.outlines if line.startswith("[parity] arithmetic:")]
    assert lines, loud.stdout.str()
    assert re.match(
        r"\[parity\] arithmetic: baseline \d+/40, candidate \d+/40, [\d.]+ requests/s, ETA \d+s",
        lines[-1],
    )
    assert "baseline 40/40, candidate 40/40" in lines[-1]
    quiet = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache", "-q")
    assert not [line for line in quiet.outlines if line.startswith("[parity]")]


def test_max_time_bounds_the_run_and_errors_the_task(pytester: pytest.Pytester) -> None:
    with FakeServer(answer=right, latency_s=0.2) as a, FakeServer(answer=right) as b:
        path = contract(pytester, a.base_url, b.base_url, 400)
        result = pytester.runpytest(
            f"--parity-contract={path}", "--parity-no-cache", "--parity-max-time=1.5"
        )
    assert outcomes(result) == {"errors": 3}
    assert re.search(
        r"time budget \(--parity-max-time\) ran out with \d+ of 400 items", result.stdout.str()
    )


def test_pass_with_a_real_regression_inside_tolerance_carries_a_warning(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(right, wrong_on(1, "w"))  # about -1 point: significant at n=4000, inside 1.5
    path = contract(pytester, old, new, 4000)
    path.write_text(
        path.read_text().replace("scorer: numeric}", "scorer: numeric, tolerance: 0.03}")
    )
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache", "-k", "delta")
    assert outcomes(result) == {"passed": 1, "deselected": 2}
    assert "PASS*" in verdict_row(result, "arithmetic")
    assert "arithmetic delta PASS with a warning: upper bound" in result.stdout.str()


def test_contract_from_pyproject_ini_setting(pytester: pytest.Pytester, stacks: Any) -> None:
    old, new = stacks(right, right)
    contract(pytester, old, new, 200)  # identical outputs pass from 178 items (Tango, 0 flips)
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nparity_contract = "contract.yaml"\nparity_no_cache = true\n'
    )
    sub = pytester.mkdir("elsewhere")
    result = pytester.runpytest(str(sub))  # the ini path is relative to pyproject.toml
    assert outcomes(result) == {"passed": 3}
    assert "OVERALL: PASS" in result.stdout.str()


def test_a_bad_golden_line_stops_the_run_before_any_request(pytester: pytest.Pytester) -> None:
    path = contract(pytester, "http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", 5)
    golden = pytester.path / "golden.jsonl"
    golden.write_text(golden.read_text() + '{"id": "q9", "prompt": "unterminated\n')
    result = pytester.runpytest_subprocess(f"--parity-contract={path}")
    assert result.ret == 4
    assert result.stderr.lines[0].startswith(f"ERROR: {golden}:6: not valid JSON")
    assert result.stderr.lines[0].endswith("(task arithmetic)")


def test_xdist_writes_the_same_reports_as_a_serial_run(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    old, new = stacks(right, wrong_on(6))
    path = contract(
        pytester,
        old,
        new,
        300,
        extra_task="  - {name: again, source: golden, path: golden.jsonl, scorer: numeric}",
    )
    docs = {}
    for mode, extra in (("serial", []), ("xdist", ["-n", "2"])):
        pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-cache",
            f"--parity-json={mode}.json",
            f"--parity-report={mode}.html",
            *extra,
        )
        doc = json.loads((pytester.path / f"{mode}.json").read_text())
        for t in doc["tasks"]:
            t.pop("endpoints")  # engine probes only; everything else must match exactly
        docs[mode] = {k: doc[k] for k in ("overall", "overall_reasons", "holm", "tasks")}
        assert (pytester.path / f"{mode}.html").read_text().count("<section") >= 2
    assert docs["serial"] == docs["xdist"]


def test_a_run_killed_with_sigkill_resends_nothing_answered_on_rerun(
    pytester: pytest.Pytester,
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    with FakeServer(answer=right, latency_s=0.02) as a, FakeServer(answer=right) as b:
        path = contract(pytester, a.base_url, b.base_url, 200)
        path.write_text(path.read_text().replace("model: m}", "model: m, max_concurrency: 4}"))
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            f"--parity-contract={path}",
            "-p",
            "no:cacheprovider",
        ]
        child = subprocess.Popen(
            cmd, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while len(a.received) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        first = [r["messages"][-1]["content"] for r in a.received]
        assert 60 <= len(first) < 200
        a.received.clear()
        rerun = subprocess.run(cmd, cwd=pytester.path, capture_output=True, text=True)
        second = [r["messages"][-1]["content"] for r in a.received]
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    # Only the last requests before the kill may be asked again: those still at the server (at
    # most max_concurrency) and answers that arrived in the instant before their commit.
    again = set(first) & set(second)
    assert len(again) <= 8
    assert again <= set(first[-8:])
    assert len(set(first) | set(second)) == 200


def test_a_planted_api_key_appears_in_no_output_of_a_gate_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-planted-7f3a9c1e5b"
    monkeypatch.setenv("PARITY_TEST_KEY", key)
    # The candidate rejects the key and echoes it back in its error body, as some proxies do;
    # slowly, so the baseline's first answers (with the key) arrive before the refusal stops
    # the task (no failed request is allowed at 30 items): on a busy machine they did not.
    with (
        FakeServer(answer=right, require_key=key) as a,
        FakeServer(
            answer=right, require_key="other", error_body=f"invalid key {key}", latency_s=0.3
        ) as b,
    ):
        path = contract(pytester, a.base_url, b.base_url, 30)
        path.write_text(
            path.read_text().replace("model: m}", "model: m, api_key_env: PARITY_TEST_KEY}")
        )
        result = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-cache-dir=cache",
            "--parity-record=rec.jsonl",
            "--parity-json=out.json",
            "--parity-report=out.html",
            "--parity-markdown=out.md",
            "--html=pytest.html",
            "--junitxml=junit.xml",
        )
    assert outcomes(result).get("errors") == 3  # the candidate refused every request
    assert a.answered, "the baseline must have received the key and answered"
    assert key not in result.stdout.str() + result.stderr.str()
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite3" for p in written) and len(written) > 8
    for p in written:
        assert key.encode() not in p.read_bytes(), p


def test_twenty_percent_faults_give_the_same_verdict_with_every_item_answered(
    pytester: pytest.Pytester,
) -> None:
    from servers import Faults

    rows = []
    for rate in (0.0, 0.2):
        faults = Faults(rate=rate, seed=3, hang_s=1.5)
        with (
            FakeServer(answer=right, faults=faults) as a,
            FakeServer(answer=wrong_on(6), faults=faults) as b,
        ):
            path = contract(pytester, a.base_url, b.base_url, 150)
            path.write_text(path.read_text().replace("model: m}", "model: m, timeout: 1}"))
            result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
            if rate:
                assert sum(a.fault_log.values()) + sum(b.fault_log.values()) > 20
        row = verdict_row(result, "arithmetic")
        assert " 150 " in row  # every item answered by both stacks
        rows.append(row)
    assert rows[0] == rows[1]
