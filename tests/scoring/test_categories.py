"""The failure taxonomy: each documented rule, the order rules are tried in, custom categories and
the classify hook, and the directions of error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_parity import hooks
from pytest_parity.scoring.categories import (
    CATEGORIES,
    INFRA,
    classify,
    direction_of,
    dominant_script,
    is_language_switch,
    is_repetitive,
    schema_problem,
    tool_call_problem,
)

PROSE = (
    "Quantization reduces the memory footprint of a model by storing its weights with fewer bits. "
    "The common schemes keep activations in sixteen-bit floating point while the weights use eight "
    "or four bits, and a calibration set chooses the scales. Accuracy usually stays within a point "
    "or two on broad benchmarks, yet individual answers change: the items whose two best answers "
    "were close are the ones that flip. That is why a migration compares both systems item by item "
    "instead of trusting an average, and why long-context tasks deserve their own check, since "
    "errors accumulate with every token the model has to attend to."
)
CODE = """def fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


print([fib(i) for i in range(10)])  # 0 1 1 2 3 5 8 13 21 34
"""
TABLE = """| model | MMLU | GSM8K | latency |
|-------|------|-------|---------|
| fp16  | 68.1 | 81.2  | 41 ms   |
| fp8   | 67.9 | 80.8  | 29 ms   |
| int4  | 66.2 | 76.5  | 22 ms   |
"""


def cat(text: str, **kw: Any) -> str:
    args: dict[str, Any] = {
        "text": text,
        "finish_reason": "stop",
        "error": None,
        "error_kind": None,
        "score": 0.0,
        "parsed": True,
    }
    args.update(kw)
    return classify(**args)


def test_every_category_has_a_documented_rule_and_a_direction() -> None:
    assert set(INFRA) <= set(CATEGORIES)
    for name, rule in CATEGORIES.items():
        assert rule and "\n" not in rule, name
        assert direction_of(name) in ("C", "A", "W", "X")
    assert {direction_of(n) for n in INFRA} == {"X"}


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"error": "connect refused", "error_kind": "connect"}, "transport_error"),
        ({"error": "HTTP 500", "error_kind": None}, "transport_error"),
        ({"error": "read timed out", "error_kind": "timeout"}, "timeout"),
    ],
)
def test_failed_requests_are_infrastructure_even_with_a_score(
    kw: dict[str, Any], expected: str
) -> None:
    # a failed request must never become a model failure, whatever text or score came along
    assert cat("I don't know", score=None, **kw) == expected
    assert direction_of(expected) == "X"


def test_a_good_score_is_correct_even_when_the_text_looks_like_a_failure() -> None:
    assert cat("I'm not sure, but Paris.", score=1.0) == "correct"
    assert cat("Paris" + " and" * 200, score=0.5, finish_reason="length") == "correct"
    assert cat("Paris", score=0.49) == "wrong_answer"


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that request.",
        "I cannot assist with creating malware.",
        "I won\u2019t provide instructions for that.",
        "As an AI language model, I do not have opinions.",
        "I must respectfully decline.",
        "That request goes against my guidelines.",
        "I'm not able to help with this.",
        "I'm sorry, but I can't.",
        "I am sorry, I won't do this.",
    ],
)
def test_refusals(text: str) -> None:
    assert cat(text) == "refusal"
    assert direction_of("refusal") == "A"


@pytest.mark.parametrize(
    "text",
    [
        "I don't know.",
        "I'm not sure about this one.",
        "I am not entirely certain.",
        "The answer cannot be determined from the passage.",
        "There is not enough information to answer.",
        "I do not have enough information to say.",
        "I'm sorry, but I don't have access to real-time weather data.",
        "I'm sorry, but I cannot determine that from the text.",
        "Unknown",
        "It is unclear which year the treaty was signed.",
        PROSE + " " + PROSE + " So, in the end, I have no idea which option is right.",
    ],
)
def test_abstentions(text: str) -> None:
    assert cat(text) == "abstain"
    assert direction_of("abstain") == "A"


@pytest.mark.parametrize(
    "text",
    [
        "The capital of Australia is Sydney.",
        "Let me know if you need anything else!",  # 'know' without the abstention around it
        "Nobody can predict the weather a month ahead, but the answer to the question is 42.",
        # a hedge buried in the middle of a long answer is not an abstention
        PROSE + " We cannot determine x directly, so we solve for y first. " + PROSE + " 42.",
        "Sorry for the confusion earlier: the answer is 12.",
        "I can't help but notice the answer is 12.",
    ],
)
def test_ordinary_wrong_answers_are_not_cautious(text: str) -> None:
    assert cat(text) == "wrong_answer"
    assert direction_of("wrong_answer") == "W"


def test_empty_needs_no_text_and_no_tool_call() -> None:
    assert cat("") == "empty"
    assert cat("  \n\t") == "empty"
    call = {"name": "lookup", "arguments": '{"q": "x"}'}
    assert cat("", tool_calls=[call]) == "wrong_answer"


@pytest.mark.parametrize("reason", ["length", "max_tokens", "LENGTH", "max_output_tokens"])
def test_truncated_when_the_token_limit_was_hit(reason: str) -> None:
    assert cat("The answer is probably", finish_reason=reason, parsed=False) == "truncated"
    assert direction_of("truncated") == "W"


def test_a_parsed_answer_at_the_token_limit_keeps_its_scorers_category() -> None:
    # "Yes, 1" with max_tokens 4: the scorer read an answer, and it is wrong
    assert cat("Yes, 1", finish_reason="length", parsed=True, score=0.0) == "wrong_answer"
    assert cat("Yes, 1", finish_reason="length", parsed=True, score=1.0) == "correct"
    assert cat("Yes, 1", finish_reason="length", parsed=False, score=0.0) == "truncated"


def test_a_cut_off_answer_that_opened_cautiously_stays_cautious() -> None:
    # verbatim from SmolLM2-135M-Instruct (F32, max_tokens 48)
    smol = (
        "I'm sorry for any misunderstanding, but as a chatbot designed to assist with technology,"
        " I don't have the ability to access personal data unless it's "
    )
    assert cat(smol, finish_reason="length") == "abstain"
    assert cat("I cannot help with that. " + PROSE, finish_reason="length") == "refusal"
    # a cut-off answer is judged by how it opened: its last words were never meant to be last
    cut = cat(PROSE + " " + PROSE + " I'm not sure", finish_reason="length", parsed=False)
    assert cut == "truncated"
    assert cat(PROSE + " " + PROSE + " I'm not sure", finish_reason="stop") == "abstain"


def test_stop_reasons_other_than_the_limit_are_not_truncation() -> None:
    for reason in ("stop", "end_turn", "eos", None, "tool_calls"):
        assert cat("The answer is probably", finish_reason=reason) == "wrong_answer"


def test_degenerate_loops_are_repetition_even_when_truncated() -> None:
    # a loop that ran into the limit: the loop is the failure, the truncation its symptom
    loop = "The answer is 4. " + "I think the answer is 5. " * 20
    assert cat(loop, finish_reason="length") == "repetition"
    assert cat("的的的的" * 40) == "repetition"
    assert cat("!" * 150) == "repetition"


@pytest.mark.parametrize("text", [PROSE, PROSE + "\n\n" + PROSE[:200], CODE, TABLE, "ha" * 20])
def test_ordinary_text_is_not_repetition(text: str) -> None:
    assert not is_repetitive(text)


def test_repetition_rules_at_their_thresholds() -> None:
    assert is_repetitive("ab" * 50)  # 100 characters of a 2-character unit
    assert not is_repetitive("ab" * 49)
    assert is_repetitive(" ".join(["one two three four five six seven"] * 8))
    assert not is_repetitive(" ".join(["one two three four five six seven"] * 2) + " " + PROSE)
    long_prose = " ".join(PROSE.split()[i % 80] + str(i) for i in range(600))  # no 4-gram repeats
    assert is_repetitive(long_prose + "的" * 120)  # a loop the generation ended in
    # loops are searched for in the last 3,000 characters only: where a loop ends up
    assert not is_repetitive("!" * 120 + long_prose)


def test_language_switch_by_script() -> None:
    prompt = "What is the capital of France? Answer with the name of the city only."
    assert cat("Столица Франции — это город Париж, конечно же.", prompt=prompt) == "language_switch"
    assert cat("法国的首都是巴黎，这是一个非常美丽的城市，有很多博物馆。", prompt=prompt) == (
        "language_switch"
    )
    # same script, different language: out of reach of a script rule, on purpose
    assert cat("La capitale de la France est Marseille, évidemment.", prompt=prompt) == (
        "wrong_answer"
    )
    # a short CJK sentence is enough (a character carries about a word)
    assert cat("法国的首都是巴黎。", prompt=prompt) == "language_switch"
    # too few letters to judge: a number or a short word
    assert cat("Париж", prompt=prompt) == "wrong_answer"
    assert cat("巴黎", prompt=prompt) == "wrong_answer"
    assert not is_language_switch("", "Столица Франции — это город Париж, конечно же.")


def test_dominant_script_needs_a_clear_majority() -> None:
    assert dominant_script("Привет, как дела? Всё хорошо, спасибо!") == "CYRILLIC"
    assert dominant_script("こんにちは、元気ですか？カタカナもあります。") == "CJK"
    assert dominant_script("hello world " * 3 + "Привет мир " * 3) is None
    assert dominant_script("12345 67890 !!!") is None


def test_format_error_when_the_scorer_could_not_parse() -> None:
    assert cat("The answer is somewhere between B and C.", parsed=False) == "format_error"
    assert direction_of("format_error") == "W"
    # a refusal is not a format error even though nothing could be parsed from it
    assert cat("I cannot help with that.", parsed=False) == "refusal"


def test_unscored_answers() -> None:
    assert cat("Here is a summary of the text.", score=None) == "answered"
    assert direction_of("answered") == "C"
    assert cat("I don't know.", score=None) == "abstain"
    assert cat("", score=None) == "empty"


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                },
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {"name": "search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
]


def openai_call(name: str, args: Any) -> dict[str, Any]:
    raw = args if isinstance(args, str) else json.dumps(args)
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": raw}}


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (openai_call("get_weather", {"city": "Oslo", "unit": "c", "days": 3}), None),
        ({"name": "search", "input": {"q": "x"}}, None),
        (openai_call("get_wether", {"city": "Oslo"}), "unknown tool 'get_wether'"),
        (openai_call("get_weather", "{city: Oslo}"), "not valid JSON"),
        (openai_call("get_weather", "[1, 2]"), "not a JSON object"),
        (openai_call("get_weather", {"unit": "c"}), "missing required 'city'"),
        (openai_call("get_weather", {"city": "Oslo", "unit": "k"}), "'k' is not one of"),
        (openai_call("get_weather", {"city": "Oslo", "days": "3"}), "expected integer, got str"),
        (openai_call("get_weather", {"city": "Oslo", "when": "now"}), "unexpected 'when'"),
    ],
)
def test_tool_call_validation(call: dict[str, Any], problem: str | None) -> None:
    found = tool_call_problem([call], TOOLS)
    if problem is None:
        assert found is None
        assert cat("", tool_calls=[call], tools=TOOLS) == "wrong_answer"
    else:
        assert found is not None and problem in found
        assert cat("", tool_calls=[call], tools=TOOLS) == "tool_call_error"


def test_tool_calls_without_tool_definitions_check_only_the_json() -> None:
    assert tool_call_problem([openai_call("anything", {"a": 1})], None) is None
    assert tool_call_problem([openai_call("anything", "{oops")], None) is not None


def test_schema_subset_nested() -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
    }
    assert schema_problem({"tags": ["a", "b"]}, schema, "args") is None
    assert schema_problem({"tags": ["a", 2]}, schema, "args") == (
        "args.tags[1]: expected string, got int"
    )
    assert schema_problem(True, {"type": "number"}, "x") is not None  # bool is not a number
    assert schema_problem(None, {"type": ["string", "null"]}, "x") is None


def test_custom_categories_take_precedence_over_default_model_categories() -> None:
    custom = {"leaked_system_prompt": r"(?i)my instructions say", "medical_dose": r"\d+ ?mg\b"}
    text = "I'm not sure, but my instructions say to answer 400 mg."
    assert cat(text, custom=custom) == "leaked_system_prompt"  # first match in contract order
    assert cat("Take 400 mg every hour.", custom=custom, finish_reason="length") == "medical_dose"
    assert cat("Take 400 mg every hour.", custom=custom, score=1.0) == "correct"
    assert cat("x", custom=custom, error="down", error_kind="connect") == "transport_error"
    assert direction_of("medical_dose") == "W"


def test_hook_sees_the_default_and_may_replace_it() -> None:
    seen: list[dict[str, Any]] = []

    def hook(**kw: Any) -> str | None:
        seen.append(kw)
        return "promised_refund" if "refund" in kw["text"] else None

    assert cat("You will get a full refund.", hook=hook) == "promised_refund"
    assert seen[-1]["default"] == "wrong_answer"
    assert cat("I don't know.", hook=hook) == "abstain"
    assert seen[-1]["default"] == "abstain"
    n = len(seen)
    assert cat("refund", error="down", error_kind="connect", hook=hook) == "transport_error"
    assert len(seen) == n  # never consulted about infrastructure failures


def test_hook_returning_garbage_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="pytest_parity_classify returned 3"):
        cat("x", hook=lambda **kw: 3)


def test_direction_overrides() -> None:
    assert direction_of("hedged", {"hedged": "A"}) == "A"
    assert direction_of("hedged") == "W"
    with pytest.raises(ValueError, match="expected C, A, W, X"):
        direction_of("hedged", {"hedged": "maybe"})


def test_hookspecs_register_with_pytest_and_accept_partial_implementations(
    pytestconfig: pytest.Config,
) -> None:
    import pluggy

    pm = pluggy.PluginManager("pytest")
    pm.add_hookspecs(hooks)

    class Impl:
        @pluggy.HookimplMarker("pytest")
        def pytest_parity_classify(self, text: str, default: str) -> str | None:
            return "custom" if "x" in text else None

    pm.register(Impl())
    common = {
        "task": "t",
        "item_id": "1",
        "side": "candidate",
        "finish_reason": None,
        "error": None,
        "error_kind": None,
        "tool_calls": [],
        "score": 0.0,
        "parsed": True,
        "reference": None,
        "prompt": "",
        "default": "wrong_answer",
    }
    assert pm.hook.pytest_parity_classify(text="x", **common) == "custom"
    assert pm.hook.pytest_parity_classify(text="y", **common) is None
    assert pm.hook.pytest_parity_direction(category="z") is None


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(max_size=400),
    prompt=st.text(max_size=100),
    finish=st.sampled_from([None, "stop", "length", "tool_calls"]),
    score=st.sampled_from([None, 0.0, 0.25, 1.0]),
    parsed=st.booleans(),
)
def test_every_answer_gets_a_documented_category(
    text: str, prompt: str, finish: str | None, score: float | None, parsed: bool
) -> None:
    got = cat(text, prompt=prompt, finish_reason=finish, score=score, parsed=parsed)
    assert got in CATEGORIES and got not in INFRA
    assert (got == "correct") == (score is not None and score >= 0.5)
