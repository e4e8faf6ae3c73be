"""The pytest wiring: options, contract loading, generated tests, fixtures, the verdict section.

This is the only module that imports pytest. It is loaded by the ``pytest11`` entry point in
every pytest run of the environment, so everything heavy (numpy, scipy, httpx, lm_eval,
pytest_html) is imported inside the hooks that first need it, and only when a contract is given.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract, EndpointSpec, TaskSpec
    from pytest_parity.records import CheckResult, RunResult, TaskResult
    from pytest_parity.runner import Progress, TaskRun

PROGRESS_AFTER_S = 5.0  # a task shorter than this prints no progress line
PROGRESS_EVERY_S = 10.0


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_parity import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("parity", "parity gate (pytest-parity)")

    def add(name: str, ini: str | None = None, **kw: Any) -> None:
        # Every option has an ini twin (pyproject.toml / pytest.ini); the command line wins.
        key = f"parity_{name.replace('-', '_')}"
        group.addoption(f"--parity-{name}", dest=key, **kw)
        if kw.get("action") == "store_true":
            parser.addini(key, ini or kw["help"], type="bool", default=None)
        else:
            parser.addini(key, ini or kw["help"], type="string", default=None)

    add(
        "contract",
        "parity contract YAML",
        metavar="PATH",
        help="run the parity gate of this contract",
    )
    add(
        "cache-dir",
        "directory of the response cache",
        metavar="DIR",
        help="response cache directory (default: .parity-cache under the rootdir)",
    )
    add(
        "cache",
        "response cache mode: resume (default), reuse, refresh or off",
        metavar="resume|reuse|refresh|off",
        help="resume (default): reuse answers only to finish a run that did not finish (same"
        " contract and endpoints); reuse: also answers of completed runs; refresh: resend"
        " everything and store it; off: no cache",
    )
    add(
        "no-cache",
        action="store_true",
        default=False,
        help="do not read or write the response cache (--parity-cache=off)",
    )
    add(
        "refresh",
        action="store_true",
        default=False,
        help="re-send every request and overwrite cached responses",
    )
    add(
        "record",
        metavar="PATH",
        help="record the baseline's responses into PATH (replay them later with kind: replay)",
    )
    add(
        "record-candidate",
        metavar="PATH",
        help="record the candidate's responses into PATH (e.g. to ship a replayable example)",
    )
    add(
        "record-judge",
        metavar="PATH",
        help="record the judge's answers into PATH (replay them with a judge of kind: replay)",
    )
    add("report", metavar="PATH", help="write the standalone HTML parity report to PATH")
    add("json", metavar="PATH", help="write every number of the verdict as JSON to PATH")
    add("markdown", metavar="PATH", help="append a Markdown summary to PATH (CI step summaries)")
    add(
        "out",
        "directory for disagreement files",
        metavar="DIR",
        help="directory for the sampled disagreements (default: parity-out under the rootdir)",
    )
    add(
        "audit",
        action="store_true",
        default=False,
        help="print which kinds of eval and failure modes the contract covers, then stop",
    )
    add(
        "aa",
        "A/A noise floor: 'rerun' or a recording of an earlier baseline pass",
        metavar="rerun|PATH",
        help="also answer every item by the baseline a second time ('rerun'), or from a recording"
        " of an earlier baseline pass, and report its own flip rate next to old-vs-new",
    )
    add(
        "no-preflight",
        action="store_true",
        default=False,
        help="skip the check that both stacks answer, serve the model and take the key before"
        " the first task (offline runs from the cache)",
    )
    add(
        "max-time",
        metavar="SECONDS",
        type=float,
        help="bound the run's wall time: tasks still running after SECONDS end as errors",
    )


# ----------------------------------------------------------------------------------------------
# configuration


PARITY_KEY = pytest.StashKey["ParitySession"]()


def _install_redact_hook(config: pytest.Config, contract: Any) -> None:
    """A conftest's ``pytest_parity_redact`` reaches the traffic source's redaction."""
    hook = config.hook.pytest_parity_redact
    if not hook.get_hookimpls():
        return

    def call(task: str, field: str, text: str) -> str | None:
        out: str | None = hook(task=task, field=field, text=text)
        return out

    from pytest_parity import registry

    for name in {t.source for t in contract.tasks}:
        source = registry.sources.get(name)
        if hasattr(source, "set_redact_hook"):
            source.set_redact_hook(call)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "safety_critical: gate this parity task with the contract's safety-critical tolerance"
        " and policy (inconclusive fails, one new failure is enough)",
    )
    config.addinivalue_line("markers", "parity: a test generated from the parity contract")
    path = _option(config, "contract")
    if not path:
        return
    from pytest_parity.contract.spec import ContractError, load_contract

    base = config.invocation_params.dir
    if not config.getoption("parity_contract") and config.inipath is not None:
        base = config.inipath.parent  # an ini setting is relative to the ini file
    full = Path(path) if Path(path).is_absolute() else base / path
    try:
        contract = load_contract(full if full.exists() else Path(path))
    except ContractError as exc:
        raise pytest.UsageError(str(exc)) from None
    from pytest_parity import registry
    from pytest_parity.sources.base import SourceError

    _install_redact_hook(config, contract)
    for i, task in enumerate(contract.tasks):
        try:  # bad data stops the run before any request, like a bad contract
            source = registry.sources.get(task.source)
            source.bind(task, {"baseline": contract.baseline, "candidate": contract.candidate})
            source.prepare(task)
        except SourceError as exc:
            raise pytest.UsageError(f"{exc} (task {task.name})") from None
        if ":" in task.scorer and not hasattr(config, "workerinput"):
            # A custom scorer that cannot be imported stops the run too (xdist's controller
            # checks it: workers set up their import path only after configuring).
            from pytest_parity.scoring.builtin import ScorerError
            from pytest_parity.scoring.resolve import check_scorer

            try:
                check_scorer(task.scorer, task.scorer_options)
            except ScorerError as exc:
                raise pytest.UsageError(f"{contract.path}: tasks[{i}].scorer: {exc}") from None
    if _option(config, "audit"):
        from pytest_parity.report.audit import audit_lines

        print("\n".join(audit_lines(contract)))
        pytest.exit("parity audit done: nothing was sent", returncode=0)
    preflight = _preflight(config, contract)  # before the session starts recordings afresh
    session = ParitySession(config, contract)
    session.preflight = preflight
    config.stash[PARITY_KEY] = session
    config.pluginmanager.register(session, "parity-session")
    if config.pluginmanager.hasplugin("html"):
        from pytest_parity.report.pytest_html import ParityHtmlHooks

        config.pluginmanager.register(ParityHtmlHooks(session.run_result), "parity-html")
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        # The checks of one task share one run: each task on exactly one worker.
        config.pluginmanager.register(XdistHooks(contract, session), "parity-xdist")


class XdistHooks:
    """The controller's scheduler: one worker per task (see ``xdist_scheduler``)."""

    def __init__(self, contract: Contract, session: ParitySession) -> None:
        self.session = session
        from pytest_parity.checks.base import enabled

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


