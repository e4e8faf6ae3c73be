"""``source: tool-use``: multi-step episodes driven turn by turn, the same way for both stacks.

Per item and stack, a fresh environment; then up to ``max_steps`` model turns: ask the model
(through ``ask``, so the response cache, recordings, replayed baselines and the A/A pass apply
to every turn), run each tool call it makes (parallel calls in one turn too) and send the
results back, until it answers without a tool call. Each call is checked before it runs: a tool
that was not offered, arguments that are not JSON or break the tool's schema are not executed;
the model is told what was wrong, as a server-side tool runner would, and the call is counted.

The answer is scored on success (:mod:`.episodes`: final answer, final state, expected calls,
a custom check) and carries the facts of its trajectory (``Answer.facts``): steps, calls,
invalid calls, unknown tools, invalid arguments, repeated calls, the most repeats of one call,
the first step off the expected plan, whether it gave up, hit the step limit or ended without
a final answer. Failure categories read them (``scoring.categories.trajectory_category``:
loop, step_limit, wrong_tool, invalid_arguments, no_final_answer). A tool that raises ends the
episode as an environment error: infrastructure, never scored as the model's failure.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_parity.sources.base import Answer, Ask, SourceError, TaskSource
from pytest_parity.sources.item import Item
from pytest_parity.sources.tooluse.env import EnvironmentFailure, canonical_call
from pytest_parity.sources.tooluse.episodes import Episode, load_episodes

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.endpoints.http import Request, Response

__all__ = ["ToolUseSource"]

OPTION_KEYS = ("max_steps", "environment")
DEFAULT_MAX_STEPS = 10
RESULT_CHARS = 4000  # a tool result shown in the trajectory (the model gets all of it)


def _result_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, default=str)


class ToolUseSource(TaskSource):
    """See the module docstring. ``path``: the items (JSONL); options under ``tool_use:``."""

    name = "tool-use"
    options_key = "tool_use"
    needs_path = True
    scores_itself: ClassVar[bool] = True

    def __init__(self) -> None:
        self._memo: dict[str, tuple[tuple[Any, ...], list[Episode]]] = {}

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        v.keys(raw, where, OPTION_KEYS)
        env = raw.get("environment")
        return MappingProxyType(
            {
                "max_steps": v.integer(
                    raw.get("max_steps", DEFAULT_MAX_STEPS), f"{where}.max_steps", 1
                ),
                "environment": None if env is None else v.string(env, f"{where}.environment"),
            }
        )

    def _episodes(self, task: TaskSpec) -> list[Episode]:
        assert task.path is not None
        st = task.path.stat()
        key = (
            str(task.path),
            st.st_mtime_ns,
            st.st_size,
            task.limit,
            task.source_options.get("environment"),
        )
        got = self._memo.get(task.name)
        if got is None or got[0] != key:
            eps = load_episodes(task.path, task.source_options.get("environment"))
            self._memo[task.name] = (key, eps[: task.limit] if task.limit else eps)
        return self._memo[task.name][1]

    def prepare(self, task: TaskSpec) -> None:
        if task.repeats != 1:
            raise SourceError(f"task {task.name}: repeats is not supported for tool-use episodes")
        self._episodes(task)

    def items(self, task: TaskSpec) -> Iterator[Item]:
        for ep in self._episodes(task):
            yield Item(
                id=ep.id,
                prompt=None,
                messages=ep.messages,
                reference=ep.expect.get("answer"),
                metadata=MappingProxyType({**ep.metadata, "tools": sorted(ep.tool_names)}),
                tools=ep.tools,
            )

    def count(self, task: TaskSpec) -> int:
        return len(self._episodes(task))

    def digest(self, task: TaskSpec) -> str | None:
        from pytest_parity.sources.golden import data_digest

        return None if task.path is None else data_digest(task.path)

    async def answer(
        self, task: TaskSpec, item: Item, ask: Ask, build: Callable[[Item, int], Request]
    ) -> Answer:
        episode = next(e for e in self._episodes(task) if e.id == item.id)
        max_steps = episode.max_steps or int(
            task.source_options.get("max_steps", DEFAULT_MAX_STEPS)
        )
        return await Conversation(episode, item, max_steps, ask, build).run()


class Conversation:
    """One stack's conversation for one item (fresh state, so one instance per answer)."""

    def __init__(
        self,
        episode: Episode,
        item: Item,
        max_steps: int,
        ask: Ask,
        build: Callable[[Item, int], Request],
    ) -> None:
        self.ep = episode
        self.item = item
        self.max_steps = max_steps
        self.ask = ask
        self.build = build
        self.messages: list[dict[str, Any]] = [dict(m) for m in episode.messages]
        self.trajectory: list[dict[str, Any]] = []
        self.responses: list[Response] = []
        self.seen: Counter[str] = Counter()
        self.names: list[str] = []  # valid calls' tool names, in order
        self.f = {
            "steps": 0,
            "calls": 0,
            "invalid_calls": 0,
            "unknown_tools": 0,
            "invalid_arguments": 0,
            "unanswered_calls": 0,
            "repeated_calls": 0,
        }

    async def run(self) -> Answer:
        from pytest_parity.endpoints.http import failure

        try:
            env = self.ep.env.open()
        except EnvironmentFailure as exc:
            return Answer(response=failure(str(exc), "environment"))
        final: Response | None = None
        for step in range(1, self.max_steps + 1):
            request = self.build(replace(self.item, messages=tuple(self.messages)), 0)
            response = await self.ask(request)
            self.responses.append(response)
            self.f["steps"] = step
            if response.error:
                return self._answer(response, env, None)
            calls = list(response.tool_calls)
            self.trajectory.append(
                {
                    "step": step,
                    "role": "assistant",
                    "text": response.text,
                    "tool_calls": [
                        {"name": c.get("name"), "arguments": c.get("arguments")} for c in calls
                    ],
                }
            )
            if not calls:
                final = response
                break
            self.messages.append(
                {
                    "role": "assistant",
                    "content": response.text or None,
                    "tool_calls": [
                        {
                            "id": self._call_id(c, step, i),
                            "type": "function",
                            "function": {
                                "name": c.get("name", ""),
                                "arguments": c.get("arguments") or "{}",
                            },
                        }
                        for i, c in enumerate(calls)
                    ],
                }
            )
            for i, call in enumerate(calls):
                try:
                    result = self._run_call(env, call)
                except EnvironmentFailure as exc:
                    self.trajectory.append({"step": step, "role": "environment", "error": str(exc)})
                    return self._answer(failure(str(exc), "environment"), env, None)
                text = _result_text(result)
                self.messages.append(
                    {"role": "tool", "tool_call_id": self._call_id(call, step, i), "content": text}
                )
                self.trajectory.append(
                    {
                        "step": step,
                        "role": "tool",
                        "name": call.get("name"),
                        "result": text[:RESULT_CHARS],
                    }
                )
        return self._answer(final or self.responses[-1], env, final)

    @staticmethod
    def _call_id(call: Mapping[str, Any], step: int, i: int) -> str:
        given = call.get("id")
        return str(given) if given else f"call_{step}_{i}"

    def _run_call(self, env: Any, call: Mapping[str, Any]) -> Any:
        from pytest_parity.scoring.categories import schema_problem

        self.f["calls"] += 1
        name = str(call.get("name", ""))
        raw = call.get("arguments") or "{}"
        if name not in self.ep.tool_names:
            self.f["invalid_calls"] += 1
            self.f["unknown_tools"] += 1
            offered = ", ".join(sorted(self.ep.tool_names))
            return {"error": f"unknown tool {name!r}; the tools are: {offered}"}
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            args = None
        if not isinstance(args, Mapping):
            self.f["invalid_calls"] += 1
            self.f["invalid_arguments"] += 1
            return {"error": f"the arguments of {name} are not a JSON object"}
        schema = next(
            t["function"]["parameters"] for t in self.ep.tools if t["function"]["name"] == name
        )
        problem = schema_problem(args, schema, "arguments") if isinstance(schema, Mapping) else None
        if problem is not None:
            self.f["invalid_calls"] += 1
            self.f["invalid_arguments"] += 1
            return {"error": f"{name}: {problem}"}
        key = canonical_call(name, args)
        if self.seen[key]:
            self.f["repeated_calls"] += 1
        self.seen[key] += 1
        self.names.append(name)
        result, answered = env.call(name, args)
        if not answered:
            self.f["unanswered_calls"] += 1
        return result

    def _answer(self, response: Response, env: Any, final: Response | None) -> Answer:
        from pytest_parity.scoring.builtin import Score

        facts: dict[str, Any] = {"episode": True, **self.f}
        facts["max_repeats"] = max(self.seen.values(), default=0)
        facts["hit_step_limit"] = final is None and not response.error
        facts["no_final_answer"] = final is None or not final.text.strip()
        expected = self.ep.expect.get("calls")
        off = None
        if expected is not None:
            off = next(
                (
                    i + 1
                    for i, (got, want) in enumerate(zip(self.names, expected, strict=False))
                    if got != want
                ),
                None,
            )
        facts["off_plan_step"] = off
        facts["tool_names"] = list(self.names)
        if response.error:
            return Answer(
                response=response,
                responses=tuple(self.responses),
                trajectory=tuple(self.trajectory),
                facts=MappingProxyType(facts),
            )
        value = self._success(final, env)
        facts["success"] = value
        facts["gave_up"] = final is not None and value < 0.5 and not self.names
        return Answer(
            response=response,
            responses=tuple(self.responses),
            trajectory=tuple(self.trajectory),
            facts=MappingProxyType(facts),
            score=Score(value, True),
        )

    def _success(self, final: Response | None, env: Any) -> float:
        from pytest_parity.sources.tooluse.env import resolve_factory

        expect = self.ep.expect
        text = "" if final is None else final.text
        scores: list[float] = []
        if "answer" in expect:
            want, match = str(expect["answer"]), expect.get("match", "contains")
            if final is None:
                ok = False
            elif match == "exact":
                ok = text.strip() == want.strip()
            elif match == "regex":
                ok = re.search(want, text) is not None
            else:
                ok = want.lower() in text.lower()
            scores.append(1.0 if ok else 0.0)
        state = env.state()
        if "state" in expect:
            scores.append(
                1.0 if all(state.get(k) == v for k, v in expect["state"].items()) else 0.0
            )
        if "calls" in expect and expect["calls"] != self.names[: len(expect["calls"])]:
            scores.append(0.0)
        if "check" in expect:
            try:
                got = resolve_factory(str(expect["check"]))(
                    text=text, state=state, calls=list(self.names)
                )
                scores.append(min(max(float(got), 0.0), 1.0))
            except Exception as exc:
                raise SourceError(
                    f"item {self.ep.id}: expect.check {expect['check']} raised"
                    f" {type(exc).__name__}: {exc}".splitlines()[0]
                ) from None
        return min(scores) if scores else 0.0
