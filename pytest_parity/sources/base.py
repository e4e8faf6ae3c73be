"""The TaskSource seam: where a task's items come from, and how one stack answers one item.

Every source (golden sets, lm-evaluation-harness, captured traffic, shadow pairs, generated long
contexts, tool-use episodes) is one class registered in :data:`pytest_parity.registry.sources`
under the name a contract writes in ``source:``. Its life in a run:

1. ``options(raw, where, v, base)`` when the contract loads: validate the source's own options
   (``raw`` is the mapping under the task key ``options_key``, e.g. ``lm_eval:``), resolve paths
   against ``base`` (the contract's folder) and return them frozen; every problem is
   ``v.fail(where, problem, hint)``, one line naming the field;
2. ``prepare(task)`` before any request of the run: deep checks of the data (a bad golden line,
   a haystack too short for the requested length), raising :class:`SourceError`;
3. ``items(task)``: the items, streamed (a source may be large: never build every item up front);
4. ``answer(task, item, ask)`` per stack and item: the default sends the item once (or
   ``repeats`` times) through the endpoint layer; a multi-step source (tool use) drives the
   conversation itself, still through ``ask`` so cache, recording, replay and A/A apply;
5. ``digest(task)``: sha256 of what determines the items (data files, generator parameters), for
   the report's provenance and the lock; ``notes(task)``: one-line facts the reports show
   (records skipped, sampling overridden).

``expand(task, v)`` at contract load may turn one contract task into several (per segment).

A source that runs itself end to end (lm-eval, which builds its own requests) implements ``run``
instead of ``items``; it still sends every request through the endpoint layer it is handed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_parity.sources.item import EMPTY, Item

if TYPE_CHECKING:
    from pytest_parity.contract.spec import EndpointSpec, TaskSpec
    from pytest_parity.endpoints.http import Request, Response
    from pytest_parity.records import ItemRecord, TaskRun
    from pytest_parity.scoring.builtin import Score

__all__ = ["Answer", "Ask", "Item", "RunContext", "SourceError", "TaskSource"]

# Sends one request for one stack through the endpoint layer (cache, recording, replay, A/A).
Ask = Callable[["Request"], Awaitable["Response"]]


class SourceError(ValueError):
    """A source whose data cannot be used; ``str()`` is one line naming the file and the fix."""


@dataclass(frozen=True)
class Answer:
    """One stack's answer to one item.

    ``response`` is what is scored and classified (for a multi-step episode: the final turn);
    ``responses`` every response asked (several for ``repeats``; every turn of an episode);
    ``trajectory`` the turns a reviewer reads side by side (plain dicts); ``facts`` per-answer
    numbers and flags that checks and failure categories read (steps, invalid calls, context
    tokens...); ``score`` is set by a source that scores itself (a final-state check), else the
    task's scorer scores ``response``.
    """

    response: Response
    responses: tuple[Response, ...] = ()
    trajectory: tuple[Mapping[str, Any], ...] = ()
    facts: Mapping[str, Any] = field(default_factory=lambda: EMPTY)  # one read-only {} for all
    score: Score | None = None


@dataclass(frozen=True)
class RunContext:
    """What a source that runs itself is handed by the runner."""

    baseline: EndpointSpec
    candidate: EndpointSpec
    seed: int
    classify: Callable[[Mapping[str, Any]], tuple[str, str]]
    cache_dir: Path | None = None
    refresh: bool = False
    aa: EndpointSpec | None = None
    deadline: float | None = None  # time.monotonic() after which the task must stop
    # role ("baseline", "candidate", "aa") -> an open Endpoint with the run's cache and
    # recorders; call it inside the event loop that will use the endpoint
    open_endpoint: Callable[[str], Any] | None = None


class TaskSource:
    """Base class of the sources; see the module docstring. Subclasses set ``name`` and
    override what they need; the defaults suit a source of single-turn items."""

    name: ClassVar[str] = ""
    options_key: ClassVar[str | None] = None  # the task key holding this source's options
    default_scorer: ClassVar[str] = "exact"
    needs_path: ClassVar[bool] = False  # the task's ``path`` must name an existing file
    options_required: ClassVar[bool] = False  # the task must have the ``options_key`` mapping
    # False: every answer is already there (stored shadow pairs): no request goes to the stacks,
    # so the preflight and the engine probe skip them (the judge is still asked)
    sends_requests: ClassVar[bool] = True

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        """Validated options (``raw`` is the mapping under ``options_key``, or empty)."""
        if raw:
            raise v.fail(where, f"the {self.name} source takes no options")
        return MappingProxyType({})

    def expand(self, task: TaskSpec, v: Any) -> list[TaskSpec]:
        """The tasks this contract task becomes (one per traffic segment...); ``v.fail`` as in
        ``options``. The default: the task itself."""
        return [task]

    def notes(self, task: TaskSpec, records: Sequence[ItemRecord] = ()) -> list[str]:
        """One-line facts about how the items were made, for the reports (records skipped,
        sampling overridden, per-segment results); read after the task ran, with its records."""
        return []

    def bind(self, task: TaskSpec, endpoints: Mapping[str, EndpointSpec]) -> None:
        """Called before ``prepare`` with the endpoints the task runs against, by role
        (baseline, candidate, aa): a source that must ask the servers something before it
        builds its items (their tokenizer, their context window) keeps what it needs."""

    def prepare(self, task: TaskSpec) -> None:
        """Check the data before any request is sent; raise :class:`SourceError`."""

    def items(self, task: TaskSpec) -> Iterator[Item]:
        raise SourceError(f"task {task.name}: the {self.name} source yields no items")

    def count(self, task: TaskSpec) -> int | None:
        """How many items ``items`` will yield, when known without reading them (progress)."""
        return None

    def digest(self, task: TaskSpec) -> str | None:
        return None

    def metrics(self, task: TaskSpec) -> tuple[str, ...]:
        """The metrics this task gates, the main one first; the delta check makes one test per
        extra metric (``delta:<metric>``). Most sources score one thing: ``()``."""
        return ()

    runs_itself: ClassVar[bool] = False  # True: the runner calls ``run`` instead of ``items``

    def run(self, task: TaskSpec, context: RunContext) -> TaskRun:
        """A source that runs itself returns the task's TaskRun (see ``runs_itself``)."""
        raise SourceError(f"task {task.name}: the {self.name} source does not run itself")

    async def answer(
        self, task: TaskSpec, item: Item, ask: Ask, build: Callable[[Item, int], Request]
    ) -> Answer:
        """One stack's answer: ``build(item, repeat)`` makes the request, ``ask`` sends it."""
        if task.repeats == 1:  # the usual case: no list, no generator per answer
            one = await ask(build(item, 0))
            return Answer(response=one, responses=(one,))
        responses = []
        for repeat in range(task.repeats):
            responses.append(await ask(build(item, repeat)))
        failed = next((r for r in responses if r.error), None)
        return Answer(response=failed or responses[0], responses=tuple(responses))
