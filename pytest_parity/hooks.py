"""Hooks a conftest.py (or another plugin) implements to extend pytest-parity.

Registered by the plugin with ``pluginmanager.add_hookspecs(hooks)`` in ``pytest_addhooks``.
Implementations may accept any subset of the arguments, as with every pluggy hook::

    # conftest.py
    def pytest_parity_classify(task, text, default):
        if task == "support" and "refund" in text.lower() and default == "wrong_answer":
            return "promised_refund"
        return None  # keep the default category

    def pytest_parity_direction(category):
        return "A" if category == "hedged" else None
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_parity_classify(
    task: str,
    item_id: str,
    side: str,
    text: str,
    finish_reason: str | None,
    error: str | None,
    error_kind: str | None,
    tool_calls: Sequence[Mapping[str, Any]],
    score: float | None,
    parsed: bool,
    reference: str | None,
    prompt: str,
    default: str,
) -> str | None:
    """The failure category of one answer, or None to keep ``default`` (the category the built-in
    rules and the contract's ``categories`` gave, see :data:`pytest_parity.categories.CATEGORIES`).

    ``side`` is "baseline" or "candidate"; ``score`` is the scorer's value (None when unscored).
    Not called for requests that failed: those are infrastructure failures, never model failures.
    A new name is a new category; it counts as a confident error (W) in the direction-of-error
    check unless :func:`pytest_parity_direction` says otherwise.
    """


@hookspec(firstresult=True)
def pytest_parity_redact(task: str, field: str, text: str) -> str | None:
    """Redact one text of a captured-traffic item (``source: traffic``) before it is sent to
    either stack or written anywhere (caches, recordings, reports): return the redacted text, or
    None to keep it. ``field`` names where the text is (``messages[2].content``,
    ``response.text``, ``signals.comment``...). Runs after the contract's ``redact`` rules."""


@hookspec(firstresult=True)
def pytest_parity_direction(category: str) -> str | None:
    """The direction of error of a category: "C" correct, "A" cautious (like refusal, abstain),
    "W" confident error, "X" infrastructure (excluded); None to keep the built-in one."""
