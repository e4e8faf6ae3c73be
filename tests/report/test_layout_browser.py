"""The standalone report laid out in a real browser (issue 21 item 8): headless Chromium, screen
widths 1400 and 760 px and print, for a realistic run and for one built to break a layout.

How it is checked, and why this way:

* Chromium is driven over the DevTools protocol on a pipe (``tests/support/chromium.py``), not
  through ``--screenshot``/``--dump-dom`` flags: the page stays exactly as the report wrote it (its
  Content-Security-Policy allows no script, and none is added), the measurements are expressions
  the DevTools evaluate (a CSP does not apply to those), and the console is read as events
  (exceptions, ``console.error``, CSP violations and failed loads all arrive there).
* On screen (1400 and 760 px wide): the document is no wider than the viewport, and no element
  reaches past its right edge, except inside a wrapper made to scroll sideways (``overflow-x:
  auto``), which must itself be inside the viewport. The summary table must fit whole at 760 px
  (no scrolling for the one table a reader compares across).
* In print: ``Emulation.setEmulatedMedia('print')`` applies the print stylesheet as printing does
  (``window.matchMedia`` would only tell, not switch), at 688 CSS px, the width of an A4 page's
  content box (210 mm less the stylesheet's 2 x 14 mm margins, at 96 px per inch). There nothing
  may reach past the right edge, wrappers included (paper does not scroll: what overflows a
  wrapper is cut off in the PDF), every table's last column shows, and headings keep with what
  follows (``break-after: avoid``). The page is then printed to PDF too (A4, a real file), and
  no printed page may hold only a heading (one or two runs of text: its content streams are
  read with the standard library); where poppler's ``pdftotext`` is installed, no page may end
  with a heading or a label (``PROMPT``) whose text follows on the next page.
* Screenshots (full page) are decoded (PNG, plain Python) and must not be blank: the grey level
  varies. They are written under ``tmp_path`` and, when ``PARITY_SCREENSHOT_DIR`` is set, copied
  there with the PDFs, for a person to look at.

Skipped where no Chromium is installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium import CHROMIUM, Chromium, pdf_text_runs, png_stats
from payloads import every_check_run, hostile_run, twenty_task_run

from pytest_parity import report

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
    pytest.mark.slow,
]

WIDTHS = (1400, 760)
PRINT_WIDTH = 688  # A4 content box: (210 - 2 * 14) mm at 96 px per inch

RUNS = {"hostile": hostile_run, "twenty_tasks": twenty_task_run, "every_check": every_check_run}

# Everything reaching past the right edge (or left of the left one), described; inside a wrapper
# that scrolls sideways only the wrapper counts (on screen: ``exempt_scrollers`` true).
OVERFLOW_PROBE = """
((exemptScrollers) => {
  const W = document.documentElement.clientWidth;
  const scroller = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return p;
    }
    return null;
  };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.getAttribute('class') ? '.' + el.getAttribute('class').trim().split(/\\s+/).join('.') : '');
  const out = [];
  const check = (el, r, what) => {
    if (r.width === 0 && r.height === 0) return;
    if (r.right <= W + 0.5 && r.left >= -0.5) return;
    const s = scroller(el);
    if (exemptScrollers && s && s.getBoundingClientRect().right <= W + 0.5) return;
    out.push(what + ' right=' + Math.round(r.right) + ': ' + (el.textContent || '').trim().slice(0, 60));
  };
  for (const el of document.body.querySelectorAll('*')) check(el, el.getBoundingClientRect(), name(el));
  // text overflows its box without growing it: measure every text node too
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let t = walk.nextNode(); t; t = walk.nextNode()) {
    if (!t.textContent.trim()) continue;
    range.selectNodeContents(t);
    check(t.parentElement, range.getBoundingClientRect(), 'text in ' + name(t.parentElement));
  }
  return {width: W, innerWidth: innerWidth, scrollWidth: document.documentElement.scrollWidth,
          overflowing: out.slice(0, 25), count: out.length};
})
"""

TABLES_PROBE = """
(() => {
  const W = document.documentElement.clientWidth;
  return [...document.querySelectorAll('table')].map((t) => {
    const heads = t.rows.length ? [...t.rows[0].cells] : [];
    const last = heads.length ? heads[heads.length - 1] : t;
    return {cls: t.getAttribute('class') || '', right: t.getBoundingClientRect().right,
            lastRight: last.getBoundingClientRect().right, lastText: last.textContent.trim(),
            scrollW: t.scrollWidth, clientW: t.clientWidth, W: W};
  });
})()
"""

PROVENANCE_TEXT = """
(() => {
  let text = '';
  for (let el = document.getElementById('provenance'); el && el.tagName !== 'FOOTER';
       el = el.nextElementSibling) text += el.innerText + '\\n';
  return text;
})()
"""

HEADS = "[...document.querySelectorAll('h1,h2,h3,h4,.pp-label')].map((h) => h.innerText)"

HEADINGS_PROBE = """
[...document.querySelectorAll('h1,h2,h3,h4')].filter((h) => h.getClientRects().length)
  .filter((h) => getComputedStyle(h).breakAfter !== 'avoid').map((h) => h.outerHTML.slice(0, 80))
