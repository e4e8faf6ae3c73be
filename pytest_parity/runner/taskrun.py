"""The runner's own records: progress counts and the error that makes a task an ERROR."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pytest_parity.records import TaskRun

__all__ = ["Progress", "TaskRun", "TaskRunError"]


class TaskRunError(RuntimeError):
    """The task could not be evaluated (endpoint down, too many failed requests, bad data)."""


@dataclass
class Progress:
    """Counts the plugin shows while a long task runs."""

    task: str = ""
    total: int = 0
    done: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})
    started: float = field(default_factory=time.monotonic)
