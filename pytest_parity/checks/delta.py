"""The paired delta within tolerance: non-inferiority of the candidate (STATISTICS.md section 2).

One test per task (``delta``), and one more per extra metric a source gates beside its main
score (an lm-eval task with several metrics or filters: ``delta:<metric>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_parity.checks.base import Check, CheckContext
from pytest_parity.contract.spec import TaskSpec
from pytest_parity.records import CheckResult, ItemRecord, Status, check

if TYPE_CHECKING:
    from pytest_parity.records import TaskRun

__all__ = ["DeltaCheck", "check_delta", "paired_scores"]


class DeltaCheck(Check):
    name = "delta"
    title = "Score within tolerance"
    column = "delta"
    default = True

    def test_ids(self, task: TaskSpec) -> tuple[str, ...]:
        from pytest_parity import registry

        extra = registry.sources.get(task.source).metrics(task)[1:]
        return (self.name, *(f"{self.name}:{m}" for m in extra))

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        if run.early_stop is not None:
            from pytest_parity.checks.earlystop import sequential_delta

            results = [sequential_delta(task, run, ctx.seed)]
        else:
            results = [check_delta(task, run.records, ctx.seed, n_items=run.n_items)]
        for metric, extra in run.extra_metrics.items():
            results.append(
                check_delta(task, extra, ctx.seed, name=f"{self.name}:{metric}", n_items=len(extra))
            )
        return results


def paired_scores(records: Sequence[ItemRecord]) -> tuple[list[float], list[float], list[str]]:
    """Both stacks' scores on the items both answered, and each item's cluster key."""
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
    task: TaskSpec,
    records: Sequence[ItemRecord],
    seed: int,
    name: str = "delta",
    n_items: int | None = None,
) -> CheckResult:
    """Non-inferiority of the candidate on the task's paired scores."""
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
        "p_alarm": ni.p_fail,
    }
    reasons = list(ni.reasons)
    status: Status = ni.status  # type: ignore[assignment]
    total = len(records) if n_items is None else n_items
    if n < total:
        # Failed requests are not missing at random (a stack that times out on long prompts):
        # a verdict on fewer items than the task holds says so wherever it is shown.
        reasons.insert(
            1,
            f"verdict on {n:,} of {total:,} items: {total - n:,} without an answer from both"
            " stacks are left out",
        )
        numbers["items_left_out"] = total - n
    if n < task.min_items and status != "FAIL":
        reasons.append(
            f"only {n} paired items; the contract asks for at least {task.min_items}"
            " before a pass counts"
        )
        if status == "PASS":
            status = "INCONCLUSIVE"
    if status == "PASS" and ni.warn:
        numbers["warn"] = True
    return check(name, status, reasons, **numbers)
