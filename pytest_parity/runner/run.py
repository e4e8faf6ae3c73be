"""Runs one task of a contract: its source's items through both stacks, a TaskRun out.

The source comes from :data:`pytest_parity.registry.sources` by the task's ``source:`` name. An
item source's items stream through :class:`~pytest_parity.runner.pipeline.ItemPipeline`; a
source that runs itself (lm-eval) is handed a :class:`~pytest_parity.sources.base.RunContext`.
Endpoints are opened per task, inside that task's event loop, and closed when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pytest_parity import registry
from pytest_parity.contract.spec import Contract, EndpointSpec, TaskSpec
from pytest_parity.endpoints.progress import answer_counts
from pytest_parity.records import TaskRun
from pytest_parity.runner.lengths import ContextTokens, counts_context_tokens
from pytest_parity.runner.pipeline import Classifier, ItemPipeline
from pytest_parity.runner.taskrun import Progress, TaskRunError
from pytest_parity.scoring.resolve import resolve_scorer
from pytest_parity.sources.base import RunContext, SourceError, TaskSource
from pytest_parity.sources.item import Item

__all__ = ["Runner", "default_classifier"]


def default_classifier(side: Mapping[str, Any]) -> tuple[str, str]:
    """The built-in failure category and direction of one answer (no conftest hooks)."""
    from pytest_parity.scoring.categories import classify_side

    return classify_side(side)


class Runner:
    """Runs tasks of one contract (see the module docstring)."""

    def __init__(
        self,
        contract: Contract,
        *,
        cache: Any = None,
        recorder: Any = None,
        candidate_recorder: Any = None,
        judge_recorder: Any = None,
        classify: Classifier | None = None,
        transport: Any = None,
        on_progress: Callable[[Progress], None] | None = None,
        deadline: float | None = None,
        aa: EndpointSpec | None = None,
    ) -> None:
        self.contract = contract
        self.cache = cache
        self.recorders = {
            "baseline": recorder,
            "candidate": candidate_recorder,
            "judge": judge_recorder,
        }
        self.classify = classify or default_classifier
        self._notes: dict[str, list[str]] = {}  # task -> the runner's own notes (token counts)
        self.transport = transport
        self.on_progress = on_progress
        self.deadline = deadline  # time.monotonic() after which no new task may start
        self.aa = aa  # a second pass of the baseline (or an earlier recording of it): A/A floor
        from pytest_parity.secrets import register_spec

        for spec in self.specs().values():  # every stack's secrets, scrubbed from every answer
            register_spec(spec)

    def source(self, task: TaskSpec) -> TaskSource:
        source: TaskSource = registry.sources.get(task.source)
        return source

    def run(self, task: TaskSpec, pilot: int | None = None) -> TaskRun:
        """Both stacks on the task's items; ``pilot``: only the first ``pilot`` items of the
        seeded random order early stopping uses (a plan's pilot, whose cached answers a later
        early-stopping run then reuses)."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TaskRunError(
                f"task {task.name}: not started, the run's time budget (--parity-max-time) is spent"
            )
        from pytest_parity.endpoints.loop import run_sync

        source = self.source(task)
        started = time.monotonic()
        try:
            if source.runs_itself:
                run = source.run(task, self._context())
            else:
                run = run_sync(lambda: self._run_items(task, source, pilot))
                run.data_digest = source.digest(task)
                run.notes = [*source.notes(task, run.records), *self._notes.pop(task.name, [])]
                if self.contract.baseline.kind == "captured":
                    run.notes.append(
                        "baseline: the production answers captured with the traffic"
                        " (kind: captured); the old stack was not run"
                    )
        except SourceError as exc:
            raise TaskRunError(str(exc)) from None
        run.seconds = time.monotonic() - started
        return run

    def _open(self, role: str, spec: EndpointSpec | None = None) -> Any:
        from pytest_parity.endpoints.http import open_endpoint

        return open_endpoint(
            spec or self.specs()[role],
            cache=self.cache,
            transport=self.transport,
            recorder=self.recorders.get(role),
        )

    def _context(self) -> RunContext:
        return RunContext(
            open_endpoint=self._open,
            baseline=self.contract.baseline,
            candidate=self.contract.candidate,
            seed=self.contract.defaults.seed,
            classify=self.classify,
            cache_dir=getattr(self.cache, "directory", None),
            refresh=bool(getattr(self.cache, "refresh", False)),
            aa=self.aa,
            deadline=self.deadline,
        )

    def specs(self) -> dict[str, EndpointSpec]:
        specs = {"baseline": self.contract.baseline, "candidate": self.contract.candidate}
        if self.aa is not None:
            specs["aa"] = self.aa
        return specs

    async def _run_items(
        self, task: TaskSpec, source: TaskSource, pilot: int | None = None
    ) -> TaskRun:
        specs = self.specs()
        source.bind(task, specs)
        source.prepare(task)
        # bucket_by: context_tokens where the source does not count: the server's tokenizer
        lengths = ContextTokens(task, specs) if counts_context_tokens(task) else None

        def items() -> Iterable[Item]:
            got = source.items(task)
            return got if lengths is None else lengths.items(got)

        scorer = resolve_scorer(task.scorer, task.scorer_options)
        endpoints = {role: self._open(role) for role in specs}
        # The judge (LLM-as-judge scorers): its own endpoint, role "judge", own cache entries.
        judge = None if task.judge is None else self._open("judge", task.judge)
        asked = dict(endpoints) if judge is None else {**endpoints, "judge": judge}
        # What each server says it runs (the reports' provenance, and the cache key), asked
        # beside the first items: asked after the last answer, both stacks in turn, it was a
        # serial tail of two probe round trips on every task (20% of a 2 s task at c=512).
        probes = (
            {role: asyncio.ensure_future(ep.engine()) for role, ep in asked.items()}
            if source.sends_requests
            else {}
        )
        try:
            pipeline = ItemPipeline(
                task=task,
                source=source,
                specs=specs,
                endpoints=endpoints,
                scorer=scorer,
                classify=self.classify,
                on_progress=self.on_progress,
                deadline=self.deadline,
                total=source.count(task),
                judge=judge,
            )
            early_stop = None
            if pilot is not None:
                from pytest_parity.runner.earlystop import seeded_order

                seed = self.contract.defaults.seed
                ordered = seeded_order(items(), seed, task.name)
                pipeline.total = min(pilot, len(ordered))
                out = await pipeline.run(ordered[:pilot])
                out.n_items = len(ordered)  # what the task holds, for the plan
            elif task.early_stop is not None:
                from pytest_parity.runner.earlystop import run_in_batches

                seed = self.contract.defaults.seed
                out, early_stop = await run_in_batches(pipeline, items(), task, seed)
            else:
                out = await pipeline.run(items())

            async def describe(role: str, ep: Any) -> dict[str, Any]:
                if getattr(ep, "stalled", None) or not source.sends_requests:
                    # waiting on a stalled one's probe would cost another timeout; a source
                    # whose answers are all stored (shadow pairs) sends nothing to the stacks
                    return dict(ep.spec.identity())
                try:
                    return dict(await ep.describe())
                except Exception:  # engine info is best-effort provenance
                    return dict(ep.spec.identity())

            roles = list(asked)
            got = await asyncio.gather(*(describe(r, asked[r]) for r in roles))
            described = dict(zip(roles, got, strict=True))
        finally:
            for probe in probes.values():
                if not probe.done():
                    probe.cancel()
            if probes:
                # retrieved, so that a probe that failed or was cancelled logs nothing
                await asyncio.gather(*probes.values(), return_exceptions=True)
            for ep in endpoints.values():
                await ep.aclose()
            if judge is not None:
                await judge.aclose()
        if lengths is not None:
            self._notes[task.name] = lengths.notes()
        return TaskRun(
            task=task,
            records=out.records,
            endpoints=described,
            n_items=out.n_items,
            failed=out.failed,
            last_error=out.last_error,
            aborted=out.aborted,
            aa_scores=out.aa_scores,
            answers=answer_counts(endpoints),  # the endpoints' counters, read once they are done
            early_stop=early_stop,
        )
