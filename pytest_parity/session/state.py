"""Per-process state of a gate run: the runner, one run and one result per task, the run's result.

A :class:`ParitySession` is made when a contract is given and kept in the config's stash; the
generated tests reach it through the ``parity`` fixture. It holds no pytest hooks: collection is
the plugin's, the travel of results between processes is :mod:`.transport`'s and the end of the
run :mod:`.outputs`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_parity.session.options import cache_mode, cache_session, is_worker, path_option
from pytest_parity.session.options import option as read_option
from pytest_parity.session.progress import ProgressLines

if TYPE_CHECKING:
    import pytest

    from pytest_parity.contract.spec import Contract, EndpointSpec, TaskSpec
    from pytest_parity.records import RunResult, TaskResult
    from pytest_parity.runner import Runner, TaskRun

RECORD_OPTIONS = ("record", "record-candidate", "record-judge")


def refuse_aa_on_stored_answers(contract: Contract) -> None:
    """``--parity-aa`` asks the baseline every item a second time; a task whose answers are
    stored (``source: shadow``) has one answer per stack and asks no stack: a one-line usage
    error (exit 4) naming the task and what measures a noise floor there instead."""
    import pytest

    from pytest_parity import registry

    for task in contract.tasks:
        if not registry.sources.get(task.source).sends_requests:
            raise pytest.UsageError(
                f"{contract.path}: --parity-aa: task {task.name} is source: {task.source}: its"
                " pairs hold the one answer each stack gave and no stack is asked, so there is no"
                " second sample of the baseline (hint: drop --parity-aa; for a noise floor on live"
                " traffic run parity-shadow with a second copy of the serving stack as its"
                " target, shadow: {target: {kind: ..., base_url: <the copy>}}, and gate that"
                " store)"
            )


class ParityRunError(Exception):
    """The task could not be evaluated: a pytest ERROR, never a PASS or a FAIL."""


class ParitySession:
    """Per-process state of a gate run (see the module docstring)."""

    def __init__(self, config: pytest.Config, contract: Contract) -> None:
        from pytest_parity.verdict import now

        self.config = config
        self.contract = contract
        self.started = now()
        self._runs: dict[str, TaskRun | ParityRunError] = {}
        self._results: dict[tuple[str, bool], TaskResult] = {}
        self.unreported: list[TaskResult] = []  # results not yet sent on with a test report
        self.collected: dict[str, TaskResult] = {}  # controller: results from every process
        self._runner: Runner | None = None
        self._run_result: RunResult | None = None
        if not is_worker(config):
            # One recording per run: the main process starts it afresh, xdist workers append.
            for name in RECORD_OPTIONS:
                target = path_option(config, name)
                if target is not None:
                    target.unlink(missing_ok=True)
        self.preflight: dict[str, Any] | None = None  # per role, for the report's provenance
        self.lock: dict[str, Any] | None = None  # session/lock.py: the digest the report signs
        self.cache_session = cache_session(config)
        self._progress = ProgressLines(config)

    # -- the runner ---------------------------------------------------------------------------

    @property
    def started_runner(self) -> Runner | None:
        """The runner when a task has run in this process (its cache and recorders are open)."""
        return self._runner

    def runner(self) -> Runner:
        if self._runner is None:
            import time

            from pytest_parity.runner import Runner

            max_time = read_option(self.config, "max-time")
            self._runner = Runner(
                self.contract,
                cache=self._open_cache(),
                recorder=self._open_recorder("record"),
                candidate_recorder=self._open_recorder("record-candidate"),
                judge_recorder=self._open_recorder("record-judge"),
                classify=self._classify,
                on_progress=self._progress,
                deadline=None if not max_time else time.monotonic() + float(max_time),
                aa=self._aa_spec(),
            )
        return self._runner

    def _aa_spec(self) -> EndpointSpec | None:
        from dataclasses import replace

        import pytest

        value = read_option(self.config, "aa")
        if not value:
            return None
        # Its own role: the A/A pass never shares cache entries with the baseline's first pass.
        if value == "rerun":
            return replace(self.contract.baseline, role="baseline-aa")
        path = path_option(self.config, "aa")
        if path is None or not path.is_file():
            raise pytest.UsageError(
                f"--parity-aa={value}: file not found (hint: 'rerun', or a file made by"
                " --parity-record)"
            )
        return replace(self.contract.baseline, role="baseline-aa", kind="replay", recording=path)

    def cache_mode(self) -> str:
        return cache_mode(self.config)

    def cache_dir(self) -> Path:
        return path_option(self.config, "cache-dir") or self.config.rootpath / ".parity-cache"

    def _open_cache(self) -> Any:
        mode = self.cache_mode()
        if mode == "off":
            return None
        from pytest_parity.endpoints.cache import ResponseCache

        return ResponseCache(
            self.cache_dir(), mode=mode, contract=self.contract.digest, session=self.cache_session
        )

    def _open_recorder(self, name: str) -> Any:
        path = path_option(self.config, name)
        if path is None:
            return None
        from pytest_parity.endpoints.recording import Recorder

        return Recorder(path, contract_digest=self.contract.digest)

    def _classify(self, side: Mapping[str, Any]) -> tuple[str, str]:
        """The built-in categories with the conftest hooks bound to this answer."""
        classify_side = self._classify_side
        classifies, directs = self._hooked
        if not (classifies or directs):
            return classify_side(side)  # no conftest hooks: two hook calls per answer saved
        hook = self.config.hook

        def custom(**kw: Any) -> str | None:
            found: str | None = hook.pytest_parity_classify(
                task=side["task"], item_id=side["item_id"], side=side["side"], **kw
            )
            return found

        def direction(category: str) -> str | None:
            code: str | None = hook.pytest_parity_direction(category=category)
            return code

        return classify_side(
            side, hook=custom if classifies else None, direction=direction if directs else None
        )

    @functools.cached_property
    def _classify_side(self) -> Callable[..., tuple[str, str]]:
        from pytest_parity.scoring.categories import classify_side

        return classify_side

    @functools.cached_property
    def _hooked(self) -> tuple[bool, bool]:
        """Whether any plugin or conftest implements the classify / direction hooks (read when
        the first answer is classified: every conftest has been loaded by then)."""
        hook = self.config.hook
        return (
            bool(hook.pytest_parity_classify.get_hookimpls()),
            bool(hook.pytest_parity_direction.get_hookimpls()),
        )

    # -- one task -----------------------------------------------------------------------------

    def task_run(self, name: str) -> TaskRun:
        """Both stacks' answers to the task's items, asked once per process."""
        from pytest_parity.runner import TaskRunError

        if name not in self._runs:
            runner = self.runner()
            try:
                self._runs[name] = runner.run(self.contract.task(name))
            except TaskRunError as exc:
                self._runs[name] = ParityRunError(str(exc))
            for recorder in runner.recorders.values():
                if recorder is not None and recorder.error:
                    # A recording that lost answers cannot stand in for the stack later.
                    self._runs[name] = ParityRunError(f"task {name}: {recorder.error}")
        run = self._runs[name]
        if isinstance(run, ParityRunError):
            raise run
        return run

    def task_result(self, name: str, safety_critical: bool = False) -> TaskResult:
        """Every check of a task (under the safety-critical policy when asked); raises
        :class:`ParityRunError` when the task could not be evaluated."""
        task = self.contract.task(name)
        if safety_critical:
            task = task.with_safety_critical(self.contract.defaults)
        key = (name, task.safety_critical)
        if key not in self._results:
            self._results[key] = self._evaluate(name, task)
            self.unreported.append(self._results[key])
        result = self._results[key]
        if result["error"]:
            raise ParityRunError(result["error"])
        return result

    def _evaluate(self, name: str, task: TaskSpec) -> TaskResult:
        from pytest_parity.verdict import error_result, evaluate

        try:
            run = self.task_run(name)
        except ParityRunError as exc:
            return error_result(task, str(exc))
        result = evaluate(
            task, run, self.contract.defaults.seed, self.contract.defaults.disagreements
        )
        if task.inconclusive == "warn":
            for c in result["checks"].values():
                c["numbers"]["policy"] = "warn"
        result["cache"] = {"mode": self.cache_mode(), **run.answers}
        return result

    def result_of(self, task: str) -> TaskResult | None:
        """This process's result of a task, whichever policy it was evaluated under."""
        return next((r for (n, _), r in self._results.items() if n == task), None)

    def ask(self, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
        """One prompt to both stacks, outside any task (the ``parity`` fixture's ``ask``)."""
        import asyncio

        from pytest_parity.endpoints.http import Request, open_endpoint

        async def both() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for role, spec in (
                ("baseline", self.contract.baseline),
                ("candidate", self.contract.candidate),
            ):
                ep = open_endpoint(spec)
                try:
                    req = Request(
                        item_id="ask",
                        messages=({"role": "user", "content": prompt},),
                        params=params,
                    )
                    out[role] = await ep.complete(req)
                finally:
                    await ep.aclose()
            return out

        return asyncio.run(both())

    # -- the whole run ------------------------------------------------------------------------

    def run_result(self) -> RunResult | None:
        """The run's result over every task collected so far (the controller's view)."""
        if not self.collected:
            return None
        if self._run_result is None or len(self._run_result["tasks"]) != len(self.collected):
            from pytest_parity import __version__
            from pytest_parity.endpoints.progress import cache_summary
            from pytest_parity.verdict import summarize

            order = {t.name: i for i, t in enumerate(self.contract.tasks)}
            tasks = sorted(self.collected.values(), key=lambda t: order.get(t["task"], 1 << 30))
            run = summarize(self.contract, tasks, self.started, __version__)
            if self.preflight is not None:
                run["contract"]["preflight"] = self.preflight
            if self.lock is not None:
                run["lock"] = self.lock
            run["cache"] = cache_summary(
                self.cache_mode(),
                [{k: v for k, v in t.get("cache", {}).items() if k != "mode"} for t in tasks],
            )
            from pytest_parity.report.audit import audit_lines

            run["audit"] = [line.strip() for line in audit_lines(self.contract)]
            self._run_result = run
        return self._run_result
