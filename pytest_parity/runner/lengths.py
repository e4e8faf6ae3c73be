"""``metadata.context_tokens`` for items whose source did not count them (``bucket_by``).

The buckets check (``bucket_by: context_tokens``, i.e. ``checks: {buckets: {by:
context_tokens}}``) groups items by their prompt's length in tokens. ``source: long-context``
builds its items to a length and sets the count itself; on any other task (a golden set, captured
traffic) this module counts, as the items stream, what each item sends (the prompt after the
task's template and system prompt, or the chat messages' text, joined by newlines; the chat
template's own tokens are not counted) with the server's tokenizer (llama.cpp ``/tokenize``,
llama-cpp-python ``/extras/tokenize``, vLLM ``/tokenize``; the baseline asked first), else the
documented estimate of :mod:`pytest_parity.sources.tokens` (1 token per 3 bytes of UTF-8). Each
item says which in ``metadata.token_count`` (``server <url>`` or ``estimate``); an item that
already carries a number keeps it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.runner.requests import build_request_parts

if TYPE_CHECKING:
    from pytest_parity.contract.spec import EndpointSpec, TaskSpec
    from pytest_parity.sources.item import Item
    from pytest_parity.sources.tokens import TokenCounter

__all__ = ["FIELD", "ContextTokens", "counts_context_tokens"]

FIELD = "context_tokens"


def counts_context_tokens(task: TaskSpec) -> bool:
    """Whether ``task`` buckets by ``context_tokens`` (and so needs the counts)."""
    buckets = task.checks.get("buckets")
    return buckets is not None and buckets.get("by", FIELD) == FIELD


def _has_count(item: Item) -> bool:
    value = item.metadata.get(FIELD)
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(task: TaskSpec, item: Item) -> str:
    parts = build_request_parts(task, item, "chat" if item.messages is not None else "completions")
    if "prompt" in parts:
        return str(parts["prompt"])
    lines = []
    for m in parts["messages"]:
        content = m.get("content")
        if isinstance(content, str):
            lines.append(content)
        elif isinstance(content, list):  # content parts: their text
            lines.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "\n".join(lines)


class ContextTokens:
    """Counts the items of one task as they stream; ``note`` says when the estimate was used."""

    def __init__(self, task: TaskSpec, specs: Mapping[str, EndpointSpec]) -> None:
        from pytest_parity.sources.tokens import counter_for

        self.task = task
        self.counter: TokenCounter
        self.counter, self.note = counter_for(specs, "auto")
        self.counted = 0
        self.fallbacks = 0  # items the server stopped counting mid-run: estimated instead
        self.last_problem: str | None = None

    def count(self, item: Item) -> tuple[int, str]:
        from pytest_parity.sources.tokens import EstimateCounter, TokenError

        text = _text(self.task, item)
        try:
            return self.counter.count(text), self.counter.source
        except TokenError as exc:
            self.fallbacks += 1
            self.last_problem = str(exc)
            estimate = EstimateCounter()
            return estimate.count(text), estimate.source

    def items(self, items: Iterable[Item]) -> Iterator[Item]:
        for item in items:
            if _has_count(item):
                yield item
                continue
            n, source = self.count(item)
            self.counted += 1
            meta: dict[str, Any] = {**item.metadata, FIELD: n, "token_count": source}
            yield replace(item, metadata=MappingProxyType(meta))

    def notes(self) -> list[str]:
        if not self.counted:
            return []
        out = [f"{FIELD} of {self.counted} items counted by {self.counter.source}"]
        if self.note:
            out.append(self.note)
        if self.fallbacks:
            out.append(
                f"{self.fallbacks} items estimated (1 token per 3 bytes) after the tokenizer"
                f" failed: {self.last_problem}"
            )
        return out
