"""Built-in scorers and custom scorers by import path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_parity.scoring.builtin import (
    Score,
    ScorerError,
    check_options,
    get_scorer,
    parse_choice,
)


def score(name: str, response: str, reference: str | None, **opts: object) -> Score:
    return get_scorer(name, opts)(response, reference)


@pytest.mark.parametrize(
    ("response", "reference", "value", "parsed"),
    [
        ("The answer is 5.", "5", 1.0, True),
        ("2 + 3 = 5", "5", 1.0, True),  # the LAST number counts
        ("5, no wait, 6", "5", 0.0, True),
        ("It is 1,234.", "1234", 1.0, True),
        ("-3", "-3", 1.0, True),
        ("I don't know", "5", 0.0, False),
    ],
)
def test_numeric_compares_last_number(
    response: str, reference: str, value: float, parsed: bool
) -> None:
    assert score("numeric", response, reference) == Score(value, parsed)


def test_numeric_tolerance() -> None:
    assert score("numeric", "3.14", "3.14159", abs_tol=0.01).value == 1.0
    assert score("numeric", "3.14", "3.14159").value == 0.0


def test_exact_is_normalised_unless_told_otherwise() -> None:
    assert score("exact", "  The Paris. ", "paris").value == 1.0
    assert score("exact", "Paris.", "paris", normalise=False).value == 0.0


def test_contains_and_regex() -> None:
    assert score("contains", "It is Paris, France", "paris").value == 1.0
    assert score("contains", "It is Lyon", "paris").value == 0.0
    assert score("regex", "Final: B", "B", pattern=r"Final:\s*(\w)") == Score(1.0, True)
    assert score("regex", "no final line", "B", pattern=r"Final:\s*(\w)") == Score(0.0, False)


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("(C) because", "C"),
        ("The answer is D.", "D"),
        ("Answer: a", "A"),
        ("none", None),
    ],
)
def test_choice_letter_parsing(text: str, letter: str | None) -> None:
    assert parse_choice(text) == letter


def test_choice_scores_and_flags_unparseable() -> None:
    assert score("choice", "The answer is B.", "B") == Score(1.0, True)
    assert score("choice", "I would say something else", "B") == Score(0.0, False)


def test_json_validity_and_equality() -> None:
    assert score("json", '```json\n{"a": 1}\n```', '{"a": 1}') == Score(1.0, True)
    assert score("json", '{"a": 2}', '{"a": 1}') == Score(0.0, True)
    assert score("json", "{broken", None) == Score(0.0, False)
    assert score("json", "[1, 2]", None) == Score(1.0, True)


def test_bad_options_are_reported() -> None:
    assert check_options("numeric", {"abs_tol": -1}) is not None
    assert check_options("numeric", {"tolerance": 1}) == (
        "unknown option 'tolerance' for scorer numeric",
        "numeric takes: abs_tol, rel_tol",
    )
    assert check_options("regex", {"pattern": "("}) is not None


def test_custom_scorer_by_import_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_rubric.py").write_text(
        "def polite(response, reference):\n"
        "    return 'please' in response.lower()\n"
        "def graded(response, reference, weight=1.0):\n"
        "    return 0.5 * weight\n"
        "def broken(response, reference):\n"
        "    return 7\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_scorer("my_rubric:polite", {})("Please wait", None) == Score(1.0, True)
    assert get_scorer("my_rubric:graded", {"weight": 1.0})("x", None) == Score(0.5, True)
    # the range ([0, 1] or the task's score_range) is checked by the runner, which knows the task
    assert get_scorer("my_rubric:broken", {})("x", None) == Score(7.0, True)
    with pytest.raises(ScorerError, match="has no function 'nothing'"):
        get_scorer("my_rubric:nothing", {})
    with pytest.raises(ScorerError, match="cannot import 'no_such_module_xyz'"):
        get_scorer("no_such_module_xyz:f", {})
    sys.modules.pop("my_rubric", None)
