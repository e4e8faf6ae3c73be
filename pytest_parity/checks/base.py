"""The Check seam: one part of parity, run on a task's paired records.

A check is a class registered in :data:`pytest_parity.registry.checks`; the registry's order is
the order checks run and appear in. Everything else reads the registry: the generated tests
(``test_parity[<task>-<test id>]``), the verdict, the terminal table, the JSON report and the
HTML reports (a check without a report section of its own gets a generic table of its numbers).

Per-task settings live under the task's ``checks:`` key (``checks: {calibration: {...}}``), or in
``defaults.checks``; ``options`` validates them when the contract loads. A check with
``default = True`` runs on every task unless the task sets ``checks: {<name>: false}``; the others
run only where a task (or the defaults) names them.

``run`` returns one :class:`~pytest_parity.records.CheckResult` per test id (usually one, named
like the check): a status, the reasons (sentences: the assertion message, the terminal lines and
the report rows are the same text) and the numbers. A check whose alarm is a statistical test
puts its one-sided p-value in ``numbers["p_alarm"]``: the overall rule adjusts every alarm of the
run together (Holm) before it calls a run FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_parity.records import CheckResult, Status, check

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.runner import TaskRun

__all__ = ["Check", "CheckContext", "check", "enabled"]


def enabled(task: TaskSpec) -> list[Check]:
    """The checks ``task`` runs, in the registry's order. A contract always lists them in
    ``task.checks``; a TaskSpec built by hand without any runs the registry's default checks."""
    from pytest_parity import registry

    names = [n for n in registry.checks if n in task.checks]
    if not task.checks:
        names = [n for n in registry.checks if registry.checks.get(n).default]
    return [registry.checks.get(n) for n in names]


@dataclass(frozen=True)
class CheckContext:
    """What a check may use beyond its task and the task's run."""

    seed: int  # the run's seed: derive per-check RNG seeds with stats.task_seed(seed, name)


class Check:
    """Base class of the checks; see the module docstring."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # e.g. "No new failure modes" (report headings)
    column: ClassVar[str] = ""  # e.g. "failure modes" (terminal table header)
    default: ClassVar[bool] = False  # runs on every task unless turned off

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """This check's validated settings for one task.

        ``raw`` is the mapping under ``checks.<name>`` (empty when the check runs by default),
        ``task`` the task's whole raw mapping (for settings shared with the task, e.g. the
        tolerance). Problems are ``v.fail(where, problem, hint)``.
        """
        if raw:
            known = ", ".join(sorted(raw))
            raise v.fail(where, f"the {self.name} check takes no options (got {known})")
        return MappingProxyType({})

    def test_ids(self, task: TaskSpec) -> tuple[str, ...]:
        """The generated tests of this check for ``task`` (``test_parity[<task>-<id>]``)."""
        return (self.name,)

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        raise TypeError(f"check {self.name!r} does not implement run()")

    def settings(self, task: TaskSpec) -> Mapping[str, Any]:
        """This check's validated options for ``task`` (empty when it has none)."""
        found: Mapping[str, Any] = task.checks.get(self.name, MappingProxyType({}))
        return found

    @staticmethod
    def result(name: str, status: Status, reasons: list[str], **numbers: Any) -> CheckResult:
        return check(name, status, reasons, **numbers)
