"""Running a task: its items asked of both stacks through the endpoint layer, scored,
classified and paired into a :class:`~pytest_parity.records.TaskRun` (:mod:`.run` chooses the
source, :mod:`.pipeline` streams the items, :mod:`.requests` builds what each stack is sent)."""

from __future__ import annotations

from pytest_parity.records import TaskRun
from pytest_parity.runner.pipeline import Classifier
from pytest_parity.runner.requests import build_request_parts, request_for
from pytest_parity.runner.run import Runner, default_classifier
from pytest_parity.runner.taskrun import Progress, TaskRunError

__all__ = [
    "Classifier",
    "Progress",
    "Runner",
    "TaskRun",
    "TaskRunError",
    "build_request_parts",
    "default_classifier",
    "request_for",
]
