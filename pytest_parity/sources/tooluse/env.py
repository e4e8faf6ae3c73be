"""Tool environments: what answers a model's tool calls in a multi-step task.

An item names its environment in one of two ways, or both:

- ``python: "package.module:factory"`` (with ``args``): ``factory(**args)`` returns an object
  whose public methods are the tools (``obj.search(**arguments)``); it may keep state, and its
  ``state()`` method (else its public attributes) is what a final-state check reads. A module
  path without ``:`` serves the module's functions (stateless);
- ``table``: recorded results, ``[{"call": {"name": ..., "arguments": {...}}, "result": ...}]``,
  matched on the tool name and the arguments as JSON (key order ignored). A recorded call wins
  over the Python object; a call found in neither answers an error result to the model.

Each stack gets a fresh environment per item (:meth:`EnvSpec.open`), so one stack's calls never
change what the other sees. A tool that raises is an :class:`EnvironmentFailure`: the test's
environment broke, not the model (an infrastructure error of that answer, never scored).
"""

from __future__ import annotations

import importlib
import inspect
import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EnvSpec", "Environment", "EnvironmentFailure", "canonical_call", "resolve_factory"]


class EnvironmentFailure(RuntimeError):
    """A tool raised; ``str()`` is one line naming the tool and the exception."""


def canonical_call(name: str, arguments: Mapping[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True, ensure_ascii=False, default=str)


def resolve_factory(path: str) -> Any:
    """``module:attr`` or ``module``; raises ValueError with a one-line reason."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    if not attr:
        return module
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class EnvSpec:
    """How to build one item's environment (validated when the items are read)."""

    python: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    table: Mapping[str, Any] = field(default_factory=dict)  # canonical call -> result

    def open(self) -> Environment:
        target: Any = None
        if self.python is not None:
            factory = resolve_factory(self.python)
            if isinstance(factory, types.ModuleType):
                target = factory  # a module: its functions are the tools
            else:
                try:
                    target = factory(**dict(self.args))
                except Exception as exc:
                    raise EnvironmentFailure(
                        f"environment {self.python}: building it raised"
                        f" {type(exc).__name__}: {exc}".splitlines()[0]
                    ) from None
        return Environment(target, self.table, self.python or "recorded table")


class Environment:
    """One live environment: answers calls, remembers them, reports its state."""

    def __init__(self, target: Any, table: Mapping[str, Any], label: str) -> None:
        self.target = target
        self.table = table
        self.label = label

    def has(self, name: str) -> bool:
        if any(json.loads(key)[0] == name for key in self.table):
            return True
        return self._method(name) is not None

    def _method(self, name: str) -> Any:
        if self.target is None or name.startswith("_") or name == "state":
            return None
        fn = getattr(self.target, name, None)
        return fn if callable(fn) else None

    def call(self, name: str, arguments: Mapping[str, Any]) -> tuple[Any, bool]:
        """(result, answered): ``answered`` False when neither the table nor the object has
        this call (the result is then an error message for the model)."""
        key = canonical_call(name, arguments)
        if key in self.table:
            return self.table[key], True
        fn = self._method(name)
        if fn is None:
            return {"error": f"no result for {name} with these arguments"}, False
        try:
            inspect.signature(fn).bind(**dict(arguments))
        except TypeError as exc:
            # Arguments the function does not take: the model's mistake, told to the model.
            return {"error": f"{name}: {exc}"}, False
        except ValueError:
            pass  # no signature to check (a builtin): let the call decide
        try:
            return fn(**dict(arguments)), True
        except Exception as exc:
            raise EnvironmentFailure(self._raised(name, exc)) from None

    def _raised(self, name: str, exc: BaseException) -> str:
        return f"tool {name} ({self.label}) raised {type(exc).__name__}: {exc}".splitlines()[0]

    def state(self) -> Mapping[str, Any]:
        """What a final-state check compares: ``state()`` of the object, else its attributes."""
        if self.target is None:
            return {}
        get = getattr(self.target, "state", None)
        if callable(get):
            got = get()
            return dict(got) if isinstance(got, Mapping) else {"state": got}
        attrs = getattr(self.target, "__dict__", {})
        return {k: v for k, v in attrs.items() if not k.startswith("_") and not callable(v)}


def table_from(rows: Sequence[Any], where: str) -> dict[str, Any]:
    """A recorded table from its JSON rows; raises ValueError naming the bad row."""
    out: dict[str, Any] = {}
    for i, row in enumerate(rows):
        call = row.get("call") if isinstance(row, Mapping) else None
        if (
            not isinstance(call, Mapping)
            or not isinstance(call.get("name"), str)
            or not isinstance(call.get("arguments", {}), Mapping)
            or "result" not in row
        ):
            raise ValueError(
                f"{where}[{i}]: expected {{'call': {{'name': ..., 'arguments': {{...}}}},"
                " 'result': ...}"
            )
        out[canonical_call(call["name"], call.get("arguments", {}))] = row["result"]
    return out
