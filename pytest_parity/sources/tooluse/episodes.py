"""Tool-use items: a goal, the tools offered (OpenAI function schemas), an environment and what
success means, one JSON object per line of the task's ``path``::

    {"id": "book-1",
     "goal": "Book the cheapest flight from Paris to Rome on May 1 and tell me its number.",
     "tools": [{"type": "function", "function": {"name": "search_flights",
                "parameters": {"type": "object", "properties": {"to": {"type": "string"}},
                               "required": ["to"]}}}],
     "environment": {"python": "travel_env:Travel", "args": {"seats": 3},
                     "table": [{"call": {"name": "weather", "arguments": {"city": "Rome"}},
                                "result": {"sky": "clear"}}]},
     "expect": {"answer": "AZ 123", "state": {"booked": ["AZ 123"]},
                "calls": ["search_flights", "book"], "check": "travel_env:booked_once"}}

``expect`` (at least one): ``answer`` (the final text contains it; ``match: exact|regex`` to
change that), ``state`` (the environment's final state holds these keys with these values),
``calls`` (the tool names in the order the task needs them: a different tool at a step is a
wrong tool), ``check`` (``module:function(text=, state=, calls=)`` -> bool or a 0-1 score).
Tool definitions are checked as JSON Schema (the structure of the keywords tool schemas use)
when the task is prepared: a schema a server would reject stops the task before any request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_parity.sources.base import SourceError
from pytest_parity.sources.tooluse.env import EnvSpec, table_from

__all__ = ["Episode", "load_episodes", "schema_error", "tool_error"]

ITEM_KEYS = (
    "id",
    "goal",
    "messages",
    "system",
    "tools",
    "environment",
    "expect",
    "max_steps",
    "metadata",
)
EXPECT_KEYS = ("answer", "match", "state", "calls", "check")
MATCHES = ("contains", "exact", "regex")
JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NUMBERS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")


def schema_error(schema: Any, where: str) -> str | None:
    """Why ``schema`` is not a JSON Schema a tool definition can use, or None (a structural
    check of the keywords tool schemas use; unknown keywords are allowed, as the spec says)."""
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, Mapping):
        return f"{where}: a schema must be a JSON object, got {type(schema).__name__}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        bad = [k for k in kinds if k not in JSON_TYPES]
        if bad or not kinds:
            shown = repr(bad[0]) if bad else repr(kind)
            return f"{where}.type: {shown} is not a JSON type ({', '.join(JSON_TYPES)})"
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, Mapping):
            return f"{where}.properties: expected an object of schemas"
        for key, sub in props.items():
            found = schema_error(sub, f"{where}.properties.{key}")
            if found:
                return found
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list)
        or not all(isinstance(r, str) for r in required)
        or len(set(required)) != len(required)
    ):
        return f"{where}.required: expected a list of distinct property names"
    enum = schema.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        return f"{where}.enum: expected a non-empty list"
    items = schema.get("items")
    if items is not None:
        subs = items if isinstance(items, list) else [items]
        for i, sub in enumerate(subs):
            found = schema_error(
                sub, f"{where}.items" + (f"[{i}]" if isinstance(items, list) else "")
            )
            if found:
                return found
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        found = schema_error(extra, f"{where}.additionalProperties")
        if found:
            return found
    for key in _SCHEMA_LISTS:
        value = schema.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not value:
            return f"{where}.{key}: expected a non-empty list of schemas"
        for i, sub in enumerate(value):
            found = schema_error(sub, f"{where}.{key}[{i}]")
            if found:
                return found
    for key in _NUMBERS:
        value = schema.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{where}.{key}: expected a number"
    for key in _COUNTS:
        value = schema.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            return f"{where}.{key}: expected a whole number >= 0"
    if "pattern" in schema:
        try:
            re.compile(str(schema["pattern"]))
        except re.error as exc:
            return f"{where}.pattern: not a regular expression: {exc}"
    return None


def tool_error(tool: Any, where: str) -> tuple[dict[str, Any] | None, str | None]:
    """The tool in OpenAI's shape (``{"type": "function", "function": {...}}``), or the reason
    it is not a usable tool definition. Flat (``name``, ``parameters``) and Anthropic
    (``input_schema``) definitions are accepted and rewritten."""
    if not isinstance(tool, Mapping):
        return None, f"{where}: expected a tool definition object"
    fn = tool.get("function", tool)
    if not isinstance(fn, Mapping):
        return None, f"{where}.function: expected an object"
    name = fn.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        return None, f"{where}.name: expected 1-64 letters, digits, _ . - (got {name!r})"
    params = fn.get("parameters", fn.get("input_schema", {"type": "object", "properties": {}}))
    found = schema_error(params, f"{where}.parameters")
    if found:
        return None, found
    if isinstance(params, Mapping) and params.get("type", "object") != "object":
        return None, f"{where}.parameters.type: a tool's parameters must be an object schema"
    out: dict[str, Any] = {"name": name, "parameters": params}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    return {"type": "function", "function": out}, None


@dataclass(frozen=True)
class Episode:
    id: str
    messages: tuple[Mapping[str, Any], ...]
    tools: tuple[Mapping[str, Any], ...]
    env: EnvSpec
    expect: Mapping[str, Any]
    max_steps: int | None
    metadata: Mapping[str, Any]
    goal: str

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(t["function"]["name"] for t in self.tools)


def load_episodes(path: Path, default_env: str | None = None) -> list[Episode]:
    """Every item of a tool-use file, checked; problems name the file, the line and the fix."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the tool-use items: {exc.strerror}") from None
    out: list[Episode] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        ep = _episode(line, f"{path}:{n}", default_env)
        if ep.id in seen:
            raise SourceError(f"{path}:{n}: duplicate id {ep.id!r} (hint: ids must be unique)")
        seen.add(ep.id)
        out.append(ep)
    if not out:
        raise SourceError(f"{path}: no tool-use items (hint: one JSON object per line)")
    return out


