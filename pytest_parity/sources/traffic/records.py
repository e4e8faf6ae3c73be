"""One captured request as the importers read it, before selection and redaction.

A :class:`Captured` holds what both stacks will be asked (the chat messages, tools and the
sampling parameters production used), the production answer when the log has it, and what the
slice and the reports need (time, conversation, the raw line for segment and signal fields).
Importers yield :class:`Captured` or :class:`Malformed`; nothing here reads files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "REPLAYED_PARAMS",
    "Captured",
    "Malformed",
    "field_path",
    "request_digest",
]

# Sampling and request parameters replayed as captured; anything else a log holds (stream,
# store, user, metadata, n...) is about the production call, not the question: dropped, noted.
REPLAYED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "top_k",
        "min_p",
        "repetition_penalty",
    }
)


@dataclass
class Captured:
    """One captured request (see the module docstring)."""

    line: int  # 1-based line of the file it came from (the first line for a multi-line record)
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] | None = None  # Response.to_dict() shape: text, finish_reason...
    id: str | None = None  # the log's own id (custom_id, completion id, span id)
    timestamp: float | None = None  # seconds since the epoch, UTC
    conversation: str | None = None
    source: Any = None  # the raw object fields are read from (a JSON line, span attributes)
    dropped: tuple[str, ...] = ()  # captured parameters not replayed
    model: str | None = None  # the model production asked for

    def request_key(self) -> bytes:
        """16 bytes identifying the question asked (messages, tools, parameters)."""
        return request_digest(self.messages, self.tools, self.params)


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str


def request_digest(messages: Any, tools: Any, params: Mapping[str, Any] | None = None) -> bytes:
    text = json.dumps(
        [messages, tools or None, dict(params or {})],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


_MISSING = object()


def field_path(obj: Any, path: str, default: Any = None) -> Any:
    """``a.b.0.c`` in nested dicts and lists; a key holding dots itself (an OpenTelemetry
    attribute such as ``gen_ai.conversation.id``) is found whole first."""
    if isinstance(obj, Mapping) and path in obj:
        return obj[path]
    cur: Any = obj
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if isinstance(cur, Mapping):
            # the longest dotted key that exists at this level
            for j in range(len(parts), i, -1):
                key = ".".join(parts[i:j])
                if key in cur:
                    cur = cur[key]
                    i = j
                    break
            else:
                return default
        elif isinstance(cur, list) and parts[i].lstrip("-").isdigit():
            k = int(parts[i])
            if not -len(cur) <= k < len(cur):
                return default
            cur = cur[k]
            i += 1
        else:
            return default
    return cur


def split_params(
    body: Mapping[str, Any],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A request body's replayed parameters, and the names of those it drops."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for k, v in body.items():
        if k in ("messages", "model", "tools", "functions", "prompt"):
            continue
        if k in REPLAYED_PARAMS:
            if v is not None:
                kept[k] = v
        else:
            dropped.append(k)
    return kept, tuple(dropped)
