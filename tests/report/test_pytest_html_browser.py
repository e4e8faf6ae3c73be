"""pytest-html's page with the parity columns and extras, in headless Chromium: it carries a
Content-Security-Policy that lets pytest-html's own script run and nothing else, renders with no
console problem (CSP violations included), self-contained or with its assets/ folder, and shows
the parity numbers right-aligned. Skipped without Chromium or pytest-html."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM, Chromium
from payloads import PYTEST_HTML_CONFTEST, hostile_run

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
    pytest.mark.slow,
]

# a conftest that slips a script of its own into the summary: the CSP must stop it
SNEAK = """
def pytest_html_results_summary(prefix):
    prefix.append("<script>document.title='PWNED'</script><p id=sneaked>sneaked</p>")
"""

ALIGN_PROBE = """
(() => {
  const align = (sel) => [...document.querySelectorAll(sel)].map((e) => getComputedStyle(e).textAlign);
  return {row: align('td.col-parityDelta'), extras: align('.extraHTML .pp td.pp-num'),
          text: align('.extraHTML .pp td:not(.pp-num)').slice(0, 5),
          rows: document.querySelectorAll('tbody.results-table-row').length};
})()
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


def _report(pytester: pytest.Pytester, *args: str, extra_conftest: str = "") -> Path:
    pytest.importorskip("pytest_html")
    pytester.makefile(".json", run=json.dumps(hostile_run()))
    pytester.makeconftest(PYTEST_HTML_CONFTEST + extra_conftest)
    pytester.makepyfile(
        test_gate="def test_parity(task, record_property):\n"
        "    record_property('parity_task', task)\n"
    )
    result = pytester.runpytest("--html=out/report.html", *args)
    result.assert_outcomes(passed=3)
    return pytester.path / "out" / "report.html"


def _csp(page: str) -> str:
    head = page[: page.index("</head>")]
    assert head.count("Content-Security-Policy") == 1
    return head.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]


@pytest.mark.parametrize("mode", ["self-contained", "assets"])
def test_pytest_html_page_runs_its_script_under_a_csp_with_no_console_problem(
    pytester: pytest.Pytester, browser: Chromium, mode: str
) -> None:
    args = ("--self-contained-html",) if mode == "self-contained" else ()
    path = _report(pytester, *args)
    csp = _csp(path.read_text(encoding="utf-8"))
    for directive in ("default-src 'none'", "object-src 'none'", "base-uri 'none'",
                      "form-action 'none'", "script-src 'sha256-"):  # fmt: skip
        assert directive in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "http" not in csp and "*" not in csp  # nothing remote
    browser.media("")
    browser.viewport(1400, 1000)
    browser.load(path.as_uri())
    browser.evaluate("document.getElementById('show_all_details').click()")
    assert browser.problems() == []  # no CSP violation, no script error, no failed load
    got: dict[str, Any] = browser.evaluate(ALIGN_PROBE)
    # pytest-html's script ran (it builds the rows from its JSON) and our numbers are right-aligned
    assert got["rows"] == 3
    assert got["row"] and set(got["row"]) == {"right"}
    assert got["extras"] and set(got["extras"]) == {"right"}
    assert "left" in got["text"]  # words stay left-aligned
    if mode == "assets":  # its stylesheet in assets/ loaded: pytest-html's layout is there
        assert (
            browser.evaluate(
                "getComputedStyle(document.getElementById('results-table')).borderCollapse"
            )
            == "collapse"
        )
    text = browser.evaluate("document.body.innerText")
    assert "Sure!" not in text or "PWNED" not in browser.evaluate("document.title")
    assert "<img src=x onerror=" in text  # the payloads show as text
    if os.environ.get("PARITY_SCREENSHOT_DIR"):
        browser.screenshot(Path(os.environ["PARITY_SCREENSHOT_DIR"]) / f"pytest-html-{mode}.png")


def test_a_script_slipped_into_pytest_html_page_is_blocked(
    pytester: pytest.Pytester, browser: Chromium
) -> None:
    path = _report(pytester, "--self-contained-html", extra_conftest=SNEAK)
    browser.media("")
    browser.viewport(1400, 1000)
    browser.load(path.as_uri())
    assert browser.evaluate("document.getElementById('sneaked').textContent") == "sneaked"
    assert "PWNED" not in browser.evaluate("document.title")
    assert browser.evaluate("document.querySelectorAll('tbody.results-table-row').length") == 3
    blocked = browser.problems()
    assert blocked and all("Content Security Policy" in p for p in blocked), blocked
