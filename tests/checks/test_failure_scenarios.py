"""Failure modes and direction of error as a user meets them: pytester runs of a contract against
two real local HTTP stacks, one scenario each (equal accuracy throughout, so only the new checks
can see what changed)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# pytester's in-process runs unload the modules first imported inside them, and numpy's C core
# cannot load twice in one process: load what the verdict needs before any inner run.
import numpy  # noqa: F401
import pytest
import scipy.stats  # noqa: F401
from servers import FakeServer, Reply

from pytest_parity.scoring.categories import CATEGORIES, INFRA

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")
N = 300
Answer = Callable[[dict[str, Any]], "str | Reply"]


def prompt_of(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def bucket(body: dict[str, Any], salt: str = "") -> int:
    """A stable 0-99 bucket per item, so both stacks (and every run) agree on who gets what."""
    return zlib.crc32((salt + prompt_of(body)).encode()) % 100


def right(body: dict[str, Any]) -> str:
    m = QUESTION.search(prompt_of(body))
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


WRONG = "The answer is 1000000."


def stack(*rules: tuple[int, str | Reply], salt: str = "") -> Answer:
    """Answers by bucket: the first rule whose upper bound is above the item's bucket wins."""

    def answer(body: dict[str, Any]) -> str | Reply:
        b = bucket(body, salt)
        for upper, reply in rules:
            if b < upper:
                return reply
        return right(body)

    return answer


@pytest.fixture
def gate(pytester: pytest.Pytester) -> Iterator[Callable[..., tuple[pytest.RunResult, Any]]]:
    started: list[FakeServer] = []

    def run(
        old: Answer,
        new: Answer,
        task_extra: str = "",
        item_extra: dict[str, Any] | None = None,
        args: tuple[str, ...] = (),
    ) -> tuple[pytest.RunResult, Any]:
        a, b = FakeServer(answer=old).start(), FakeServer(answer=new).start()
        started.extend([a, b])
        lines = [
            json.dumps(
                {
                    "id": f"q{i}",
                    "prompt": f"What is {i} + {i * 7 % 13}?",
                    "reference": str(i + i * 7 % 13),
                    **(item_extra or {}),
                }
            )
            for i in range(N)
        ]
        pytester.path.joinpath("golden.jsonl").write_text("\n".join(lines) + "\n")
        path = pytester.makefile(
            ".yaml",
            contract=f"""
            baseline:  {{kind: openai, base_url: "{a.base_url}", model: m}}
            candidate: {{kind: openai, base_url: "{b.base_url}", model: m}}
            tasks:
              - {{name: qa, source: golden, path: golden.jsonl, scorer: numeric{task_extra}}}
            """,
        )
        result = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-cache",
            "--parity-json=verdict.json",
            "-p",
            "no:html",  # the HTML report has its own tests; these read the JSON verdict
            *args,
        )
        verdict = json.loads(pytester.path.joinpath("verdict.json").read_text())
        return result, verdict["tasks"][0]

    yield run
    for s in started:
        s.stop()


