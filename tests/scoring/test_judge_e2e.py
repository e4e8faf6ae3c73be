"""LLM-as-judge end to end: contracts with judge-rubric and judge-pairwise, stacks and a scripted
judge on real HTTP servers (127.0.0.1), numbers checked exactly against the injected behaviour.

The design (40 items, no references), so every expected number below can be counted by hand:

* baseline: ``Answer <i>: quality=3.`` for every item; asked a second time (the A/A pass), items
  q30-q35 get a longer answer of the same quality;
* candidate: quality 4 on q0-q9, 2 on q10-q14, 3 elsewhere; q36-q39 same quality but longer;
* judge (tests/support/judge_script.py): higher quality wins, equal quality -> longer wins (a length
  bias), else tie; always "A" on q0, q1, q2, q10, q15-q18 (an injected position bias); a tie on
  the second look at the same prompt for q3, q4 (an injected inconsistency).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from judge_script import ScriptedJudge
from run_builders import validate
from servers import FakeServer, closed_port

from pytest_parity.report import SCHEMA_PATH

N = 40
BIASED = frozenset({"q0", "q1", "q2", "q10", "q15", "q16", "q17", "q18"})
INCONSISTENT = frozenset({"q3", "q4"})
PAD = " Padding padding padding padding."
ITEM = re.compile(r"Question (q\d+)")


def _index(body: dict[str, Any]) -> int:
    m = ITEM.search(body["messages"][-1]["content"])
    assert m is not None
    return int(m.group(1)[1:])


def baseline_stack() -> Any:
    asked: dict[int, int] = {}

    def answer(body: dict[str, Any]) -> str:
        i = _index(body)
        asked[i] = asked.get(i, 0) + 1
        if asked[i] == 2 and 30 <= i <= 35:
            return f"Answer {i}: quality=3. More words here."
        return f"Answer {i}: quality=3."

    return answer


def candidate_stack(body: dict[str, Any]) -> str:
    i = _index(body)
    q = 4 if i < 10 else 2 if i < 15 else 3
    return f"Answer {i}: quality={q}." + (PAD if i >= 36 else "")


def human(i: int) -> str:
    return "candidate" if i < 10 else "baseline" if i < 15 else "tie"


def golden(path: Path) -> Path:
    lines = [
        json.dumps(
            {
                "id": f"q{i}",
                "prompt": f"Question q{i}: say something.",
                "metadata": {"human_preference": human(i), "human_score": 3},
            }
        )
        for i in range(N)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_contract(
    pytester: pytest.Pytester, old: str, new: str, judge: str, tasks: str, judge_extra: str = ""
) -> Path:
    golden(pytester.path / "golden.jsonl")
    return pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old}", model: old-m}}
        candidate: {{kind: vllm, base_url: "{new}", model: new-m}}
        judge: {{kind: openai, base_url: "{judge}", model: judge-m, max_concurrency: 4{judge_extra}}}
        defaults: {{tolerance: 0.05}}
        tasks:
        {tasks}
        """,
    )


PAIRWISE = (
    "  - {name: pairs, path: golden.jsonl, scorer: {name: judge-pairwise, recheck: 1.0,"
    " criteria: 'Which answer has the higher quality?'}}"
)
RUBRIC = (
    "  - {name: graded, path: golden.jsonl, max_error_rate: 0.05,"
    " scorer: {name: judge-rubric, rubric: 'Grade the quality marker.', scale: 1-5, recheck: 0}}"
)


def run(pytester: pytest.Pytester, path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    out = pytester.path / "parity.json"
    result = pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-no-cache",
        "--parity-no-preflight",  # the scripted stacks answer under any model name
        f"--parity-json={out}",
        f"--parity-report={pytester.path / 'parity.html'}",
        f"--parity-markdown={pytester.path / 'parity.md'}",
        *args,
    )
    report = json.loads(out.read_text()) if out.is_file() else {}
    return result, report


def task(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in report["tasks"] if t["task"] == name)


