"""The tone check's rubric scored by the shipped LLM judge (``rubric_scorer: judge-rubric``), end
to end through pytest against real HTTP servers on 127.0.0.1: two scripted stacks and a scripted
judge (tests/support/judge_script.py) that grades the ``quality=N`` marker of each answer.

Design (60 support items, the same words on both stacks, so length and markers never move):

* baseline: warmth 3, 4 or 5 by item (``i % 3``), ``quality=<warmth>`` in the answer;
* a colder candidate: two grades lower on the items with ``i % 4 != 0`` (45 of 60), so the rubric
  delta is exactly ``-45 * 2 / 4 / 60 = -0.375`` on the [0, 1] scale;
* an equally warm candidate: other words in the same number, the same warmth on every item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from judge_script import ScriptedJudge
from servers import FakeServer, closed_port

N = 60
_WORDS = "open the settings page then choose the account tab and select the reset option"
_OTHER = "go to profile menu next pick the security panel and press the restore entry"
WORDS, OTHER = _WORDS.split(" "), _OTHER.split(" ")
assert len(WORDS) == len(OTHER)


def _number(body: dict[str, Any]) -> int:
    found = re.search(r"Question (\d+)", body["messages"][-1]["content"])
    assert found is not None
    return int(found.group(1))


def warmth(i: int) -> int:
    return 3 + i % 3


def warm(body: dict[str, Any]) -> str:
    i = _number(body)
    return f"Hello! Code K{i}: " + " ".join(WORDS) + f" (quality={warmth(i)})."


def colder(body: dict[str, Any]) -> str:
    i = _number(body)
    w = warmth(i) - 2 if i % 4 else warmth(i)
    return f"Hello! Code K{i}: " + " ".join(WORDS) + f" (quality={w})."


def equally_warm(body: dict[str, Any]) -> str:
    i = _number(body)
    return f"Hello! Code K{i}: " + " ".join(OTHER) + f" (quality={warmth(i)})."


TONE = "{rubric_scorer: judge-rubric, rubric_options: {rubric: 'Grade warmth.', scale: 1-5}}"


def _write(
    pytester: pytest.Pytester, old: str, new: str, judge: str, tone: str, extra: str
) -> None:
    pytester.path.joinpath("support.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": f"s{i}", "prompt": f"Question {i}: I cannot log in.", "reference": f"K{i}"}
            )
            + "\n"
            for i in range(N)
        )
    )
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: vllm, base_url: "{old}", model: m}}
        candidate: {{kind: vllm, base_url: "{new}", model: m}}
        judge: {{kind: openai, base_url: "{judge}", model: judge-m, max_retries: 0}}
        tasks:
          - {{name: support, path: support.jsonl, scorer: contains, tolerance: 0.1{extra},
              checks: {{tone: {tone}}}}}
        """,
    )


def _run(
    pytester: pytest.Pytester,
    old: str,
    new: str,
    judge: str,
    tone: str = TONE,
    extra: str = "",
    *args: str,
) -> tuple[pytest.RunResult, dict[str, Any]]:
    _write(pytester, old, new, judge, tone, extra)
    result = pytester.runpytest(
        *args,
        "--parity-contract=contract.yaml",
        "--parity-no-cache",
        "--parity-no-preflight",  # the scripted stacks answer under any model name
        "--parity-json=out.json",
        "--parity-report=out.html",
        "-p",
        "no:cacheprovider",
    )
    doc: dict[str, Any] = json.loads((pytester.path / "out.json").read_text())
    return result, next(t for t in doc["tasks"] if t["task"] == "support")