"""


def _keep(path: Path) -> None:
    """Copy a screenshot or PDF where a person can look at it, if they asked."""
    where = os.environ.get("PARITY_SCREENSHOT_DIR")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(where) / path.name)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


@pytest.fixture(params=sorted(RUNS))
def page(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    name = str(request.param)
    path = tmp_path / f"parity-{name}.html"
    report.write_html(RUNS[name](), path)
    return name, path


@pytest.mark.parametrize("width", WIDTHS)
def test_report_fits_the_screen_with_no_console_errors(
    browser: Chromium, page: tuple[str, Path], width: int, tmp_path: Path
) -> None:
    name, path = page
    browser.media("")
    browser.viewport(width, 1000)
    browser.load(path.as_uri())
    shot = browser.screenshot(tmp_path / f"parity-{name}-{width}.png")
    _keep(shot)
    w, h, spread = png_stats(shot)
    assert w == width and h > 1000 and spread > 20  # drawn, not blank
    assert browser.problems() == []  # no exception, console error, CSP violation, failed load
    # the page as written: its CSP allows no script, and none is there or ran
    csp = "meta[http-equiv='Content-Security-Policy']"
    assert browser.evaluate(f'document.querySelector("{csp}").content').startswith(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    assert browser.evaluate("document.scripts.length") == 0
    assert browser.evaluate("document.title").startswith("Parity FAIL: fp8</title><script>")
    laid = browser.evaluate(f"{OVERFLOW_PROBE}(true)")
    assert laid["innerWidth"] == width and laid["scrollWidth"] <= width, laid
    assert laid["overflowing"] == [], laid
    summary = [t for t in browser.evaluate(TABLES_PROBE) if "pp-summary" in t["cls"]]
    assert summary and all(t["lastRight"] <= width and t["scrollW"] <= t["clientW"] + 1
                           for t in summary), summary  # fmt: skip


def test_report_prints_with_no_table_cut_off(
    browser: Chromium, page: tuple[str, Path], tmp_path: Path
) -> None:
    name, path = page
    browser.media("")
    browser.viewport(PRINT_WIDTH, 1000)
    browser.load(path.as_uri())
    browser.media("print")
    assert browser.evaluate("matchMedia('print').matches") is True
    shot = browser.screenshot(tmp_path / f"parity-{name}-print.png")
    _keep(shot)
    pdf = browser.print_pdf(tmp_path / f"parity-{name}.pdf")
    _keep(pdf)
    laid = browser.evaluate(f"{OVERFLOW_PROBE}(false)")  # paper does not scroll
    assert laid["scrollWidth"] <= PRINT_WIDTH and laid["overflowing"] == [], laid
    tables = browser.evaluate(TABLES_PROBE)
    assert len(tables) > 10
    cut = [
        t for t in tables if t["lastRight"] > PRINT_WIDTH + 0.5 or t["scrollW"] > t["clientW"] + 1
    ]
    assert cut == [], cut
    assert browser.evaluate(HEADINGS_PROBE) == []  # no heading left alone at a page's foot
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert pages >= 2 + len(RUNS[name]()["tasks"])  # the sign-off page, then a page per task
    runs = pdf_text_runs(pdf)  # text drawn on each printed page
    assert len(runs) == pages and not [i + 1 for i, n in enumerate(runs) if n <= 2], runs
    assert browser.problems() == []
    if shutil.which("pdftotext"):  # poppler, where installed: the last line of every page
        heads = {h.strip() for h in browser.evaluate(HEADS) if h.strip()}  # as rendered
        orphans = [(i, last) for i, last in enumerate(_last_lines(pdf), 1) if last in heads]
        assert orphans == [], orphans  # no heading or label alone at the foot of a page


def _last_lines(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    pages = text.stdout.split("\f")
    return [next((ln.strip() for ln in reversed(p.splitlines()) if ln.strip()), "") for p in pages]


def test_what_the_page_says_reads_as_text(browser: Chromium, tmp_path: Path) -> None:
    """Every payload shows as the characters it is, bidi controls as <U+202E>; no raw null,
    None or JSON list in the provenance."""
    path = tmp_path / "parity.html"
    report.write_html(hostile_run(), path)
    browser.media("")
    browser.viewport(1400, 1000)
    browser.load(path.as_uri())
    text = browser.evaluate("document.body.innerText")
    assert "<script>document.title='PWNED'</script>" in text
    assert "<U+202E>detaler<U+202C>" in text and "<U+2066>isolated<U+2069>" in text
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", text)
    assert browser.evaluate("document.querySelectorAll('img,script,[onerror]').length") == 0
    styles = browser.evaluate("[...document.querySelectorAll('style')].map((s) => s.textContent)")
    assert not [s for s in styles if "display:none" in s.replace(" ", "")]
    prov = browser.evaluate(PROVENANCE_TEXT)
    assert "--max-model-len, 8192" in prov and "H100-80GB, H100-80GB" in prov
    assert not re.search(r"\bnull\b|\bNone\b|\[\"|\['|\{\"", prov), prov
    empty = (
        "[...document.querySelectorAll('#provenance ~ * td')].filter((td) => !td.innerText.trim())"
    )
    assert (
        browser.evaluate(f"{empty}.length") == 0
    )  # a fact a server did not report reads as a dash
