"""The parity contract: YAML in, a validated, frozen specification out.

Every problem is a :class:`ContractError` whose message is one line naming the file, the field
path, the problem and a fix, e.g.::

    contract.yaml: tasks[2].tolerance: expected a number in (0, 1), got '2%' (hint: write 0.02)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

CONTRACT_VERSION = 1
SOURCES = ("golden", "lm-eval")  # built in; registry.sources holds every source
APIS = ("chat", "completions")
INCONCLUSIVE_POLICIES = ("fail", "warn")
DIRECTION_POLICIES = ("preserve", "ignore")
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class ContractError(ValueError):
    """A contract that cannot be used; ``str()`` is the one-line message shown to the user."""

    def __init__(self, file: str, where: str, problem: str, hint: str | None = None) -> None:
        self.file = file
        self.where = where
        self.problem = problem
        self.hint = hint
        msg = f"{file}: {where}: {problem}" if where else f"{file}: {problem}"
        if hint:
            msg += f" (hint: {hint})"
        super().__init__(msg)


def _frozen(value: Any) -> Any:
    """Deep-freeze YAML data: mappings become read-only, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of the freezing: plain dicts and lists (for JSON, payloads, hashing)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class EndpointSpec:
    """One serving stack. ``api_key_env`` names an environment variable; the key is never stored."""

    role: str  # "baseline" | "candidate"
    kind: str
    base_url: str
    model: str
    api: str = "chat"
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    timeout: float = 120.0
    max_concurrency: int = 8
    max_retries: int = 4
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    recording: Path | None = None

    def identity(self) -> dict[str, Any]:
        """What identifies this endpoint in results and cache keys (no secrets)."""
        return {
            "role": self.role,
            "kind": self.kind,
            "base_url": self.base_url,
            "model": self.model,
            "api": self.api,
            "params": thaw(self.params),
        }


@dataclass(frozen=True)
class Defaults:
    tolerance: float = 0.015
    safety_tolerance: float = 0.005
    alpha: float = 0.05
    seed: int = 0
    min_items: int = 30
    inconclusive: str = "fail"
    max_error_rate: float = 0.02
    error_direction: str = "preserve"
    failure_min_count: int = 5
    disagreements: int = 50


@dataclass(frozen=True)
class TaskSpec:
    """One task of the contract, every setting resolved (task value, else contract default)."""

    name: str
    source: str
    path: Path | None
    scorer: str
    scorer_options: Mapping[str, Any]
    tolerance: float
    safety_critical: bool
    alpha: float
    min_items: int
    inconclusive: str
    max_error_rate: float
    error_direction: str
    failure_min_count: int
    params: Mapping[str, Any]
    system: str | None = None
    template: str | None = None
    limit: int | None = None
    cluster_key: str | None = None
    repeats: int = 1
    categories: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    lm_eval: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # the validated options of the task's source, read from the task key the source names
    # (``long_context:``, ``tool_use:``...; see TaskSource.options)
    source_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # check name -> its validated options, for the checks this task runs (see checks/base.py)
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def with_safety_critical(self, defaults: Defaults) -> TaskSpec:
        """This task under the safety-critical policy (what the ``safety_critical`` marker does)."""
        from dataclasses import replace

        if self.safety_critical:
            return self
        return replace(
            self,
            safety_critical=True,
            tolerance=min(self.tolerance, defaults.safety_tolerance),
            inconclusive="fail",
            failure_min_count=1,
        )


@dataclass(frozen=True)
class Contract:
    path: Path
    version: int
    baseline: EndpointSpec
    candidate: EndpointSpec
    defaults: Defaults
    tasks: tuple[TaskSpec, ...]
    digest: str

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        known = [t.name for t in self.tasks]
        raise KeyError(f"no task {name!r} in {self.path.name}{_did_you_mean(name, known)}")

    def describe(self) -> dict[str, Any]:
        """The contract as plain data for reports: endpoints without secrets, task settings."""
        return {
            "path": str(self.path),
            "version": self.version,
            "digest": self.digest,
            "baseline": self.baseline.identity(),
            "candidate": self.candidate.identity(),
            "tasks": [
                {
                    "name": t.name,
                    "source": t.source,
                    "scorer": t.scorer,
                    "tolerance": t.tolerance,
                    "safety_critical": t.safety_critical,
                    "alpha": t.alpha,
                    "inconclusive": t.inconclusive,
                    "error_direction": t.error_direction,
                }
                for t in self.tasks
            ],
        }


def _did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ----------------------------------------------------------------------------------------------
# entry points


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract file; raises :class:`ContractError` with a one-line message."""
    import yaml

    p = Path(path)
    file = str(path)
    if not p.is_file():
        raise ContractError(file, "", "contract file not found", "check the --parity-contract path")
    text = p.read_text(encoding="utf-8")
    try:
        raw = yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ContractError(file, exc.where, exc.problem, "each key may appear once") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ContractError(file, where, f"not valid YAML: {problem}") from None
    return contract_from_data(raw, p, text)


class _DuplicateKey(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def _unique_key_loader() -> Any:
    """A SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    mark = key_node.start_mark
                    raise _DuplicateKey(
                        f"line {mark.line + 1}, column {mark.column + 1}",
                        f"duplicate key {key!r}",
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def contract_from_data(raw: Any, path: Path, text: str | None = None) -> Contract:
    """Validate already-parsed contract data (``path`` names it in errors and anchors paths)."""
    from pytest_parity.contract.rules import build_contract

    return build_contract(raw, path, text)
