"""The pytest wiring: options, contract loading, generated tests, fixtures.

This module and :mod:`pytest_parity.session` are the only ones that import pytest. It is loaded
by the ``pytest11`` entry point in every pytest run of the environment, so everything heavy
(numpy, scipy, httpx, lm_eval, pytest_html) and the session itself are imported inside the hooks
that first need them, and only when a contract is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract, EndpointSpec, TaskSpec
    from pytest_parity.records import CheckResult, TaskResult
    from pytest_parity.runner import TaskRun
    from pytest_parity.session import ParitySession
    from pytest_parity.session.monitoring import MonitorRun

PARITY_KEY = pytest.StashKey["ParitySession"]()
MONITOR_KEY = pytest.StashKey["MonitorRun"]()


def __getattr__(name: str) -> Any:
    # ``pytest_parity.plugin.ParityRunError``, as before the session had a package of its own,
    # without importing the session in runs that give no contract.
    if name == "ParityRunError":
        from pytest_parity.session import ParityRunError

        return ParityRunError
    raise AttributeError(name)


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
        "plan",
        "print the pre-migration plan (and write it as JSON to the path given)",
        metavar="PATH",
        nargs="?",
        const="-",
        help="print per task the flip rate, the items needed for 80%% / 90%% power, the requests"
        " and wall time they cost, the chance the contract passes if nothing changed, and the"
        " coverage audit; with PATH also write it as JSON. Nothing is gated",
    )
    add(
        "plan-pilot",
        metavar="N",
        type=int,
        help="items of each task the plan's pilot asks of both stacks (default 100)",
    )
    add(
        "plan-from",
        metavar="PATH",
        help="plan from an A/A recording (a --parity-record file, against the baseline asked"
        " again) or from a previous run's --parity-json file (nothing sent)",
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
        "monitor",
        action="store_true",
        default=False,
        help="drift monitor: judge the shadow pairs stored since the last run, continue each"
        " segment's sequence, alert (exit 10) when one drifts (see the README's 'Drift after"
        " cutover')",
    )
    add(
        "monitor-reset",
        action="store_true",
        default=False,
        help="with --parity-monitor: forget the stored sequences and checkpoints, start over",
    )
    add(
        "monitor-metrics",
        metavar="PATH",
        help="with --parity-monitor: write the segments' gauges to PATH (node_exporter textfile)",
    )
    add(
        "monitor-report",
        metavar="PATH",
        help="with --parity-monitor: write the drift report (HTML) to PATH",
    )
    add(
        "lock",
        metavar="PATH",
        help="write the digests of everything that decides the verdict (contract, data, scorer"
        " code, judge prompts, pytest-parity version) to PATH",
    )
    add(
        "lock-check",
        metavar="PATH",
        help="stop with exit 4 before anything is sent when an input of the verdict differs"
        " from the lock at PATH, naming what changed",
    )
    add(
        "max-time",
        metavar="SECONDS",
        type=float,
        help="bound the run's wall time: tasks still running after SECONDS end as errors",
    )


# ----------------------------------------------------------------------------------------------
# configuration


def _option(config: pytest.Config, name: str) -> Any:
    from pytest_parity.session.options import option

    return option(config, name)


def _load(config: pytest.Config, path: str) -> Contract:
    """The contract, relative to the invocation directory (or the ini file naming it)."""
    from pytest_parity.contract.spec import ContractError, load_contract

    base = config.invocation_params.dir
    if not config.getoption("parity_contract") and config.inipath is not None:
        base = config.inipath.parent  # an ini setting is relative to the ini file
    full = Path(path) if Path(path).is_absolute() else base / path
    try:
        return load_contract(full if full.exists() else Path(path))
    except ContractError as exc:
        raise pytest.UsageError(str(exc)) from None


def _install_redact_hook(config: pytest.Config, contract: Contract) -> None:
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


def _prepare_tasks(config: pytest.Config, contract: Contract) -> None:
    """Bad data or a scorer that cannot be imported stops the run before any request."""
    from pytest_parity import registry
    from pytest_parity.contract.spec import one_line
    from pytest_parity.sources.base import SourceError

    for i, task in enumerate(contract.tasks):
        try:
            source = registry.sources.get(task.source)
            source.bind(task, {"baseline": contract.baseline, "candidate": contract.candidate})
            source.prepare(task)
        except SourceError as exc:
            raise pytest.UsageError(one_line(f"{exc} (task {task.name})")) from None
        if ":" in task.scorer and not hasattr(config, "workerinput"):
            # xdist's controller checks it: workers set up their import path only after
            # configuring.
            from pytest_parity.scoring.builtin import ScorerError
            from pytest_parity.scoring.resolve import check_scorer

            try:
                check_scorer(task.scorer, task.scorer_options)
            except ScorerError as exc:
                raise pytest.UsageError(
                    one_line(f"{contract.path}: tasks[{i}].scorer: {exc}")
                ) from None


def _preflight(config: pytest.Config, contract: Contract) -> dict[str, Any] | None:
    """Both stacks reachable, serving the model, taking the key: else exit 4 before any task."""
    if hasattr(config, "workerinput") or config.option.collectonly or config.option.help:
        return None  # the xdist controller checked them; --collect-only and --help send nothing
    if _option(config, "no-preflight"):
        return None
    from pytest_parity import registry
    from pytest_parity.contract.spec import one_line

    if not any(registry.sources.get(t.source).sends_requests for t in contract.tasks):
        return None  # every task's answers are stored (source: shadow): no stack is asked
    from pytest_parity.endpoints.preflight import PreflightError, run_preflight

    try:
        return run_preflight(contract)
    except PreflightError as exc:
        raise pytest.UsageError(one_line(str(exc))) from None


def _register(config: pytest.Config, session: ParitySession) -> None:
    """The session's hook objects: results on test reports, the end of the run, pytest-html,
    and the xdist controller's one-worker-per-task scheduler."""
    from pytest_parity.session.outputs import RunEnd
    from pytest_parity.session.transport import ResultTransport, XdistHooks

    config.stash[PARITY_KEY] = session
    config.pluginmanager.register(GateCollection(session.contract), "parity-collection")
    config.pluginmanager.register(ResultTransport(session), "parity-session")
    config.pluginmanager.register(RunEnd(session), "parity-run-end")
    if config.pluginmanager.hasplugin("html"):
        from pytest_parity.report.pytest_html import ParityHtmlHooks

        config.pluginmanager.register(ParityHtmlHooks(session.run_result), "parity-html")
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        # The checks of one task share one run: each task on exactly one worker.
        config.pluginmanager.register(XdistHooks(session.contract, session), "parity-xdist")


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
    contract = _load(config, path)
    _install_redact_hook(config, contract)
    _prepare_tasks(config, contract)
    if _option(config, "aa"):
        from pytest_parity.session.state import refuse_aa_on_stored_answers

        refuse_aa_on_stored_answers(contract)
    if _option(config, "audit"):
        from pytest_parity.report.audit import audit_lines

        print("\n".join(audit_lines(contract)))
        pytest.exit("parity audit done: nothing was sent", returncode=0)
    plan = _option(config, "plan")
    if plan and not hasattr(config, "workerinput"):
        from pytest_parity.session.options import out_path
        from pytest_parity.session.plan import run_plan

        if plan != "-" and not str(plan).endswith(".json"):
            # ``--parity-plan tests/`` would otherwise take the test path for the plan's file.
            raise pytest.UsageError(
                f"--parity-plan={plan}: the plan is written as JSON to a .json file (hint:"
                " --parity-plan=plan.json, or put test paths before --parity-plan)"
            )
        target = None if plan == "-" else out_path(config, str(plan))
        print("\n".join(run_plan(config, contract, target)))
        pytest.exit("parity plan done: nothing was gated", returncode=0)
    if _option(config, "monitor"):
        from pytest_parity.session.monitoring import MonitorRun

        monitor = MonitorRun(config, contract)
        config.stash[MONITOR_KEY] = monitor
        config.pluginmanager.register(
            GateCollection(contract, monitor=monitor.task_names()), "parity-collection"
        )
        config.pluginmanager.register(monitor, "parity-monitor")
        return
    from pytest_parity.session.lock import apply_lock

    lock = apply_lock(config, contract)  # a changed input stops the run before any request
    preflight = _preflight(config, contract)  # before the session starts recordings afresh
    from pytest_parity.session import ParitySession

    session = ParitySession(config, contract)
    session.preflight = preflight
    session.lock = lock
    _register(config, session)


