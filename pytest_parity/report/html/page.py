"""The standalone parity report (``--parity-report=PATH.html``): one self-contained page.

Laid out for the customer who signs the contract: the sign-off page first (verdict, reasons by
status, items needed, A/A, pass chance, a block to sign; :mod:`.first_page`), then every task at
a glance (forest plot and table), the contract, each task's evidence, and provenance
(:mod:`.contract`). Inline CSS and SVG only; a Content-Security-Policy forbids any script, so even
a slip in escaping could not run what a model wrote. Print CSS ends the sign-off page with a page
break and starts each task on a new page.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_parity.records import RunResult
from pytest_parity.report.formats import endpoint_name
from pytest_parity.report.html.contract import contract_html, provenance_html
from pytest_parity.report.html.first_page import FIRST_PAGE_CSS, first_page, when
from pytest_parity.report.html.sections import CSS, as_list, mapping, scrollable, summary_table
from pytest_parity.report.html.svg import esc, forest_svg, number
from pytest_parity.report.html.task import task_html
from pytest_parity.report.signoff import sign_off

_PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6}
main.pp{max-width:1120px;margin:0 auto;background:#fff;padding:28px 40px 40px;min-height:100vh}
.pp header h1{font-size:26px;margin:0 0 2px}
.pp-sub{color:#5f6670;margin:0 0 18px}
.pp h2.pp-part{border-bottom:2px solid #1a1d21;padding-bottom:4px;margin-top:34px}
.pp-legend{font-size:12.5px;color:#5f6670}
.pp-legend i{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.pp-kv{font-size:12.5px}.pp-kv b{font-weight:600;color:#5f6670}
@media (max-width:820px){main.pp{padding:16px 16px 28px}}
footer.pp-muted{margin-top:30px;border-top:1px solid var(--line);padding-top:8px}
.pp-desc{margin:0 0 14px;max-width:80ch}
@media print{
  @page{size:A4;margin:14mm}
  body{background:#fff}
  main.pp{padding:0;max-width:none;min-height:0}
  .pp *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  .pp-task{break-before:page}
  /* the heading of the tasks starts the first task's page, not a page of its own */
  .pp h2#tasks{break-before:page}.pp h2#tasks+.pp-task{break-before:auto}
  .pp h1,.pp h2,.pp h3,.pp h4{break-after:avoid}
  .pp table,.pp-forest{break-inside:avoid}
  .pp a{color:inherit;text-decoration:none}
}
"""


def _audit_html(run: RunResult) -> str:
    """The coverage audit: kinds of eval and failure modes covered, gaps with their hints."""
    audit = [str(a) for a in as_list(run.get("audit"))]
    if not audit:
        return ""
    items = "".join(
        f'<li class="{"pp-missing" if "MISSING" in a else "pp-muted"}">{esc(a)}</li>'
        for a in audit[1:]
    )
    return (
        f'<h2 class="pp-part" id="audit">Coverage audit</h2><p>{esc(audit[0])}</p>'
        f'<ul class="pp-audit">{items}</ul>'
    )


def page(run: RunResult) -> str:
    """One self-contained page for the customer: the sign-off page first, then the evidence."""
    contract = mapping(run.get("contract"))
    overall = str(run.get("overall", "SKIP"))
    tasks = [t for t in as_list(run.get("tasks")) if isinstance(t, Mapping)]
    holm = mapping(run.get("holm"))
    facts = sign_off(run)
    cand, base = endpoint_name(contract, "candidate"), endpoint_name(contract, "baseline")
    legend = (
        '<p class="pp-legend">dot: delta, candidate \u2212 baseline, in points; bar: interval;'
        '<i style="background:#e3f2e7"></i>within tolerance'
        '<i style="background:#fdecea"></i>worse than the tolerance allows'
        "; dashed line: the non-inferiority margin</p>"
    )
    body = "".join(task_html(t, number(holm, f"{t.get('task')}/delta")) for t in tasks)
    title = f"Parity {overall}: {cand} vs {base}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # No script may run in this file, whatever a model wrote into it.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{FIRST_PAGE_CSS}{_PAGE_CSS}</style></head>"
        '<body><main class="pp">'
        f'<header><h1>Parity report</h1><p class="pp-sub">candidate <strong>{esc(cand)}</strong>'
        f" against baseline <strong>{esc(base)}</strong> \u00b7 {esc(when(run.get('finished')))}"
        f" \u00b7 contract {esc(str(contract.get('digest', ''))[:12])}</p>"
        + (
            f'<p class="pp-desc"><b>What this contract gates:</b> {esc(facts.description)}</p>'
            if facts.description
            else ""
        )
        + "</header>"
        + scrollable(
            first_page(run, facts) + '<h2 class="pp-part" id="summary">Every task at a glance</h2>'
            f"{forest_svg(tasks)}{legend}{summary_table(tasks)}"
            f"{contract_html(contract, tasks)}{_audit_html(run)}"
            f'<h2 class="pp-part" id="tasks">Task by task</h2>{body}'
            f"{provenance_html(run)}"
        )
        + '<footer class="pp-muted">Made by pytest-parity. This file is self-contained: no '
        "scripts, no network requests.</footer></main></body></html>\n"
    )
