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
from typing import Any, Literal

from pytest_parity.secrets import FrozenHeaders

CONTRACT_VERSION = 1
APIS = ("chat", "completions")
INCONCLUSIVE_POLICIES = ("fail", "warn")
DIRECTION_POLICIES = ("preserve", "ignore")
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(message: str) -> str:
    """A message on one line: a newline or another control character it quotes from the user's
    files (a path, a key, a metadata field) is shown escaped, as ``\\n``."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)


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
        super().__init__(one_line(msg))


def _frozen(value: Any) -> Any:
    """Deep-freeze YAML data: mappings become read-only, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


_SCALARS = frozenset({str, int, float, bool})


def thaw(value: Any) -> Any:
    """The inverse of the freezing: plain dicts and lists (for JSON, payloads, hashing)."""
    if value is None or type(value) in _SCALARS:  # most values: no ABC check (~0.3 us)
        return value
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
    # read-only, repr masks credential values (a -l traceback holding the spec shows ***)
    headers: Mapping[str, str] = field(default_factory=FrozenHeaders)
    recording: Path | None = None
    max_response_bytes: int = 16 * 1024 * 1024  # an answer's cap, after decompression

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


# ``slice_by:`` resolved: "auto", or the metadata fields named (empty: no slices)
SliceBy = Literal["auto"] | tuple[str, ...]


@dataclass(frozen=True)
class EarlyStopSpec:
    """``early_stop:`` of a task: items asked in a seeded random order, ``batch`` at a time, the
    task stopping once an anytime-valid confidence sequence decides it (runner/earlystop.py);
    ``alpha_share`` of alpha is spent on those looks, the rest on the fixed-n fallback."""

    batch: int = 50
    alpha_share: float = 0.5


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
    failure_ratio: float = 3.0
    disagreements: int = 50
    early_stop: EarlyStopSpec | None = None  # off unless a task or the defaults turn it on
    slice_by: SliceBy = "auto"  # the exploratory slices of every task (see TaskSpec.slice_by)
    # check name -> True / False / its raw options, applied to every task (validated per task)
    checks: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


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
    # the source's own options (the mapping under its key, e.g. lm_eval:), validated by the source
    source_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # check name -> its validated options, for the checks this task runs (see checks/base.py)
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    failure_ratio: float = 3.0  # a category the baseline shows fails at this rate ratio (+ count)
    score_range: tuple[float, float] | None = None  # declared scorer range, rescaled to [0, 1]
    early_stop: EarlyStopSpec | None = None  # None: every item is asked (the fixed-n gate)
    # the metadata fields of the exploratory slices in the reports (checks/slices.py): "auto"
    # (every categorical field with few values), the fields named, or () for none
    slice_by: SliceBy = "auto"

    @property
    def lm_eval(self) -> Mapping[str, Any]:
        """The options of an lm-eval task (``lm_eval:``); empty for other sources."""
        return self.source_options if self.source == "lm-eval" else MappingProxyType({})

    # the judge endpoint this task's scorer may ask (role "judge"): the task's own, else the
    # contract's top-level one; None when neither is given
    judge: EndpointSpec | None = None

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
    description: str | None = None  # the contract's free text, shown in every report
    judge: EndpointSpec | None = None  # the top-level judge endpoint (LLM-as-judge scorers)
    # the ``monitor:`` block, validated (contract/rules.py: monitor_options); None when absent
    monitor: Mapping[str, Any] | None = None

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        known = [t.name for t in self.tasks]
        raise KeyError(f"no task {name!r} in {self.path.name}{_did_you_mean(name, known)}")

    def describe(self) -> dict[str, Any]:
        """The contract as plain data for reports: endpoints without secrets, task settings."""
        judged = {} if self.judge is None else {"judge": self.judge.identity()}
        return {
            **judged,
            "path": str(self.path),
            "version": self.version,
            "digest": self.digest,
            "description": self.description,
            "baseline": _shown(self.baseline),
            "candidate": _shown(self.candidate),
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
                    "checks": sorted(t.checks),
                    # the task's own request parameters, laid over the endpoints' (reports show
                    # what each task really ran with, not only the endpoint's defaults)
                    "params": thaw(t.params),
                    **(
                        {}
                        if t.early_stop is None
                        else {
                            "early_stop": {
                                "batch": t.early_stop.batch,
                                "alpha_share": t.early_stop.alpha_share,
                            }
                        }
                    ),
                    **({} if t.judge is None else {"judge_model": t.judge.model}),
                    **({} if t.slice_by == "auto" else {"slice_by": list(t.slice_by)}),
                }
                for t in self.tasks
            ],
        }


