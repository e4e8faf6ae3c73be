"""Your own tests can use the same two stacks through the ``parity`` fixture."""

from __future__ import annotations


def test_both_stacks_answer_a_smoke_prompt(parity) -> None:
    answers = parity.ask("What is 2 + 3?")
    assert "5" in answers["baseline"].text
    assert "5" in answers["candidate"].text


def test_additions_keep_every_answer(parity) -> None:
    result = parity.compare("additions")
    assert result["checks"]["delta"]["numbers"]["flip_rate"] == 0.0
