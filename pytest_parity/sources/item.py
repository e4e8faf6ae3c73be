"""One item of a task: what both stacks are asked, and what their answers are scored against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["EMPTY", "Item"]


# One read-only empty mapping for every item without metadata, params or captured answers: a
# fresh proxy and dict per field cost ~300 bytes per item (30 MB for a 100,000-item task).
EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return EMPTY


@dataclass(frozen=True)
class Item:
    """Exactly one of ``prompt`` (one user message, or the completions prompt) or ``messages``.

    ``params`` are per-item request parameters (captured traffic replays its own sampling);
    ``captured`` holds answers already given, by role (``"baseline"`` for a captured production
    answer, both roles for shadow pairs), as response dicts: those sides are not asked again.
    """

    id: str
    prompt: str | None
    messages: tuple[Mapping[str, Any], ...] | None
    reference: str | None
    metadata: Mapping[str, Any] = field(default_factory=_empty)
    tools: tuple[Mapping[str, Any], ...] | None = None
    params: Mapping[str, Any] = field(default_factory=_empty)
    captured: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)

    def display_prompt(self) -> str:
        """The prompt as a person reads it: chat messages flattened to ``role: content`` lines."""
        if self.prompt is not None:
            return self.prompt
        assert self.messages is not None
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in self.messages)