def test_pairwise_judge_numbers_position_bias_aa_consistency_humans_and_length(
    pytester: pytest.Pytester,
) -> None:
    judge = ScriptedJudge(position_bias=BIASED, inconsistent=INCONSISTENT)
    with (
        FakeServer(answer=baseline_stack()) as a,
        FakeServer(answer=candidate_stack) as b,
        FakeServer(answer=judge) as j,
    ):
        path = write_contract(pytester, a.base_url, b.base_url, j.base_url, PAIRWISE)
        result, report = run(pytester, path, "--parity-aa=rerun")
    t = task(report, "pairs")
    assert t["error"] is None, t["error"]
    jf = t["judge"]
    # wins: q3-q9 (quality) + q36-q39 (length); losses: q11-q14; the biased 8 flip to ties
    assert (jf["wins"], jf["ties"], jf["losses"], jf["n"]) == (11, 25, 4, 40)
    assert jf["mean_preference"] == pytest.approx(7 / 40)
    assert jf["tie_rate"] == pytest.approx(25 / 40)
    # position bias: 8 of 40 verdicts flipped with the order; 31 of 46 one-order wins chose "A"
    assert jf["position"]["flip_rate"] == pytest.approx(8 / 40)
    assert jf["position"]["first_position_rate"] == pytest.approx(31 / 46)
    # the paired statistics see the mean preference as the delta
    delta = t["checks"]["delta"]["numbers"]
    assert delta["delta"] == pytest.approx(7 / 40)
    assert t["candidate_score"] == pytest.approx((11 + 25 / 2) / 40)
    assert t["baseline_score"] == pytest.approx((4 + 25 / 2) / 40)
    # 40 judged items: a valid interval for a bounded mean is wide, the verdict is never a FAIL
    assert t["checks"]["delta"]["status"] in ("PASS", "INCONCLUSIVE")
    # consistency: every item's first order asked twice; q3, q4 came out a tie the second time
    assert jf["consistency"] == {"n": 40, "agreement": pytest.approx(38 / 40)}
    # A/A: the judge declared a winner between two baseline samples on q30-q35 (the longer one)
    aa = jf["aa"]
    assert aa["false_difference_rate"] == pytest.approx(6 / 40)
    assert (aa["wins"], aa["losses"], aa["identical_answers"]) == (6, 0, 34)
    assert t["aa"]["flip_rate"] == pytest.approx(6 / 40)
    # humans: 32 of 40 agree (q0-q2, q10 and the length wins q36-q39 do not)
    hum = jf["human"]
    expected = (10 * 11 + 5 * 4 + 25 * 25) / 1600
    assert hum["agreement"] == pytest.approx(32 / 40)
    assert hum["kappa"] == pytest.approx((32 / 40 - expected) / (1 - expected))
    # length: the 4 much longer candidate answers all won; equal lengths win 39/72 (ties half)
    buckets = {b["ratio"]: b for b in jf["length"]["buckets"]}
    assert (buckets[">= 2"]["n"], buckets[">= 2"]["wins"]) == (4, 4)
    assert buckets["0.8-1.25"]["win_rate"] == pytest.approx(39 / 72)
    assert jf["length"]["lc_preference"] == pytest.approx(3 / 36)
    # provenance and the rationale on the disagreement cards
    assert jf["model"] == "judge-m" and len(jf["prompt_digest"]) == 64
    assert report["contract"]["judge"]["model"] == "judge-m"
    assert t["endpoints"]["judge"]["role"] == "judge"
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    assert validate(report, schema, schema) == []
    html = (pytester.path / "parity.html").read_text()
    assert "LLM judge" in html and "position bias" in html
    # the rationale is on the disagreement cards, escaped like everything a model says
    assert "&lt;b&gt;B&lt;/b&gt; &amp; scripted" in html and "<b>B</b>" not in html
    cards = t["disagreements"]
    assert cards and all("winners" in d["judge"] for d in cards)
    terminal = result.stdout.str()
    assert "pairs: judge judge-m; 11 wins / 25 ties / 4 losses; position flips 20.0%" in terminal
    md = (pytester.path / "parity.md").read_text()
    assert "judge" in md.lower()
    # the judge saw both orders: 40 items x 2 orders x (main + A/A) + 40 rechecks
    assert len(judge.bodies) == 40 * 2 * 2 + 40
    assert all(body["response_format"]["type"] == "json_schema" for body in judge.bodies), (
        "an openai judge is asked for structured output"
    )
    assert result.ret in (0, 1), result.stdout.str()  # 1: the delta test, INCONCLUSIVE at 40 items


