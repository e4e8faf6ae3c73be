"""The verdict: a task run in, one :class:`CheckResult` per check out; and the one overall rule.

A task runs the checks of the registry it enables (by default: the paired delta within tolerance,
no new failure modes, the direction of error preserved); each is its own test. Checks return
reasons, not booleans: the same sentences feed the assertion message, the terminal table and the
reports. :func:`summarize` holds the only rule that turns task results into the run's verdict.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from pytest_parity.contract.spec import Contract, TaskSpec
from pytest_parity.records import (
    SCHEMA_VERSION,
    CheckResult,
    ItemRecord,
    RunResult,
    Status,
    TaskResult,
    TaskRun,
    worst,
)


def evaluate(task: TaskSpec, run: TaskRun, seed: int, disagreements: int) -> TaskResult:
    """All checks of one task. A run with too many failed requests is an ERROR, never a verdict."""
    from pytest_parity.checks.base import CheckContext, enabled
    from pytest_parity.checks.delta import paired_scores
    from pytest_parity.checks.disagreements import review_focus, sample_disagreements

    records = run.records
    old, new, _ = paired_scores(records)
    result = error_result(task, "")
    result["n_items"] = run.n_items
    result["n_paired"] = len(old)
    result["baseline_score"] = sum(old) / len(old) if old else None
    result["candidate_score"] = sum(new) / len(new) if new else None
    result["baseline_errors"] = run.failed["baseline"]
    result["candidate_errors"] = run.failed["candidate"]
    result["endpoints"] = run.endpoints
    result["aa"] = None if run.aa_scores is None else aa_floor(records, run.aa_scores)
    result["data_digest"] = run.data_digest
    result["notes"] = list(run.notes)
    result["judge"] = judge_figures(task, run)
    error = infrastructure_error(task, run)
    if error is not None:
        result["error"] = error
        return result
    result["error"] = None
    ctx = CheckContext(seed=seed)
    checks: list[CheckResult] = []
    for c in enabled(task):
        checks.extend(c.run(task, run, ctx))
    if run.early_stop is not None:
        result["early_stop"] = dict(run.early_stop)
        if run.early_stop["asked"] < run.early_stop["available"]:
            from pytest_parity.checks.earlystop import asked_note

            for result_ in checks:
                if not result_["name"].startswith("delta"):
                    result_["reasons"].append(asked_note(run.early_stop))
    result["checks"] = {c["name"]: c for c in checks}
    result["verdict"] = worst([c["status"] for c in checks])
    from pytest_parity.checks.slices import slice_breakdown

    # exploratory: read after the verdict, never part of it (no test, no alarm)
    slices = slice_breakdown(task, records, seed)
    if slices is not None:
        result["slices"] = slices
    from pytest_parity import stats

    focus = result["checks"].get("failure_modes")
    sample, total = sample_disagreements(
        records,
        disagreements,
        stats.task_seed(seed, f"{task.name}/disagreements"),
        focus=review_focus(focus) if focus is not None else (),
    )
    result["disagreements"] = sample
    result["disagreements_total"] = total
    return result


def error_result(task: TaskSpec, error: str) -> TaskResult:
    """The result of a task that could not be evaluated (endpoint down, bad data)."""
    return {
        "task": task.name,
        "source": task.source,
        "safety_critical": task.safety_critical,
        "tolerance": task.tolerance,
        "alpha": task.alpha,
        "n_items": 0,
        "n_paired": 0,
        "baseline_score": None,
        "candidate_score": None,
        "baseline_errors": 0,
        "candidate_errors": 0,
        "checks": {},
        "verdict": "ERROR",
        "error": error,
        "endpoints": {},
        "disagreements": [],
        "disagreements_total": 0,
        "aa": None,
        "data_digest": None,
        "notes": [],
        "judge": None,
    }


def aa_floor(
    records: Sequence[ItemRecord], aa_scores: dict[str, tuple[float | None, float | None]]
) -> dict[str, Any]:
    """The baseline's flip rate against its own second pass: the noise floor of old vs new."""
    pairs = [
        pair
        for r in records
        if (pair := aa_scores.get(r["id"])) is not None
        and pair[0] is not None
        and pair[1] is not None
    ]
    flips = sum(1 for a, b in pairs if a != b)
    n = len(pairs)
    return {"n": n, "flips": flips, "flip_rate": flips / n if n else None}


def judge_figures(task: TaskSpec, run: TaskRun) -> dict[str, Any] | None:
    """The judge's own figures (position bias, ties, consistency, A/A, human agreement, length
    bias) for a task scored by an LLM judge; None otherwise."""
    if task.judge is None:
        return None
    from pytest_parity.scoring.judge.summary import judge_summary

    return judge_summary(
        task.scorer,
        task.scorer_options,
        run.records,
        run.failed.get("judge", 0),
        run.endpoints.get("judge") or task.judge.identity(),
    )


