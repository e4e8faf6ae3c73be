"""``source: lm-eval``: a benchmark of lm-evaluation-harness, run on both stacks and paired."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_parity.sources.base import RunContext, TaskSource

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.records import TaskRun

__all__ = ["LmEvalSource"]


class LmEvalSource(TaskSource):
    name = "lm-eval"
    options_key = "lm_eval"
    default_scorer = "lm-eval"
    runs_itself = True
    options_required = True

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        from pytest_parity.sources.lmeval.options import normalize_lm_eval_options

        if "task" not in raw:
            raise v.fail(f"{where}.task", "required but missing", "write lm_eval: {task: gsm8k}")
        # Paths inside lm_eval (include_path, data_files, tokenizer) are relative to the contract.
        opts: Mapping[str, Any] = normalize_lm_eval_options(dict(raw), where, v.file, base)
        return opts

    def metrics(self, task: TaskSpec) -> tuple[str, ...]:
        """Each metric (``metrics:``), or each metric,filter pair when several filters are gated."""
        metrics = [str(m) for m in task.lm_eval.get("metrics") or ()]
        raw = task.lm_eval.get("filter")
        filters = [raw] if isinstance(raw, str) else [str(f) for f in raw or ()]
        keys = [f"{m},{f}" for m in metrics for f in filters] if len(filters) > 1 else metrics
        return tuple(keys)

    def run(self, task: TaskSpec, context: RunContext) -> TaskRun:
        from pytest_parity.endpoints.loop import run_sync
        from pytest_parity.records import TaskRun
        from pytest_parity.sources.lmeval.bridge import arun_lmeval_task

        out = run_sync(lambda: arun_lmeval_task(task, context))
        metrics = list(out.by_metric)
        records = out.by_metric[metrics[0]]
        return TaskRun(
            task=task,
            records=records,
            endpoints=out.endpoints,
            n_items=len(records),
            failed=out.failed,
            last_error=out.last_error,
            aborted=out.aborted,
            extra_metrics={m: out.by_metric[m] for m in metrics[1:]},
            aa_scores=out.aa_scores,
            answers=out.answers or {},
        )
