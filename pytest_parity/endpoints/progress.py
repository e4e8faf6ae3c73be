"""What a task's endpoints did, as plain counts for results and reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["answer_counts", "cache_line", "cache_summary"]


def answer_counts(endpoints: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per stack (role), how many answers its endpoint gave a task and how many of those came
    from the response cache (read once the task is done, from each endpoint's Progress)."""
    return {
        role: {"answers": ep.progress.done - ep.progress.failed, "from_cache": ep.progress.cached}
        for role, ep in endpoints.items()
    }


def cache_summary(mode: str, per_task: list[Mapping[str, Mapping[str, int]]]) -> dict[str, Any]:
    """The run's totals per stack: ``{"mode": ..., "baseline": {"answers", "from_cache"}, ...}``."""
    out: dict[str, Any] = {"mode": mode}
    for counts in per_task:
        for role, c in counts.items():
            total = out.setdefault(role, {"answers": 0, "from_cache": 0})
            total["answers"] += int(c.get("answers", 0))
            total["from_cache"] += int(c.get("from_cache", 0))
    return out


def cache_line(summary: Mapping[str, Any]) -> str:
    """One terminal line: how many answers per stack the cache gave, under which mode."""
    mode = summary.get("mode", "off")
    if mode == "off":
        return "parity cache: off (every answer was asked for)"
    roles = [r for r in summary if r != "mode"]
    parts = [f"{r} {summary[r]['from_cache']}/{summary[r]['answers']}" for r in roles] or [
        "no answers"
    ]
    return f"parity cache ({mode}): answers from the cache: {', '.join(parts)}"
