"""One task's items through both stacks: answered, scored, classified, paired.

Items are pulled from the source as a stream and kept in flight in a bounded window (twice the
largest endpoint concurrency), so a 100,000-item task never builds every request up front and
the first request leaves at once. Each item's answers from the stacks are asked together; each
endpoint's own concurrency bound holds underneath. A request that still fails after the
endpoint's retries is an infrastructure error: never scored, never a wrong answer. Once more
requests have failed than the task tolerates, or the run's time budget is spent, or a replayed
recording does not match the items, the outcome can only be ERROR: the rest is cancelled.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_parity.contract.spec import EndpointSpec, TaskSpec
from pytest_parity.records import ItemRecord, SideRecord
from pytest_parity.runner.requests import request_for
from pytest_parity.runner.taskrun import Progress, TaskRunError
from pytest_parity.scoring.builtin import Score, ScorerError
from pytest_parity.scoring.context import JudgeError, PairContext, ScoreContext
from pytest_parity.scoring.resolve import BoundScorer
from pytest_parity.sources.base import Answer, TaskSource
from pytest_parity.sources.item import Item

if TYPE_CHECKING:
    from pytest_parity.endpoints.http import Endpoint, Request, Response

# (category, direction) of one side's answer; the plugin wires the pytest_parity_classify hook in.
Classifier = Callable[[Mapping[str, Any]], "tuple[str, str]"]
DIRECTIONS = ("C", "A", "W", "X")
MAX_LOGPROBS = 256  # token logprobs kept per answer in the records (the cache keeps them all)
SIDES = ("baseline", "candidate")

__all__ = ["Classifier", "ItemPipeline", "PipelineResult"]


@dataclass
class PipelineResult:
    records: list[ItemRecord]
    n_items: int
    failed: dict[str, int]
    last_error: dict[str, str | None]
    aborted: str | None
    aa_scores: dict[str, tuple[float | None, float | None]] | None


@dataclass
class ItemPipeline:
    """Runs one task's items; ``endpoints`` and ``specs`` by role (baseline, candidate, and
    ``aa`` when the A/A noise floor is asked for)."""

    task: TaskSpec
    source: TaskSource
    specs: dict[str, EndpointSpec]
    endpoints: dict[str, Endpoint]
    scorer: BoundScorer
    classify: Classifier
    on_progress: Callable[[Progress], None] | None = None
    deadline: float | None = None  # time.monotonic() after which the task stops
    judge: Endpoint | None = None
    total: int | None = None  # items the source will yield, when it knows
    progress: Progress = field(init=False)
    failed: dict[str, int] = field(init=False)
    last_error: dict[str, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress(task=self.task.name, total=self.total or 0)
        self.failed = {r: 0 for r in self.specs}
        self.last_error = {r: None for r in self.specs}
        if self.judge is not None:
            # Judge errors count like failed requests, under their own role.
            self.failed["judge"] = 0
            self.last_error["judge"] = None
        self._abort = asyncio.Event()
        self._wake: asyncio.Event | None = None  # set while run() waits for items to finish
        self._reasons: list[str] = []
        self._aa: dict[str, tuple[float | None, float | None]] = {}
        self._rubric_scorer: BoundScorer | None = None  # the tone check's, bound once

    # -- the stream -------------------------------------------------------------------------

    async def run(self, items: Iterable[Item]) -> PipelineResult:
        window = 2 * max(spec.max_concurrency for spec in self.specs.values())
        source = iter(items)
        # In the order of the items; a slot per item sent (8 bytes, not a dict entry and an int).
        results: list[ItemRecord | None] = []
        pending: dict[asyncio.Future[Any], int] = {}
        # Finished items arrive here through a done-callback: waking costs O(1) per item.
        # (asyncio.wait over the whole window added and removed a callback on every pending
        # item at each wake: O(window) per answer, the loss at concurrency 512.)
        finished: deque[asyncio.Future[Any]] = deque()
        wake = self._wake = asyncio.Event()

        def arrived(fut: asyncio.Future[Any]) -> None:
            finished.append(fut)
            wake.set()

        seen = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < window and not self._abort.is_set():
                    item = next(source, None)
                    if item is None:
                        exhausted = True
                        break
                    fut = asyncio.ensure_future(self._one(item))
                    fut.add_done_callback(arrived)
                    pending[fut] = seen
                    results.append(None)
                    seen += 1
                if not pending:
                    break
                timed_out = False
                if not finished and not self._abort.is_set():
                    wake.clear()
                    if self.deadline is None:
                        await wake.wait()
                    else:
                        remaining = max(self.deadline - time.monotonic(), 0.0)
                        try:
                            await asyncio.wait_for(wake.wait(), remaining)
                        except asyncio.TimeoutError:
                            timed_out = not finished
                while finished:
                    done = finished.popleft()
                    results[pending.pop(done)] = done.result()
                if timed_out:
                    answered = min(self.progress.done.get(r, 0) for r in SIDES)
                    total = self.total if self.total is not None else seen
                    self._stop(
                        f"the run's time budget (--parity-max-time) ran out with {answered} of"
                        f" {total} items answered by both stacks"
                    )
                if self._abort.is_set():
                    break
        finally:
            self._wake = None
            for left in pending:
                left.remove_done_callback(arrived)
                left.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        n_items = self.total if self.total is not None else seen
        if not self._abort.is_set() and exhausted:
            n_items = seen
        return PipelineResult(
            records=[r for r in results if r is not None],
            n_items=n_items,
            failed=self.failed,
            last_error=self.last_error,
            aborted=self._reasons[0] if self._reasons else None,
            aa_scores=self._aa if "aa" in self.specs else None,
        )

    def _stop(self, reason: str) -> None:
        if not self._abort.is_set():
            self._reasons.append(reason)
            self._abort.set()
            if self._wake is not None:
                self._wake.set()

    # -- one item ---------------------------------------------------------------------------

    async def _one(self, item: Item) -> ItemRecord:
        answers: dict[str, Answer] = {}
        built: dict[tuple[Any, ...], tuple[Item, Request]] = {}  # one request for both stacks

        async def ask(*roles: str) -> None:
            # The A/A pass is the baseline answering a second time: after its first answer.
            for role in roles:
                answers[role] = await self._ask(role, item, built)

        # The candidate in a task of its own, the baseline (and its A/A pass) in this one: one
        # task per item fewer than gathering both (a task costs ~10 us of loop work per item).
        candidate = asyncio.ensure_future(ask("candidate"))
        try:
            await ask("baseline", "aa") if "aa" in self.specs else await ask("baseline")
            await candidate
        finally:
            if not candidate.done():  # this item was cancelled, or the baseline raised
                candidate.cancel()
            elif not candidate.cancelled():
                candidate.exception()  # retrieved: when both raised, the baseline's propagates
        judged: dict[str, str] = {}  # role -> why the judge gave no verdict
        scores = await self._score(item, answers, judged)
        sides = {
            role: self._side(role, item, answers[role], scores[role], judged.get(role))
            for role in SIDES
        }
        if "tone" in self.task.checks and self.task.checks["tone"].get("rubric_scorer"):
            await self._rubric(item, answers, sides)
        old, new = sides["baseline"], sides["candidate"]
        if (
            old["error"] is None
            and new["error"] is None
            and old["text"] == new["text"]
            and answers["baseline"].response.tool_calls == answers["candidate"].response.tool_calls
            and old["score"] == new["score"]
        ):
            # The same answer is the same failure, whatever a token limit or a hook said: the
            # same text on both sides never counts as a category change.
            new["category"], new["direction"] = old["category"], old["direction"]
        if "aa" in answers:
            base, aa = scores.get("aa-baseline", scores["baseline"]), scores["aa"]
            aa_facts = _facts_of(aa, judged.get("aa"))
            if aa_facts:
                # What the scorer learnt in the A/A pass (the judge's A/A verdict) rides with
                # the baseline's answer: the A/A answer itself is not a side of the record.
                sides["baseline"]["facts"] = {**(sides["baseline"]["facts"] or {}), "aa": aa_facts}
            self._aa[item.id] = (
                None if base is None else base.value,
                None if aa is None else aa.value,
            )
        cluster = None
        if self.task.cluster_key is not None:
            cluster = str(item.metadata.get(self.task.cluster_key))
        holder: Any = _RecordKeys()  # as in _side: the instance's __dict__ is the record
        holder.id = item.id
        holder.prompt = item.display_prompt()
        holder.reference = _shared(item.reference)
        holder.cluster = cluster
        holder.metadata = dict(item.metadata) or None
        holder.baseline = sides["baseline"]
        holder.candidate = sides["candidate"]
        record: ItemRecord = holder.__dict__
        return record

    async def _ask(
        self,
        role: str,
        item: Item,
        built: dict[tuple[Any, ...], tuple[Item, Request]] | None = None,
    ) -> Answer:
        """One role's answer to ``item``. ``built`` is shared by the item's roles: the request
        (and so its hash, the cache key's part) is made once for every stack that would be
        sent the same one (same API, same seed), not once per stack."""
        captured = item.captured.get(role) if role != "aa" else None
        if captured is None and self.specs[role].kind == "captured":
            # kind: captured answers with what production said (captured traffic)
            captured = item.captured.get("production")
        if captured is not None:
            from pytest_parity.endpoints.http import Response

            answer = Answer(response=Response.from_dict(captured))
        else:
            spec = self.specs[role]

            memo = {} if built is None else built

            def build(it: Item, repeat: int) -> Request:
                # request_for reads the stack's API and, for repeats, its seed; the item is
                # kept beside its request, so its id cannot be reused while the memo lives.
                key = (id(it), spec.api, spec.params.get("seed") if repeat else None, repeat)
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = (it, request_for(self.task, it, spec, repeat))
                return hit[1]

            answer = await self.source.answer(self.task, item, self.endpoints[role].complete, build)
        self.progress.done[role] = self.progress.done.get(role, 0) + 1
        if self.on_progress is not None and role in SIDES:
            self.on_progress(self.progress)
        err = answer.response if answer.response.error else None
        if err is not None:
            self._failed(role, err)
        return answer

    def _failed(self, role: str, err: Response) -> None:
        self.failed[role] += 1
        self.last_error[role] = err.error
        if err.error_kind == "replay":
            # The recording does not match the contract's items: no verdict can be right.
            self._stop(str(err.error))
        stalled = getattr(self.endpoints.get(role), "stalled", None)
        if stalled:
            # Accepts and never answers: every further item would cost its full timeouts.
            where = self.specs[role].base_url or self.specs[role].kind
            self._stop(f"{role} endpoint ({where}): {stalled}; last error: {err.error}")
        budget = int(self.task.max_error_rate * self.total) if self.total is not None else None
        if budget is not None and self.failed[role] > budget:
            failed = self.failed[role]
            allows = "none" if budget == 0 else f"{budget} failed request{'s' * (budget != 1)}"
            self._stop(
                f"{role} endpoint ({self.specs[role].base_url or self.specs[role].kind}):"
                f" {failed} request{'s' * (failed != 1)} failed; the task allows {allows}"
                f" (max_error_rate {self.task.max_error_rate:g} of its {self.total} items);"
                f" last error: {err.error}"
            )

    # -- scoring ----------------------------------------------------------------------------

    async def _score(
        self, item: Item, answers: dict[str, Answer], judged: dict[str, str]
    ) -> dict[str, Score | None]:
        """Each role's score (None when its request failed, or the judge gave no verdict: then
        ``judged[role]`` says why); under a paired scorer with A/A, ``"aa-baseline"`` is the
        baseline's score in its comparison with the A/A pass."""
        try:
            if self.scorer.kind == "paired":
                scores = await self._score_pairs(item, answers, judged)
            else:
                scores = {}
                for role, a in answers.items():
                    try:
                        scores[role] = await self._score_one(role, item, a)
                    except JudgeError as exc:
                        scores[role] = None
                        judged[role] = self._judge_failed(item, exc)
            return {role: self._in_range(role, s) for role, s in scores.items()}
        except ScorerError as exc:
            raise TaskRunError(f"task {self.task.name}: item {item.id}: {exc}") from None

    def _judge_failed(self, item: Item, exc: JudgeError) -> str:
        """Count a judgement that failed; past the task's error budget the task is an ERROR."""
        msg = f"item {item.id}: {exc}"
        self.failed["judge"] = self.failed.get("judge", 0) + 1
        self.last_error["judge"] = msg
        budget = int(self.task.max_error_rate * self.total) if self.total is not None else None
        if budget is not None and self.failed["judge"] > budget:
            where = self.judge.spec.base_url or self.judge.spec.kind if self.judge else "none"
            self._stop(
                f"judge endpoint ({where}): {self.failed['judge']} judgements failed, more than"
                f" the task allows (max_error_rate {self.task.max_error_rate:g} of {self.total}"
                f" items: {budget}); last error: {msg}"
            )
        return str(exc)

    def _in_range(self, role: str, score: Score | None) -> Score | None:
        """Scores live in [0, 1], or in the task's declared ``score_range``, rescaled to [0, 1]:
        the tolerance is a share of that scale. Anything else, NaN included, is an error."""
        if score is None:
            return None
        value = score.value
        low, high = self.task.score_range or (0.0, 1.0)
        if not (low <= value <= high):  # also false for NaN
            hint = (
                "declare score_range: [low, high] on the task (e.g. [0, 100])"
                if self.task.score_range is None
                else "fix the scorer or the declared score_range"
            )
            raise ScorerError(
                f"scorer {self.task.scorer!r} gave {value!r} for the {role} answer, outside"
                f" [{low:g}, {high:g}] ({hint})"
            )
        if self.task.score_range is not None:
            return Score((value - low) / (high - low), score.parsed, score.facts)
        return score

    async def _score_one(self, role: str, item: Item, answer: Answer) -> Score | None:
        if answer.response.error:
            return None
        if answer.score is not None:
            return answer.score
        responses = answer.responses or (answer.response,)
        if self.scorer.kind == "sync":
            scores = [self.scorer.text(r.text, item.reference) for r in responses]
        else:
            scores = [
                await self.scorer.one(
                    ScoreContext(self.task, item, role, r, self.scorer.options, self.judge)
                )
                for r in responses
            ]
        if len(scores) == 1:
            return scores[0]  # as it came (a mean of one would be a new float per answer)
        facts = _repeat_facts(scores)
        return Score(
            sum(s.value for s in scores) / len(scores), all(s.parsed for s in scores), facts
        )

    async def _score_pairs(
        self, item: Item, answers: dict[str, Answer], judged: dict[str, str]
    ) -> dict[str, Score | None]:
        out: dict[str, Score | None] = dict.fromkeys(answers)
        base = answers["baseline"].response
        others = [("candidate", "candidate")] + ([("aa", "baseline-aa")] if "aa" in answers else [])
        for role, label in others:
            other = answers[role].response
            if base.error or other.error:
                continue
            ctx = PairContext(
                self.task, item, base, other, self.scorer.options, self.judge, ("baseline", label)
            )
            try:
                b, c = await self.scorer.pair(ctx)
            except JudgeError as exc:
                why = self._judge_failed(item, exc)
                if role == "candidate":
                    judged["baseline"] = judged["candidate"] = why
                else:
                    judged["aa"] = why
                continue
            if role == "candidate":
                out["baseline"], out["candidate"] = b, c
            else:
                out["aa-baseline"], out["aa"] = b, c
        return out

    # -- records ----------------------------------------------------------------------------

    def _side(
        self,
        role: str,
        item: Item,
        answer: Answer,
        score: Score | None,
        judge_error: str | None = None,
    ) -> SideRecord:
        response = answer.response
        error = response.error
        facts = _facts_of(score, judge_error)
        if answer.facts:
            facts = {**answer.facts, **facts}
        responses = answer.responses
        # one response (the usual case) needs no generator; repeats and episodes add theirs up
        latency = (
            responses[0].latency_s if len(responses) == 1 else sum(r.latency_s for r in responses)
        )
        # The record is a _SideKeys instance's __dict__: it shares its keys with every side's.
        holder: Any = _SideKeys()
        holder.text = text = "" if error is not None else _shared(response.text)
        holder.finish_reason = None if error is not None else _shared(response.finish_reason)
        holder.score = None if score is None else score.value
        holder.parsed = False if score is None else score.parsed
        holder.category = ""
        holder.direction = "X"
        holder.error = error
        holder.latency_s = float(latency or response.latency_s)
        holder.cached = bool(response.cached)
        holder.facts = facts or None
        holder.trajectory = [dict(t) for t in answer.trajectory] if answer.trajectory else None
        rec: SideRecord = holder.__dict__
        if "calibration" in self.task.checks and error is None:
            rec["facts"] = {**(rec["facts"] or {}), **self._confidence(item, response)}
        ctx = {
            "side": role,
            "text": text,
            "finish_reason": rec["finish_reason"],
            "error": error,
            "error_kind": response.error_kind,
            "tool_calls": tuple(response.tool_calls or ()),
            "score": rec["score"],
            "parsed": rec["parsed"],
            "reference": item.reference,
            "prompt": item.display_prompt(),
            "custom": self.task.categories,
            "tools": self._tools(item),
            "facts": rec["facts"] or {},
            "task": self.task.name,
            "item_id": item.id,
        }
        category, direction = self.classify(ctx)
        if judge_error is not None and error is None:
            # The judge failed, not the model: infrastructure, excluded like a failed request.
            category, direction = "judge_error", "X"
        rec["category"] = category
        rec["direction"] = direction if direction in DIRECTIONS else "W"  # type: ignore[typeddict-item]
        return rec

    def _confidence(self, item: Item, response: Response) -> dict[str, Any]:
        """The answer's confidence for the calibration check, with the method and the answer's
        token logprobs (so a report shows what it was computed from), or the problem."""
        from pytest_parity.scoring.confidence import confidence, named_no_option

        opts = self.task.checks["calibration"]
        multiple_choice = self.task.scorer == "choice"
        letters = str(self.task.scorer_options.get("letters", "ABCD"))
        try:
            value, problem = confidence(
                response, item, opts, multiple_choice=multiple_choice, letters=letters
            )
        except Exception as exc:  # a custom hook's bug is the task's error, not a crash
            raise TaskRunError(
                f"task {self.task.name}: item {item.id}: confidence hook failed: {exc}"
            ) from None
        facts: dict[str, Any] = {"confidence_method": str(opts.get("confidence", "logprobs"))}
        if value is None:
            facts["confidence_problem"] = problem
        else:
            facts["confidence"] = value
            if named_no_option(response, opts, multiple_choice=multiple_choice, letters=letters):
                facts["confidence_from"] = "first_token"  # the answer named no option
        if response.logprobs is not None:
            facts["logprobs"] = [round(x, 4) for x in response.logprobs[:MAX_LOGPROBS]]
        return facts

    async def _rubric(
        self, item: Item, answers: dict[str, Answer], sides: dict[str, SideRecord]
    ) -> None:
        """The tone check's rubric scorer on both answers (``facts["tone_rubric"]``). A judge
        that gives no verdict is counted like any failed judgement (role ``judge``, against the
        task's ``max_error_rate``); the item then has no rubric score (``tone_rubric_error``),
        while its main score stands."""
        opts = self.task.checks["tone"]
        bound = self._rubric_scorer
        if bound is None:
            from pytest_parity.scoring.resolve import resolve_scorer

            # options as the contract resolved them (a judge scorer's template, scale, rubric)
            bound = self._rubric_scorer = resolve_scorer(
                str(opts["rubric_scorer"]), opts.get("rubric_options") or {}
            )
        base, cand = answers["baseline"].response, answers["candidate"].response
        if base.error or cand.error:
            return
        got: dict[str, Score] = {}
        failed: list[str] = []
        try:
            if bound.kind == "paired":
                ctx = PairContext(self.task, item, base, cand, bound.options, self.judge)
                try:
                    got["baseline"], got["candidate"] = await bound.pair(ctx)
                except JudgeError as exc:
                    failed.append(self._judge_failed(item, exc))
            for role, resp in (("baseline", base), ("candidate", cand)):
                if bound.kind == "sync":
                    got[role] = bound.text(resp.text, item.reference)
                elif bound.kind == "async":
                    ctx1 = ScoreContext(self.task, item, role, resp, bound.options, self.judge)
                    try:
                        got[role] = await bound.one(ctx1)
                    except JudgeError as exc:
                        failed.append(self._judge_failed(item, exc))
        except ScorerError as exc:
            raise TaskRunError(
                f"task {self.task.name}: item {item.id}: tone rubric: {exc}"
            ) from None
        for role in SIDES:
            facts = dict(sides[role]["facts"] or {})
            if failed:
                facts["tone_rubric_error"] = failed[0]
            else:
                facts["tone_rubric"] = float(got[role].value)
            sides[role]["facts"] = facts

    def _tools(self, item: Item) -> list[Any] | None:
        tools = self.task.params.get("tools")
        if item.tools:
            return [dict(t) for t in item.tools]
        return None if tools is None else list(tools)


