"""Every task of the gate on exactly one pytest-xdist worker: its checks share one run.

The checks of a task (``test_parity[<task>-delta]``, ``[<task>-failure_modes]``, ...) read one
:class:`~pytest_parity.records.TaskRun`, made by the process that runs the first of them. Were
they spread over two workers, both would run the whole task: every request sent twice, every
recorded answer written twice. xdist's own ``loadgroup`` cannot keep them together under pytest
9.2: its workers rename ``item._nodeid`` to add the ``@group`` suffix, but pytest 9.2 builds
``nodeid`` from ``item._id`` and the rename is lost, so the controller sees one group per test.

This scheduler groups by the task name itself, read from the node id against the ids the plugin
generated, and needs nothing from the workers. It takes over ``load`` (what ``-n N`` means),
``loadgroup``, ``loadscope`` and ``worksteal``; other tests keep xdist's ``loadgroup`` grouping
(a test of its own, or its ``@group``). ``each`` and ``loadfile`` are left to xdist (``loadfile``
already keeps the contract's tests together).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xdist.scheduler import LoadGroupScheduling

TAKES_OVER = ("load", "loadgroup", "loadscope", "worksteal")
MARKER = "::test_parity["


class TaskScheduling(LoadGroupScheduling):  # type: ignore[misc]
    """xdist's group scheduling, with one group per parity task."""

    def __init__(self, config: Any, log: Any, task_of: Mapping[str, str]) -> None:
        super().__init__(config, log)
        self.task_of = dict(task_of)  # generated test id -> task name

    def _split_scope(self, nodeid: str) -> str:
        at = nodeid.rfind(MARKER)
        if at >= 0 and nodeid.endswith("]"):
            task = self.task_of.get(nodeid[at + len(MARKER) : -1])
            if task is not None:
                return f"parity-task:{task}"
        scope: str = super()._split_scope(nodeid)
        return scope


def make_scheduler(config: Any, log: Any, task_of: Mapping[str, str]) -> Any:
    """The scheduler for ``config``'s ``--dist``, or None to leave the choice to xdist."""
    if config.getvalue("dist") not in TAKES_OVER:
        return None
    return TaskScheduling(config, log, task_of)
