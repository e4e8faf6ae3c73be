"""Registries of the things that come in kinds: endpoint kinds, task sources, scorers, checks.

Each registry maps a name to a lazy factory: ``"package.module:attr"``, imported on first use, or
the object itself. The list of kinds is written once, here; the contract's validation, the
generated tests, the terminal table, the JSON report and the HTML reports all read it. Nothing
here imports the modules it names, so a lower layer (the contract) can ask what a higher one
(a source, a check) accepts without importing it: the registry entry is the seam between them.

A conftest.py adds its own before the contract is read (conftest files load first)::

    from pytest_parity import registry

    registry.checks.register("latency", "my_checks:LatencyCheck")

and an installed package does the same through an entry point in the group of that registry
(``pytest_parity.checks``, ``pytest_parity.sources``, ``pytest_parity.scorers``), e.g. in its
pyproject.toml::

    [project.entry-points."pytest_parity.checks"]
    latency = "my_checks:LatencyCheck"
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "RegistryError", "checks", "kinds", "scorers", "sources"]


class RegistryError(LookupError):
    """An unknown name, or a factory that cannot be imported; ``str()`` is one line."""


class Registry(Generic[T]):
    """Names -> lazily imported objects of one kind, in registration order.

    ``instantiate``: a factory that resolves to a class is called once with no arguments (checks
    and sources are classes); otherwise the resolved object is used as it is (scorers are
    functions, kinds are data).
    """

    def __init__(
        self, kind: str, builtin: dict[str, str], *, group: str, instantiate: bool = True
    ) -> None:
        self.kind = kind
        self.group = group
        self.instantiate = instantiate
        self._factories: dict[str, str | object] = dict(builtin)
        self._loaded: dict[str, T] = {}
        self._entry_points_read = False

    def register(self, name: str, factory: str | object, *, replace: bool = False) -> None:
        """Add ``name``; ``factory`` is ``"module:attr"`` or the object (or class) itself."""
        if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
            raise RegistryError(f"{self.kind} name {name!r}: use letters, digits, _ and -")
        if name in self._factories and not replace:
            raise RegistryError(
                f"a {self.kind} named {name!r} is already registered (pass replace=True to"
                " override it)"
            )
        self._factories[name] = factory
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._factories.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> tuple[str, ...]:
        self._read_entry_points()
        return tuple(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The object registered as ``name``, imported (and instantiated) on first use."""
        if name in self._loaded:
            cached = self._loaded[name]
            module = getattr(cached, "__module__", None)
            if not isinstance(module, str) or module in sys.modules:
                return cached
            # Its module was unloaded (pytester's in-process runs restore sys.modules): import
            # it again, or its exception classes would no longer be the ones callers catch.
        if name not in self.names():
            raise RegistryError(self.unknown(name))
        factory = self._factories[name]
        obj: Any = (
            _resolve(factory, f"{self.kind} {name!r}") if isinstance(factory, str) else factory
        )
        if self.instantiate and isinstance(obj, type):
            obj = obj()
        self._loaded[name] = obj
        return obj  # type: ignore[no-any-return]

    def unknown(self, name: str) -> str:
        """The one-line message for a name that is not registered (with a did-you-mean)."""
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        mean = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{mean} (known: {', '.join(known)})"

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for name, value in _entry_points().get(self.group, ()):
            self._factories.setdefault(name, value)


def _entry_points() -> dict[str, list[tuple[str, str]]]:
    """(name, value) of every ``pytest_parity.*`` entry point, by group: one scan of the
    installed distributions for all the registries (a scan per group cost 4-12 ms each)."""
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        from importlib.metadata import entry_points

        every = entry_points()  # one scan; .groups and .select filter it (3.10 to 3.13 alike)
        _ENTRY_POINTS = {
            group: [(ep.name, ep.value) for ep in every.select(group=group)]
            for group in every.groups
            if group.startswith("pytest_parity.")
        }
    return _ENTRY_POINTS


_ENTRY_POINTS: dict[str, list[tuple[str, str]]] | None = None


def _resolve(path: str, what: str) -> Any:
    """``module:attr`` (dotted attributes allowed), or ``module:attr#key`` for an entry of a
    mapping (the project's kinds and scorers are tables)."""
    path, _, key = path.partition("#")
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"{what}: cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RegistryError(f"{what}: {module_name} has no attribute {attr!r}") from None
    if key:
        try:
            obj = obj[key]
        except (KeyError, TypeError):
            raise RegistryError(f"{what}: {module_name}.{attr} has no entry {key!r}") from None
    return obj


def lazy(path: str) -> Callable[[], Any]:
    """A zero-argument factory importing ``path`` when called (for deferred defaults)."""
    return lambda: _resolve(path, path)


# The project's own kinds. Order matters where it is shown: checks run and appear in this order.
kinds: Registry[Any] = Registry(
    "endpoint kind",
    {
        name: f"pytest_parity.endpoints.kinds:KINDS#{name}"
        for name in (
            "openai",
            "vllm",
            "sglang",
            "tensorrt-llm",
            "llama-cpp",
            "anthropic",
            "replay",
            "captured",
        )
    },
    group="pytest_parity.kinds",
    instantiate=False,
)
sources: Registry[Any] = Registry(
    "task source",
    {
        "golden": "pytest_parity.sources.golden:GoldenSource",
        "lm-eval": "pytest_parity.sources.lmeval.source:LmEvalSource",
        "traffic": "pytest_parity.sources.traffic.source:TrafficSource",
        "long-context": "pytest_parity.sources.longcontext:LongContextSource",
        "tool-use": "pytest_parity.sources.tooluse.source:ToolUseSource",
        "shadow": "pytest_parity.sources.shadow:ShadowSource",
    },
    group="pytest_parity.sources",
)
scorers: Registry[Any] = Registry(
    "scorer",
    {
        name: f"pytest_parity.scoring.builtin:SCORERS#{name}"
        for name in ("exact", "contains", "regex", "numeric", "choice", "json")
    }
    | {
        "judge-rubric": "pytest_parity.scoring.judge.rubric:judge_rubric",
        "judge-pairwise": "pytest_parity.scoring.judge.pairwise:judge_pairwise",
    },
    group="pytest_parity.scorers",
    instantiate=False,
)
checks: Registry[Any] = Registry(
    "check",
    {
        "delta": "pytest_parity.checks.delta:DeltaCheck",
        "failure_modes": "pytest_parity.checks.failure_modes:FailureModesCheck",
        "error_direction": "pytest_parity.checks.error_direction:ErrorDirectionCheck",
        "buckets": "pytest_parity.checks.buckets:BucketsCheck",
        "calibration": "pytest_parity.checks.calibration:CalibrationCheck",
        "tone": "pytest_parity.checks.tone:ToneCheck",
        "latency": "pytest_parity.checks.latency:LatencyCheck",
    },
    group="pytest_parity.checks",
)
