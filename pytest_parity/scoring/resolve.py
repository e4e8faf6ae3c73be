"""The scorer a task names, in whichever of its three forms (see :mod:`.context`)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pytest_parity.scoring.builtin import Score, ScorerError, coerce, get_scorer
from pytest_parity.scoring.context import PairContext, ScoreContext, is_paired

__all__ = ["BoundScorer", "check_scorer", "resolve_scorer"]


@dataclass(frozen=True)
class BoundScorer:
    """A scorer bound to the task's options; ``kind`` says how the runner calls it."""

    name: str
    kind: Literal["sync", "async", "paired"]
    fn: Callable[..., Any]
    options: Mapping[str, Any]

    def text(self, response: str, reference: str | None) -> Score:
        """A plain scorer on one answer's text."""
        result: Score = self.fn(response, reference)
        return result

    async def one(self, ctx: ScoreContext) -> Score:
        return coerce(await self.fn(ctx), self.name)

    async def pair(self, ctx: PairContext) -> tuple[Score, Score]:
        got = await self.fn(ctx)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise ScorerError(
                f"scorer {self.name} is paired and returned {type(got).__name__}; expected"
                " (baseline score, candidate score)"
            )
        return coerce(got[0], self.name), coerce(got[1], self.name)


def _async_kind(fn: Callable[..., Any]) -> Literal["async", "paired"] | None:
    if not inspect.iscoroutinefunction(fn):
        return None
    return "paired" if is_paired(fn) else "async"


def resolve_scorer(name: str, options: Mapping[str, Any]) -> BoundScorer:
    """Built-in and registered scorers by name (:data:`pytest_parity.registry.scorers`), custom
    ones by ``package.module:function``; raises :class:`ScorerError` with a one-line message."""
    from pytest_parity import registry

    if name in registry.scorers:
        fn = registry.scorers.get(name)
        kind = _async_kind(fn)
        if kind is None:
            return BoundScorer(name, "sync", lambda r, ref: fn(r, ref, options), options)
        return BoundScorer(name, kind, fn, options)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ScorerError(
                f"scorer {name}: cannot import {module_name!r}: {exc}"
                " (hint: the module must be importable, e.g. next to the contract's conftest.py)"
            ) from None
        custom = getattr(module, attr, None)
        kind = None if custom is None else _async_kind(custom)
        if kind is not None and custom is not None:
            return BoundScorer(name, kind, custom, options)
    return BoundScorer(name, "sync", get_scorer(name, options), options)


def check_scorer(name: str, options: Mapping[str, Any]) -> None:
    """Resolve a task's scorer before any request (a custom module that is missing, or that
    raises on import, is one line now instead of a traceback per check at run time)."""
    try:
        resolve_scorer(name, options)
    except ScorerError:
        raise
    except Exception as exc:  # the user's module raised while importing
        module_name = name.partition(":")[0]
        detail = " ".join(str(exc).split())[:200]
        raise ScorerError(
            f"scorer {name}: importing {module_name!r} raised {type(exc).__name__}: {detail}"
        ) from None
