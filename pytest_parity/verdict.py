"""The verdict: a task run's paired records in, one :class:`CheckResult` per part of parity out.

Parity is three checks, each its own test: the paired delta within tolerance (non-inferiority),
no new failure modes, and the direction of error preserved. Checks return reasons, not booleans:
the same sentences feed the assertion message, the terminal table and the reports.
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
    check,
    worst,
)


def _pts(x: float) -> str:
    return f"{x * 100:+.2f}"


def paired_scores(records: Sequence[ItemRecord]) -> tuple[list[float], list[float], list[str]]:
    old: list[float] = []
    new: list[float] = []
    clusters: list[str] = []
    for r in records:
        a, b = r["baseline"]["score"], r["candidate"]["score"]
        if a is None or b is None:
            continue  # an infrastructure failure on either side: the pair is not scored
        old.append(a)
        new.append(b)
        clusters.append(r["cluster"] or "")
    return old, new, clusters


def check_delta(
    task: TaskSpec, records: Sequence[ItemRecord], seed: int, name: str = "delta"
) -> CheckResult:
    """Non-inferiority of the candidate on the task's paired scores (STATISTICS.md section 2)."""
    import numpy as np

    from pytest_parity import stats

    old, new, clusters = paired_scores(records)
    n = len(old)
    if n == 0:
        return check(name, "ERROR", [f"no item was answered by both stacks in task {task.name}"])
    confidence = 1 - 2 * task.alpha
    rng = np.random.default_rng(stats.task_seed(seed, f"{task.name}/{name}"))
    interval = stats.paired_interval(
        np.asarray(old, dtype=float),
        np.asarray(new, dtype=float),
        confidence=confidence,
        rng=rng,
        clusters=clusters if task.cluster_key else None,
    )
    ni = stats.noninferiority(interval, task.tolerance, alpha=task.alpha)
    numbers: dict[str, Any] = {
        **interval.to_dict(),
        **{k: v for k, v in ni.to_dict().items() if k not in ("status", "reasons")},
        "ci_low": interval.low,
        "ci_high": interval.high,
        "tolerance": task.tolerance,
        "baseline_score": float(np.mean(old)),
        "candidate_score": float(np.mean(new)),
    }
    reasons = list(ni.reasons)
    status: Status = ni.status  # type: ignore[assignment]
    if n < task.min_items and status != "FAIL":
        reasons.append(
            f"only {n} paired items; the contract asks for at least {task.min_items}"
            " before a pass counts"
        )
        if status == "PASS":
            status = "INCONCLUSIVE"
    if interval.method == "exact-zero":
        # Zero flips in n items still leaves room for a rare flip rate: say how much (rule of 3).
        reasons.append(
            f"no item flipped; at n={n:,} a flip rate up to {3 / n:.2%} (rule of three, 95%)"
            " could still go unseen"
        )
        numbers["flip_rate_upper95"] = 3 / n
    if status == "PASS" and ni.warn:
        numbers["warn"] = True
    return check(name, status, reasons, **numbers)


def evaluate(task: TaskSpec, run: TaskRun, seed: int, disagreements: int) -> TaskResult:
    """All checks of one task. A run with too many failed requests is an ERROR, never a verdict."""
    from pytest_parity.checks.failures import (
        check_error_direction,
        check_failure_modes,
        review_focus,
        sample_disagreements,
    )

    records = run.records
    old, new, _ = paired_scores(records)
    result: TaskResult = {
        "task": task.name,
        "source": task.source,
        "safety_critical": task.safety_critical,
        "tolerance": task.tolerance,
        "alpha": task.alpha,
        "n_items": run.n_items,
        "n_paired": len(old),
        "baseline_score": sum(old) / len(old) if old else None,
        "candidate_score": sum(new) / len(new) if new else None,
        "baseline_errors": run.failed["baseline"],
        "candidate_errors": run.failed["candidate"],
        "checks": {},
        "verdict": "ERROR",
        "error": None,
        "endpoints": run.endpoints,
        "disagreements": [],
        "disagreements_total": 0,
        "aa": None if run.aa_scores is None else aa_floor(records, run.aa_scores),
        "data_digest": run.data_digest,
        "judge": judge_figures(task, run),
    }
    error = infrastructure_error(task, run)
    if error is not None:
        result["error"] = error
        return result
    checks = [
        check_delta(task, records, seed),
        check_failure_modes(records, task),
        check_error_direction(records, task),
    ]
    for metric, extra in run.extra_metrics.items():
        checks.append(check_delta(task, extra, seed, name=f"delta:{metric}"))
    result["checks"] = {c["name"]: c for c in checks}
    result["verdict"] = worst([c["status"] for c in checks])
    from pytest_parity import stats

    sample, total = sample_disagreements(
        records,
        disagreements,
        stats.task_seed(seed, f"{task.name}/disagreements"),
        focus=review_focus(result["checks"]["failure_modes"]),
    )
    result["disagreements"] = sample
    result["disagreements_total"] = total
    return result


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
    allowed = int(task.max_error_rate * run.n_items)
    for role in ("baseline", "candidate", "judge"):
        if run.failed.get(role, 0) > allowed:
            what = "judgements" if role == "judge" else f"{role} requests"
            return (
                f"task {task.name}: {run.failed[role]} of {run.n_items} {what} failed"
                f" (allowed {allowed}); last error: {run.last_error[role]}"
            )
    if not run.records:
        return f"task {task.name}: no items were run"
    return None


def summarize(
    contract: Contract, tasks: Sequence[TaskResult], started: str, version: str
) -> RunResult:
    """The run verdict: intersection-union over tasks, Holm-adjusted FAIL alarms, overall power."""
    from pytest_parity import stats

    reasons: list[str] = []
    statuses: list[Status] = []
    pvalues: list[float] = []
    names: list[str] = []
    powers: list[float] = []
    for t in tasks:
        statuses.append(t["verdict"])
        if t["verdict"] != "PASS":
            why = t["error"] or "; ".join(
                f"{c['name']} {c['status']}" for c in t["checks"].values() if c["status"] != "PASS"
            )
            reasons.append(f"{t['task']}: {t['verdict']} ({why})")
        delta = t["checks"].get("delta")
        if delta is not None and "p_fail" in delta["numbers"]:
            names.append(t["task"])
            pvalues.append(float(delta["numbers"]["p_fail"]))
            powers.append(float(delta["numbers"]["power"]))
    missing = [t.name for t in contract.tasks if t.name not in {r["task"] for r in tasks}]
    overall: Status = worst(statuses) if statuses else "SKIP"
    if missing and overall == "PASS":
        overall = "INCONCLUSIVE"
        reasons.append(f"not run: {', '.join(missing)} (every task must pass for an overall PASS)")
    if overall == "PASS":
        reasons.append(f"all {len(tasks)} tasks passed every check")
    holm = dict(zip(names, stats.holm(pvalues), strict=True)) if pvalues else {}
    if len(holm) > 1:
        for t in tasks:
            p = holm.get(t["task"])
            delta = t["checks"].get("delta")
            if delta is not None and delta["status"] == "FAIL" and p is not None:
                held = "holds" if p < t["alpha"] else "does not hold"
                reasons.append(
                    f"{t['task']}: the regression alarm {held} after Holm's adjustment across"
                    f" {len(holm)} tasks (adjusted p={p:.3g})"
                )
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


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