class _SideKeys:
    """A side's record is the ``__dict__`` of one of these, filled attribute by attribute in
    one order: CPython keeps the keys of a class's instance dicts once, so each record holds
    only its values. A real dict (JSON, pickle, ``dict(...)`` and mutation as before), at ~180
    bytes per side instead of ~470: what keeps a 100,000-item task's records near 0.5 KB an
    item. Set as attributes, not copied from a dict: ~0.8 us a record less."""


class _RecordKeys:
    """As :class:`_SideKeys`, for the item record around the two sides."""


_T = TypeVar("_T")
SHARED_MAX_CHARS = 32


def _shared(value: _T) -> _T:
    """A short string as one shared object: answers and references such as "A", " 42" or "Yes"
    and finish reasons repeat across a task's items, and each parsed copy costs ~50 bytes a
    record (a 100,000-item multiple-choice task held ~200 bytes an item in copies)."""
    if isinstance(value, str) and len(value) <= SHARED_MAX_CHARS:
        return sys.intern(value)  # type: ignore[return-value]
    return value


def _facts_of(score: Score | None, judge_error: str | None) -> dict[str, Any]:
    facts: dict[str, Any] = dict(score.facts) if score is not None and score.facts else {}
    if judge_error is not None:
        facts["judge_error"] = judge_error
    return facts


def _repeat_facts(scores: list[Score]) -> Mapping[str, Any] | None:
    """The facts of an item's repeats: one list per key (the judge's verdict of each sample)."""
    keys = {k for s in scores for k in (s.facts or {})}
    if not keys:
        return None
    return {"repeats": [dict(s.facts or {}) for s in scores]}
