"""One captured request as the importers read it, before selection and redaction.

A :class:`Captured` holds what both stacks will be asked (the chat messages, tools and the
sampling parameters production used), the production answer when the log has it, and what the
slice and the reports need (time, conversation, the raw line for segment and signal fields).
Importers yield :class:`Captured` or :class:`Malformed`; nothing here reads files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


class Captured:
    """One captured request (see the module docstring).

    ``response`` is the production answer as a Response dict (text, finish_reason, tool_calls,
    usage...), or None. An importer may hand over the raw reply instead (``response_raw`` and
    the ``parse`` that reads it): only the requests the slice keeps pay for reading it.
    """

    __slots__ = (
        "_check",
        "_parse",
        "_raw",
        "_response",
        "_timestamp",
        "_ts_raw",
        "conversation",
        "dropped",
        "id",
        "key",
        "line",
        "messages",
        "model",
        "params",
        "source",
        "tools",
    )

    def __init__(
        self,
        line: int,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        params: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        id: str | None = None,
        timestamp: float | None = None,
        conversation: str | None = None,
        source: Any = None,
        dropped: tuple[str, ...] = (),
        model: str | None = None,
        response_raw: Any = None,
        parse: Callable[[Any], dict[str, Any] | None] | None = None,
        timestamp_raw: Any = None,
        check: Callable[[Captured], str | None] | None = None,
    ) -> None:
        self._check = check
        self.line = line  # 1-based line of the file it came from
        self.messages = messages
        self.tools = tools
        self.params = params if params is not None else {}
        self._response = response
        self._raw = response_raw
        self._parse = parse
        self.id = id  # the log's own id (custom_id, completion id, span id)
        self._timestamp = timestamp  # seconds since the epoch, UTC
        self._ts_raw = timestamp_raw  # or the logged value, read when first asked for
        self.conversation = conversation
        self.source = source  # the raw object fields are read from (a JSON line, attributes)
        self.dropped = dropped  # captured parameters not replayed
        self.model = model  # the model production asked for
        self.key: bytes | None = None  # set by the slice: the (seeded) request hash

    @property
    def response(self) -> dict[str, Any] | None:
        if self._raw is not None:
            raw, self._raw = self._raw, None
            self._response = self._parse(raw) if self._parse is not None else None
        return self._response

    @response.setter
    def response(self, value: dict[str, Any] | None) -> None:
        self._raw = None
        self._response = value

    def problem(self) -> str | None:
        """Why this request cannot be replayed, or None. Importers may leave the full check to
        here, so that only the requests the slice would keep pay for it."""
        return None if self._check is None else self._check(self)

    @property
    def timestamp(self) -> float | None:
        if self._ts_raw is not None:
            from pytest_parity.sources.traffic.importers import parse_time

            raw, self._ts_raw = self._ts_raw, None
            self._timestamp = parse_time(raw)
        return self._timestamp

    @property
    def has_response(self) -> bool:
        """Whether production's answer was logged (without reading it)."""
        return self._raw is not None or self._response is not None

    def request_key(self) -> bytes:
        """16 bytes identifying the question asked (messages, tools, parameters)."""
        return request_digest(self.messages, self.tools, self.params)


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str


_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
).encode


def request_text(messages: Any, tools: Any, params: Mapping[str, Any] | None = None) -> bytes:
    """The canonical form of a request (sorted keys), hashed for de-duplication and sampling."""
    return _ENCODE([messages, tools or None, params or {}]).encode("utf-8")


def request_digest(
    messages: Any, tools: Any, params: Mapping[str, Any] | None = None, key: bytes = b""
) -> bytes:
    return hashlib.blake2b(request_text(messages, tools, params), digest_size=16, key=key).digest()


_PARTS: dict[str, list[str]] = {}


def field_path(obj: Any, path: str, default: Any = None) -> Any:
    """``a.b.0.c`` in nested dicts and lists; a key holding dots itself (an OpenTelemetry
    attribute such as ``gen_ai.conversation.id``) is found whole first."""
    if type(obj) is dict and path in obj:
        return obj[path]
    parts = _PARTS.get(path)
    if parts is None:
        parts = _PARTS[path] = path.split(".")
    cur: Any = obj
    for part in parts:  # the common case: plain nested keys
        if type(cur) is not dict or part not in cur:
            break
        cur = cur[part]
    else:
        return cur
    cur = obj
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