def test_rubric_judge_grades_map_to_unit_scores_and_a_bad_verdict_is_a_judge_error(
    pytester: pytest.Pytester,
) -> None:
    # q7's candidate answer (quality=4) gets an unreadable verdict: a judge error, not a failure
    judge = ScriptedJudge(garbage=frozenset({"q7"}), garbage_when="quality=4")
    with (
        FakeServer(answer=baseline_stack()) as a,
        FakeServer(answer=candidate_stack) as b,
        FakeServer(answer=judge) as j,
    ):
        path = write_contract(pytester, a.base_url, b.base_url, j.base_url, RUBRIC)
        result, report = run(pytester, path)
    t = task(report, "graded")
    assert t["error"] is None, t["error"]
    jf = t["judge"]
    assert jf["mode"] == "rubric" and jf["scale"] == "1-5"
    assert jf["errors"] == 1
    assert jf["baseline"]["distribution"] == {"3": 40}
    assert jf["candidate"]["distribution"] == {"2": 5, "3": 25, "4": 9}
    assert t["n_paired"] == 39
    # grades (g - 1) / 4: baseline 0.5; candidate 9 x 0.75 + 5 x 0.25 + 25 x 0.5 over 39
    assert t["baseline_score"] == pytest.approx(0.5)
    assert t["candidate_score"] == pytest.approx((9 * 0.75 + 5 * 0.25 + 25 * 0.5) / 39)
    counts = t["checks"]["failure_modes"]["numbers"]
    assert "judge_error" not in json.dumps(counts.get("new_categories", []))
    # human_score (a grade of the baseline's answer) agrees with every baseline grade
    assert jf["human"]["n"] == 40 and jf["human"]["agreement"] == 1.0
    assert result.ret in (0, 1)


def test_a_judge_that_is_down_makes_the_task_an_error_never_a_pass(
    pytester: pytest.Pytester,
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    with FakeServer(answer=baseline_stack()) as a, FakeServer(answer=candidate_stack) as b:
        path = write_contract(
            pytester, a.base_url, b.base_url, down, PAIRWISE, judge_extra=", max_retries: 0"
        )
        result, report = run(pytester, path)
    t = task(report, "pairs")
    assert t["verdict"] == "ERROR"
    assert "judge" in t["error"] and str(down.split(":")[2].split("/")[0]) in t["error"]
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) >= 1 and "passed" not in outcomes
    assert result.ret != 0


def test_a_missing_rubric_file_is_a_one_line_contract_error(pytester: pytest.Pytester) -> None:
    path = write_contract(
        pytester,
        "http://127.0.0.1:1/v1",
        "http://127.0.0.1:1/v1",
        "http://127.0.0.1:1/v1",
        "  - {name: g, path: golden.jsonl, scorer: {name: judge-rubric, rubric: rubrics/x.md}}",
    )
    result = pytester.runpytest(f"--parity-contract={path}")
    assert result.ret == 4
    lines = [line for line in result.outlines + result.errlines if "rubrics" in line]
    assert lines and "tasks[0].scorer.rubric: file not found" in lines[0]
    assert "paths are relative to the contract" in lines[0]


def test_other_injected_bias_rates_give_their_own_figures(pytester: pytest.Pytester) -> None:
    """Not tuned to one design: another position bias (q5-q8, q11, q12: six items where the
    judge has a real preference) and inconsistency (q3 a win, q13 a loss, q25 a tie, each a tie
    on the second look) move the figures exactly as counted by hand."""
    biased = frozenset({"q5", "q6", "q7", "q8", "q11", "q12"})
    judge = ScriptedJudge(position_bias=biased, inconsistent=frozenset({"q3", "q13", "q25"}))
    with (
        FakeServer(answer=baseline_stack()) as a,
        FakeServer(answer=candidate_stack) as b,
        FakeServer(answer=judge) as j,
    ):
        path = write_contract(pytester, a.base_url, b.base_url, j.base_url, PAIRWISE)
        _, report = run(pytester, path, "--parity-aa=rerun")
    jf = task(report, "pairs")["judge"]
    # wins: q0-q4, q9 (quality) + q36-q39 (length); losses: q10, q13, q14
    assert (jf["wins"], jf["ties"], jf["losses"]) == (10, 27, 3)
    assert jf["position"]["flip_rate"] == pytest.approx(6 / 40)
    assert jf["consistency"] == {"n": 40, "agreement": pytest.approx(38 / 40)}
    assert jf["aa"]["false_difference_rate"] == pytest.approx(6 / 40)
