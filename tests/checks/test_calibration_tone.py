"""The calibration and tone checks end to end, against scripted servers over real HTTP.

Known calibration drift (same answers, so the same accuracy, an over-confident candidate) and
known tone drift (the same content, 30% shorter) must FAIL while the delta check PASSes; equal
stacks PASS; a server that returns no logprobs makes the calibration check ERROR, naming the
endpoint and the option.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, Reply

N_MC = 200
N_TONE = 60
LETTERS = "ABCD"


def _u(i: int, salt: str) -> float:
    """A deterministic uniform in [0, 1) per item."""
    h = hashlib.sha256(f"{salt}/{i}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _number(body: dict[str, Any]) -> int:
    text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
    found = re.search(r"Question (\d+)", text)
    assert found is not None
    return int(found.group(1))


def _truth(i: int) -> str:
    return LETTERS[i % 4]


def _answer(i: int) -> str:
    """Both stacks give the same answer: right on ~70% of the items."""
    return _truth(i) if _u(i, "right") < 0.7 else LETTERS[(i + 1) % 4]


def _token(letter: str, p: float) -> list[dict[str, Any]]:
    rest = (1 - p) / 3
    top = [{"token": letter, "logprob": math.log(p)}]
    top += [{"token": x, "logprob": math.log(rest)} for x in LETTERS if x != letter]
    return [{"token": letter, "logprob": math.log(p), "top_logprobs": top}]


def calibrated(body: dict[str, Any]) -> Reply:
    """Confidence that tracks correctness: 0.8-0.95 when right, 0.35-0.6 when wrong."""
    i = _number(body)
    a = _answer(i)
    p = 0.8 + 0.15 * _u(i, "p") if a == _truth(i) else 0.35 + 0.25 * _u(i, "p")
    return Reply(a, logprobs=_token(a, p))


def overconfident(body: dict[str, Any]) -> Reply:
    """The same answers, 0.97-0.99 sure of every one of them."""
    i = _number(body)
    a = _answer(i)
    return Reply(a, logprobs=_token(a, 0.97 + 0.02 * _u(i, "q")))


_FILLER = (
    "To fix this please open the settings page then choose the account tab and select the"
    " reset option after that confirm the change by following the link we send to your"
    " registered email address which usually arrives within a few minutes"
)
FILLER = _FILLER.split()


def warm(body: dict[str, Any]) -> str:
    i = _number(body)
    words = FILLER[: 20 + i % 10]
    return f"Hello! Code K{i}: " + " ".join(words) + "."


def curt(body: dict[str, Any]) -> str:
    """The same opening and key fact, 30% fewer words."""
    i = _number(body)
    words = FILLER[: 20 + i % 10]
    keep = round(0.7 * (3 + len(words))) - 3  # "Hello! Code K{i}:" stays: 30% fewer in all
    return f"Hello! Code K{i}: " + " ".join(words[:keep]) + "."


@pytest.fixture
def servers(fake_servers: Callable[..., FakeServer]) -> Callable[..., FakeServer]:
    return fake_servers


def _mc_data(path: Path) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"q{i}",
                    "prompt": f"Question {i}: which option? A, B, C or D. Answer with a letter.",
                    "reference": _truth(i),
                }
            )
            + "\n"
            for i in range(N_MC)
        )
    )


def _tone_data(path: Path) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {"id": f"s{i}", "prompt": f"Question {i}: I cannot log in.", "reference": f"K{i}"}
            )
            + "\n"
            for i in range(N_TONE)
        )
    )


def _run(pytester: pytest.Pytester, old: str, new: str, tasks: str) -> dict[str, Any]:
    _mc_data(pytester.path / "mc.jsonl")
    _tone_data(pytester.path / "support.jsonl")
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: vllm, base_url: "{old}", model: m}}
        candidate: {{kind: vllm, base_url: "{new}", model: m}}
        tasks:
{tasks}
        """,
    )
    pytester.runpytest(
        "--parity-contract=contract.yaml",
        "--parity-no-cache",
        "--parity-no-preflight",  # the scripted stacks answer under any model name
        "--parity-json=out.json",
        "--parity-report=out.html",
        "-p",
        "no:cacheprovider",
    )
    doc: dict[str, Any] = json.loads((pytester.path / "out.json").read_text())
    return {t["task"]: t for t in doc["tasks"]}


MC_TASK = """\
          - name: mc
            source: golden
            path: mc.jsonl
            scorer: choice
            tolerance: 0.1  # a few hundred items: valid intervals at this n are a few points wide
            params: {logprobs: true, top_logprobs: 5, max_tokens: 4}
            checks: {calibration: {confidence_threshold: 0.9, brier_tolerance: 0.05,
                                   aurc_tolerance: 0.1}}
"""
TONE_TASK = """\
          - name: support
            source: golden
            path: support.jsonl
            scorer: contains
            tolerance: 0.1
            checks: {tone: {}}
"""