def _episode(line: str, where: str, default_env: str | None) -> Episode:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: expected a JSON object")
    unknown = [k for k in obj if k not in ITEM_KEYS]
    if unknown:
        raise SourceError(
            f"{where}: unknown key {unknown[0]!r} (hint: known keys are {', '.join(ITEM_KEYS)})"
        )
    item_id = obj.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int) or item_id == "":
        raise SourceError(f"{where}: id: required, a non-empty string or number")
    goal, messages = obj.get("goal"), obj.get("messages")
    if (goal is None) == (messages is None):
        raise SourceError(f"{where}: give exactly one of goal (text) or messages (a list)")
    if goal is not None:
        if not isinstance(goal, str) or not goal.strip():
            raise SourceError(f"{where}: goal: expected a non-empty string")
        messages = [{"role": "user", "content": goal}]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise SourceError(f"{where}: messages: expected a list of chat messages")
    if isinstance(obj.get("system"), str):
        messages = [{"role": "system", "content": obj["system"]}, *messages]
    tools_raw = obj.get("tools")
    if not isinstance(tools_raw, list) or not tools_raw:
        raise SourceError(f"{where}: tools: expected a non-empty list of tool definitions")
    tools = []
    for i, t in enumerate(tools_raw):
        tool, problem = tool_error(t, f"tools[{i}]")
        if problem:
            raise SourceError(
                f"{where}: {problem} (hint: tools are OpenAI function schemas"
                " whose parameters are JSON Schema)"
            )
        assert tool is not None
        tools.append(tool)
    env = _env(obj.get("environment"), where, default_env)
    expect = _expect(obj.get("expect"), where, [t["function"]["name"] for t in tools])
    steps = obj.get("max_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise SourceError(f"{where}: max_steps: expected a whole number >= 1")
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise SourceError(f"{where}: metadata: expected a JSON object")
    text = goal if goal is not None else str(messages[-1].get("content", ""))
    return Episode(str(item_id), tuple(messages), tuple(tools), env, expect, steps, meta, text)


def _env(raw: Any, where: str, default_env: str | None) -> EnvSpec:
    if raw is None:
        raw = {} if default_env is None else {"python": default_env}
    if not isinstance(raw, Mapping):
        raise SourceError(f"{where}: environment: expected {{python: module:factory, args, table}}")
    unknown = [k for k in raw if k not in ("python", "args", "table")]
    if unknown:
        raise SourceError(
            f"{where}: environment.{unknown[0]}: unknown key (hint: python, args, table)"
        )
    python = raw.get("python", default_env)
    if python is not None and not isinstance(python, str):
        raise SourceError(f"{where}: environment.python: expected 'package.module:factory'")
    args = raw.get("args", {})
    if not isinstance(args, Mapping):
        raise SourceError(f"{where}: environment.args: expected an object of keyword arguments")
    try:
        table = table_from(raw.get("table", []) or [], "environment.table")
    except ValueError as exc:
        raise SourceError(f"{where}: {exc}") from None
    if python is None and not table:
        raise SourceError(
            f"{where}: environment: give python (an import path), a recorded"
            " table, or both (or tool_use.environment for every item)"
        )
    if python is not None:
        from pytest_parity.sources.tooluse.env import resolve_factory

        try:
            resolve_factory(python)
        except ValueError as exc:
            raise SourceError(
                f"{where}: environment.python: {exc} (hint: the module must be"
                " importable, e.g. next to the contract's conftest.py)"
            ) from None
    return EnvSpec(python=python, args=dict(args), table=table)


def _expect(raw: Any, where: str, names: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping) or not any(k in raw for k in ("answer", "state", "check")):
        raise SourceError(f"{where}: expect: give answer, state or check (what success means)")
    unknown = [k for k in raw if k not in EXPECT_KEYS]
    if unknown:
        raise SourceError(
            f"{where}: expect.{unknown[0]}: unknown key (hint: {', '.join(EXPECT_KEYS)})"
        )
    match = raw.get("match", "contains")
    if match not in MATCHES:
        raise SourceError(f"{where}: expect.match: expected one of {', '.join(MATCHES)}")
    if "answer" in raw and not isinstance(raw["answer"], str):
        raise SourceError(f"{where}: expect.answer: expected a string")
    if match == "regex":
        try:
            re.compile(raw["answer"])
        except (re.error, KeyError) as exc:
            raise SourceError(f"{where}: expect.answer: not a regular expression: {exc}") from None
    if "state" in raw and not isinstance(raw["state"], Mapping):
        raise SourceError(f"{where}: expect.state: expected an object (key -> expected value)")
    calls = raw.get("calls")
    if calls is not None:
        if not isinstance(calls, list) or not all(isinstance(c, str) for c in calls):
            raise SourceError(f"{where}: expect.calls: expected a list of tool names")
        missing = [c for c in calls if c not in names]
        if missing:
            raise SourceError(f"{where}: expect.calls: {missing[0]!r} is not one of the tools")
    if "check" in raw:
        from pytest_parity.sources.tooluse.env import resolve_factory

        try:
            fn = resolve_factory(str(raw["check"]))
        except ValueError as exc:
            raise SourceError(f"{where}: expect.check: {exc}") from None
        if not callable(fn):
            raise SourceError(f"{where}: expect.check: {raw['check']} is not a function")
    return dict(raw)
