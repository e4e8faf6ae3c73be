"""The exploratory slices in every report (report/slices.py, report/html/slices.py): the caution
with K, the worst slice's Holm-adjusted p, status words that are not verdicts, the forest plot,
and a slice value from the data (markup, a U+202E) shown as text everywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from run_builders import make_run, validate
from slice_data import T, records

from pytest_parity.checks.slices import slice_breakdown
from pytest_parity.report.formats import to_html, to_json, to_markdown
from pytest_parity.report.html.task import task_html
from pytest_parity.report.terminal import verdict_lines

SCHEMA = Path(__file__).resolve().parents[2] / "pytest_parity" / "report" / "schema.json"
EVIL = "<script>document.title='PWNED'</script>\u202eevil"


def _run(value: str = EVIL) -> Any:
    recs = records()
    for r in recs[:40]:  # the math slice: b=4, c=0, -10 pts over 40 items
        assert r["metadata"] is not None
        r["metadata"]["subject"] = value
    run = make_run()
    task = run["tasks"][0]
    task["tolerance"] = T.tolerance
    task["slices"] = slice_breakdown(T, recs, seed=0)
    return run


def test_the_html_section_escapes_slice_values_and_shows_the_caution() -> None:
    run = _run()
    html = task_html(run["tasks"][0])
    assert "<script>document.title" not in html and "\u202e" not in html
    assert "&lt;script&gt;document.title=&#x27;PWNED&#x27;&lt;/script&gt;&lt;U+202E&gt;evil" in html
    assert "slices are exploratory: with 4 slices, some will look worse by chance; declare a" \
        " slice as its own task to gate it" in html  # fmt: skip
    # one small forest plot per field, its rows' statuses as words, not verdicts
    block = html[html.index('class="pp-slices-block"') :]
    assert block.count('<svg xmlns="http://www.w3.org/2000/svg" class="pp-forest"') == 2
    assert ">unclear</text>" in block and ">INCONCLUSIVE</text>" not in block
    assert "Holm p" in block and "4/0" in block and "\u221210.00 [" in block
    page = to_html(run)
    assert "<script>document.title" not in page and "\u202e" not in page


def test_terminal_and_markdown_say_the_same_sentences() -> None:
    run = _run()
    term = "\n".join(verdict_lines(run))
    assert "\u202e" not in term
    name = run["tasks"][0]["task"]
    assert f"{name}: slices by subject (2, exploratory): worst {EVIL[:-5]}<U+202E>evil" in term
    assert "Holm-adjusted over 4 slices p = 0.34" in term
    assert f"{name}: slices are exploratory: with 4 slices" in term
    md = to_markdown(run)
    assert "### Slices (exploratory, not part of the verdict)" in md
    assert "\u202e" not in md and "<script>" not in md
    row = next(line for line in md.splitlines() if line.startswith("| &lt;script&gt;"))
    assert "| 40 | 100.0% | 90.0% | \u221210.00 \\[" in row and "| 4/0 | unclear | 0.34 |" in row


def test_a_slice_worse_than_the_tolerance_is_named_worse_and_counted() -> None:
    run = make_run()
    task = run["tasks"][0]
    task["tolerance"] = T.tolerance
    bad = [r for r in records() if r["candidate"]["score"] is not None]
    for i, r in enumerate(bad):  # a third slice, far below the tolerance
        if i % 3 == 0:
            r["metadata"] = {"subject": "physics"}
            r["baseline"]["score"], r["candidate"]["score"] = 1.0, 0.0
    task["slices"] = slice_breakdown(T, bad, seed=0)
    term = "\n".join(verdict_lines(run))
    assert "slices by subject (3, exploratory): worst physics \u2212100.00" in term
    assert "(worse; p < 0.001 of being worse than the tolerance" in term
    assert "1 of 3 look worse than the tolerance" in term
    assert ">worse</text>" in task_html(task)
    assert task["verdict"] == make_run()["tasks"][0]["verdict"]  # the report does not touch it


def test_a_run_with_slices_is_valid_json_and_old_results_without_render() -> None:
    run = _run()
    doc = json.loads(to_json(run))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert validate(doc, schema, schema) == []
    assert doc["tasks"][0]["slices"]["fields"][0]["slices"][0]["value"] == EVIL
    plain = make_run()
    assert "pp-slices-block" not in task_html(plain["tasks"][0])
    assert "Slices" not in to_markdown(plain)


@pytest.mark.parametrize(
    "damaged",
    [None, {"fields": None}, {"fields": [{"field": "x", "slices": "no"}]}, {"fields": [3]}],
)
def test_a_damaged_slices_entry_never_breaks_a_report(damaged: Any) -> None:
    run = make_run()
    run["tasks"][0]["slices"] = damaged
    assert "pp-slices-block" not in task_html(run["tasks"][0])
    verdict_lines(run)
    to_markdown(run)


def test_a_note_alone_is_shown() -> None:
    run = make_run()
    run["tasks"][0]["slices"] = {"by": ["subjct"], "fields": [], "k": 0,
                                 "notes": ["slice_by: no paired item has <b>subjct</b>"]}  # fmt: skip
    html = task_html(run["tasks"][0])
    assert "slice_by: no paired item has &lt;b&gt;subjct&lt;/b&gt;" in html
    assert "slices are exploratory" not in html
    assert any("no paired item has <b>subjct</b>" in line for line in verdict_lines(run))


@pytest.mark.slow
@pytest.mark.parametrize("width", [1400, 760])
def test_slices_render_in_chromium_as_text_and_print(tmp_path: Path, width: int) -> None:
    from test_browser import CHROMIUM, _chromium, _console, _dom, _png_size_and_colours

    if CHROMIUM is None:
        pytest.skip("needs Chromium (apt-get install chromium)")
    from pytest_parity import report

    page = tmp_path / "parity.html"
    report.write_html(_run(), page)
    shot = tmp_path / "parity.png"
    done = _chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", f"--window-size={width},2000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []
    assert _png_size_and_colours(shot)[:2] == (width, 2000)
    dumped = _chromium(tmp_path, page.as_uri(), "--dump-dom", "--virtual-time-budget=3000")
    dom = _dom(dumped.stdout)
    # no script element; "PWNED" only as the text of the slice's name (SVG titles included)
    assert "script" not in dom.tags and not dom.events
    assert "PWNED" not in dom.title.replace("document.title='PWNED'", "")
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;&lt;U+202E&gt;evil" in dumped.stdout
    pdf = tmp_path / "parity.pdf"
    printed = _chromium(tmp_path, page.as_uri(), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert printed.returncode == 0 and pdf.read_bytes().startswith(b"%PDF")


def test_a_long_slice_value_is_cut_in_the_plot_after_its_bidi_controls_are_shown() -> None:
    html = task_html(_run("<b>bold</b>\u202eevil and more words")["tasks"][0])
    plot = html[html.index('class="pp-slices-plot"') :]
    # 19 characters and an ellipsis, counted as shown: "<U+202E>" is 8 of them
    assert "&gt;bold&lt;/b&gt;&lt;U+202E&gt;\u2026</text>" in plot