def test_overconfident_candidate_fails_calibration_while_delta_passes(
    pytester: pytest.Pytester, servers: Callable[..., FakeServer]
) -> None:
    old, new = servers(calibrated), servers(overconfident)
    tasks = _run(pytester, old.base_url, new.base_url, MC_TASK)
    mc = tasks["mc"]
    assert mc["checks"]["delta"]["status"] == "PASS"
    cal = mc["checks"]["calibration"]
    assert cal["status"] == "FAIL", cal["reasons"]
    nums = cal["numbers"]
    assert nums["accuracy_baseline"] == nums["accuracy_candidate"]
    assert nums["brier_status"] == "FAIL" and nums["brier_delta"] > 0.1
    assert nums["aurc_status"] == "FAIL" and nums["aurc_ci_low"] > 0.02
    assert nums["ece_candidate"] > nums["ece_baseline"]
    assert nums["above_share_candidate"] == 1.0 and nums["above_share_baseline"] < 0.5
    assert 0 < nums["p_alarm"] < 0.05
    assert mc["verdict"] == "FAIL"
    # the request asked for them, and confidence travels in the records' facts
    assert new.received[0]["logprobs"] is True and new.received[0]["top_logprobs"] == 5
    html = (pytester.path / "out.html").read_text()
    assert "Reliability diagram" in html and "<svg" in html


def test_shorter_answers_fail_tone_while_delta_passes(
    pytester: pytest.Pytester, servers: Callable[..., FakeServer]
) -> None:
    old, new = servers(warm), servers(curt)
    tasks = _run(pytester, old.base_url, new.base_url, TONE_TASK)
    support = tasks["support"]
    assert support["checks"]["delta"]["status"] == "PASS"
    tone = support["checks"]["tone"]
    assert tone["status"] == "FAIL", tone["reasons"]
    nums = tone["numbers"]
    assert nums["length_status"] == "FAIL"
    assert 0.65 < nums["length_ratio"] < 0.75 and nums["length_ratio_ci_high"] < 1 / 1.15
    assert nums["markers_moved"] == []  # the same greeting and content: only the length moved
    html = (pytester.path / "out.html").read_text()
    assert "Length histogram" in html


def test_equal_stacks_pass_both(
    pytester: pytest.Pytester, servers: Callable[..., FakeServer]
) -> None:
    def both(body: dict[str, Any]) -> str | Reply:
        return calibrated(body) if "letter" in body["messages"][-1]["content"] else warm(body)

    a, b = servers(both), servers(both)
    tasks = _run(pytester, a.base_url, b.base_url, MC_TASK + TONE_TASK)
    assert tasks["mc"]["checks"]["calibration"]["status"] == "PASS"
    assert tasks["support"]["checks"]["tone"]["status"] == "PASS"
    assert tasks["mc"]["verdict"] == "PASS" and tasks["support"]["verdict"] == "PASS"


def test_a_server_without_logprobs_is_an_error_naming_it(
    pytester: pytest.Pytester, servers: Callable[..., FakeServer]
) -> None:
    old, new = servers(calibrated), servers(calibrated, logprobs=False)
    tasks = _run(pytester, old.base_url, new.base_url, MC_TASK)
    cal = tasks["mc"]["checks"]["calibration"]
    assert cal["status"] == "ERROR"
    reason = cal["reasons"][0]
    assert "candidate endpoint" in reason and new.base_url in reason
    assert "top_logprobs: 5" in reason and "logprobs: true" in reason
    assert tasks["mc"]["verdict"] == "ERROR"


RUBRIC = '''
def thorough(response, reference):
    """A stand-in tone rubric: how complete the answer reads, 0-1 (30 words or more: 1)."""
    return min(1.0, len(response.split()) / 30)
'''


def test_a_rubric_scorer_scores_both_answers(
    pytester: pytest.Pytester, servers: Callable[..., FakeServer]
) -> None:
    pytester.makepyfile(rubric_mod=RUBRIC)
    pytester.syspathinsert()
    old, new = servers(warm), servers(curt)
    task = TONE_TASK.replace(
        "checks: {tone: {}}", "checks: {tone: {rubric_scorer: rubric_mod:thorough}}"
    )
    tone = _run(pytester, old.base_url, new.base_url, task)["support"]["checks"]["tone"]
    nums = tone["numbers"]
    assert nums["rubric_scorer"] == "rubric_mod:thorough"
    assert nums["rubric_status"] == "FAIL" and nums["rubric_delta"] < -0.2
    assert sum(nums["rubric_hist_baseline"]) == sum(nums["rubric_hist_candidate"]) == N_TONE
    html = (pytester.path / "out.html").read_text()
    assert "Tone rubric distribution" in html


@pytest.mark.parametrize(
    ("checks", "message"),
    [
        (
            "{calibration: {brier_tol: 0.1}}",
            "tasks[0].checks.calibration.brier_tol: unknown option",
        ),
        ("{calibration: {confidence: guess}}", "unknown confidence method 'guess'"),
        ("{tone: {markers: [smiles]}}", "tasks[0].checks.tone.markers"),
        ("{tone: {rubric_scorer: nope}}", "unknown scorer 'nope'"),
    ],
)
def test_bad_options_are_one_line(pytester: pytest.Pytester, checks: str, message: str) -> None:
    pytester.path.joinpath("g.jsonl").write_text('{"id": "1", "prompt": "p", "reference": "r"}\n')
    pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}}
        candidate: {{kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}}
        tasks:
          - {{name: qa, source: golden, path: g.jsonl, checks: {checks}}}
        """,
    )
    result = pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-no-preflight", "-p", "no:cacheprovider"
    )
    assert result.ret == 4
    err = result.stderr.str()
    assert message in err and "Traceback" not in err