def _text(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def test_a_colder_candidate_fails_the_judged_tone_rubric(
    pytester: pytest.Pytester, fake_servers: Callable[..., FakeServer]
) -> None:
    judge = ScriptedJudge()
    old, new, j = fake_servers(warm), fake_servers(colder), fake_servers(judge)
    result, task = _run(
        pytester, old.base_url, new.base_url, j.base_url, TONE, "", "--parity-record-judge=j.jsonl"
    )
    assert task["error"] is None, task["error"]
    assert task["checks"]["delta"]["status"] == "PASS"  # the key fact is on both sides
    tone = task["checks"]["tone"]
    nums = tone["numbers"]
    assert tone["status"] == "FAIL", tone["reasons"]
    assert nums["rubric_scorer"] == "judge-rubric"
    assert nums["rubric_status"] == "FAIL" and nums["length_status"] == "PASS"
    assert nums["rubric_delta"] == pytest.approx(-45 * 2 / 4 / N)
    assert nums["rubric_baseline"] == pytest.approx(sum((warmth(i) - 1) / 4 for i in range(N)) / N)
    assert nums["rubric_ci_high"] < -0.05 and nums["rubric_judge_errors"] == 0
    assert sum(nums["rubric_hist_baseline"]) == sum(nums["rubric_hist_candidate"]) == N
    # both answers of every item judged once, with the shipped template and the contract's rubric
    assert len(judge.bodies) == 2 * N
    prompt = judge.bodies[0]["messages"][-1]["content"]
    assert "## Rubric\nGrade warmth." in prompt
    assert "Grade with a whole number from 1 (worst) to 5 (best)." in prompt
    assert "{{" not in prompt
    assert all(b["response_format"]["type"] == "json_schema" for b in judge.bodies)
    # the tone judgements are recorded under their own ids, apart from any main judge scorer's
    lines = [json.loads(x) for x in (pytester.path / "j.jsonl").read_text().splitlines()]
    ids = sorted(x["item_id"] for x in lines if "item_id" in x)
    assert len(ids) == 2 * N
    assert all(re.fullmatch(r"support/s\d+#judge:tone:grade:(baseline|candidate)", i) for i in ids)
    assert result.ret == 1, result.stdout.str()
    assert "KeyError" not in _text(result) and "Traceback" not in _text(result)
    html = (pytester.path / "out.html").read_text()
    assert "Tone rubric distribution" in html


def test_a_pairwise_judge_as_the_tone_rubric(
    pytester: pytest.Pytester, fake_servers: Callable[..., FakeServer]
) -> None:
    """judge-pairwise: both orders per item; the colder answer loses on 45 items and the rest
    are ties (same quality, same length), so the paired delta is exactly -45 / 60."""
    tone = "{rubric_scorer: judge-pairwise, rubric_options: {criteria: 'Which answer is warmer?'}}"
    judge = ScriptedJudge()
    old, new, j = fake_servers(warm), fake_servers(colder), fake_servers(judge)
    result, task = _run(pytester, old.base_url, new.base_url, j.base_url, tone)
    nums = task["checks"]["tone"]["numbers"]
    assert nums["rubric_scorer"] == "judge-pairwise" and nums["rubric_status"] == "FAIL"
    assert nums["rubric_delta"] == pytest.approx(-45 / N)
    assert len(judge.bodies) == 2 * N  # both orders, no recheck
    assert all("Which answer is warmer?" in b["messages"][-1]["content"] for b in judge.bodies)
    assert task["judge"] is None  # the task's scorer is not a judge: no judge figures
    assert "Traceback" not in _text(result)


def test_an_equally_warm_candidate_passes_with_a_hand_written_template(
    pytester: pytest.Pytester, fake_servers: Callable[..., FakeServer]
) -> None:
    pytester.path.joinpath("tone.md").write_text(
        "TONE JUDGE. Rubric: {{rubric}}\n{{prompt}}\n<answer>\n{{answer}}\n</answer>\n"
        "{{scale}}\n{{format}}\n"
    )
    tone = (
        "{rubric_scorer: judge-rubric, rubric_options: {rubric: 'Grade warmth.', scale: 1-5,"
        " template: tone.md}}"
    )
    judge = ScriptedJudge()
    old, new, j = fake_servers(warm), fake_servers(equally_warm), fake_servers(judge)
    result, task = _run(pytester, old.base_url, new.base_url, j.base_url, tone)
    nums = task["checks"]["tone"]["numbers"]
    assert task["checks"]["tone"]["status"] == "PASS", task["checks"]["tone"]["reasons"]
    assert nums["rubric_status"] == "PASS" and nums["rubric_delta"] == pytest.approx(0.0)
    assert task["verdict"] == "PASS"
    # the template file's text was sent, rendered, not its path
    prompts = [b["messages"][-1]["content"] for b in judge.bodies]
    assert len(prompts) == 2 * N
    assert all(p.startswith("TONE JUDGE. Rubric: Grade warmth.\nQuestion ") for p in prompts)
    assert not any("tone.md" in p for p in prompts)
    assert result.ret == 0, result.stdout.str()


# the items whose colder candidate answer has warmth 1 (i % 3 == 0 and i % 4 != 0)
COLDEST = [str(i) for i in range(N) if i % 3 == 0 and i % 4]


@pytest.mark.parametrize("garbled", [3, 6])
def test_failed_judgements_within_max_error_rate_are_judge_errors_not_a_traceback(
    pytester: pytest.Pytester, fake_servers: Callable[..., FakeServer], garbled: int
) -> None:
    """The judge gives an unreadable verdict on the candidate answers of ``garbled`` items: that
    many judge errors, at most the 6 of 60 that max_error_rate 0.1 allows; those items are left
    out of the rubric and the rest still FAILs the colder candidate."""
    judge = ScriptedJudge(garbage=frozenset(COLDEST[:garbled]), garbage_when="quality=1")
    old, new, j = fake_servers(warm), fake_servers(colder), fake_servers(judge)
    result, task = _run(
        pytester, old.base_url, new.base_url, j.base_url, extra=", max_error_rate: 0.1"
    )
    assert task["error"] is None, task["error"]
    tone = task["checks"]["tone"]
    nums = tone["numbers"]
    assert nums["rubric_judge_errors"] == garbled
    assert sum(nums["rubric_hist_baseline"]) == N - garbled
    assert f"the judge gave no verdict on {garbled} item(s), left out" in " ".join(tone["reasons"])
    # each left-out item was a -2 grade item: the delta over the others is as counted
    assert nums["rubric_delta"] == pytest.approx(-(45 - garbled) * 0.5 / (N - garbled))
    assert tone["status"] == "FAIL" and task["checks"]["delta"]["status"] == "PASS"
    assert task["n_paired"] == N  # the main score stands: the judge only missed the tone
    assert "Traceback" not in _text(result) and "JudgeError" not in _text(result)


def test_judge_errors_past_max_error_rate_make_the_task_an_error(
    pytester: pytest.Pytester, fake_servers: Callable[..., FakeServer]
) -> None:
    """One more failed judgement than the 6 allowed: the task is an ERROR, with the reason."""
    judge = ScriptedJudge(garbage=frozenset(COLDEST[:7]), garbage_when="quality=1")
    old, new, j = fake_servers(warm), fake_servers(colder), fake_servers(judge)
    result, task = _run(
        pytester, old.base_url, new.base_url, j.base_url, extra=", max_error_rate: 0.1"
    )
    assert task["verdict"] == "ERROR"
    assert "judge" in task["error"] and "unparseable verdict" in task["error"]
    assert "7 judgements failed" in task["error"]
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) >= 1 and "passed" not in outcomes
    assert "Traceback" not in _text(result) and "JudgeError" not in _text(result)