def infrastructure_error(task: TaskSpec, run: TaskRun) -> str | None:
    if run.aborted:
        return f"task {task.name} stopped: {run.aborted}"
    # An early-stopped task answers for the items it asked, not for those never sent.
    asked = int(run.early_stop["asked"]) if run.early_stop else run.n_items
    allowed = int(task.max_error_rate * asked)
    for role in ("baseline", "candidate", "judge"):
        if run.failed.get(role, 0) > allowed:
            what = "judgements" if role == "judge" else f"{role} requests"
            return (
                f"task {task.name}: {run.failed[role]} of {asked} {what} failed"
                f" (allowed {allowed}); last error: {run.last_error[role]}"
            )
    if not run.records:
        return f"task {task.name}: no items were run"
    return None


def summarize(
    contract: Contract, tasks: Sequence[TaskResult], started: str, version: str
) -> RunResult:
    """The one overall rule of a run; the terminal, the JSON and every report read it from here.

    * ERROR when a task could not be evaluated (an endpoint down, bad data): never a verdict;
    * FAIL when at least one alarm holds after Holm's adjustment across every statistical alarm
      of the run (each check that tests a hypothesis reports its one-sided p as ``p_alarm``:
      delta, failure modes, direction, on every task), or a policy alarm fired (a failure
      category the baseline never showed, on at least the minimum number of items);
    * PASS only when every task of the contract ran and passed every check;
    * otherwise INCONCLUSIVE, with the reason (a task's FAIL that does not hold across the run,
      an inconclusive delta and the items that would settle it, a task not run).

    A task's own tests still show the task's own verdict.
    """
    from pytest_parity import stats

    family: list[tuple[str, str, float]] = []  # (task, check, p) of every statistical alarm
    for t in tasks:
        for c in t["checks"].values():
            p = c["numbers"].get("p_alarm")
            if p is not None:
                family.append((t["task"], c["name"], float(p)))
    adjusted = stats.holm([p for _, _, p in family]) if family else []
    holm = {f"{task}/{name}": q for (task, name, _), q in zip(family, adjusted, strict=True)}
    errors: list[str] = []
    held: list[str] = []
    not_held: list[str] = []
    open_: list[str] = []
    for t in tasks:
        if t["verdict"] == "ERROR":
            errors.append(f"{t['task']}: ERROR ({t['error'] or _failing(t, 'ERROR')})")
            continue
        for c in t["checks"].values():
            label = f"{t['task']} {c['name']}"
            if c["status"] == "FAIL":
                q = holm.get(f"{t['task']}/{c['name']}")
                if q is None:
                    held.append(f"{label} FAIL: {_first(c)}")
                elif q < t["alpha"]:
                    held.append(
                        f"{label} FAIL holds across {len(family)} alarms of the run (Holm-adjusted"
                        f" p={q:.2g}): {_first(c)}"
                    )
                else:
                    not_held.append(
                        f"{label} FAIL does not hold across {len(family)} alarms of the run:"
                        f" Holm-adjusted p={q:.2g} >= alpha {t['alpha']:g}"
                    )
            elif c["status"] in ("INCONCLUSIVE", "ERROR"):
                open_.append(f"{label} {c['status']}: {_settle(c)}")
    missing = [t.name for t in contract.tasks if t.name not in {r["task"] for r in tasks}]
    overall: Status
    if errors:
        overall = "ERROR"
    elif held:
        overall = "FAIL"
    elif not tasks or not_held or open_ or missing:
        overall = "INCONCLUSIVE"
    else:
        overall = "PASS"
    reasons = [*errors, *held, *not_held, *open_]
    if missing:
        reasons.append(f"not run: {', '.join(missing)} (every task must pass for an overall PASS)")
    short = [t["task"] for t in tasks if t["n_paired"] < _asked(t) and not t["error"]]
    if short:
        reasons.append(
            "verdicts on fewer items than the task holds (failed requests left out): "
            + ", ".join(short)
        )
    if overall == "PASS":
        n = len(tasks)
        reasons.append(
            "the task passed every check" if n == 1 else f"all {n} tasks passed every check"
        )
    powers = [
        float(t["checks"]["delta"]["numbers"]["power"])
        for t in tasks
        if "delta" in t["checks"] and "power" in t["checks"]["delta"]["numbers"]
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "contract": contract.describe(),
        "tasks": list(tasks),
        "overall": overall,
        "overall_reasons": reasons,
        "pass_probability": stats.overall_pass_probability(powers) if powers else None,
        "holm": holm,
        "started": started,
        "finished": now(),
        "tool_version": version,
    }


def _asked(t: TaskResult) -> int:
    """Items the task asked: all of them, or those asked before an early stop."""
    es = t.get("early_stop")
    return int(es["asked"]) if es else t["n_items"]


def _first(c: CheckResult) -> str:
    return c["reasons"][0] if c["reasons"] else c["status"]


def _settle(c: CheckResult) -> str:
    """What an open check needs: the items that would settle it, else its first reason."""
    needed = c["numbers"].get("items_needed")
    n = c["numbers"].get("n")
    if isinstance(needed, int) and isinstance(n, int) and needed > n:
        return f"about {needed:,} items ({needed - n:,} more) would settle it"
    return _first(c)


def _failing(t: TaskResult, status: str) -> str:
    return "; ".join(c["name"] for c in t["checks"].values() if c["status"] == status)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
