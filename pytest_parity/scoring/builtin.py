"""Scorers: a response and a reference in, a :class:`Score` out.

A score's ``value`` is in [0, 1]; ``parsed`` says whether the task's expected answer format could
be read from the response at all (an unparseable answer is a *format error*, a failure category of
its own, and scores 0). Custom rubric scorers are named by import path ``package.module:function``
and may return a bool, a number in [0, 1], or a :class:`Score`.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Score:
    value: float
    parsed: bool = True
    # what the scorer learnt beyond the number (a judge's verdict and rationale): plain builtins,
    # kept in the answer's record (SideRecord.facts)
    facts: Mapping[str, Any] | None = None


ScoreFn = Callable[[str, "str | None", Mapping[str, Any]], Score]


class ScorerError(ValueError):
    """A scorer that cannot be used (bad options, import failure, bad return value)."""


_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    """Case-, punctuation-, article- and whitespace-insensitive form (SQuAD-style)."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _exact(response: str, reference: str | None, opts: Mapping[str, Any]) -> Score:
    ref = reference or ""
    if opts.get("normalise", True):
        return Score(float(normalise(response) == normalise(ref)))
    return Score(float(response.strip() == ref.strip()))


def _contains(response: str, reference: str | None, opts: Mapping[str, Any]) -> Score:
    ref = reference or ""
    if opts.get("case_sensitive", False):
        return Score(float(ref in response))
    return Score(float(normalise(ref) in normalise(response)))


def _regex(response: str, reference: str | None, opts: Mapping[str, Any]) -> Score:
    pattern = opts.get("pattern")
    flags = re.IGNORECASE if opts.get("ignore_case", True) else 0
    if pattern is None:
        # The reference itself is the pattern the response must match.
        return Score(float(re.search(reference or "", response, flags) is not None))
    m = re.search(str(pattern), response, flags)
    if m is None:
        return Score(0.0, parsed=False)
    got = m.group(1) if m.groups() else m.group(0)
    return Score(float(normalise(got) == normalise(reference or "")))


def parse_number(text: str) -> float | None:
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    try:
        return float(matches[-1].replace(",", ""))
    except ValueError:
        return None


def _numeric(response: str, reference: str | None, opts: Mapping[str, Any]) -> Score:
    got = parse_number(response)
    if got is None:
        return Score(0.0, parsed=False)
    want = parse_number(reference or "")
    if want is None:
        raise ScorerError(f"numeric scorer: reference {reference!r} holds no number")
    abs_tol = float(opts.get("abs_tol", 1e-9))
    rel_tol = float(opts.get("rel_tol", 0.0))
    return Score(float(math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)))


_LETTER_PATTERNS = (
    re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-Z])\)?(?:[.):\s]|$)"),
    re.compile(r"\(([A-Z])\)"),
    re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])"),
)


def parse_choice(text: str, letters: str = "ABCD") -> str | None:
    for pat in _LETTER_PATTERNS:
        for m in pat.finditer(text):
            letter = m.group(1).upper()
            if letter in letters:
                return letter
    return None


def _choice(response: str, reference: str | None, opts: Mapping[str, Any]) -> Score:
    letters = str(opts.get("letters", "ABCD")).upper()
    got = parse_choice(response, letters)
    if got is None:
        return Score(0.0, parsed=False)
    return Score(float(got == (reference or "").strip().upper()))


def _json(response: str, reference: str | None, opts: Mapping[str, Any]) -> Score:
    text = response.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    try:
        got = json.loads(text)
    except json.JSONDecodeError:
        return Score(0.0, parsed=False)
    if reference is None or reference == "" or opts.get("valid_only", False):
        return Score(1.0)
    try:
        want = json.loads(reference)
    except json.JSONDecodeError:
        raise ScorerError(f"json scorer: reference is not valid JSON: {reference[:40]!r}") from None
    return Score(float(got == want))


SCORERS: dict[str, ScoreFn] = {
    "exact": _exact,
    "contains": _contains,
    "regex": _regex,
    "numeric": _numeric,
    "choice": _choice,
    "json": _json,
}
OPTIONS: dict[str, tuple[str, ...]] = {
    "exact": ("normalise",),
    "contains": ("case_sensitive",),
    "regex": ("pattern", "ignore_case"),
    "numeric": ("abs_tol", "rel_tol"),
    "choice": ("letters",),
    "json": ("valid_only",),
}


def check_options(name: str, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """Problem and hint for bad options of a built-in scorer, or None when they are fine."""
    allowed = OPTIONS[name]
    for key, value in options.items():
        if key not in allowed:
            return (
                f"unknown option {key!r} for scorer {name}",
                f"{name} takes: {', '.join(allowed) or 'no options'}",
            )
        if key in ("abs_tol", "rel_tol") and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            return (f"{key}: expected a number >= 0, got {value!r}", "e.g. abs_tol: 0.01")
        if key == "pattern":
            try:
                re.compile(str(value))
            except re.error as exc:
                return (f"pattern: not a valid regular expression: {exc}", "check the escaping")
    return None


def get_scorer(name: str, options: Mapping[str, Any]) -> Callable[[str, str | None], Score]:
    """The scorer a task names, bound to its options; custom scorers by ``module:function``."""
    if name in SCORERS:
        fn = SCORERS[name]
        return lambda response, reference: fn(response, reference, options)
    if ":" not in name:
        raise ScorerError(f"unknown scorer {name!r}")
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScorerError(
            f"scorer {name}: cannot import {module_name!r}: {exc}"
            " (hint: the module must be importable, e.g. next to the contract's conftest.py)"
        ) from None
    custom = getattr(module, attr, None)
    if not callable(custom):
        raise ScorerError(f"scorer {name}: {module_name} has no function {attr!r}")

    def call(response: str, reference: str | None) -> Score:
        result = (
            custom(response, reference, **dict(options)) if options else custom(response, reference)
        )
        return coerce(result, name)

    return call


def coerce(result: Any, name: str) -> Score:
    facts = None
    if isinstance(result, Score):
        value, parsed, facts = result.value, result.parsed, result.facts
    elif isinstance(result, bool | int | float):
        value, parsed = float(result), True
    elif result is None:
        value, parsed = 0.0, False
    else:
        raise ScorerError(
            f"scorer {name} returned {type(result).__name__}; expected a bool, a number in [0, 1],"
            " None (unparseable) or pytest_parity.scoring.Score"
        )
    if value != value:
        raise ScorerError(f"scorer {name!r} gave nan; a score must be a number")
    # The range ([0, 1], or the task's declared score_range) is checked where the task is known.
    return Score(value, parsed, facts)