def _preflight(config: pytest.Config, contract: Contract) -> dict[str, Any] | None:
    """Both stacks reachable, serving the model, taking the key: else exit 4 before any task."""
    if hasattr(config, "workerinput") or config.option.collectonly or config.option.help:
        return None  # the xdist controller checked them; --collect-only and --help send nothing
    if _option(config, "no-preflight"):
        return None
    from pytest_parity.endpoints.preflight import PreflightError, run_preflight

    try:
        return run_preflight(contract)
    except PreflightError as exc:
        raise pytest.UsageError(str(exc)) from None


def _option(config: pytest.Config, name: str) -> Any:
    key = f"parity_{name.replace('-', '_')}"
    value = config.getoption(key)
    if value in (None, False):
        value = config.getini(key)
    return value


def _path_option(config: pytest.Config, name: str) -> Path | None:
    """A path option: relative to the invocation directory, or to the ini file when set there."""
    key = f"parity_{name.replace('-', '_')}"
    value = config.getoption(key)
    if value:
        return _out_path(config, value)
    value = config.getini(key)
    if not value:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return Path(value) if Path(value).is_absolute() else base / value


def _cache_mode(config: pytest.Config) -> str:
    if _option(config, "no-cache"):
        return "off"
    if _option(config, "refresh"):
        return "refresh"
    mode = _option(config, "cache") or "resume"
    if mode not in ("resume", "reuse", "refresh", "off"):
        raise pytest.UsageError(
            f"--parity-cache={mode}: expected resume, reuse, refresh or off"
            " (hint: reuse to answer from completed runs too)"
        )
    return str(mode)


