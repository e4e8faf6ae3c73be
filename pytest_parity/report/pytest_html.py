"""pytest-html integration: parity columns in the results table, the verdict in the summary, and
each task's evidence (tables, forest plot, disagreements) as the extras of its test.

Registered by the plugin only when pytest-html is there (an unguarded ``pytest_html_*`` hook is
an "unknown hook" error without it)::

    if config.pluginmanager.hasplugin("html"):
        from pytest_parity.report.pytest_html import ParityHtmlHooks
        config.pluginmanager.register(ParityHtmlHooks(get_run), "parity-html")

A row finds its task in one of two ways: the report carries the TaskResult as the user property
``parity_task`` (plain builtins, so it crosses xdist) with ``parity_check`` naming the check; or,
as the plugin does it, a report carries ``parity_results`` (the TaskResults evaluated during that
test) and the test id is ``[<task>-<check>]``. Rows are built as pytest-html sees each report,
after this class has seen every earlier report's results. The summary reads ``get_run()`` in
pytest-html's ``pytest_sessionfinish`` (trylast), after the plugin's own session finish.

Nothing here imports pytest or pytest-html at module import time: pytest-html is imported inside
:func:`task_extras`, and the hook wrapper is marked through pluggy, which pytest is built on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from typing import Any

from pluggy import HookimplMarker

from pytest_parity import registry
from pytest_parity.records import RunResult
from pytest_parity.report.formats import plain
from pytest_parity.report.html.sections import (
    CSS,
    badge,
    interval_text,
    percent,
    scrollable,
    summary_table,
)
from pytest_parity.report.html.svg import delta_numbers, esc, forest_svg, number
from pytest_parity.report.html.task import task_html
from pytest_parity.report.numfmt import points

USER_PROPERTY = "parity_task"
CHECK_PROPERTY = "parity_check"
COLUMNS = ("parityBaseline", "parityCandidate", "parityDelta", "parityVerdict")
_HEADERS = ("Baseline", "Candidate", "Delta, pts [interval]", "Parity verdict")

hookimpl = HookimplMarker("pytest")
# pytest-html left-aligns every cell (``#results-table td``, an id's weight): the parity numbers,
# in the row and in the extras' tables, read right-aligned in tabular figures.
_NUMBERS_CSS = (
    "#results-table td.col-parityBaseline,#results-table td.col-parityCandidate,"
    "#results-table td.col-parityDelta{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}#results-table .pp td.pp-num{text-align:right}"
)

# The Content-Security-Policy put into pytest-html's page once it is written. The page runs one
# inline script of its own (its app.js, allowed by its SHA-256) and one inline handler, the
# "reload" button's ``location.reload()`` (allowed by hash: 'unsafe-hashes' allows no other
# handler); so no other script, handler or ``javascript:`` URL runs, whatever an extra holds.
# Styles may be inline (pytest-html and the extras set them) or the page's own files (assets/),
# images and videos those files or data: URIs. Nothing else loads: no remote script, style,
# font, frame, plugin object or fetch; no <base>; no form posts anywhere.
_RELOAD = "location.reload()"
_CSP = (
    "default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'"
)
_APP_SCRIPT = re.compile(r'(<div id="data-container"[^>]*></div>\s*<script>)(.*?)(</script>)', re.S)


def _sha256(text: str) -> str:
    import base64
    import hashlib

    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def add_csp(page: str) -> str:
    """pytest-html's page with a Content-Security-Policy that lets its own script run and no
    other (:data:`_CSP`); unchanged when the page already has one or its script is not found."""
    found = _APP_SCRIPT.search(page)
    if found is None or "Content-Security-Policy" in page[: page.find("</head>")]:
        return page
    scripts = [_sha256(found.group(2))]
    if f'onclick="{_RELOAD}"' in page:
        scripts += ["'unsafe-hashes'", _sha256(_RELOAD)]
    meta = (
        '<meta http-equiv="Content-Security-Policy" content="'
        + _CSP.format(scripts=" ".join(scripts))
        + '">'
    )
    # first in <head>, before any style or script it governs
    return re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + meta, page, count=1)


def _pytest_html_path(config: Any) -> Any:
    """Where pytest-html writes its page (its report object's path), or None."""
    try:
        from pytest_html.basereport import BaseReport
    except ImportError:
        return None
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, BaseReport):
            return getattr(plugin, "_report_path", None)
    return None


def _property(report: Any, name: str) -> Any:
    for entry in getattr(report, "user_properties", None) or ():
        if isinstance(entry, tuple | list) and len(entry) == 2 and entry[0] == name:
            return entry[1]
    return None


def task_of(report: Any) -> Mapping[str, Any] | None:
    """The TaskResult a parity test attached to its report, or None for any other test."""
    task = _property(report, USER_PROPERTY)
    return task if isinstance(task, Mapping) else None