def test_a_judge_that_is_down_is_an_error_naming_it(
    pytester: pytest.Pytester, fake_servers: Callable[..., FakeServer]
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    old, new = fake_servers(warm), fake_servers(warm)
    result, task = _run(pytester, old.base_url, new.base_url, down)
    assert task["verdict"] == "ERROR"
    assert "judge" in task["error"] and down.split("//")[1].split("/")[0] in task["error"]
    assert "Traceback" not in _text(result)


@pytest.mark.parametrize(
    ("tone", "judged", "message"),
    [
        (
            "{rubric_scorer: judge-rubric, rubric_options: {scale: 1-5}}",
            True,
            "tasks[0].checks.tone.rubric_options.rubric: required but missing",
        ),
        (
            "{rubric_scorer: judge-rubric, rubric_options: {rubric: warm, scale: 1-to-5}}",
            True,
            "tasks[0].checks.tone.rubric_options.scale: expected 1-5",
        ),
        (
            "{rubric_scorer: judge-rubric, rubric_options: {rubric: warm, rubrik: x}}",
            True,
            "tasks[0].checks.tone.rubric_options.rubrik: unknown option for scorer judge-rubric",
        ),
        (
            "{rubric_scorer: judge-rubric, rubric_options: {rubric: warm, template: no.md}}",
            True,
            "tasks[0].checks.tone.rubric_options.template: file not found",
        ),
        (
            "{rubric_scorer: judge-rubric, rubric_options: {rubric: rubrics/warm.md}}",
            True,
            "tasks[0].checks.tone.rubric_options.rubric: file not found",
        ),
        (
            "{rubric_scorer: judge-rubric, rubric_options: {rubric: warm, recheck: 0.5}}",
            True,
            "tasks[0].checks.tone.rubric_options.recheck: the tone rubric reports no judge",
        ),
        (
            "{rubric_scorer: judge-rubric, rubric_options: {rubric: warm}}",
            False,
            "tasks[0].checks.tone.rubric_scorer: judge-rubric needs a judge endpoint",
        ),
    ],
)
def test_bad_rubric_options_are_a_one_line_contract_error(
    pytester: pytest.Pytester, tone: str, judged: bool, message: str
) -> None:
    pytester.path.joinpath("g.jsonl").write_text('{"id": "1", "prompt": "p", "reference": "r"}\n')
    judge = 'judge: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: j}' if judged else ""
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}}
        candidate: {{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}}
        {judge}
        tasks:
          - {{name: qa, path: g.jsonl, checks: {{tone: {tone}}}}}
        """,
    )
    result = pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-no-preflight", "-p", "no:cacheprovider"
    )
    assert result.ret == 4
    err = result.stderr.str()
    lines = [line for line in err.splitlines() if message in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "(hint:" in lines[0]


def test_the_contract_resolves_the_tone_rubric_like_a_main_judge_scorer(tmp_path: Path) -> None:
    """Resolved when the contract loads: the shipped template's text, the scale, structured
    output for the judge's kind, and the tone rubric's own judgement ids."""
    from pytest_parity.contract import load_contract

    tmp_path.joinpath("g.jsonl").write_text('{"id": "1", "prompt": "p", "reference": "r"}\n')
    tmp_path.joinpath("c.yaml").write_text(
        """
baseline:  {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
candidate: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}
judge: {kind: llama-cpp, base_url: "http://127.0.0.1:9", model: j}
tasks:
  - name: qa
    path: g.jsonl
    checks: {tone: {rubric_scorer: judge-rubric, rubric_options: {rubric: 'Grade warmth.'}}}
"""
    )
    task = load_contract(tmp_path / "c.yaml").tasks[0]
    opts = task.checks["tone"]["rubric_options"]
    assert opts["template_source"] == "builtin:rubric.md" and "{{answer}}" in opts["template"]
    assert opts["scale"] == "1-5" and opts["rubric"] == "Grade warmth."
    assert opts["structured"] == "json_object" and opts["recheck"] == 0.0
    assert opts["purpose"] == "tone" and len(opts["prompt_digest"]) == 64