def _cache_session(config: pytest.Config) -> str:
    """One token per pytest run, the same in every xdist worker (see endpoints/cache.py)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get("parity_cache_session"):
        return str(workerinput["parity_cache_session"])
    import uuid

    return uuid.uuid4().hex


def _out_path(config: pytest.Config, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else config.invocation_params.dir / p


# ----------------------------------------------------------------------------------------------
# the generated tests


class GateModule(pytest.Module):
    """The contract file as a test module: its tests are this plugin's ``test_parity``."""

    def _getobj(self) -> Any:
        return sys.modules[__name__]


def test_parity(parity_check: CheckResult) -> None:
    """One part of parity for one task of the contract (generated per task and check)."""
    status = parity_check["status"]
    reasons = "; ".join(parity_check["reasons"])
    if status == "PASS":
        return
    if status == "SKIP":
        pytest.skip(reasons or "check not applicable")
    if status == "INCONCLUSIVE" and parity_check["numbers"].get("policy") == "warn":
        pytest.xfail(f"INCONCLUSIVE: {reasons}")
    pytest.fail(f"{parity_check['name']} {status}: {reasons}", pytrace=False)


class ParityRunError(Exception):
    """The task could not be evaluated: a pytest ERROR, never a PASS or a FAIL."""


class Parity:
    """The ``parity`` fixture: both endpoints of the contract and its tasks, for your own tests."""

    def __init__(self, session: ParitySession) -> None:
        self._session = session

    @property
    def contract(self) -> Contract:
        return self._session.contract

    @property
    def baseline(self) -> EndpointSpec:
        return self._session.contract.baseline

    @property
    def candidate(self) -> EndpointSpec:
        return self._session.contract.candidate

    @property
    def tasks(self) -> list[str]:
        return [t.name for t in self._session.contract.tasks]

    def run(self, task: str) -> TaskRun:
        """Query both stacks on the task's items (once per process; cached responses reused)."""
        return self._session.task_run(task)

    def compare(self, task: str, *, safety_critical: bool = False) -> TaskResult:
        """Every check of a task; raises ParityRunError when it cannot be evaluated."""
        return self._session.task_result(task, safety_critical)

    def ask(self, prompt: str, **params: Any) -> dict[str, Any]:
        """Send one prompt to both stacks; returns {"baseline": Response, "candidate": Response}."""
        return self._session.ask(prompt, params)


@pytest.fixture(scope="session")
def parity(request: pytest.FixtureRequest) -> Parity:
    session = request.config.stash.get(PARITY_KEY, None)
    if session is None:
        pytest.skip("no parity contract given (--parity-contract=PATH)")
    return Parity(session)


@pytest.fixture
def parity_task(parity: Parity, parity_case: tuple[str, str]) -> TaskSpec:
    """The contract's spec of the task this generated test gates."""
    return parity.contract.task(parity_case[0])


@pytest.fixture
def parity_result(
    parity: Parity, parity_case: tuple[str, str], request: pytest.FixtureRequest
) -> TaskResult:
    """Every check of this test's task, under the safety-critical policy when marked so."""
    safety = request.node.get_closest_marker("safety_critical") is not None
    return parity.compare(parity_case[0], safety_critical=safety)


