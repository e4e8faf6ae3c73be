"""``source: lm-eval``: a benchmark of lm-evaluation-harness, run on both stacks and paired."""

from __future__ import annotations

import time
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

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        from pytest_parity.sources.lmeval.options import normalize_lm_eval_options

        if "task" not in raw:
            raise v.fail(f"{where}.task", "required but missing", "write lm_eval: {task: gsm8k}")
        # Paths inside lm_eval (include_path, data_files, tokenizer) are relative to the contract.
        opts: Mapping[str, Any] = normalize_lm_eval_options(dict(raw), where, v.file, base)
        return opts

    def run(self, task: TaskSpec, context: RunContext) -> TaskRun:
        from pytest_parity.records import TaskRun
        from pytest_parity.sources.lmeval.bridge import run_lmeval_task

        started = time.monotonic()
        by_metric = run_lmeval_task(
            task,
            context.baseline,
            context.candidate,
            cache_dir=context.cache_dir,
            seed=context.seed,
            classify=context.classify,
            refresh=context.refresh,
        )
        metrics = list(by_metric)
        records = by_metric[metrics[0]]
        failed = {
            "baseline": sum(1 for rec in records if rec["baseline"]["error"]),
            "candidate": sum(1 for rec in records if rec["candidate"]["error"]),
        }
        return TaskRun(
            task=task,
            records=records,
            endpoints={
                "baseline": context.baseline.identity(),
                "candidate": context.candidate.identity(),
            },
            n_items=len(records),
            failed=failed,
            last_error={"baseline": None, "candidate": None},
            seconds=time.monotonic() - started,
            extra_metrics={m: by_metric[m] for m in metrics[1:]},
        )
