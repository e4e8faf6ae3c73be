"""Scoring: a response and a reference in, a :class:`Score` out (:mod:`.builtin`), and the
failure category and direction of error of each answer (:mod:`.categories`)."""

from __future__ import annotations

from pytest_parity.scoring.builtin import (
    SCORERS,
    Score,
    ScoreFn,
    ScorerError,
    check_options,
    coerce,
    get_scorer,
    normalise,
    parse_choice,
    parse_number,
)

__all__ = [
    "SCORERS",
    "Score",
    "ScoreFn",
    "ScorerError",
    "check_options",
    "coerce",
    "get_scorer",
    "normalise",
    "parse_choice",
    "parse_number",
]