def _shown(endpoint: EndpointSpec) -> dict[str, Any]:
    """An endpoint as reports show it: its identity, and the recording a replay answers from
    (a replay has no server, so no base_url to show)."""
    out = endpoint.identity()
    if endpoint.recording is not None:
        out["recording"] = endpoint.recording.name
    return out


def _did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ----------------------------------------------------------------------------------------------
# entry points


def load_contract(path: str | Path) -> Contract:
    """Read and validate a contract file; raises :class:`ContractError` with a one-line message."""
    raw, text = read_contract_yaml(path)
    return contract_from_data(raw, Path(path), text)


def read_contract_yaml(path: str | Path, option: str = "--parity-contract") -> tuple[Any, str]:
    """The contract file parsed (duplicate keys refused) and its text; one-line ContractErrors."""
    import yaml

    p = Path(path)
    file = str(path)
    if not p.is_file():
        raise ContractError(file, "", "contract file not found", f"check the {option} path")
    text = read_text(p, "contract", file)
    loader = None
    try:
        loader = _unique_key_loader()(text)  # a SafeLoader subclass; refuses control characters
        node = loader.get_single_node()
        if node is not None:
            _check_yaml_size(file, node)
        raw = None if node is None else loader.construct_document(node)
    except _DuplicateKey as exc:
        raise ContractError(file, exc.where, exc.problem, "each key may appear once") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise ContractError(file, where, f"not valid YAML: {problem}") from None
    except (_TooDeep, RecursionError) as exc:
        raise ContractError(
            file,
            str(exc) if isinstance(exc, _TooDeep) else "",
            f"nested deeper than {MAX_YAML_DEPTH} levels",
            "a contract is a few levels of mappings and lists: flatten it",
        ) from None
    except ContractError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        # a value YAML's constructors cannot build (e.g. a timestamp out of range): one line
        raise ContractError(
            file, "", f"a value YAML cannot read: {str(exc).splitlines()[0]}", "write it plainly"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return raw, text


# A contract is a few hundred values; these bound what its aliases may expand to ("billion
# laughs") and how deep it nests, before anything walks it.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


def read_text(path: Path, what: str, file: str | None = None) -> str:
    """A text file that must be UTF-8 (a leading BOM is dropped); one line when it is not."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ContractError(
            file or str(path),
            f"line {line}",
            f"the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            "save it as UTF-8",
        ) from None


def _check_yaml_size(file: str, root: Any) -> None:
    """Refuse aliases that expand beyond :data:`MAX_YAML_NODES` values, recursive aliases and
    nesting beyond :data:`MAX_YAML_DEPTH`, walking the composed node graph once: shared nodes
    are counted from a memo, so a bomb costs its size on disk, not its expansion."""
    import yaml

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()

    def children(node: Any) -> list[Any]:
        if isinstance(node, yaml.MappingNode):
            return [x for pair in node.value for x in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    def fail(node: Any, problem: str, hint: str) -> ContractError:
        mark = node.start_mark
        return ContractError(file, f"line {mark.line + 1}, column {mark.column + 1}", problem, hint)

    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            on_path.discard(nid)
            kids = children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[nid] > MAX_YAML_NODES:
                raise fail(
                    node,
                    f"aliases here expand to more than {MAX_YAML_NODES:,} values"
                    " (a YAML 'billion laughs')",
                    "write the values out, or alias fewer levels",
                )
            if depth[nid] > MAX_YAML_DEPTH:
                raise fail(
                    node,
                    f"nested deeper than {MAX_YAML_DEPTH} levels",
                    "a contract is a few levels of mappings and lists: flatten it",
                )
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise fail(node, "a recursive alias (a value that contains itself)", "remove it")
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, fail)
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in children(node) if id(k) not in size)


MAX_INT_DIGITS = 100  # far beyond any bound a contract checks; Python refuses 4,300+ digits


def _check_scalar(node: Any, fail: Any) -> None:
    """A NUL written as an escape ("\\0") reaches paths and headers as no file name or header
    can hold it; an integer of thousands of digits stops YAML itself: both one line here."""
    value = str(node.value)
    if "\x00" in value:
        raise fail(node, "a NUL character (\\0) in a value", "remove it")
    if node.tag == "tag:yaml.org,2002:int" and len(value) > MAX_INT_DIGITS:
        raise fail(
            node,
            f"a number of {len(value):,} digits",
            "write a number of the size the setting takes",
        )


class _DuplicateKey(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


class _TooDeep(Exception):
    pass


def _unique_key_loader() -> Any:
    """A SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            # Stop at the first level too deep, before the scanner reads the rest (its flow
            # collections cost quadratic time) and before Python's recursion limit.
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise _TooDeep(f"line {mark.line + 1}, column {mark.column + 1}")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *base`: merged keys may be overridden here, that is its use
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
