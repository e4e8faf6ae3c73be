"""Early stopping (``early_stop:`` on a task): ask items in batches, stop once the answer is clear.

The task's items are put in a seeded random order (the run's seed and the task's name, so a
resumed run asks the same items in the same order and its cached answers stop it at the same
look), then asked ``batch`` at a time through the task's :class:`ItemPipeline`. Each batch is
finished before the next one starts, so when the test stops, no request of a later batch has
been sent, and none ever is. After each batch the paired differences of the items both stacks
answered go to :class:`pytest_parity.stats.sequential.SequentialTest` (the anytime-valid betting
confidence sequence; its docstring says how alpha is split between the looks and the fixed-n
fallback). What happened is the run's ``early_stop`` record, which the delta check and the
reports read: items asked of the available, the looks, the decision and the bound at the stop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_parity.records import ItemRecord
from pytest_parity.sources.item import Item

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.runner.pipeline import ItemPipeline, PipelineResult

__all__ = ["paired_differences", "run_in_batches", "seeded_order"]


def seeded_order(items: Iterable[Item], seed: int, task: str) -> list[Item]:
    """The task's items in the random order of the run's seed (the same in every process)."""
    import numpy as np

    from pytest_parity import stats

    listed = list(items)
    rng = np.random.default_rng(stats.task_seed(seed, f"{task}/early_stop"))
    return [listed[i] for i in rng.permutation(len(listed))]


def paired_differences(records: Iterable[ItemRecord]) -> list[float]:
    """new - old of the items both stacks answered (scores already on [0, 1])."""
    out: list[float] = []
    for r in records:
        a, b = r["baseline"]["score"], r["candidate"]["score"]
        if a is not None and b is not None:
            out.append(float(b) - float(a))
    return out


async def run_in_batches(
    pipeline: ItemPipeline, items: Iterable[Item], task: TaskSpec, seed: int
) -> tuple[PipelineResult, dict[str, Any]]:
    """The task's items through ``pipeline`` batch by batch until the sequential test decides.

    Returns the pipeline's result over every item asked and the ``early_stop`` record.
    """
    from pytest_parity.runner.pipeline import PipelineResult
    from pytest_parity.stats.sequential import SequentialTest, split_alpha

    spec = task.early_stop
    assert spec is not None
    a_seq, a_fix = split_alpha(task.alpha, spec.alpha_share)
    ordered = seeded_order(items, seed, task.name)
    test = SequentialTest(task.tolerance, a_seq)
    records: list[ItemRecord] = []
    last: PipelineResult | None = None
    asked = 0
    for start in range(0, len(ordered), spec.batch):
        batch = ordered[start : start + spec.batch]
        last = await pipeline.run(batch)
        asked += len(batch)
        records.extend(last.records)
        if last.aborted:
            break  # an infrastructure stop: the task is an ERROR, whatever the test says
        if test.update(paired_differences(last.records)) is not None:
            break
    low, high = test.bounds()
    record: dict[str, Any] = {
        "batch": spec.batch,
        "alpha_share": spec.alpha_share,
        "alpha_seq": a_seq,
        "alpha_fixed": a_fix,
        "confidence": 1.0 - 2.0 * a_seq,
        "available": len(ordered),
        "asked": asked,
        "paired": test.n,
        "looks": test.looks,
        "decision": test.decision,
        "stopped": test.decision is not None and asked < len(ordered),
        "ci_low": low,
        "ci_high": high,
        "estimate": test.estimate,
        "p_fail": test.p_fail,
    }
    result = PipelineResult(
        records=records,
        n_items=len(ordered),
        failed=pipeline.failed,
        last_error=pipeline.last_error,
        aborted=None if last is None else last.aborted,
        aa_scores=None if last is None else last.aa_scores,
    )
    return result, record