def row_cells(task: Mapping[str, Any] | None, check: str | None = None) -> list[str]:
    """The four parity cells of one results-table row (empty cells for a non-parity test)."""
    if task is None:
        return [f'<td class="col-{c}"></td>' for c in COLUMNS]
    status = task.get("verdict", "SKIP")
    checks = task.get("checks")
    if check and isinstance(checks, Mapping) and isinstance(checks.get(check), Mapping):
        status = checks[check].get("status", status)
    return [
        f'<td class="col-parityBaseline">{percent(number(task, "baseline_score"))}</td>',
        f'<td class="col-parityCandidate">{percent(number(task, "candidate_score"))}</td>',
        f'<td class="col-parityDelta">{esc(interval_text(delta_numbers(task)))}'
        f" (tolerance {esc(points(number(task, 'tolerance'), signed=False))})</td>",
        f'<td class="col-parityVerdict">{badge(status)}</td>',
    ]


def task_extras(task: Mapping[str, Any]) -> list[dict[str, Any]]:
    """pytest-html extras for one task: its full evidence as HTML, and its numbers as JSON."""
    from pytest_html import extras

    from pytest_parity.report.signoff import task_facts

    facts = "".join(f"<li>{esc(f)}</li>" for f in task_facts(task))
    page = (
        f'<div class="pp"><style>{CSS}{_NUMBERS_CSS}</style>'
        + (f'<ul class="pp-task-facts">{facts}</ul>' if facts else "")
        + f"{scrollable(task_html(task, level=3, anchor=False))}</div>"
    )
    # pytest-html json.dumps the content itself: hand it the plain record.
    numbers = plain(task)
    return [extras.html(page), extras.json(numbers, name="parity numbers")]


def summary_html(run: RunResult) -> str:
    """The run verdict for pytest-html's summary: the same sign-off facts as the standalone
    report's first page (verdict, reasons by status, items needed, A/A, pass chance, the block
    to sign with the lock digest), then the plot and the table."""
    from pytest_parity.report.html.first_page import FIRST_PAGE_CSS, first_page

    contract = run.get("contract") or {}
    overall = str(run.get("overall", "SKIP"))
    tasks = run.get("tasks") or []
    return (
        f'<div class="pp"><style>{CSS}{FIRST_PAGE_CSS}{_NUMBERS_CSS}</style>'
        f"<h2>Parity {badge(overall)}</h2>"
        + first_page(run, links=False)
        + f'<p class="pp-muted">contract {esc(contract.get("path", "?"))} \u00b7 sha256 '
        f"{esc(contract.get('digest', '?'))} \u00b7 pytest-parity "
        f"{esc(run.get('tool_version', '?'))}</p>"
        f"{forest_svg(tasks)}{scrollable(summary_table(tasks))}</div>"
    )


class ParityHtmlHooks:
    """pytest-html hook implementations; register only when pytest-html is loaded."""

    def __init__(self, get_run: Callable[[], RunResult | None]) -> None:
        self._get_run = get_run
        self._tasks: dict[str, Mapping[str, Any]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        # Runs before pytest-html's (trylast) logreport, which is where rows are built.
        for result in getattr(report, "parity_results", None) or ():
            if isinstance(result, Mapping) and isinstance(result.get("task"), str):
                self._tasks[result["task"]] = result
        task = task_of(report)
        if task is not None and isinstance(task.get("task"), str):
            self._tasks[task["task"]] = task

    def lookup(self, report: Any) -> tuple[Mapping[str, Any] | None, str | None]:
        """The task (and check) a report belongs to, or (None, None) for any other test."""
        check = _property(report, CHECK_PROPERTY)
        check = check if isinstance(check, str) else None
        task = task_of(report)
        if task is not None:
            return task, check
        match = re.search(r"\[(.+)\]$", str(getattr(report, "nodeid", "")))
        if match is None:
            return None, None
        param = match.group(1)
        # The longest task name that fits, so "qa" does not claim "qa-long-failure_modes".
        for name in sorted(self._tasks, key=len, reverse=True):
            if param == name:
                return self._tasks[name], check
            rest = param[len(name) + 1 :]
            if param.startswith(name + "-") and (
                rest in (self._tasks[name].get("checks") or {})
                or rest.split(":", 1)[0] in registry.checks
            ):
                return self._tasks[name], rest
        return None, None

    task_extras = staticmethod(task_extras)

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        at = min(2, len(cells))
        for i, (col, title) in enumerate(zip(COLUMNS, _HEADERS, strict=True)):
            cells.insert(at + i, f'<th class="sortable" data-column-type="{col}">{title}</th>')

    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        at = min(2, len(cells))
        cells[at:at] = row_cells(*self.lookup(report))

    def pytest_html_results_summary(self, prefix: list[str]) -> None:
        run = self._get_run()
        if run is not None:
            prefix.append(summary_html(run))

    @hookimpl(hookwrapper=True)
    def pytest_sessionfinish(self, session: Any) -> Generator[None, Any, None]:
        # pytest-html writes its page in its own (trylast) session finish; after it, the CSP.
        yield
        path = _pytest_html_path(session.config)
        if path is not None and path.is_file():
            # newline="": the script is hashed as the browser will read it, byte for byte
            with open(path, encoding="utf-8", newline="") as f:
                page = f.read()
            secured = add_csp(page)
            if secured != page:
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(secured)

    @hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self) -> Generator[None, Any, None]:
        # Extras ride on the call report; xdist ships them to the controller with it.
        outcome = yield
        report = outcome.get_result()
        task = task_of(report) if report.when == "call" else None
        if task is not None:
            report.extras = [*getattr(report, "extras", []), *task_extras(task)]