# ----------------------------------------------------------------------------------------------
# collection: the contract file becomes a test module of generated tests


class GateCollection:
    """The contract file as a test module of generated tests, one per task and check. A plugin
    object, not module hooks: this module is also the generated tests' module, whose own
    ``pytest_generate_tests`` pytest would call a second time."""

    def __init__(self, contract: Contract, *, monitor: list[str] | None = None) -> None:
        self.contract = contract
        self.monitor = monitor  # --parity-monitor: one drift test per monitored task

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

        xdist = metafunc.config.pluginmanager.hasplugin("xdist")
        params = []
        for task in self.contract.tasks:
            if self.monitor is not None:
                from pytest_parity.session.monitoring import DRIFT

                ids: list[str] = [DRIFT] if task.name in self.monitor else []
            else:
                ids = [tid for c in enabled(task) for tid in c.test_ids(task)]
            for check in ids:
                marks: list[pytest.MarkDecorator] = [pytest.mark.parity]
                if task.safety_critical:
                    marks.append(pytest.mark.safety_critical)
                if xdist:
                    marks.append(pytest.mark.xdist_group(task.name))
                case = (task.name, check)
                params.append(pytest.param(case, id=f"{task.name}-{check}", marks=marks))
        metafunc.parametrize("parity_case", params)


