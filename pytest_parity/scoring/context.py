"""The scorer seam: what a scorer that needs more than text and reference is given.

Two forms of scorer sit side by side:

* a plain function ``(response_text, reference, **scorer_options) -> bool | float | None | Score``
  (the built-ins, and every custom scorer written so far);
* an ``async`` function ``(ctx: ScoreContext) -> Score``: it sees the task, the item, the whole
  response and, when the contract configures one, the judge endpoint (whose answers are cached
  and recorded like the stacks', under their own role);
* a *paired* scorer, ``async (ctx: PairContext) -> tuple[Score, Score]``, scores both stacks'
  answers at once (a pairwise judge: the baseline's and the candidate's scores come from one
  comparison). Mark it with :func:`paired`.

A custom scorer named ``package.module:function`` may be any of the three; the async ones are
told apart by ``inspect.iscoroutinefunction``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.endpoints.http import Endpoint, Response
    from pytest_parity.scoring.builtin import Score
    from pytest_parity.sources.item import Item

__all__ = ["JudgeError", "PairContext", "ScoreContext", "is_paired", "paired"]

F = TypeVar("F", bound=Callable[..., Any])


class JudgeError(RuntimeError):
    """The judge could not give a verdict (its request failed, or its reply held no readable
    verdict): an infrastructure failure. The answer is not scored, the runner counts it against
    the task's ``max_error_rate`` like a failed request, and it is never a failure of the model."""


@dataclass(frozen=True)
class ScoreContext:
    task: TaskSpec
    item: Item
    role: str  # "baseline" | "candidate" | "baseline-aa"
    response: Response
    options: Mapping[str, Any]  # the task's scorer options
    judge: Endpoint | None = None


@dataclass(frozen=True)
class PairContext:
    task: TaskSpec
    item: Item
    baseline: Response
    candidate: Response
    options: Mapping[str, Any]
    judge: Endpoint | None = None
    roles: tuple[str, str] = ("baseline", "candidate")  # ("baseline", "baseline-aa") under A/A


AsyncScorer = Callable[[ScoreContext], Awaitable["Score"]]
PairScorer = Callable[[PairContext], Awaitable["tuple[Score, Score]"]]


def paired(fn: F) -> F:
    """Mark an async scorer as paired: it takes a :class:`PairContext`, returns two scores."""
    fn.__parity_paired__ = True  # type: ignore[attr-defined]
    return fn


def is_paired(fn: Callable[..., Any]) -> bool:
    return bool(getattr(fn, "__parity_paired__", False))
