"""Failure categories: every answer of both stacks gets exactly one, by documented rules.

The rules run in a fixed order and the first that applies names the category:

1. infrastructure: the request failed (``timeout``, else ``transport_error``). These are never
   model failures: they are excluded from scores, failure-mode counts and the direction table;
2. ``correct``: the scorer gave at least 0.5;
3. the task's own categories (contract ``categories``: name -> regex searched in the text);
4. the default model categories, in the order of :data:`CATEGORIES`;
5. a conftest's ``pytest_parity_classify`` hook (see :mod:`pytest_parity.hooks`) sees the answer
   and the category the rules gave, and may replace it (infrastructure failures excepted).

Each category has a direction of error (:func:`direction_of`): C correct, A cautious (the answer
says it will not or cannot answer), W confident (the answer asserts something that is wrong or
unusable), X infrastructure. Pure functions: no I/O, nothing imported beyond the standard library.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Multi-step (tool-use) episodes, read from the answer's facts (sources/tooluse), tried in this
# order after the task's own categories: the first fact that explains a failed episode names it.
TRAJECTORY_CATEGORIES: dict[str, str] = {
    "loop": "a multi-step episode repeated the same tool call (same name and arguments) 3+ times",
    "step_limit": "a multi-step episode was still calling tools when it hit the step limit",
    "wrong_tool": "a multi-step episode called a tool that was not offered, or another tool than "
    "the item expects at that step",
    "invalid_arguments": "a multi-step episode sent tool arguments that are not JSON or break the "
    "tool's parameter schema",
    "no_final_answer": "a multi-step episode ended without a final text answer",
}

INFRA = frozenset({"transport_error", "timeout", "judge_error", "environment_error"})

# name -> the rule, one line each, in the order the rules are tried (README and reports show them).
CATEGORIES: dict[str, str] = {
    "transport_error": "the request failed after retries (connection, HTTP status, unreadable "
    "response); infrastructure, never a model failure",
    "timeout": "the request timed out after retries; infrastructure, never a model failure",
    "judge_error": "the judge (LLM-as-judge scorers) gave no readable verdict, or its request "
    "failed; infrastructure, never a model failure",
    "environment_error": "a tool of a multi-step task raised: the test's environment failed, "
    "infrastructure, never a model failure",
    "correct": "the scorer gave the answer at least 0.5",
    **TRAJECTORY_CATEGORIES,
    "tool_call_error": "a tool call names a tool that was not offered, or its arguments are not a "
    "JSON object matching the tool's parameter schema (required keys, types, enums)",
    "empty": "no text (only whitespace) and no tool call",
    "repetition": "degenerate output: 20+ word 4-grams of which at least half are repeats, or a "
    "unit of 1-30 characters repeated back to back 10+ times over 100+ characters (in the last "
    "3,000 characters)",
    "refusal": "declines to help, e.g. 'I can't help with', 'I cannot assist', 'As an AI', "
    "'I must decline' (English patterns, first and last 300 characters; the first only when the "
    "answer was cut off)",
    "abstain": "says it does not know, e.g. 'I don't know', 'I'm not sure', 'cannot determine', "
    "'not enough information' (English patterns, where refusals are searched)",
    "truncated": "finish_reason says the token limit was hit (length, max_tokens) before an answer "
    "could be parsed, and the text did not open with a refusal or abstention; a parsed answer "
    "that hit the limit keeps the category its score gives",
    "language_switch": "the answer is mostly in another script than the prompt (e.g. Cyrillic or "
    "CJK for a Latin prompt); 20+ letters each side (a CJK character counts 3), 60%+ of them in "
    "the dominant script",
    "format_error": "the scorer could not parse the task's expected answer format",
    "wrong_answer": "a parsed answer the scorer gave less than 0.5",
    "answered": "an answer with no score (no reference) and no failure found by the rules above",
}

_DIRECTIONS: dict[str, str] = {
    "correct": "C",
    "answered": "C",
    "refusal": "A",
    "abstain": "A",
    "transport_error": "X",
    "timeout": "X",
    "judge_error": "X",
    "environment_error": "X",
}

TRUNCATION_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
EDGE_CHARS = 300  # refusals and abstentions sit at the start or at the end of an answer

_REFUSAL = re.compile(
    "|".join(
        [
            r"\bI (?:can ?not|can't|won't|will not|am unable to|am not able to|am not allowed to"
            r"|am not permitted to|must decline to|have to decline to) (?:help|assist|provide"
            r"|comply|do that|fulfil|fulfill|support|engage|share|create|generate|write|give"
            r"|discuss)\b(?! but\b)",  # "I can't help but notice" is not a refusal
            r"\bI(?:'m| am) (?:not able|unable|not allowed|not permitted) to (?:help|assist|provide"
            r"|comply|discuss)\b(?! but\b)",
            # a bare apology-and-no, unless what follows is an abstention ("can't determine")
            r"\bI(?:'m| am) sorry,? (?:but )?I (?:can ?not|can't|won't|will not)\b(?! (?:be )?"
            r"(?:determine|tell|say|know|answer|verify|confirm|sure|certain))",
            r"\bI must (?:respectfully )?decline\b",
            r"\bI(?:'m| am) not comfortable (?:providing|helping|answering|with)",
            r"\bAs an AI\b",
            r"\b(?:against|violates?) (?:my|the|our) (?:guidelines|policies|policy|programming|"
            r"usage polic)",
        ]
    ),
    re.IGNORECASE,
)
_ABSTAIN = re.compile(
    "|".join(
        [
            r"\bI (?:do not|don't|dont) know\b",
            r"\bI(?:'m| am) (?:not|un)(?: entirely| completely| 100%)? ?(?:sure|certain)\b",
            r"\b(?:can ?not|can't|unable to|impossible to|not possible to|no way to) (?:be )?"
            r"(?:determine[ds]?|tell|say|know|answer|verify|confirm|be certain|be sure)\b",
            r"\b(?:not enough|not sufficient|insufficient|inadequate) (?:information|context|data|"
            r"details|evidence)\b",
            r"\bI (?:have no|don't have|do not have|lack)(?: [\w-]+){0,3}? (?:information|data|"
            r"knowledge|context|details|way to know|access)\b",
            r"\bI have no idea\b",
            r"\bit(?: is|'s) (?:unclear|not clear|impossible to say|uncertain)\b",
            r"^\W*(?:unknown|unanswerable|not sure|no idea|idk|cannot be determined|"
            r"insufficient information)\W*$",
        ]
    ),
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+|[^\w\s]+")
_LOOP = re.compile(r"(.{1,30}?)\1{9,}", re.DOTALL)
LOOP_TAIL = 3000

Hook = Callable[..., "str | None"]


def classify(
    *,
    text: str,
    finish_reason: str | None,
    error: str | None,
    error_kind: str | None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    score: float | None,
    parsed: bool,
    reference: str | None = None,
    prompt: str = "",
    custom: Mapping[str, str] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    hook: Hook | None = None,
    facts: Mapping[str, Any] | None = None,
) -> str:
    """The failure category of one answer (``"correct"`` when the answer is right).

    ``hook`` is called with every other argument plus ``default`` (the category the rules gave);
    a non-None result replaces the category. Infrastructure failures are decided before it.
    """
    if error is not None or error_kind is not None:
        if error_kind == "environment":
            return "environment_error"
        return "timeout" if error_kind == "timeout" else "transport_error"
    category = _rules(
        text=text,
        finish_reason=finish_reason,
        tool_calls=tool_calls,
        score=score,
        parsed=parsed,
        prompt=prompt,
        custom=custom,
        tools=tools,
        facts=facts,
    )
    if hook is None:
        return category
    override = hook(
        text=text,
        finish_reason=finish_reason,
        error=error,
        error_kind=error_kind,
        tool_calls=list(tool_calls),
        score=score,
        parsed=parsed,
        reference=reference,
        prompt=prompt,
        default=category,
    )
    if override is None:
        return category
    if not isinstance(override, str) or not override.strip():
        raise TypeError(
            f"pytest_parity_classify returned {override!r}: expected a category name (a non-empty"
            " string) or None to keep the default category"
        )
    return override


def classify_side(
    side: Mapping[str, Any],
    hook: Hook | None = None,
    direction: Callable[[str], str | None] | None = None,
) -> tuple[str, str]:
    """The failure category and direction code of one answer as the runner describes it (a
    mapping with the keyword arguments of :func:`classify`): the one classification path.

    ``hook`` is the ``pytest_parity_classify`` hook bound to this answer (see :func:`classify`),
    ``direction`` the ``pytest_parity_direction`` hook: a code other than None replaces the
    built-in direction of the category.
    """
    category = classify(
        text=side["text"],
        finish_reason=side["finish_reason"],
        error=side["error"],
        error_kind=side["error_kind"],
        tool_calls=side.get("tool_calls", ()),
        score=side["score"],
        parsed=side["parsed"],
        reference=side.get("reference"),
        prompt=side.get("prompt", ""),
        custom=side.get("custom"),
        tools=side.get("tools"),
        facts=side.get("facts"),
        hook=hook,
    )
    override = direction(category) if direction is not None else None
    return category, str(override or direction_of(category))


def _rules(
    *,
    text: str,
    finish_reason: str | None,
    tool_calls: Sequence[Mapping[str, Any]],
    score: float | None,
    parsed: bool,
    prompt: str,
    custom: Mapping[str, str] | None,
    tools: Sequence[Mapping[str, Any]] | None,
    facts: Mapping[str, Any] | None = None,
) -> str:
    if score is not None and score >= 0.5:
        return "correct"
    for name, pattern in (custom or {}).items():
        if re.search(pattern, text):
            return name
    if facts and facts.get("episode"):
        found = trajectory_category(facts)
        if found is not None:
            return found
    if tool_calls and tool_call_problem(tool_calls, tools) is not None:
        return "tool_call_error"
    if not text.strip() and not tool_calls:
        return "empty"
    if is_repetitive(text):
        return "repetition"
    cut = finish_reason is not None and finish_reason.lower() in TRUNCATION_REASONS
    # An answer cut off after it opened with a refusal or abstention is still a cautious one
    # (seen on SmolLM2: "I'm sorry ..., but I don't have the ability to access personal da").
    edges = _edges(text, opening_only=cut)
    if _REFUSAL.search(edges):
        return "refusal"
    if _ABSTAIN.search(edges):
        return "abstain"
    if cut and not parsed:
        # Cut off before an answer could be read. A parsed answer that hit the token limit
        # keeps the category its score gives (a wrong "Yes, 1" at max_tokens 4 is a wrong answer).
        return "truncated"
    if is_language_switch(prompt, text):
        return "language_switch"
    if not parsed:
        return "format_error"
    return "wrong_answer" if score is not None else "answered"


def direction_of(category: str, overrides: Mapping[str, str] | None = None) -> str:
    """C (correct), A (cautious: refusal, abstain), W (confident: every other model failure,
    custom categories included unless ``overrides`` says otherwise) or X (infrastructure)."""
    if overrides and category in overrides:
        code = overrides[category]
        if code not in ("C", "A", "W", "X"):
            raise ValueError(
                f"direction for category {category!r} is {code!r}: expected C, A, W, X"
            )
        return code
    return _DIRECTIONS.get(category, "W")


def _edges(text: str, opening_only: bool = False) -> str:
    t = text.replace("\u2019", "'").replace("\u2018", "'").strip()
    if opening_only:
        return t[:EDGE_CHARS]
    if len(t) <= 2 * EDGE_CHARS:
        return t
    return t[:EDGE_CHARS] + "\n" + t[-EDGE_CHARS:]


def trajectory_category(facts: Mapping[str, Any]) -> str | None:
    """The multi-step category a failed episode's facts name (see TRAJECTORY_CATEGORIES)."""
    if int(facts.get("max_repeats", 0) or 0) >= 3:
        return "loop"
    if facts.get("hit_step_limit"):
        return "step_limit"
    if facts.get("unknown_tools") or facts.get("off_plan_step") is not None:
        return "wrong_tool"
    if facts.get("invalid_arguments"):
        return "invalid_arguments"
    if facts.get("no_final_answer"):
        return "no_final_answer"
    return None


