"""Redaction of captured traffic, applied when a request becomes an item: before either stack is
asked, so the response cache, recordings, disagreement files and every report only ever hold the
redacted text (both stacks are sent the same redacted request).

Three layers, in this order, on every text of an item (message contents and text parts, tool
call arguments, the captured answer and its tool calls, string signals and metadata):

1. the contract's rules (``traffic.redact``): a built-in name (``email``, ``phone``,
   ``credit_card``, ``ipv4``, ``iban``) or ``{pattern: <regex>, replace: <text>}``;
2. a function named in the contract (``traffic.redact_hook: package.module:function``),
   ``(text, field) -> str``;
3. a conftest's ``pytest_parity_redact(task, field, text)`` hook (see :mod:`pytest_parity.hooks`),
   handed to the source by the plugin (``TrafficSource.set_redact_hook``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN_RULES", "Hook", "Redactor", "load_function"]

BUILTIN_RULES: dict[str, tuple[str, str]] = {
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[EMAIL]"),
    "phone": (
        r"(?<![\w+])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}[\s.-]\d{3,4}[\s.-]?\d{3,4}"
        r"(?!\w)",
        "[PHONE]",
    ),
    "credit_card": (r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)", "[CARD]"),
    "ipv4": (
        r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])",
        "[IP]",
    ),
    "iban": (r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", "[IBAN]"),
}

# (task, field, text) -> redacted text or None: the conftest's pytest_parity_redact
Hook = Callable[[str, str, str], "str | None"]


def load_function(path: str) -> Callable[[str, str], str]:
    """``package.module:function``; raises ValueError with a one-line reason."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{module_name} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Redactor:
    """Applies the rules and hooks of one task to texts and to whole items' parts."""

    task: str
    rules: tuple[tuple[re.Pattern[str], str], ...] = ()
    function: str | None = None
    hook: Hook | None = None

    @classmethod
    def from_options(
        cls,
        task: str,
        rules: Sequence[Mapping[str, str]],
        function: str | None,
        hook: Hook | None = None,
    ) -> Redactor:
        compiled = tuple((re.compile(r["pattern"]), r["replace"]) for r in rules)
        return cls(task, compiled, function, hook)

    @property
    def active(self) -> bool:
        return bool(self.rules or self.function or self.hook is not None)

    def text(self, value: str, where: str) -> str:
        for pattern, repl in self.rules:
            value = pattern.sub(repl, value)
        if self.function is not None:
            out = load_function(self.function)(value, where)
            if not isinstance(out, str):
                raise ValueError(
                    f"redact_hook {self.function} returned {type(out).__name__}, expected text"
                )
            value = out
        if self.hook is not None:
            hooked = self.hook(self.task, where, value)
            if hooked is not None:
                if not isinstance(hooked, str):
                    raise ValueError(
                        f"pytest_parity_redact returned {type(hooked).__name__}, expected text"
                    )
                value = hooked
        return value

    def value(self, value: Any, where: str) -> Any:
        """Every string inside ``value`` (dicts and lists walked), keys kept."""
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, Mapping):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, where) for v in value]
        return value

    def messages(self, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, m in enumerate(messages):
            msg = dict(m)
            where = f"messages[{i}]"
            content = msg.get("content")
            if isinstance(content, str):
                msg["content"] = self.text(content, f"{where}.content")
            elif isinstance(content, list):
                msg["content"] = [self._part(p, f"{where}.content") for p in content]
            if msg.get("tool_calls"):
                msg["tool_calls"] = [
                    self._call(c, f"{where}.tool_calls") for c in msg["tool_calls"]
                ]
            out.append(msg)
        return out

    def response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(response)
        out["text"] = self.text(str(out.get("text") or ""), "response.text")
        out["tool_calls"] = [
            {**dict(c), "arguments": self.text(str(c.get("arguments", "")), "response.tool_calls")}
            for c in out.get("tool_calls") or ()
            if isinstance(c, Mapping)
        ]
        return out

    def _part(self, part: Any, where: str) -> Any:
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            return {**dict(part), "text": self.text(part["text"], where)}
        return part

    def _call(self, call: Any, where: str) -> Any:
        if not isinstance(call, Mapping):
            return call
        fn = call.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("arguments"), str):
            return {
                **dict(call),
                "function": {**dict(fn), "arguments": self.text(fn["arguments"], where)},
            }
        return call
