"""Confidence of a multiple-choice answer that names no option (issue 15 items 1 and 5): the
probability of the option ranked first at the answer's first token, so a quantised model that
stops naming options (SmolLM2 Q2_K: "You are", "1.") still has a calibration to compare; and
options missing from a truncated ``top_logprobs`` list get its smallest probability."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, Reply

from pytest_parity import load_contract
from pytest_parity.checks.calibration import check_calibration
from pytest_parity.endpoints.http import Response
from pytest_parity.runner import Runner
from pytest_parity.scoring.confidence import (
    NO_OPTION,
    confidence,
    first_token_option,
    option_probability,
)
from pytest_parity.sources.item import Item

ITEM = Item("1", "q", None, "A")


def reply(tokens: list[tuple[str, float, dict[str, float]]]) -> Response:
    return Response(
        "".join(t for t, _, _ in tokens),
        "length",
        logprobs=tuple(lp for _, lp, _ in tokens),
        tokens=tuple(t for t, _, _ in tokens),
        top_logprobs=tuple(top for _, _, top in tokens),
    )


# The first token of a real Q2_K answer (SmolLM2-135M, top_logprobs: 20), cut to six entries.
YOU_ARE = reply([
    ("You", -2.097, {"You": -2.1, "5": -2.35, "To": -2.6, "Yes": -3.3, "A": -3.8, "4": -4.59}),
    (" are", -0.316, {" are": -0.32, "'re": -1.56}),
])  # fmt: skip


def test_an_answer_naming_no_option_reads_the_options_at_its_first_token() -> None:
    # A is listed, B is not: B gets the smallest listed probability (exp(-4.59)), its bound.
    p, problem = first_token_option(YOU_ARE, "AB")
    assert problem is None
    assert p == pytest.approx(math.exp(-3.8) / (math.exp(-3.8) + math.exp(-4.59)))
    assert confidence(YOU_ARE, ITEM, {}, multiple_choice=True, letters="AB") == (p, None)
    # no_option: skip keeps the old behaviour: no confidence, the problem named
    skip = confidence(YOU_ARE, ITEM, {"no_option": "skip"}, multiple_choice=True, letters="AB")
    assert skip == (None, NO_OPTION)


def test_no_option_among_the_first_tokens_alternatives_names_the_fix() -> None:
    bare = reply([("You", -2.0, {"You": -2.0, "To": -2.6})])
    value, problem = confidence(bare, ITEM, {}, multiple_choice=True, letters="AB")
    assert value is None and problem is not None
    assert problem.startswith(NO_OPTION) and "top_logprobs: 20" in problem


def test_an_option_missing_from_a_truncated_list_is_floored_not_zero() -> None:
    # "B" chosen at p = 0.6; A absent from the 3 listed: A gets min listed = 0.1, not 0.
    r = reply(
        [("B", math.log(0.6), {"B": math.log(0.6), "The": math.log(0.2), "C": math.log(0.1)})]
    )
    p, _ = option_probability(r, "AB")
    assert p == pytest.approx(0.6 / 0.7)
    # every option listed: renormalised exactly as before
    full = reply([("B", math.log(0.6), {"B": math.log(0.6), "A": math.log(0.3)})])
    assert option_probability(full, "AB")[0] == pytest.approx(0.6 / 0.9)


# ----------------------------------------------------------------------------------------------
# end to end over HTTP: a candidate that stops naming options on every third item

N = 120


def _i(body: dict[str, Any]) -> int:
    return int(body["messages"][-1]["content"].split(" ")[1].rstrip(":"))


def _tok(first: str, lp: float, top: dict[str, float]) -> list[dict[str, Any]]:
    alts = [{"token": k, "logprob": v} for k, v in top.items()]
    return [{"token": first, "logprob": lp, "top_logprobs": alts}]


def old_stack(body: dict[str, Any]) -> Reply:
    """Always names the right option, 0.8 sure of it."""
    return Reply("A", logprobs=_tok("A", math.log(0.8), {"A": math.log(0.8), "B": math.log(0.2)}))


def new_stack(body: dict[str, Any]) -> Reply:
    """Like the old stack, except every third answer names no option ("You are"), while its
    first token still ranks A at 0.3 against B at 0.1 (so 0.75 among the options)."""
    if _i(body) % 3:
        return old_stack(body)
    top = {"You": math.log(0.5), "A": math.log(0.3), "B": math.log(0.1)}
    return Reply("You are", logprobs=_tok("You", math.log(0.5), top))


def test_non_answers_count_against_calibration_with_their_first_token_confidence(
    tmp_path: Path, fake_servers: Callable[..., FakeServer]
) -> None:
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}: A or B?",
                                        "reference": "A"}) + "\n" for i in range(N)))  # fmt: skip
    old, new = fake_servers(answer=old_stack), fake_servers(answer=new_stack)

    def run(no_option: str) -> dict[str, Any]:
        path = tmp_path / "c.yaml"
        path.write_text(
            f"baseline: {{kind: vllm, base_url: '{old.base_url}', model: m}}\n"
            f"candidate: {{kind: vllm, base_url: '{new.base_url}', model: m}}\n"
            f"tasks:\n  - {{name: mc, path: {data}, scorer: {{name: choice, letters: AB}},"
            " tolerance: 0.5, params: {logprobs: true, top_logprobs: 5, max_tokens: 2},"
            f" checks: {{calibration: {{no_option: {no_option}}}}}}}\n"
        )
        c = load_contract(path)
        task = c.tasks[0]
        records = Runner(c).run(task).records
        return {"records": records,
                "check": check_calibration(task, records, task.checks["calibration"], 0)}  # fmt: skip

    got = run("first_token")
    non = [r for r in got["records"] if r["candidate"]["text"] == "You are"]
    assert len(non) == N // 3
    for r in non:
        facts = r["candidate"]["facts"]
        assert r["candidate"]["score"] == 0.0  # named no option: wrong
        assert facts["confidence"] == pytest.approx(0.75)
        assert facts["confidence_from"] == "first_token"
    nums = got["check"]["numbers"]
    assert (nums["n_paired"], nums["first_token_candidate"], nums["first_token_baseline"]) == (
        N,
        40,
        0,
    )
    # Brier exactly: old (0.8 - 1)^2 = 0.04 everywhere; new 0.04 on 80 items, 0.75^2 on 40
    assert nums["brier_baseline"] == pytest.approx(0.04)
    assert nums["brier_candidate"] == pytest.approx((80 * 0.04 + 40 * 0.5625) / 120)
    assert got["check"]["status"] == "FAIL"
    assert any("named no option" in line for line in got["check"]["reasons"])
    # no_option: skip: those 40 answers are left out, and more than 20% missing is not a pass
    skipped = run("skip")["check"]
    assert skipped["numbers"]["n_paired"] == 80 and skipped["numbers"]["missing_candidate"] == 40
    assert skipped["status"] == "INCONCLUSIVE"