# ----------------------------------------------------------------------------------------------
# repetition


def is_repetitive(text: str) -> bool:
    """Degeneration: word 4-grams that are mostly repeats of each other, or a short unit looping
    (works without spaces, e.g. CJK or punctuation)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
    if len(grams) >= 20 and 1 - len(set(grams)) / len(grams) >= 0.5:
        return True
    # A model caught in a loop stays in it until the token limit: searching the tail is enough,
    # and bounds the cost of the backreference search (about 1.5 us a character).
    tail = text[-LOOP_TAIL:]
    return len(tail) >= 100 and any(m.end() - m.start() >= 100 for m in _LOOP.finditer(tail))


# ----------------------------------------------------------------------------------------------
# language switch


def script_of(ch: str) -> str | None:
    """The writing system of a letter (CJK groups Han, kana and Hangul); None for non-letters."""
    if not ch.isalpha():
        return None
    if ch.isascii():
        return "LATIN"
    try:
        first = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return None
    if first in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "HALFWIDTH", "FULLWIDTH"):
        return "CJK"
    return first


def dominant_script(text: str, min_letters: int = 20, share: float = 0.6) -> str | None:
    """The script of at least ``share`` of the first ~2,000 letters, if there are enough letters
    (CJK characters weigh 3: a short CJK answer is as long as a Latin sentence)."""
    counts: Counter[str] = Counter()
    total = 0
    for ch in text:
        s = script_of(ch)
        if s is None:
            continue
        weight = 3 if s == "CJK" else 1  # one CJK character carries about a short word
        counts[s] += weight
        total += weight
        if total >= 2000:
            break
    if total < min_letters:
        return None
    script, count = counts.most_common(1)[0]
    return script if count / total >= share else None


def is_language_switch(prompt: str, text: str) -> bool:
    asked = dominant_script(prompt)
    answered = dominant_script(text)
    return asked is not None and answered is not None and asked != answered


# ----------------------------------------------------------------------------------------------
# tool calls


def _call_parts(call: Mapping[str, Any]) -> tuple[Any, Any]:
    fn = call.get("function")
    if isinstance(fn, Mapping):
        return fn.get("name"), fn.get("arguments")
    return call.get("name"), call.get("arguments", call.get("input"))


def _tool_schemas(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """name -> parameter schema, from OpenAI (function.parameters), Anthropic (input_schema) or
    flat (parameters) tool definitions."""
    out: dict[str, Any] = {}
    for t in tools:
        fn = t.get("function")
        spec: Mapping[str, Any] = fn if isinstance(fn, Mapping) else t
        name = spec.get("name")
        if isinstance(name, str):
            out[name] = spec.get("parameters", spec.get("input_schema"))
    return out


def tool_call_problem(
    tool_calls: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> str | None:
    """Why the tool calls are invalid (one line), or None. Without ``tools`` only the arguments'
    JSON is checked: the names offered are unknown."""
    schemas = _tool_schemas(tools) if tools is not None else None
    for call in tool_calls:
        name, args = _call_parts(call)
        if schemas is not None and name not in schemas:
            return f"unknown tool {name!r}"
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                return f"arguments of {name!r} are not valid JSON"
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            return f"arguments of {name!r} are not a JSON object"
        schema = schemas.get(name) if schemas is not None else None
        if isinstance(schema, Mapping):
            problem = schema_problem(args, schema, "arguments")
            if problem is not None:
                return f"{name}: {problem}"
    return None


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, Mapping),
    "null": lambda v: v is None,
}


def schema_problem(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """The first way ``value`` breaks the JSON-schema subset tool definitions use (type, enum,
    required, properties, additionalProperties: false, items), or None."""
    expected = schema.get("type")
    if expected is not None:
        kinds = [expected] if isinstance(expected, str) else list(expected)
        known = [k for k in kinds if k in _TYPES]
        if known and not any(_TYPES[k](value) for k in known):
            return f"{where}: expected {'/'.join(known)}, got {type(value).__name__}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"{where}: {value!r} is not one of {enum!r}"
    if isinstance(value, Mapping):
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        for key in schema.get("required", ()) or ():
            if key not in value:
                return f"{where}: missing required {key!r}"
        for key, item in value.items():
            sub = props.get(key)
            if isinstance(sub, Mapping):
                problem = schema_problem(item, sub, f"{where}.{key}")
                if problem is not None:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where}: unexpected {key!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{where}[{i}]")
            if problem is not None:
                return problem
    return None
