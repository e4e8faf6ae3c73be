"""``--parity-monitor``: the pytest side of the drift monitor (:mod:`pytest_parity.monitor`).

One generated test per monitored task (``test_parity[<task>-drift]``): it FAILS when a segment's
alert is firing, ERRORs when the task could not be monitored (the judge down, the store
unreachable), passes otherwise. After the tests, the webhook is sent, the Prometheus textfile
(``--parity-monitor-metrics``) and the drift report (``--parity-monitor-report``) are written and
the run's exit code is set: :data:`~pytest_parity.monitor.ALERT_EXIT_CODE` (10) while an alert
fires, else 1 when a task ERRORed or an alert or its resolution could not be delivered, else 0.
The answers of a monitor run are never cached: each pair is judged once, then checkpointed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_parity.session.options import option, path_option

if TYPE_CHECKING:
    import pytest

    from pytest_parity.contract.spec import Contract, TaskSpec
    from pytest_parity.records import CheckResult
    from pytest_parity.runner import Runner, TaskRun

DRIFT = "drift"  # the generated test's check id in monitor mode


class MonitorRun:
    """The plugin object of a monitor run (see the module docstring)."""

    def __init__(self, config: pytest.Config, contract: Contract) -> None:
        import pytest

        from pytest_parity.monitor import monitored_tasks, settings

        if config.pluginmanager.hasplugin("xdist") and (
            getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no")
        ) not in (None, 0, "no"):
            raise pytest.UsageError(
                "--parity-monitor runs in one process: drop -n (the pairs of a task are judged"
                " in one sequence)"
            )
        self.config = config
        self.contract = contract
        self.cfg = settings(contract)
        self.tasks = monitored_tasks(contract)
        if not self.tasks:
            raise pytest.UsageError(
                f"{contract.path}: --parity-monitor: no task with source: shadow to monitor"
                " (hint: add a task with source: shadow, see the README's 'Drift after cutover')"
            )
        self.reset = bool(option(config, "monitor-reset"))
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.lines: list[str] = []
        self.delivery_failed = False
        self._runner: Runner | None = None

    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def runner(self) -> Runner:
        if self._runner is None:
            from pytest_parity.runner import Runner
            from pytest_parity.session.state import ParitySession

            classify = ParitySession(self.config, self.contract)._classify
            self._runner = Runner(self.contract, classify=classify)
        return self._runner

    def _run(self, task: TaskSpec) -> TaskRun:
        return self.runner().run(task)

    def check(self, name: str) -> CheckResult:
        """The drift test's result for one task (monitored once per run)."""
        from pytest_parity.monitor import MonitorError, monitor_task
        from pytest_parity.records import check

        if name not in self.outcomes:
            task = self.contract.task(name)
            try:
                self.outcomes[name] = monitor_task(task, self._run, self.cfg, reset=self.reset)
            except MonitorError as exc:
                self.outcomes[name] = {
                    "task": name,
                    "status": "ERROR",
                    "reasons": [str(exc)],
                    "segments": [],
                    "alerts": [],
                }
        out = self.outcomes[name]
        status = {"OK": "PASS", "ALERT": "FAIL", "ERROR": "ERROR"}[out["status"]]
        reasons = list(out["reasons"])
        if out["status"] == "ALERT":
            reasons.insert(0, f"drift alert on segment(s) {', '.join(out['alerts'])}")
        return check(DRIFT, status, reasons, outcome=out)  # type: ignore[arg-type]

    # -- the end of the run -------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from pytest_parity.monitor import (
            ALERT_EXIT_CODE,
            deliver,
            write_metrics,
            write_report,
        )

        outcomes = [self.outcomes[n] for n in self.task_names() if n in self.outcomes]
        if not outcomes:
            return
        ok = [o for o in outcomes if o["status"] != "ERROR"]
        try:
            self.lines = deliver(ok, self.cfg)
        except Exception as exc:  # a bug or a bad variable: said, never an internal error
            self.lines = [f"ERROR webhook: {type(exc).__name__}: {exc}; NOT delivered"]
        title = f"Drift monitor: {self.contract.path.name}"
        for what in ("metrics", "report"):
            target = path_option(self.config, f"monitor-{what}")
            if target is None:
                continue
            try:
                if what == "metrics":
                    write_metrics(outcomes, target)
                else:
                    write_report(outcomes, target, title=title)
                self.lines.append(f"{what}: {target}")
            except Exception as exc:
                self.lines.append(f"ERROR {what} {target} not written: {type(exc).__name__}: {exc}")
        self.delivery_failed = any(line.startswith("ERROR") for line in self.lines)
        if any(o["status"] == "ALERT" for o in outcomes):
            session.exitstatus = ALERT_EXIT_CODE
        elif self.delivery_failed and int(session.exitstatus) == 0:
            session.exitstatus = 1

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        from pytest_parity.report.bidi import printable

        tr = terminalreporter
        tr.write_sep("=", "parity drift monitor")
        for name in self.task_names():
            out = self.outcomes.get(name)
            if out is None:
                tr.write_line(f"{name}: not run")
                continue
            tr.write_line(f"{name}: {out['status']}")
            for reason in out["reasons"]:
                # segment names come from request headers: shown inert
                tr.write_line(f"  {printable(str(reason))}")
        for line in self.lines:
            tr.write_line(line)