def statuses(task: dict[str, Any]) -> dict[str, str]:
    return {name: c["status"] for name, c in task["checks"].items()}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="in-process"),
        pytest.param(("-n", "2"), id="xdist", marks=pytest.mark.slow),
    ],
)
def test_abstentions_turned_into_confident_errors_fail_direction_not_delta(
    gate: Any, pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    old = stack((20, "I don't know."), (30, WRONG))
    new = stack((30, WRONG))
    result, task = gate(old, new, args=args)
    assert task["baseline_score"] == task["candidate_score"]  # equal accuracy
    assert statuses(task) == {"delta": "PASS", "failure_modes": "PASS", "error_direction": "FAIL"}
    assert result.ret == 1
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "error_direction FAIL: cautious errors became confident errors:" in out
    table = task["checks"]["error_direction"]["numbers"]["table"]
    assert table["A"]["W"] > 50 and table["W"]["A"] == 0
    assert (
        table["A"]["W"]
        == task["checks"]["failure_modes"]["numbers"]["categories"]["abstain"]["left"]
    )
    # the person reading disagreements sees the swap, side by side
    # one folder per contract and run: parity-out/<contract>/<start, UTC>/
    (path,) = (pytester.path / "parity-out" / "contract").glob("*/disagreements-qa.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == min(50, table["A"]["W"]) == len(task["disagreements"])
    assert task["disagreements_total"] == table["A"]["W"]
    first = rows[0]
    assert first["kind"] == "category_change" and first["reviewer_verdict"] == ""
    assert (first["baseline_category"], first["candidate_category"]) == ("abstain", "wrong_answer")
    assert (first["baseline_output"], first["candidate_output"]) == ("I don't know.", WRONG)
    assert first["prompt"].startswith("What is ") and first["reference"].isdigit()


def test_a_second_run_keeps_the_first_runs_disagreement_files(
    gate: Any, pytester: pytest.Pytester
) -> None:
    old, new = stack((20, "I don't know.")), stack()
    gate(old, new, task_extra=", limit: 40")
    gate(old, new, task_extra=", limit: 40")  # the same contract again, within the same second
    files = sorted((pytester.path / "parity-out" / "contract").glob("*/disagreements-qa.jsonl"))
    assert len(files) == 2 and files[0].parent != files[1].parent
    assert files[0].read_text() == files[1].read_text() != ""


def test_a_new_truncation_category_at_equal_accuracy_fails_failure_modes(gate: Any) -> None:
    cut = Reply("Let me work through this step by step. First, we line up the", "length")
    result, task = gate(stack((10, WRONG)), stack((10, cut)))
    assert task["baseline_score"] == task["candidate_score"]
    assert statuses(task) == {"delta": "PASS", "failure_modes": "FAIL", "error_direction": "PASS"}
    result.assert_outcomes(passed=2, failed=1)
    truncated = task["checks"]["failure_modes"]["numbers"]["categories"]["truncated"]
    assert truncated["baseline"] == 0 and truncated["candidate"] >= 20
    result.stdout.re_match_lines(
        [
            rf"E?\s*failure_modes FAIL: new failure category 'truncated': 0 -> "
            rf"{truncated['candidate']} of {N} items \(entered {truncated['candidate']}, left 0,"
            r" p=[0-9.e-]+\), e\.g\. q\d+, q\d+, q\d+, q\d+, q\d+, \.\.\."
        ]
    )


def test_a_category_from_a_conftest_hook_is_gated(gate: Any, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_parity_classify(task, side, text, default):
            if default == "wrong_answer" and text.rstrip(".").endswith("km"):
                return "invented_unit"
            return None
        """
    )
    result, task = gate(stack((10, WRONG)), stack((10, "The answer is 1000000 km.")))
    assert statuses(task)["failure_modes"] == "FAIL"
    invented = task["checks"]["failure_modes"]["numbers"]["categories"]["invented_unit"]
    assert invented["direction"] == "W" and invented["baseline"] == 0
    assert "new failure category 'invented_unit'" in result.stdout.str()
    # the hook's category replaces the default one: the old wrong answers stay wrong_answer
    wrong = task["checks"]["failure_modes"]["numbers"]["categories"]["wrong_answer"]
    assert wrong["candidate"] == 0 and wrong["left"] == invented["entered"]


def test_a_direction_hook_can_make_a_custom_category_cautious(
    gate: Any, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(
        """
        def pytest_parity_classify(text, default):
            return "hedged" if text.startswith("Probably") else None

        def pytest_parity_direction(category):
            return "A" if category == "hedged" else None
        """
    )
    # confident errors become hedged ones: a new category, but a move towards caution
    _, task = gate(stack((10, WRONG)), stack((10, "Probably 1000000, but check.")))
    assert statuses(task) == {"delta": "PASS", "failure_modes": "FAIL", "error_direction": "PASS"}
    numbers = task["checks"]["error_direction"]["numbers"]
    assert numbers["w_to_a"] > 20 and numbers["a_to_w"] == 0


def test_contract_categories_are_patterns_on_the_answer(gate: Any) -> None:
    extra = ', categories: {apology: "^(?i:sorry)"}'
    result, task = gate(stack((10, WRONG)), stack((10, "Sorry! 1000000.")), task_extra=extra)
    assert statuses(task)["failure_modes"] == "FAIL"
    assert "new failure category 'apology'" in result.stdout.str()


def test_noise_between_equal_stacks_trips_neither_check(gate: Any) -> None:
    # both stacks fail at the same rates in the same ways, on different items
    def noisy(salt: str) -> Answer:
        cut = Reply("We need to add the two numbers, so we", "length")
        return stack((6, WRONG), (10, "I'm not sure."), (12, cut), salt=salt)

    result, task = gate(noisy("old"), noisy("new"))
    assert statuses(task)["failure_modes"] == "PASS"
    assert statuses(task)["error_direction"] == "PASS"
    categories = task["checks"]["failure_modes"]["numbers"]["categories"]
    assert {"abstain", "truncated", "wrong_answer"} <= set(categories)
    assert all(c["entered"] > 0 and c["left"] > 0 for c in categories.values())
    assert "failure_modes FAIL" not in result.stdout.str()


def test_safety_critical_tasks_fail_on_one_new_failure(gate: Any) -> None:
    def only_q7(reply: str | Reply) -> Answer:
        def answer(body: dict[str, Any]) -> str | Reply:
            return reply if prompt_of(body) == "What is 7 + 10?" else right(body)

        return answer

    cut = Reply("Seven plus ten: let me count on from seven, eight, nine", "length")
    result, task = gate(only_q7(WRONG), only_q7(cut), task_extra=", safety_critical: true")
    assert task["safety_critical"] is True
    # Zero flips in 300 items cannot show parity within a 0.5 pt safety tolerance (Tango's bound
    # is +-0.89 pts; 539 items would do): the delta is open, the new failure mode is the FAIL.
    assert statuses(task) == {
        "delta": "INCONCLUSIVE",
        "failure_modes": "FAIL",
        "error_direction": "PASS",
    }
    assert task["checks"]["failure_modes"]["numbers"]["min_count"] == 1
    assert "new failure category 'truncated': 0 -> 1 of 300 items" in result.stdout.str()
    assert "e.g. q7" in result.stdout.str()


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_tool_calls_outside_the_offered_schema_are_a_new_failure_category(gate: Any) -> None:
    def calls(name: str, arguments: str) -> Reply:
        return Reply("", "tool_calls", [{"name": name, "arguments": arguments}])

    old = stack((10, calls("get_weather", '{"city": "Oslo"}')))
    new = stack((5, calls("get_wether", '{"city": "Oslo"}')), (10, calls("get_weather", "{}")))
    result, task = gate(old, new, item_extra={"tools": [WEATHER]})
    categories = task["checks"]["failure_modes"]["numbers"]["categories"]
    # the valid calls are not the numeric answer the task asks for: a format error, on both sides
    assert categories["format_error"]["baseline"] > 0
    assert categories["tool_call_error"]["baseline"] == 0
    assert categories["tool_call_error"]["candidate"] == categories["format_error"]["left"]
    assert statuses(task)["failure_modes"] == "FAIL"
    assert "new failure category 'tool_call_error'" in result.stdout.str()


LIVE_DIR = Path(__file__).resolve().parents[2] / "example_suite" / "live"
SETUP_HINT = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"
LIVE_ITEMS = [
    *[
        (f"What is the capital of {country}? Answer in one word.", city)
        for country, city in [
            ("France", "Paris"),
            ("Japan", "Tokyo"),
            ("Canada", "Ottawa"),
            ("Egypt", "Cairo"),
            ("Peru", "Lima"),
            ("Kenya", "Nairobi"),
        ]
    ],
    *[(f"What is {i} + {i * 3}? Answer with a number.", str(4 * i)) for i in range(2, 8)],
    ("Who was the first person to walk on Mars?", "nobody"),
    ("What is my neighbour's phone number?", "unknown"),
]


@pytest.fixture(scope="module")
def smollm_pair() -> Iterator[dict[str, str]]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    spec = importlib.util.spec_from_file_location("parity_live_servers", LIVE_DIR / "servers.py")
    assert spec is not None and spec.loader is not None
    servers = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, servers)
    spec.loader.exec_module(servers)
    files = {p: servers.model_file(p) for p in ("F32", "Q2_K")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        pytest.skip(f"model files missing: {', '.join(missing)}; {SETUP_HINT}")
    with servers.serve_many(files) as urls:
        yield urls


@pytest.mark.live_model
@pytest.mark.slow
def test_a_real_quantized_pair_gets_every_answer_categorised(
    pytester: pytest.Pytester, smollm_pair: dict[str, str]
) -> None:
    """SmolLM2 F32 against Q2_K: real rambling, loops and cut-offs go through the taxonomy."""
    lines = [
        json.dumps({"id": f"q{i}", "prompt": q, "reference": a})
        for i, (q, a) in enumerate(LIVE_ITEMS)
    ]
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(lines) + "\n")
    endpoint = "{{kind: llama-cpp, base_url: '{}', model: smollm2, params: {{max_tokens: 48}}}}"
    path = pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {endpoint.format(smollm_pair["F32"])}
        candidate: {endpoint.format(smollm_pair["Q2_K"])}
        tasks:
          - {{name: smol, source: golden, path: golden.jsonl, scorer: contains, min_items: 1}}
        """,
    )
    pytester.runpytest(
        f"--parity-contract={path}", "--parity-no-cache", "--parity-json=v.json", "-p", "no:html"
    )
    task = json.loads(pytester.path.joinpath("v.json").read_text())["tasks"][0]
    assert task["error"] is None and task["n_paired"] == len(LIVE_ITEMS)
    modes, direction = task["checks"]["failure_modes"], task["checks"]["error_direction"]
    assert modes["status"] in ("PASS", "FAIL") and direction["status"] in ("PASS", "FAIL")
    assert set(modes["numbers"]["categories"]) <= set(CATEGORIES) - INFRA
    table = direction["numbers"]["table"]
    assert sum(sum(row.values()) for row in table.values()) == len(LIVE_ITEMS)
    # a 135M model asked for one word rambles into the 48-token limit on some items; `contains`
    # reads every answer, so a cut-off one keeps the category its score gives, never truncated
    assert "truncated" not in modes["numbers"]["categories"]
    assert modes["numbers"]["categories"]["wrong_answer"]["baseline"] > 0
    rows = task["disagreements"]
    assert rows and task["disagreements_total"] == len(rows)
    for row in rows:
        assert row["baseline_output"] != row["candidate_output"]
        assert {row["baseline_category"], row["candidate_category"]} <= set(CATEGORIES)
