"""Runs one task against both stacks: items in, paired :class:`ItemRecord`s out.

Both stacks answer the same items, interleaved item by item (each item's two requests are in
flight together), with each endpoint's own concurrency bound. A request that still fails after the
endpoint's retries is recorded as an infrastructure error: never scored, never a wrong answer.
Once more requests have failed than the task tolerates, the outcome can only be ERROR, so the rest
of the task is cancelled instead of waiting on a stack that is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_parity.contract.spec import Contract, EndpointSpec, TaskSpec, thaw
from pytest_parity.records import ItemRecord, SideRecord
from pytest_parity.scoring.builtin import Score, ScorerError, get_scorer
from pytest_parity.sources.golden import data_digest, load_golden
from pytest_parity.sources.item import Item

# (category, direction) for one side's answer; the plugin wires the pytest_parity_classify hook in.
Classifier = Callable[[Mapping[str, Any]], "tuple[str, str]"]
ROLES = ("baseline", "candidate")
DIRECTIONS = ("C", "A", "W", "X")


class TaskRunError(RuntimeError):
    """The task could not be evaluated (endpoint down, too many failed requests, bad data)."""


@dataclass
class TaskRun:
    """Everything a task run collected; the verdict turns it into a TaskResult."""

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
    aa_scores: dict[str, float | None] | None = None  # item id -> score of the baseline's A/A pass


@dataclass
class Progress:
    """Counts the plugin shows while a long task runs."""

    task: str = ""
    total: int = 0
    done: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})
    started: float = field(default_factory=time.monotonic)


def build_request_parts(task: TaskSpec, item: Item, api: str) -> dict[str, Any]:
    """The messages or prompt one item sends (the same for both stacks)."""
    params: dict[str, Any] = thaw(task.params)
    if item.tools:
        params["tools"] = [thaw(t) for t in item.tools]
    if item.messages is not None:
        if api == "completions":
            raise TaskRunError(
                f"task {task.name}: item {item.id} gives chat messages but the endpoint uses the"
                " completions API (hint: set api: chat on both endpoints, or give prompt strings)"
            )
        msgs = [thaw(m) for m in item.messages]
        if task.system and not any(m.get("role") == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": task.system})
        return {"messages": tuple(msgs), "params": params}
    assert item.prompt is not None
    text = task.template.replace("{prompt}", item.prompt) if task.template else item.prompt
    if api == "completions":
        if task.system:
            text = f"{task.system}\n\n{text}"
        return {"prompt": text, "params": params}
    msgs = [{"role": "user", "content": text}]
    if task.system:
        msgs.insert(0, {"role": "system", "content": task.system})
    return {"messages": tuple(msgs), "params": params}


def default_classifier(side: Mapping[str, Any]) -> tuple[str, str]:
    from pytest_parity.scoring.categories import classify, direction_of

    category = classify(
        text=side["text"],
        finish_reason=side["finish_reason"],
        error=side["error"],
        error_kind=side["error_kind"],
        tool_calls=side.get("tool_calls", ()),
        score=side["score"],
        parsed=side["parsed"],
        reference=side.get("reference"),
        prompt=side.get("prompt", ""),
        custom=side.get("custom"),
        tools=side.get("tools"),
    )
    return category, direction_of(category)


class Runner:
    """Runs tasks of one contract. Endpoints are opened per task inside that task's event loop."""

    def __init__(
        self,
        contract: Contract,
        *,
        cache: Any = None,
        recorder: Any = None,
        candidate_recorder: Any = None,
        classify: Classifier | None = None,
        transport: Any = None,
        on_progress: Callable[[Progress], None] | None = None,
        deadline: float | None = None,
        aa: EndpointSpec | None = None,
    ) -> None:
        self.contract = contract
        self.cache = cache
        self.recorders = {"baseline": recorder, "candidate": candidate_recorder}
        self.classify = classify or default_classifier
        self.transport = transport
        self.on_progress = on_progress
        self.deadline = deadline  # time.monotonic() after which no new task may start
        self.aa = aa  # a second pass of the baseline (or an earlier recording of it): A/A floor

    def run(self, task: TaskSpec) -> TaskRun:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TaskRunError(
                f"task {task.name}: not started, the run's time budget (--parity-max-time) is spent"
            )
        if task.source == "lm-eval":
            return self._run_lmeval(task)
        assert task.path is not None
        from pytest_parity.sources.golden import GoldenError

        try:
            items = load_golden(task.path, limit=task.limit, cluster_key=task.cluster_key)
        except GoldenError as exc:
            raise TaskRunError(str(exc)) from None
        started = time.monotonic()
        run = asyncio.run(self._run_items(task, items))
        run.data_digest = data_digest(task.path)
        run.seconds = time.monotonic() - started
        return run

    def _run_lmeval(self, task: TaskSpec) -> TaskRun:
        from pytest_parity.sources.lmeval.bridge import LmEvalError, run_lmeval_task

        started = time.monotonic()
        cache_dir = getattr(self.cache, "directory", None)
        try:
            by_metric = run_lmeval_task(
                task,
                self.contract.baseline,
                self.contract.candidate,
                cache_dir=cache_dir,
                seed=self.contract.defaults.seed,
                classify=self.classify,
                refresh=bool(getattr(self.cache, "refresh", False)),
            )
        except LmEvalError as exc:
            raise TaskRunError(str(exc)) from None
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
                "baseline": self.contract.baseline.identity(),
                "candidate": self.contract.candidate.identity(),
            },
            n_items=len(records),
            failed=failed,
            last_error={r: None for r in ROLES},
            seconds=time.monotonic() - started,
            extra_metrics={m: by_metric[m] for m in metrics[1:]},
        )

    async def _run_items(self, task: TaskSpec, items: Sequence[Item]) -> TaskRun:
        from pytest_parity.endpoints.http import Request, open_endpoint

        specs: dict[str, EndpointSpec] = {
            "baseline": self.contract.baseline,
            "candidate": self.contract.candidate,
        }
        if self.aa is not None:
            specs["aa"] = self.aa
        scorer = get_scorer(task.scorer, task.scorer_options)
        endpoints = {
            role: open_endpoint(
                spec,
                cache=self.cache,
                transport=self.transport,
                recorder=self.recorders.get(role),
            )
            for role, spec in specs.items()
        }
        progress = Progress(task=task.name, total=len(items))
        failed = {r: 0 for r in specs}
        last_error: dict[str, str | None] = {r: None for r in specs}
        aa_scores: dict[str, float | None] = {}
        budget = int(task.max_error_rate * len(items))
        abort = asyncio.Event()
        abort_reason: list[str] = []

        async def side(role: str, item: Item) -> tuple[SideRecord, dict[str, Any]]:
            parts = build_request_parts(task, item, specs[role].api)
            responses = []
            for repeat in range(task.repeats):
                params = parts["params"]
                seed = params.get("seed", specs[role].params.get("seed"))
                if repeat and isinstance(seed, int):
                    # Repeats must sample anew: the same seed makes a seeded server repeat itself.
                    params = {**params, "seed": seed + repeat}
                # Task-qualified: recordings and caches hold several tasks whose item ids may clash.
                req = Request(
                    item_id=f"{task.name}/{item.id}",
                    repeat=repeat,
                    template=task.template,
                    messages=parts.get("messages"),
                    prompt=parts.get("prompt"),
                    params=params,
                )
                responses.append(await endpoints[role].complete(req))
            progress.done[role] = progress.done.get(role, 0) + 1
            if self.on_progress is not None:
                self.on_progress(progress)
            first = responses[0]
            err = next((r for r in responses if r.error), None)
            if err is not None:
                failed[role] += 1
                last_error[role] = err.error
                if err.error_kind == "replay" and not abort.is_set():
                    # The recording does not match the contract's items: no verdict can be right.
                    abort_reason.append(str(err.error))
                    abort.set()
                if failed[role] > budget and not abort.is_set():
                    abort_reason.append(
                        f"{role} endpoint ({specs[role].base_url}): {failed[role]} requests failed,"
                        f" more than the task allows ({budget} = max_error_rate"
                        f" {task.max_error_rate:g} x {len(items)} items); last error: {err.error}"
                    )
                    abort.set()
                return self._side_record(None, first, err), self._extras(parts, err)
            try:
                scores = [scorer(r.text, item.reference) for r in responses]
            except ScorerError as exc:
                raise TaskRunError(f"task {task.name}: item {item.id}: {exc}") from None
            mean = Score(
                sum(s.value for s in scores) / len(scores), parsed=all(s.parsed for s in scores)
            )
            return self._side_record(mean, first, None), self._extras(parts, first)

        async def one(item: Item) -> ItemRecord:
            sides = [side("baseline", item), side("candidate", item)]
            if "aa" in specs:
                sides.append(side("aa", item))
            answered = await asyncio.gather(*sides)
            (old, old_x), (new, new_x) = answered[0], answered[1]
            if len(answered) > 2:
                aa_scores[item.id] = answered[2][0]["score"]
            for role, rec, extra in (("baseline", old, old_x), ("candidate", new, new_x)):
                ctx = {
                    "side": role,
                    "text": rec["text"],
                    "finish_reason": rec["finish_reason"],
                    "error": rec["error"],
                    "error_kind": extra["error_kind"],
                    "tool_calls": extra["tool_calls"],
                    "score": rec["score"],
                    "parsed": rec["parsed"],
                    "reference": item.reference,
                    "prompt": item.display_prompt(),
                    "custom": task.categories,
                    "tools": extra["tools"],
                    "task": task.name,
                    "item_id": item.id,
                }
                category, direction = self.classify(ctx)
                rec["category"] = category
                rec["direction"] = direction if direction in DIRECTIONS else "W"  # type: ignore[typeddict-item]
            cluster = None
            if task.cluster_key is not None:
                cluster = str(item.metadata.get(task.cluster_key))
            return {
                "id": item.id,
                "prompt": item.display_prompt(),
                "reference": item.reference,
                "cluster": cluster,
                "baseline": old,
                "candidate": new,
            }

        try:
            jobs = [asyncio.ensure_future(one(item)) for item in items]
            waiter = asyncio.ensure_future(abort.wait())
            finished = asyncio.ensure_future(asyncio.wait(jobs))
            remaining = None if self.deadline is None else max(self.deadline - time.monotonic(), 0)
            await asyncio.wait(
                {finished, waiter}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not finished.done() and not abort.is_set():
                done = min(progress.done.get(r, 0) for r in ("baseline", "candidate"))
                abort_reason.append(
                    f"the run's time budget (--parity-max-time) ran out with {done} of"
                    f" {len(items)} items answered by both stacks"
                )
                abort.set()
            for j in jobs:
                if not j.done():
                    j.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
            waiter.cancel()
            finished.cancel()
            for j in jobs:
                if not j.cancelled() and j.exception() is not None:
                    raise j.exception()  # type: ignore[misc]
            records = [j.result() for j in jobs if not j.cancelled()]
            described = {}
            for role, ep in endpoints.items():
                try:
                    described[role] = await ep.describe()
                except Exception:  # engine info is best-effort provenance
                    described[role] = specs[role].identity()
        finally:
            for ep in endpoints.values():
                await ep.aclose()
        return TaskRun(
            task=task,
            records=records,
            endpoints=described,
            n_items=len(items),
            failed=failed,
            last_error=last_error,
            aborted=abort_reason[0] if abort_reason else None,
            aa_scores=aa_scores if "aa" in specs else None,
        )

    @staticmethod
    def _side_record(score: Score | None, response: Any, error: Any) -> SideRecord:
        return {
            "text": "" if error is not None else response.text,
            "finish_reason": None if error is not None else response.finish_reason,
            "score": None if score is None else score.value,
            "parsed": False if score is None else score.parsed,
            "category": "",
            "direction": "X",
            "error": None if error is None else error.error,
            "latency_s": float(response.latency_s),
            "cached": bool(response.cached),
        }

    @staticmethod
    def _extras(parts: Mapping[str, Any], response: Any) -> dict[str, Any]:
        """What the classifier needs beyond the record: error kind, tool calls, tool schemas."""
        return {
            "error_kind": response.error_kind,
            "tool_calls": tuple(response.tool_calls or ()),
            "tools": parts["params"].get("tools"),
        }
