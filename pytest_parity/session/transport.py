"""How task results travel: on the test reports, from the process that ran a task to the one
that reports the run (the same process without xdist; the controller with it), and the
controller's scheduler that keeps each task on exactly one worker."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_parity.session.state import ParityRunError

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract
    from pytest_parity.session.state import ParitySession


class ResultTransport:
    """Puts a process's new task results on the next test report (plain dicts: they travel to
    the xdist controller with it), collects them wherever the reports arrive, and makes a
    task that could not run one line with no traceback."""

    def __init__(self, session: ParitySession) -> None:
        self.session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.excinfo is not None and call.excinfo.errisinstance(ParityRunError):
            # One line that names the task, the endpoint and the last error; no traceback.
            report.longrepr = str(call.excinfo.value)
        pending = self.session.unreported
        if pending and (report.when == "call" or report.failed):
            report.parity_results = list(pending)  # type: ignore[attr-defined]
            pending.clear()
        case = getattr(item, "callspec", None)
        if case is not None and report.when == "call" and "parity_case" in case.params:
            result = self.session.result_of(case.params["parity_case"][0])
            hooks = item.config.pluginmanager.get_plugin("parity-html")
            if result is not None and hooks is not None:
                extras = [*getattr(report, "extras", []), *hooks.task_extras(result)]
                report.extras = extras  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for result in getattr(report, "parity_results", None) or ():
            self.session.collected[result["task"]] = result


class XdistHooks:
    """The controller's scheduler: one worker per task (see ``xdist_scheduler``), and one
    response-cache session shared by the workers."""

    def __init__(self, contract: Contract, session: ParitySession) -> None:
        from pytest_parity.checks.base import enabled

        self.session = session
        self.task_of = {
            f"{t.name}-{tid}": t.name
            for t in contract.tasks
            for c in enabled(t)
            for tid in c.test_ids(t)
        }

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        from pytest_parity.xdist_scheduler import make_scheduler

        return make_scheduler(config, log, self.task_of)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        # One cache session per pytest run: the workers resume or begin the same generation.
        node.workerinput["parity_cache_session"] = self.session.cache_session