# ----------------------------------------------------------------------------------------------
# the generated tests


class GateModule(pytest.Module):
    """The contract file as a test module: its tests are this plugin's ``test_parity``."""

    def _getobj(self) -> Any:
        return sys.modules[__name__]


def test_parity(parity_check: CheckResult) -> None:
    """One part of parity for one task of the contract (generated per task and check)."""
    from pytest_parity.report.bidi import printable

    status = parity_check["status"]
    # shown in the terminal: a segment name or an answer cannot reorder or recolour the line
    reasons = printable("; ".join(parity_check["reasons"]))
    if status == "PASS":
        return
    if status == "SKIP":
        pytest.skip(reasons or "check not applicable")
    if status == "INCONCLUSIVE" and parity_check["numbers"].get("policy") == "warn":
        pytest.xfail(f"INCONCLUSIVE: {reasons}")
    pytest.fail(f"{parity_check['name']} {status}: {reasons}", pytrace=False)


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
def parity_check(parity_case: tuple[str, str], request: pytest.FixtureRequest) -> CheckResult:
    """The check this generated test asserts (in monitor mode: the task's drift monitor)."""
    monitor: MonitorRun | None = request.config.stash.get(MONITOR_KEY, None)
    if monitor is not None:
        check: CheckResult | None = monitor.check(parity_case[0])
    else:
        parity_result: TaskResult = request.getfixturevalue("parity_result")
        check = parity_result["checks"].get(parity_case[1])
    from pytest_parity.session import ParityRunError

    if check is None:
        raise ParityRunError(f"task {parity_case[0]}: check {parity_case[1]} was not computed")
    if check["status"] == "ERROR":
        raise ParityRunError(f"task {parity_case[0]}: {'; '.join(check['reasons'])}")
    return check
