"""The pytest-html integration: columns, per-test extras and the run summary in a real report."""

from __future__ import annotations

import base64
import hashlib
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from run_builders import HOSTILE, make_run

from pytest_parity.report.pytest_html import (
    COLUMNS,
    ParityHtmlHooks,
    add_csp,
    row_cells,
    task_extras,
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.events: list[str] = []
        self.text: list[str] = []
        self.blob: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.events += [a for a, _ in attrs if a.startswith("on")]
        for a, v in attrs:
            if a == "data-jsonblob":
                self.blob = v

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(fragment: str) -> _Tags:
    p = _Tags()
    p.feed(fragment)
    p.close()
    return p


class _Report:
    def __init__(self, props: list[tuple[str, Any]], when: str = "call") -> None:
        self.user_properties = props
        self.when = when


def test_header_adds_four_sortable_columns_after_the_test_name() -> None:
    cells = ["<th>Result</th>", "<th>Test</th>", "<th>Duration</th>", "<th>Links</th>"]
    ParityHtmlHooks(lambda: None).pytest_html_results_table_header(cells)
    assert len(cells) == 8
    assert cells[:2] == ["<th>Result</th>", "<th>Test</th>"]
    for col, cell in zip(COLUMNS, cells[2:6], strict=True):
        assert f'data-column-type="{col}"' in cell and 'class="sortable' in cell
    assert cells[6:] == ["<th>Duration</th>", "<th>Links</th>"]


def test_row_of_a_parity_test_shows_scores_delta_and_verdict() -> None:
    task = make_run()["tasks"][1]
    cells = ["<td>failed</td>", "<td>t[safety_refusals]</td>", "<td>1 s</td>", "<td></td>"]
    ParityHtmlHooks(lambda: None).pytest_html_results_table_row(
        _Report([("parity_task", task)]), cells
    )
    assert len(cells) == 8
    text = ["".join(_parse(c).text) for c in cells[2:6]]
    assert text == [
        "97.0%",
        "94.9%",
        "−2.10 [−3.40, −0.90] pts (90% CI) (tolerance 0.50)",
        "FAIL",
    ]


def test_row_of_a_check_test_shows_that_checks_status() -> None:
    task = make_run()["tasks"][2]  # INCONCLUSIVE overall, failure_modes PASS
    cells = row_cells(task, "failure_modes")
    assert "PASS" in cells[3] and "INCONCLUSIVE" not in cells[3]


def test_row_of_another_test_keeps_the_column_count() -> None:
    cells = ["<td>passed</td>", "<td>test_x</td>", "<td>1 ms</td>", "<td></td>"]
    ParityHtmlHooks(lambda: None).pytest_html_results_table_row(_Report([("other", 1)]), cells)
    assert len(cells) == 8 and all(c.endswith("></td>") for c in cells[2:6])


def test_task_extras_are_html_evidence_and_json_numbers() -> None:
    task = make_run()["tasks"][1]
    html_extra, json_extra = task_extras(task)
    assert html_extra["format_type"] == "html" and json_extra["format_type"] == "json"
    parsed = _parse(html_extra["content"])
    assert "script" not in parsed.tags and "img" not in parsed.tags and not parsed.events
    assert 'class="pp-flip"' in html_extra["content"]
    assert 'id="task-' not in html_extra["content"]  # one task shows in several tests' extras
    assert 'class="pp-direction"' in html_extra["content"]
    assert "<svg" in html_extra["content"]
    assert json_extra["content"]["checks"]["delta"]["numbers"]["b"] == 11


def test_summary_is_empty_until_the_run_exists() -> None:
    prefix: list[str] = []
    ParityHtmlHooks(lambda: None).pytest_html_results_summary(prefix)
    assert prefix == []
    run = make_run()
    ParityHtmlHooks(lambda: run).pytest_html_results_summary(prefix)
    assert len(prefix) == 1 and run["contract"]["digest"] in prefix[0]
    assert "<svg" in prefix[0]


CONFTEST = """
import json
from pathlib import Path
from pytest_parity.report.pytest_html import ParityHtmlHooks

RUN = json.loads(Path(__file__).with_name("run.json").read_text(encoding="utf-8"))

def pytest_configure(config):
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(ParityHtmlHooks(lambda: RUN), "parity-html")

def pytest_generate_tests(metafunc):
    if "task" in metafunc.fixturenames:
        metafunc.parametrize("task", RUN["tasks"], ids=[t["task"] for t in RUN["tasks"]])
"""

TEST = """
def test_parity(task, record_property):
    record_property("parity_task", task)
    assert task["verdict"] == "PASS", task["verdict"]

def test_plain():
    pass
"""


def _tests_of(blob: str) -> dict[str, Any]:
    data = json.loads(blob)
    tests: dict[str, Any] = data["tests"]
    return tests


@pytest.mark.slow
def test_real_pytest_html_report_carries_parity_rows_extras_and_summary(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_html")
    pytester.makefile(".json", run=json.dumps(make_run()))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gate=TEST)
    result = pytester.runpytest(
        "--html=report.html", "--self-contained-html", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2, failed=2)
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    parsed = _parse(page)
    assert parsed.blob is not None
    tests = _tests_of(parsed.blob)
    rows = {tid: entries[-1] for tid, entries in tests.items()}
    safety = next(v for k, v in rows.items() if "safety_refusals" in k)
    cells = "".join(safety["resultsTableRow"])
    assert "col-parityVerdict" in cells and "FAIL" in cells and "94.9%" in cells
    plain = next(v for k, v in rows.items() if k.endswith("test_plain"))
    assert len(plain["resultsTableRow"]) == len(safety["resultsTableRow"])
    extras_html = [e["content"] for e in safety["extras"] if e["format_type"] == "html"]
    assert len(extras_html) == 1
    evidence = _parse(extras_html[0])
    assert "script" not in evidence.tags and "img" not in evidence.tags and not evidence.events
    shown = "".join(evidence.text)
    for bad in HOSTILE:
        assert bad in shown
    # the run summary sits in the page itself (rendered server-side by pytest-html)
    assert "3f1a9c0e5b7d2468" in page and 'class="pp-forest"' in page
    assert page.count("<script>alert(1)</script>") == 0
    # pytest-html's own script, and only it, is allowed by the page's CSP (by its hash)
    head = page[: page.index("</head>")]
    csp = head.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    app = page.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(app.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert page.index("Content-Security-Policy") < page.index("<style")


def test_csp_is_added_once_and_only_where_pytest_html_script_is() -> None:
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"/></head><body>'
        '<div onclick="location.reload()"></div><div id="data-container" data-jsonblob="{}">'
        "</div>\n<script>run()</script></body></html>"
    )
    secured = add_csp(page)
    assert secured.startswith('<!DOCTYPE html><html><head><meta http-equiv="Content-Security')
    assert "'unsafe-hashes'" in secured and secured.count("'sha256-") == 2
    assert add_csp(secured) == secured  # once
    assert add_csp(page.replace("<script>run()</script>", "")) == page.replace(
        "<script>run()</script>", ""
    )  # not pytest-html's page as it knows it: left as it is


class _PluginReport:
    """A report as the plugin makes it: results ride on it, the test id names task and check."""

    def __init__(self, nodeid: str, results: list[Any] | None = None) -> None:
        self.nodeid = nodeid
        self.when = "call"
        self.user_properties: list[Any] = []
        if results is not None:
            self.parity_results = results


def test_rows_find_their_task_from_the_plugins_results_and_test_id() -> None:
    run = make_run()
    qa = dict(run["tasks"][0], task="qa")
    qa_long = dict(run["tasks"][1], task="qa-long")
    hooks = ParityHtmlHooks(lambda: None)
    hooks.pytest_runtest_logreport(_PluginReport("c.yaml::test_parity[qa-delta]", [qa, qa_long]))

    def cells(nodeid: str) -> list[str]:
        row = ["<td>r</td>", "<td>t</td>", "<td>d</td>", "<td>l</td>"]
        hooks.pytest_html_results_table_row(_PluginReport(nodeid), row)
        return ["".join(_parse(c).text) for c in row[2:6]]

    assert cells("c.yaml::test_parity[qa-delta]")[::3] == ["84.2%", "PASS"]
    # "qa" must not claim the task "qa-long"; the check's own status shows
    assert cells("c.yaml::test_parity[qa-long-failure_modes]")[::3] == ["97.0%", "FAIL"]
    assert cells("c.yaml::test_parity[unknown-delta]") == ["", "", "", ""]
    assert cells("tests/test_x.py::test_plain") == ["", "", "", ""]
