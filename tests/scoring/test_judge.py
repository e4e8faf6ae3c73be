"""LLM-as-judge pieces: the strict verdict parser, the contract's judge options, the agreement
statistics against references, and the runner with real judge servers on 127.0.0.1 (structured
output per kind, judge errors, the judge's own cache entries, a recorded judge replayed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from judge_script import ScriptedJudge
from scipy import stats
from servers import FakeServer

from pytest_parity import ContractError, load_contract
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.recording import Recorder
from pytest_parity.runner import Runner
from pytest_parity.scoring.context import JudgeError
from pytest_parity.scoring.judge.ask import render
from pytest_parity.scoring.judge.options import TEMPLATES_DIR, parse_scale
from pytest_parity.scoring.judge.pairwise import preference_scores
from pytest_parity.scoring.judge.parse import parse_grade, parse_winner
from pytest_parity.scoring.judge.summary import cohen_kappa, judge_summary
from pytest_parity.sources.golden import load_golden
from pytest_parity.verdict import evaluate

# -- the strict parser -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "grade"),
    [
        ('{"rationale": "fine", "score": 4}', 4.0),
        ('Sure.\n```json\n{"rationale": "ok", "score": 2}\n```', 2.0),
        ('I think {"rationale": "x", "score": 5} is right', 5.0),
        ("The answer is fair.\nScore: 3", 3.0),
        ("**Score:** 4/5", 4.0),
        ('{"score": 1.0, "rationale": "bad"}', 1.0),
        ('{"explanation": "ok", "grade": 4}', 4.0),
    ],
)
def test_grades_are_read_from_json_fences_prose_and_score_lines(text: str, grade: float) -> None:
    assert parse_grade(text, parse_scale("1-5"))[0] == grade


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("It is a good answer.", "no score"),
        ('{"rationale": "x", "score": 7}', "not a whole number in 1-5"),
        ('{"rationale": "x", "score": 3.5}', "not a whole number in 1-5"),
        ('{"score": 2} and later {"score": 4}', "conflicting score"),
        ("Score: 2\nScore: 4", "several score"),
        ('{"rationale": "x", "score": "high"}', "not a number"),
        ('{"rationale": "x", "score": true}', "not a number"),
    ],
)
def test_an_unreadable_grade_is_a_judge_error(text: str, why: str) -> None:
    with pytest.raises(JudgeError, match=why):
        parse_grade(text, parse_scale("1-5"))


def test_pass_fail_and_winners() -> None:
    binary = parse_scale("pass/fail")
    assert parse_grade('{"rationale": "r", "verdict": "PASS"}', binary) == (1.0, "r")
    assert parse_grade("Verdict: fail", binary)[0] == 0.0
    with pytest.raises(JudgeError):
        parse_grade('{"verdict": "maybe"}', binary)
    assert parse_winner('{"rationale": "because", "winner": "B"}') == ("B", "because")
    assert parse_winner("Winner: tie")[0] == "tie"
    assert parse_winner('{"reason": "shorter", "better": "A"}')[0] == "A"
    assert parse_winner("My final verdict is [[A]]")[0] == "A"
    assert parse_winner("[[C]]")[0] == "tie"
    for bad in ("A is nicer but B is shorter", '{"winner": "C"}', "[[A]] or maybe [[B]]"):
        with pytest.raises(JudgeError):
            parse_winner(bad)


def test_scales_map_onto_the_unit_interval() -> None:
    assert [parse_scale("1-5").to_unit(g) for g in (1, 3, 5)] == [0.0, 0.5, 1.0]
    assert parse_scale("0-10").to_unit(7) == pytest.approx(0.7)
    assert parse_scale("pass/fail").to_unit(1) == 1.0
    for bad in ("5-1", "a-b", "1-500", ""):
        with pytest.raises(ValueError):
            parse_scale(bad)
    # the pairwise scores: their paired difference is exactly the preference
    for s in (-1, 0, 1):
        b, c = preference_scores(s)
        assert c - b == s and 0 <= b <= 1 and 0 <= c <= 1


def test_render_never_expands_placeholders_inside_values() -> None:
    out = render(
        "Q: {{prompt}}\nA: {{answer}} {{unknown}}", {"prompt": "{{answer}}", "answer": "x"}
    )
    assert out == "Q: {{answer}}\nA: x {{unknown}}"


def test_shipped_templates_hold_every_required_placeholder() -> None:
    rubric = (TEMPLATES_DIR / "rubric.md").read_text()
    pairwise = (TEMPLATES_DIR / "pairwise.md").read_text()
    assert "{{answer}}" in rubric and "{{rubric}}" in rubric
    assert "{{answer_a}}" in pairwise and "{{answer_b}}" in pairwise


# -- agreement statistics against references -----------------------------------------------------


def test_cohen_kappa_matches_the_textbook_example_and_a_direct_count() -> None:
    # Wikipedia's example: 50 items, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    rng = np.random.default_rng(3)
    x, y = rng.integers(-1, 2, 500).tolist(), rng.integers(-1, 2, 500).tolist()
    po = np.mean(np.asarray(x) == np.asarray(y))
    pe = sum(np.mean(np.asarray(x) == k) * np.mean(np.asarray(y) == k) for k in (-1, 0, 1))
    assert cohen_kappa(x, y) == pytest.approx((po - pe) / (1 - pe))
    assert cohen_kappa([1, 1], [1, 1]) is None  # one label only: undefined, not 1 or NaN


def _rec(i: int, grade_b: float, grade_c: float, human: Any) -> dict[str, Any]:
    def side(g: float) -> dict[str, Any]:
        return {"facts": {"judge": {"grade": g, "scale": "1-5", "rationale": ""}}}

    return {
        "id": str(i),
        "metadata": {"human_score": human},
        "baseline": side(grade_b),
        "candidate": side(grade_c),
    }


def test_rubric_agreement_with_people_is_spearman_of_grades() -> None:
    rng = np.random.default_rng(7)
    human = rng.integers(1, 6, 60)
    judge = np.clip(human + rng.integers(-1, 2, 60), 1, 5)
    recs = [_rec(i, float(judge[i]), 3.0, int(human[i])) for i in range(60)]
    out = judge_summary("judge-rubric", {"scale": "1-5"}, recs, 0, None)  # type: ignore[arg-type]
    assert out is not None
    assert out["human"]["n"] == 60
    assert out["human"]["spearman"] == pytest.approx(stats.spearmanr(human, judge).statistic)
    assert out["baseline"]["mean_grade"] == pytest.approx(float(np.mean(judge)))


# -- the contract --------------------------------------------------------------------------------


def _contract(tmp_path: Path, judge: str, scorer: str, task_extra: str = "") -> Path:
    (tmp_path / "g.jsonl").write_text('{"id": "a", "prompt": "Question a"}\n')
    path = tmp_path / "c.yaml"
    path.write_text(
        "baseline:  {kind: openai, base_url: 'http://127.0.0.1:1/v1', model: m}\n"
        "candidate: {kind: openai, base_url: 'http://127.0.0.1:1/v1', model: m}\n"
        + (f"judge: {judge}\n" if judge else "")
        + f"tasks:\n  - {{name: t, path: g.jsonl, scorer: {scorer}{task_extra}}}\n"
    )
    return path


JUDGE = "{kind: openai, base_url: 'http://127.0.0.1:2/v1', model: j}"


@pytest.mark.parametrize(
    ("judge", "scorer", "extra", "message"),
    [
        ("", "{name: judge-rubric, rubric: r}", "", "tasks[0].scorer: judge-rubric needs a judge"),
        (JUDGE, "{name: judge-rubric}", "", "tasks[0].scorer.rubric: required but missing"),
        (JUDGE, "{name: judge-rubric, rubric: r, scale: 1-3-5}", "", "tasks[0].scorer.scale"),
        (JUDGE, "{name: judge-rubric, rubric: r, rubrik: x}", "", "did you mean 'rubric'"),
        (JUDGE, "{name: judge-pairwise, template: t.md}", "", "template: file not found"),
        (JUDGE, "{name: judge-pairwise, recheck: 2}", "", "recheck: expected a share"),
        (JUDGE, "{name: judge-pairwise}", ", judge: {kind: vlm}", "tasks[0].judge.kind"),
        (JUDGE, "judge-rubrc", "", "did you mean 'judge-rubric'"),
        (
            "{kind: anthropic, base_url: 'http://127.0.0.1:2', model: j}",
            "{name: judge-pairwise, structured: json_schema}",
            "",
            "anthropic kind has no response_format",
        ),
    ],
)
def test_judge_contract_errors_are_one_line(
    tmp_path: Path, judge: str, scorer: str, extra: str, message: str
) -> None:
    with pytest.raises(ContractError) as err:
        load_contract(_contract(tmp_path, judge, scorer, extra))
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith(str(tmp_path))


def test_a_template_missing_the_answer_placeholder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text("Grade {{prompt}} on {{rubric}} with {{mood}}")
    with pytest.raises(ContractError, match=r"unknown placeholder \{\{mood\}\}"):
        load_contract(_contract(tmp_path, JUDGE, "{name: judge-rubric, rubric: r, template: t.md}"))
    (tmp_path / "t.md").write_text("Grade {{prompt}} on {{rubric}}")
    with pytest.raises(ContractError, match=r"does not contain \{\{answer\}\}"):
        load_contract(_contract(tmp_path, JUDGE, "{name: judge-rubric, rubric: r, template: t.md}"))


def test_task_judge_overrides_lay_over_the_top_level_judge_and_files_are_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "rubric.md").write_text("Polite and correct.\n")
    c = load_contract(
        _contract(
            tmp_path,
            JUDGE + "\ndefaults: {seed: 3}",
            "{name: judge-rubric, rubric: rubric.md, scale: pass/fail}",
            ", judge: {model: bigger, max_concurrency: 2}",
        )
    )
    t = c.tasks[0]
    assert c.judge is not None and c.judge.role == "judge" and c.judge.model == "j"
    assert t.judge is not None and t.judge.role == "judge"
    assert (t.judge.model, t.judge.base_url, t.judge.max_concurrency) == (
        "bigger",
        "http://127.0.0.1:2/v1",
        2,
    )
    assert t.scorer_options["rubric"] == "Polite and correct."
    assert t.scorer_options["structured"] == "json_schema"
    assert len(t.scorer_options["prompt_digest"]) == 64
    assert c.describe()["judge"]["model"] == "j"


def test_golden_items_carry_human_labels_into_metadata(tmp_path: Path) -> None:
    p = tmp_path / "g.jsonl"
    p.write_text('{"id": "a", "prompt": "x", "human_preference": "candidate", "human_score": 4}\n')
    item = load_golden(p)[0]
    assert item.metadata["human_preference"] == "candidate" and item.metadata["human_score"] == 4


# -- the runner with real judge servers ------------------------------------------------------------


def _stacks() -> tuple[FakeServer, FakeServer]:
    old = FakeServer(answer=lambda body: "Answer: quality=3.").start()
    new = FakeServer(answer=lambda body: "Answer: quality=4.").start()
    return old, new


def _golden(tmp_path: Path, n: int) -> None:
    lines = [json.dumps({"id": f"q{i}", "prompt": f"Question q{i}: hi"}) for i in range(n)]
    (tmp_path / "g.jsonl").write_text("\n".join(lines) + "\n")


def _runner_contract(tmp_path: Path, old: str, new: str, judge: str, scorer: str) -> Path:
    _golden(tmp_path, 10)
    path = tmp_path / "c.yaml"
    path.write_text(
        f"baseline:  {{kind: openai, base_url: '{old}', model: m}}\n"
        f"candidate: {{kind: openai, base_url: '{new}', model: m}}\n"
        f"judge: {judge}\n"
        f"tasks:\n  - {{name: t, path: g.jsonl, max_error_rate: 0.2, scorer: {scorer}}}\n"
    )
    return path


RUBRIC = "{name: judge-rubric, rubric: 'Grade the quality.', recheck: 0}"


def test_a_judge_that_never_answers_readably_errors_the_task(tmp_path: Path) -> None:
    old, new = _stacks()
    judge = FakeServer(answer=lambda body: "Both are fine, really.").start()
    try:
        c = load_contract(
            _runner_contract(
                tmp_path,
                old.base_url,
                new.base_url,
                f"{{kind: openai, base_url: '{judge.base_url}', model: j}}",
                RUBRIC,
            )
        )
        run = Runner(c).run(c.tasks[0])
    finally:
        for s in (old, new, judge):
            s.stop()
    result = evaluate(c.tasks[0], run, 0, 5)
    assert result["verdict"] == "ERROR"
    assert result["error"] is not None and "judge" in result["error"]
    assert "unparseable verdict" in result["error"]
    # past max_error_rate (0.2 of the items) the task stops: an unreadable judge is an ERROR
    assert run.failed["judge"] > 0.2 * run.n_items - 1
    assert run.failed["baseline"] == run.failed["candidate"] == 0


def test_structured_output_follows_the_judge_kind(tmp_path: Path) -> None:
    old, new = _stacks()
    scripted = ScriptedJudge()
    llama = FakeServer(answer=scripted).start()
    # an Anthropic judge: no response_format; a "Score: N" line is read by the fallback parser
    claude = FakeServer(answer=lambda body: "Reasonable answer.\nScore: 4").start()
    try:
        for sub, judge, scale in (
            ("l", f"{{kind: llama-cpp, base_url: '{llama.base_url}', model: j}}", "1-5"),
            ("a", f"{{kind: anthropic, base_url: '{claude.root}', model: j}}", "0-10"),
        ):
            d = tmp_path / sub
            d.mkdir()
            scorer = "{name: judge-rubric, rubric: 'Grade.', recheck: 0, scale: " + scale + "}"
            c = load_contract(_runner_contract(d, old.base_url, new.base_url, judge, scorer))
            run = Runner(c).run(c.tasks[0])
            result = evaluate(c.tasks[0], run, 0, 5)
            assert result["error"] is None
            if sub == "l":
                assert result["baseline_score"] == pytest.approx(0.5)  # grade 3 of 1-5
                assert result["candidate_score"] == pytest.approx(0.75)
            else:
                assert result["baseline_score"] == pytest.approx(0.4)  # grade 4 of 0-10
    finally:
        for s in (old, new, llama, claude):
            s.stop()
    fmt = scripted.bodies[0]["response_format"]
    assert fmt["type"] == "json_object" and fmt["schema"]["properties"]["score"]["enum"] == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert claude.received and all("response_format" not in b for b in claude.received)
    assert claude.answered["/v1/messages"] == 20


def test_judge_answers_are_cached_under_their_own_role_and_replay_from_a_recording(
    tmp_path: Path,
) -> None:
    old, new = _stacks()
    scripted = ScriptedJudge()
    judge = FakeServer(answer=scripted).start()
    recording = tmp_path / "judge.jsonl"
    pairwise = "{name: judge-pairwise, recheck: 0}"
    try:
        c = load_contract(
            _runner_contract(
                tmp_path,
                old.base_url,
                new.base_url,
                f"{{kind: openai, base_url: '{judge.base_url}', model: j}}",
                pairwise,
            )
        )
        cache = ResponseCache(tmp_path / "cache")
        recorder = Recorder(recording, contract_digest=c.digest)
        first = evaluate(
            c.tasks[0], Runner(c, cache=cache, judge_recorder=recorder).run(c.tasks[0]), 0, 5
        )
        recorder.close()
        asked = len(scripted.bodies)
        again = evaluate(c.tasks[0], Runner(c, cache=cache).run(c.tasks[0]), 0, 5)
        cache.close()
        # the recorded judge, replayed (no judge server asked)
        c2 = load_contract(
            _runner_contract(
                tmp_path,
                old.base_url,
                new.base_url,
                f"{{kind: replay, recording: '{recording}', model: j}}",
                pairwise,
            )
        )
        third = evaluate(c2.tasks[0], Runner(c2).run(c2.tasks[0]), 0, 5)
    finally:
        for s in (old, new, judge):
            s.stop()
    assert asked == 20  # 10 items x 2 orders
    assert len(scripted.bodies) == asked  # the second run asked the judge nothing
    assert first["judge"]["wins"] == again["judge"]["wins"] == 10
    with sqlite3.connect(tmp_path / "cache" / "responses.sqlite3") as db:
        rows = db.execute("SELECT endpoint, item_id FROM responses").fetchall()
    judged = [r for r in rows if "#judge:" in r[1]]
    assert len(judged) == 20 and len(rows) == 40
    # the judge's entries never share an endpoint key with a stack's
    assert not {r[0] for r in judged} & {r[0] for r in rows if "#judge:" not in r[1]}
    assert c2.tasks[0].scorer_options["structured"] == "json_schema"  # as the recorded judge
    assert len(scripted.bodies) == asked
    assert third["error"] is None
    assert (third["judge"]["wins"], third["judge"]["n"]) == (10, 10)
    assert third["candidate_score"] == first["candidate_score"] == 1.0


def test_a_pairwise_card_says_who_won_in_each_order_escaped() -> None:
    from pytest_parity.report.html.judge import judge_rationale_html

    card = {
        "judge": {
            "preference": 0,
            "winners": ["A", "A"],
            "flipped": True,
            "rationale": ["<script>x</script>", "fine"],
        }
    }
    out = judge_rationale_html(card)
    assert "old better (old shown first); new better (new shown first)" in out
    assert "the order changed the verdict" in out
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_identical_answers_in_both_orders_are_two_judgements_also_from_the_cache(
    tmp_path: Path,
) -> None:
    """A deterministic baseline answers the A/A pass with the very same text, so both orders'
    prompts read the same; the judge's noise must still be measured (and the same on a rerun
    from the cache): this judge answers "A" the first time it reads a prompt and "B" the second,
    so every A/A pair is a false difference, whichever order arrives first."""
    from dataclasses import replace

    old, new = _stacks()
    seen: dict[str, int] = {}

    def flaky(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        seen[prompt] = seen.get(prompt, 0) + 1
        return json.dumps({"rationale": "r", "winner": "A" if seen[prompt] % 2 else "B"})

    judge = FakeServer(answer=flaky).start()
    try:
        c = load_contract(
            _runner_contract(
                tmp_path,
                old.base_url,
                new.base_url,
                f"{{kind: openai, base_url: '{judge.base_url}', model: j}}",
                "{name: judge-pairwise, recheck: 0}",
            )
        )
        aa = replace(c.baseline, role="baseline-aa")
        cache = ResponseCache(tmp_path / "cache")
        runs = [
            evaluate(c.tasks[0], Runner(c, cache=cache, aa=aa).run(c.tasks[0]), 0, 5)
            for _ in range(2)
        ]
        cache.close()
    finally:
        for s in (old, new, judge):
            s.stop()
    for result in runs:
        aa_fig = result["judge"]["aa"]
        assert (aa_fig["n"], aa_fig["identical_answers"]) == (10, 10)
        assert aa_fig["false_difference_rate"] == 1.0
    assert sum(seen.values()) == 10 * 2 * 2  # main and A/A pairs, both orders, asked once each