@pytest.fixture
def parity_check(parity_result: TaskResult, parity_case: tuple[str, str]) -> CheckResult:
    """The check this generated test asserts."""
    check = parity_result["checks"].get(parity_case[1])
    if check is None:
        raise ParityRunError(f"task {parity_case[0]}: check {parity_case[1]} was not computed")
    if check["status"] == "ERROR":
        raise ParityRunError(f"task {parity_case[0]}: {'; '.join(check['reasons'])}")
    return check


# ----------------------------------------------------------------------------------------------
# the session object


class ParitySession:
    """Per-process state of a gate run, registered as a plugin when a contract is given."""

    def __init__(self, config: pytest.Config, contract: Contract) -> None:
        from pytest_parity.verdict import now

        self.config = config
        self.contract = contract
        self.started = now()
        self._runs: dict[str, TaskRun | ParityRunError] = {}
        self._results: dict[tuple[str, bool], TaskResult] = {}
        self._unreported: list[TaskResult] = []
        self.collected: dict[str, TaskResult] = {}  # controller: results from every process
        self._runner: Any = None
        self._run_result: RunResult | None = None
        if not hasattr(config, "workerinput"):
            # One recording per run: the main process starts it afresh, xdist workers append.
            for option in ("record", "record-candidate", "record-judge"):
                target = _path_option(config, option)
                if target is not None:
                    target.unlink(missing_ok=True)
        self._progress_shown = -1.0
        self.preflight: dict[str, Any] | None = None  # per role, for the report's provenance
        self.cache_session = _cache_session(config)

    # -- collection ---------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        module = GateModule.from_parent(session, path=self.contract.path)
        items.extend(session.genitems(module))

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if metafunc.function is not test_parity:
            return
        from pytest_parity.checks.base import enabled

        xdist = self.config.pluginmanager.hasplugin("xdist")
        params = []
        for task in self.contract.tasks:
            for check in (tid for c in enabled(task) for tid in c.test_ids(task)):
                marks: list[pytest.MarkDecorator] = [pytest.mark.parity]
                if task.safety_critical:
                    marks.append(pytest.mark.safety_critical)
                if xdist:
                    marks.append(pytest.mark.xdist_group(task.name))
                params.append(
                    pytest.param((task.name, check), id=f"{task.name}-{check}", marks=marks)
                )
        metafunc.parametrize("parity_case", params)

    # -- running ------------------------------------------------------------------------------

    def runner(self) -> Any:
        if self._runner is None:
            import time

            from pytest_parity.runner import Runner

            max_time = _option(self.config, "max-time")
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

        value = _option(self.config, "aa")
        if not value:
            return None
        # Its own role: the A/A pass never shares cache entries with the baseline's first pass.
        if value == "rerun":
            return replace(self.contract.baseline, role="baseline-aa")
        path = _path_option(self.config, "aa")
        if path is None or not path.is_file():
            raise pytest.UsageError(
                f"--parity-aa={value}: file not found (hint: 'rerun', or a file made by"
                " --parity-record)"
            )
        return replace(self.contract.baseline, role="baseline-aa", kind="replay", recording=path)

    def cache_mode(self) -> str:
        return _cache_mode(self.config)

    def cache_dir(self) -> Path:
        return _path_option(self.config, "cache-dir") or self.config.rootpath / ".parity-cache"

    def _open_cache(self) -> Any:
        mode = self.cache_mode()
        if mode == "off":
            return None
        from pytest_parity.endpoints.cache import ResponseCache

        return ResponseCache(
            self.cache_dir(), mode=mode, contract=self.contract.digest, session=self.cache_session
        )

    def _open_recorder(self, option: str) -> Any:
        path = _path_option(self.config, option)
        if path is None:
            return None
        from pytest_parity.endpoints.recording import Recorder

        return Recorder(path, contract_digest=self.contract.digest)

    def _classify(self, side: Mapping[str, Any]) -> tuple[str, str]:
        """The built-in categories with the conftest hooks bound to this answer."""
        from pytest_parity.scoring.categories import classify_side

        hook = self.config.hook

        def custom(**kw: Any) -> str | None:
            found: str | None = hook.pytest_parity_classify(
                task=side["task"], item_id=side["item_id"], side=side["side"], **kw
            )
            return found

        def direction(category: str) -> str | None:
            code: str | None = hook.pytest_parity_direction(category=category)
            return code

        return classify_side(side, hook=custom, direction=direction)

    def _progress(self, progress: Progress) -> None:
        """A line every few seconds on long tasks: done / total per stack, rate and ETA."""
        import time

        if self.config.get_verbosity() < 0 or hasattr(self.config, "workerinput"):
            return  # silent under -q; xdist workers have no terminal
        now = time.monotonic()
        done = sum(progress.done.values())
        total = 2 * progress.total
        elapsed = now - progress.started
        first = self._progress_shown < progress.started
        if elapsed < PROGRESS_AFTER_S or (
            not first and now - self._progress_shown < PROGRESS_EVERY_S and done < total
        ):
            return
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if tr is None or capman is None:
            return
        self._progress_shown = now
        rate = done / max(elapsed, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        with capman.global_and_fixture_disabled():
            tr.write_line(
                f"[parity] {progress.task}: baseline {progress.done['baseline']}/{progress.total},"
                f" candidate {progress.done['candidate']}/{progress.total},"
                f" {rate:.1f} requests/s, ETA {eta:.0f}s"
            )

    def task_run(self, name: str) -> TaskRun:
        from pytest_parity.runner import TaskRunError

        if name not in self._runs:
            task = self.contract.task(name)
            try:
                self._runs[name] = self.runner().run(task)
            except TaskRunError as exc:
                self._runs[name] = ParityRunError(str(exc))
            for recorder in self.runner().recorders.values():
                if recorder is not None and recorder.error:
                    # A recording that lost answers cannot stand in for the stack later.
                    self._runs[name] = ParityRunError(f"task {name}: {recorder.error}")
        run = self._runs[name]
        if isinstance(run, ParityRunError):
            raise run
        return run

    def task_result(self, name: str, safety_critical: bool = False) -> TaskResult:
        from pytest_parity.verdict import error_result, evaluate

        task = self.contract.task(name)
        if safety_critical:
            task = task.with_safety_critical(self.contract.defaults)
        key = (name, task.safety_critical)
        if key not in self._results:
            try:
                run = self.task_run(name)
            except ParityRunError as exc:
                result = error_result(task, str(exc))
            else:
                result = evaluate(
                    task, run, self.contract.defaults.seed, self.contract.defaults.disagreements
                )
                if task.inconclusive == "warn":
                    for c in result["checks"].values():
                        c["numbers"]["policy"] = "warn"
                result["cache"] = {"mode": self.cache_mode(), **run.answers}
            self._results[key] = result
            self._unreported.append(result)
        result = self._results[key]
        if result["error"]:
            raise ParityRunError(result["error"])
        return result

    def ask(self, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
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

    # -- reporting ----------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.excinfo is not None and call.excinfo.errisinstance(ParityRunError):
            # One line that names the task, the endpoint and the last error; no traceback.
            report.longrepr = str(call.excinfo.value)
        if self._unreported and (report.when == "call" or report.failed):
            # Plain dicts: they travel to the xdist controller with the report.
            report.parity_results = list(self._unreported)  # type: ignore[attr-defined]
            self._unreported.clear()
        case = getattr(item, "callspec", None)
        if case is not None and report.when == "call" and "parity_case" in case.params:
            task_name = case.params["parity_case"][0]
            res = next((r for (n, _), r in self._results.items() if n == task_name), None)
            hooks = self.config.pluginmanager.get_plugin("parity-html")
            if res is not None and hooks is not None:
                extras = [*getattr(report, "extras", []), *hooks.task_extras(res)]
                report.extras = extras  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for result in getattr(report, "parity_results", None) or ():
            self.collected[result["task"]] = result

    def run_result(self) -> RunResult | None:
        if not self.collected:
            return None
        if self._run_result is None or len(self._run_result["tasks"]) != len(self.collected):
            from pytest_parity import __version__
            from pytest_parity.verdict import summarize

            order = {t.name: i for i, t in enumerate(self.contract.tasks)}
            tasks = sorted(self.collected.values(), key=lambda t: order.get(t["task"], 1 << 30))
            self._run_result = summarize(self.contract, tasks, self.started, __version__)
            if self.preflight is not None:
                self._run_result["contract"]["preflight"] = self.preflight
            from pytest_parity.endpoints.progress import cache_summary

            self._run_result["cache"] = cache_summary(
                self.cache_mode(),
                [{k: v for k, v in t.get("cache", {}).items() if k != "mode"} for t in tasks],
            )
        return self._run_result

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput") or self.cache_mode() == "off":
            return
        from pytest_parity.endpoints.cache import CacheError, ResponseCache, run_finished

        errors = [r["task"] for r in self.collected.values() if r["verdict"] == "ERROR"]
        if not self.collected or not run_finished(int(exitstatus), errors):
            return  # an interrupted run, or one with ERROR tasks, resumes next time
        cache = None if self._runner is None else self._runner.cache
        try:
            if cache is not None:
                cache.finish()
            else:  # xdist: the workers are done; mark their runs in the shared file
                ResponseCache.finish_run(self.cache_dir(), self.contract.digest, self.cache_session)
        except CacheError:
            pass  # an unusable cache was reported when it was opened

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._runner is None:
            return
        for recorder in self._runner.recorders.values():
            if recorder is not None:
                recorder.close()
        if self._runner.cache is not None:
            self._runner.cache.close()

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput"):
            return
        from pytest_parity.report.terminal import verdict_lines

        run = self.run_result()
        tr = terminalreporter
        tr.write_sep("=", "parity verdict")
        if run is None:
            tr.write_line("no parity task ran")
            return
        files = self._write_outputs(run)
        for line in verdict_lines(run, files):
            tr.write_line(line)
        from pytest_parity.endpoints.progress import cache_line

        tr.write_line(cache_line(run.get("cache", {"mode": self.cache_mode()})))
        cache = None if self._runner is None else self._runner.cache
        if cache is not None and cache.write_errors:
            tr.write_line(
                f"warning: {cache.write_errors} answers could not be stored in the response cache"
                f" ({cache.last_write_error}); a rerun will ask for them again"
            )

    def _write_outputs(self, run: RunResult) -> list[str]:
        import json

        written: list[str] = []
        out_dir = _run_dir(
            _path_option(self.config, "out") or self.config.rootpath / "parity-out",
            self.contract.path.stem,
            self.started,
        )
        for t in run["tasks"]:
            if not t["disagreements"]:
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"disagreements-{t['task']}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                for d in t["disagreements"]:
                    fh.write(json.dumps(d, ensure_ascii=False) + "\n")
            written.append(str(path))
        targets = (("json", "write_json"), ("markdown", "write_markdown"), ("report", "write_html"))
        for option, fn in targets:
            target = _path_option(self.config, option)
            if target is not None:
                from pytest_parity import report

                kwargs = {"append": True} if option == "markdown" else {}
                getattr(report, fn)(run, target, **kwargs)
                written.append(f"{option}: {target}")
        return written


def _run_dir(out: Path, contract: str, started: str) -> Path:
    """This run's folder of disagreement files, ``<out>/<contract>/<start, UTC>``: a second run,
    of this contract or another with the same task names, never overwrites the first one's."""
    stamp = started.replace("-", "").replace(":", "").replace("+0000", "Z").replace("+00:00", "Z")
    base = out / contract / stamp
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{stamp}-{n}")
    return path
