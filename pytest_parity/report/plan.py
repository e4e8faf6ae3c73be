"""The pre-migration plan (``--parity-plan``): how many items each task needs, and what it costs.

From what a small pilot, an A/A pass or a previous run observed per task (the flip rate of
binary scores, or the second moment E[d^2] of bounded ones, and the answers' latency), the plan
gives the items needed for 80% and 90% power at the task's tolerance when nothing really
changed (exact for binary scores, stats/planning.py), whether the golden set holds them, the
requests and wall time that many items cost at the endpoints' concurrency, the chance that each
task and the whole contract pass at the items they hold if nothing changed, and the coverage
audit. Nothing is gated. Pure: the session gathers the observations (session/plan.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract, TaskSpec

POWERS = (0.8, 0.9)

__all__ = ["Observed", "TaskPlan", "plan_json", "plan_lines", "plan_task", "write_plan"]


@dataclass(frozen=True)
class Observed:
    """What was seen of one task before planning."""

    n: int  # paired items observed
    binary: bool
    flips: int  # binary: items that flipped (b + c); else items whose score changed
    spread: float  # binary: the flip rate psi; else E[d^2]
    delta: float  # observed mean delta
    latency_s: dict[str, float] = field(default_factory=dict)  # mean seconds per answer, by role
    available: int | None = None  # items the task holds
    source: str = "pilot"  # "pilot" | "A/A recording" | "previous run"


@dataclass(frozen=True)
class TaskPlan:
    task: str
    tolerance: float
    alpha: float
    observed: Observed
    needed: dict[str, int | None]  # "80%" / "90%" -> items needed (None: beyond any set)
    has_them: dict[str, bool | None]  # whether the golden set holds that many (None: unknown)
    items: int | None  # items such a run asks: those needed for 80%, at most what the task holds
    requests: int | None  # requests of a run over them (both stacks, every repeat)
    wall_s: float | None  # that run's wall time at the endpoints' concurrency
    pass_chance: float | None  # chance the task passes at its available items if nothing changed
    notes: list[str]


def plan_task(
    task: TaskSpec, seen: Observed, concurrency: dict[str, int], repeats: int = 1
) -> TaskPlan:
    """The plan of one task (see the module docstring)."""
    from pytest_parity import stats

    notes: list[str] = []
    spread = seen.spread
    if seen.binary and seen.flips == 0 and seen.n:
        notes.append(
            f"no flip in {seen.n} items: the flip rate may be up to about {3 / seen.n:.1%}"
            " (rule of three); the numbers below assume none"
        )
    elif seen.n and seen.flips < 5:
        notes.append(f"only {seen.flips} changed items in {seen.n}: the flip rate is uncertain")
    needed: dict[str, int | None] = {}
    has: dict[str, bool | None] = {}
    for power in POWERS:
        key = f"{power:.0%}"
        try:
            need = stats.items_needed(spread, task.tolerance, task.alpha, power, binary=seen.binary)
        except ValueError:
            need = None
        needed[key] = need
        has[key] = None if seen.available is None or need is None else bool(need <= seen.available)
    first = needed[f"{POWERS[0]:.0%}"]
    n_run = None if first is None else first
    if n_run is not None and seen.available is not None:
        n_run = min(n_run, seen.available)
    requests = None if n_run is None else 2 * n_run * repeats
    wall = None
    if n_run is not None and seen.latency_s:
        # Both stacks are asked together; each at its own concurrency: the slower one sets it.
        wall = max(
            n_run * repeats * lat / max(concurrency.get(role, 1), 1)
            for role, lat in seen.latency_s.items()
        )
    chance = None
    if seen.available:
        chance = stats.pass_probability(
            seen.available, spread, task.tolerance, task.alpha, binary=seen.binary
        )
    if seen.delta < -task.tolerance:
        notes.append(
            f"the observed delta {100 * seen.delta:+.2f} pts is beyond the tolerance: these"
            " counts are for stacks that are truly equal, this pair looks like a regression"
        )
    if task.early_stop is not None:
        notes.append(
            "early_stop is on: a clear-cut task stops before these counts; one that runs to the"
            f" end decides at alpha {task.alpha * (1 - task.early_stop.alpha_share):g}"
        )
    return TaskPlan(
        task.name,
        task.tolerance,
        task.alpha,
        seen,
        needed,
        has,
        n_run,
        requests,
        wall,
        chance,
        notes,
    )


def _pts(x: float) -> str:
    return f"{100 * x:.2f}"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no latency observed)"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def overall_chance(plans: Sequence[TaskPlan]) -> float | None:
    """Chance the whole contract passes if nothing really changed (every task must pass)."""
    chances = [p.pass_chance for p in plans]
    if not chances or any(c is None for c in chances):
        return None
    return math.prod(float(c) for c in chances if c is not None)


def plan_lines(contract: Contract, plans: Sequence[TaskPlan]) -> list[str]:
    from pytest_parity.report.audit import audit_lines

    lines = [f"parity plan of {contract.path.name} (nothing gated)"]
    for p in plans:
        o = p.observed
        what = "flip rate" if o.binary else "E[d^2]"
        held = "unknown" if o.available is None else f"{o.available:,}"
        lines.append(
            f"{p.task}: {o.source}, {o.n:,} items: {what} {100 * o.spread:.2f}%, delta"
            f" {100 * o.delta:+.2f} pts; tolerance {_pts(p.tolerance)} pts, alpha {p.alpha:g}"
        )
        for key, need in p.needed.items():
            has = p.has_them[key]
            verdict = (
                "task size unknown"
                if has is None
                else "the task holds them"
                if has
                else "MORE than the task holds"
            )
            count = "more than 100 million" if need is None else f"{need:,}"
            lines.append(f"  {key} power: {count} items ({verdict}; it holds {held})")
        if p.requests is not None and p.items is not None:
            full = o.available is not None and p.items >= o.available
            over = f"all {p.items:,} items" if full else f"{p.items:,} items"
            lines.append(
                f"  a run over {over}: {p.requests:,} requests, about {_time(p.wall_s)} at the"
                " endpoints' concurrency"
            )
        if p.pass_chance is not None:
            lines.append(
                f"  chance its delta check passes at its {held} items if nothing changed:"
                f" {p.pass_chance:.0%}"
            )
        lines.extend(f"  note: {n}" for n in p.notes)
    chance = overall_chance(plans)
    if chance is not None:
        lines.append(
            f"chance the whole contract passes if nothing really changed: {chance:.0%}"
            " (every task's delta check must pass; the failure-mode and direction checks are not"
            " in this figure)"
        )
    lines.extend(audit_lines(contract))
    return lines


def plan_json(contract: Contract, plans: Sequence[TaskPlan]) -> dict[str, Any]:
    from pytest_parity.report.audit import audit

    return {
        "contract": str(contract.path),
        "tasks": [asdict(p) for p in plans],
        "pass_probability": overall_chance(plans),
        "audit": [asdict(a) for a in audit(contract)],
    }


def write_plan(contract: Contract, plans: Sequence[TaskPlan], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan_json(contract, plans), indent=2) + "\n", encoding="utf-8")
