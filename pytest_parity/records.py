"""The records a run produces, as plain builtins so they cross xdist process boundaries unchanged.

A task run yields one :class:`ItemRecord` per item (both stacks' answers, scores and categories),
and the verdict turns the records into a :class:`TaskResult` with one :class:`CheckResult` per part
of parity. Reports read only these dicts; ``SCHEMA_VERSION`` versions the JSON written from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from typing_extensions import NotRequired

    from pytest_parity.contract.spec import TaskSpec

SCHEMA_VERSION = 1

Status = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR", "SKIP"]
STATUSES: tuple[str, ...] = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "SKIP")
Direction = Literal["C", "A", "W", "X"]  # correct / abstain (cautious) / wrong (confident) / infra


class SideRecord(TypedDict):
    """One stack's answer to one item."""

    text: str
    finish_reason: str | None
    score: float | None  # None when the request failed (never scored as wrong)
    parsed: bool  # whether the task's expected answer format could be parsed
    category: str  # failure category ("correct" when the answer is right)
    direction: Direction
    error: str | None  # transport error text (one line, no secrets)
    latency_s: float
    cached: bool
    # What the source and the scorer learnt about this answer beyond its text (plain builtins:
    # steps of a tool-use episode, a confidence, a judge's rationale...); None when nothing.
    facts: dict[str, Any] | None
    trajectory: list[dict[str, Any]] | None  # the turns of a multi-step answer, for reviewers


class ItemRecord(TypedDict):
    id: str
    prompt: str  # the prompt as a person reads it (chat messages flattened)
    reference: str | None
    cluster: str | None
    metadata: dict[str, Any] | None  # the item's metadata (slices, context-length buckets)
    baseline: SideRecord
    candidate: SideRecord


class CheckResult(TypedDict):
    """One part of parity for one task: status, reasons (the assertion message) and numbers."""

    name: str
    status: Status
    reasons: list[str]
    numbers: dict[str, Any]


class TaskResult(TypedDict):
    task: str
    source: str
    safety_critical: bool
    tolerance: float
    alpha: float
    n_items: int  # items in the task
    n_paired: int  # items scored on both stacks
    baseline_score: float | None
    candidate_score: float | None
    baseline_errors: int
    candidate_errors: int
    checks: dict[str, CheckResult]
    verdict: Status  # the task's overall status (worst check)
    error: str | None  # set when the task could not be evaluated (endpoint down, bad data)
    endpoints: dict[str, Any]  # identity of both stacks (no secrets), engine info when known
    disagreements: list[dict[str, Any]]  # sampled items for a person to read
    disagreements_total: int
    aa: dict[str, Any] | None  # A/A noise floor: the baseline against itself (flip_rate, n, flips)
    data_digest: str | None  # sha256 of the task's data file (golden sets), for provenance
    notes: list[str]  # one-line facts from the source (records skipped, sampling overridden...)
    # per stack: {"answers": n, "from_cache": n}, and the cache "mode"; set by the plugin
    cache: NotRequired[dict[str, Any]]
    # LLM-as-judge figures (scoring/judge/summary.py): position bias, ties, consistency, A/A
    # false differences, human agreement, length bias, judge model and prompt digest; else None
    judge: dict[str, Any] | None
    # tasks with early_stop: the run's early_stop record (runner/earlystop.py) as it ended
    early_stop: NotRequired[dict[str, Any] | None]
    # the exploratory slices by metadata field (checks/slices.py); absent when there are none.
    # Never part of the verdict: {"by", "fields": [{"field", "slices": [...], "unsliced",
    # "worst", "worse"}], "notes", "k", "tolerance", "min_items"}
    slices: NotRequired[dict[str, Any]]


def worst(statuses: list[Status]) -> Status:
    """The overall status of several checks: ERROR > FAIL > INCONCLUSIVE > PASS > SKIP."""
    order: dict[str, int] = {"ERROR": 4, "FAIL": 3, "INCONCLUSIVE": 2, "PASS": 1, "SKIP": 0}
    if not statuses:
        return "SKIP"
    return max(statuses, key=lambda s: order[s])


def check(name: str, status: Status, reasons: list[str], **numbers: Any) -> CheckResult:
    return {"name": name, "status": status, "reasons": reasons, "numbers": dict(numbers)}


class RunResult(TypedDict):
    """Everything one gate run produced: what every report (terminal, JSON, HTML) is made from."""

    schema_version: int
    contract: dict[str, Any]  # Contract.describe(): endpoints without secrets, tasks, digest
    tasks: list[TaskResult]
    overall: Status  # verdict.summarize: the one overall rule
    overall_reasons: list[str]
    pass_probability: float | None  # chance an all-equal migration passes every task at these n
    holm: dict[str, float]  # task -> Holm-adjusted p-value of its FAIL alarm
    started: str  # ISO 8601 UTC
    finished: str
    tool_version: str
    cache: NotRequired[dict[str, Any]]  # the run's totals of the tasks' ``cache``
    lock: NotRequired[dict[str, Any]]  # session/lock.py: digests of the verdict's inputs
    audit: NotRequired[list[str]]  # the coverage audit (report/audit.py): a head line, then items


@dataclass
class TaskRun:
    """Everything a task run collected (process-local); the verdict turns it into a TaskResult."""

    task: TaskSpec
    records: list[ItemRecord]
    endpoints: dict[str, Any]
    n_items: int
    failed: dict[str, int]
    last_error: dict[str, str | None]
    data_digest: str | None = None
    seconds: float = 0.0
    aborted: str | None = None  # why the run stopped early, when it did
    extra_metrics: dict[str, list[ItemRecord]] = field(default_factory=dict)
    # item id -> (baseline score, A/A score) in the baseline's comparison with its own A/A pass
    aa_scores: dict[str, tuple[float | None, float | None]] | None = None
    notes: list[str] = field(default_factory=list)  # the source's one-line facts (reports)
    # per stack: {"answers": requests answered, "from_cache": of them, answered by the cache}
    answers: dict[str, dict[str, int]] = field(default_factory=dict)
    # early_stop: tasks only (runner/earlystop.py): items available and asked, looks, the
    # decision of the confidence sequence and its bounds when it stopped; None otherwise
    early_stop: dict[str, Any] | None = None
