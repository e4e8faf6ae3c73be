"""The reports in a real browser (headless Chromium): they render, log no console errors, and
model output that tries to run script stays text. Skipped where no Chromium is installed
(``apt-get install chromium``)."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM
from payloads import PYTEST_HTML_CONFTEST
from run_builders import make_run

from pytest_parity import report

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
    pytest.mark.slow,
]
PWN = (
    "<script>document.title='PWNED'</script>",
    "<img src=x onerror=\"document.title='PWNED'\">",
    "</td></tr></table></div></section><script>document.title='PWNED'</script>",
)


def _make_run() -> Any:
    run = make_run()
    rows = run["tasks"][1]["disagreements"]
    for row, bad in zip(rows, PWN, strict=False):
        row["candidate_output"] = f"Sure! {bad}"
        row["prompt"] = f"Render this: {bad}"
    run["overall_reasons"].append(PWN[0])
    run["contract"]["candidate"]["model"] = "fp8</title>" + PWN[0]
    return run


def _chromium(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.tags: list[str] = []
        self.events: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.events += [a for a, _ in attrs if a.startswith("on")]
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False if tag == "title" else self._in_title

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _dom(text: str) -> _Dom:
    d = _Dom()
    d.feed(text)
    d.close()
    return d


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the pixel data holds (blank ~ few)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def test_standalone_report_renders_with_no_console_errors(tmp_path: Path) -> None:
    page = tmp_path / "parity.html"
    report.write_html(_make_run(), page)
    shot = tmp_path / "parity.png"
    done = _chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []  # no script error, no CSP violation, nothing
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (1280, 2000)
    assert colours > 40  # a rendered page, not a blank one


def test_injected_script_does_not_run_and_shows_as_text(tmp_path: Path) -> None:
    run = _make_run()
    page = tmp_path / "parity.html"
    report.write_html(run, page)
    done = _chromium(tmp_path, page.as_uri(), "--dump-dom", "--virtual-time-budget=3000")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _dom(done.stdout)
    assert dom.title.startswith("Parity FAIL: fp8</title><script>")  # the title, as text
    assert "PWNED" not in dom.title.replace("document.title='PWNED'", "")
    assert "script" not in dom.tags and "img" not in dom.tags and not dom.events
    assert "Sure! &lt;script&gt;document.title='PWNED'&lt;/script&gt;" in done.stdout
    assert _console(done.stderr) == []


def test_pytest_html_report_renders_extras_without_running_them(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytest.importorskip("pytest_html")
    pytester.makefile(".json", run=json.dumps(_make_run()))
    pytester.makeconftest(PYTEST_HTML_CONFTEST)
    pytester.makepyfile(
        test_gate="def test_parity(task, record_property):\n"
        "    record_property('parity_task', task)\n"
    )
    result = pytester.runpytest("--html=report.html", "--self-contained-html")
    result.assert_outcomes(passed=3)
    done = _chromium(
        tmp_path,
        (pytester.path / "report.html").as_uri(),
        "--dump-dom",
        "--virtual-time-budget=5000",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _dom(done.stdout)
    assert "PWNED" not in dom.title
    # pytest-html's own script rendered our rows and extras into the page
    assert "col-parityVerdict" in done.stdout and 'class="pp-flip"' in done.stdout
    assert "Sure! &lt;img src=x onerror=" in done.stdout
    assert not [e for e in dom.events if e == "onerror"]
    assert [line for line in _console(done.stderr) if "PWNED" in line] == []


def test_report_prints_with_each_task_on_its_own_pages(tmp_path: Path) -> None:
    run = _make_run()
    from test_report import error_task

    # twelve short sections: on screen they would share pages, in print each starts its own
    run["tasks"] = [dict(error_task(), task=f"t{i}") for i in range(12)]
    page = tmp_path / "parity.html"
    report.write_html(run, page)
    pdf = tmp_path / "parity.pdf"
    done = _chromium(tmp_path, page.as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert done.returncode == 0, done.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert pages >= 1 + len(run["tasks"])
