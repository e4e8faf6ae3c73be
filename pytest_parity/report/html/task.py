"""One task in a report: verdict, reasons, plot, tables and the disagreements to read.

Composes the pieces of :mod:`pytest_parity.report_sections` into one section, used as it is by
the standalone page and as the pytest-html extras of the task's tests. Model output and prompts
are escaped and cut at ``MAX_TEXT`` characters, so one runaway generation stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_parity.report import checks as registered
from pytest_parity.report.html.drift import calibration_html, tone_html
from pytest_parity.report.html.judge import judge_html
from pytest_parity.report.html.sections import (
    as_list,
    badge,
    checks_of,
    direction_table,
    failure_table,
    flip_table,
    generic_table,
    mapping,
    numbers_table,
    status_class,
)
from pytest_parity.report.html.slices import slices_html
from pytest_parity.report.html.svg import delta_numbers, esc, forest_svg
from pytest_parity.report.html.triage import (
    MAX_TEXT,
    clip,
    disagreements_html,
    link_ids,
    trajectory_text,
)

__all__ = ["MAX_TEXT", "clip", "disagreements_html", "task_html", "trajectory_text"]

# The checks whose numbers have tables of their own below; any other check (one registered by a
# conftest.py or a plugin) gets a generic table of its numbers.
OWN_TABLES = frozenset({"delta", "failure_modes", "error_direction", "calibration", "tone"})
# Checks whose section is drawn by a function of their own (tables and inline SVG).
OWN_SECTIONS = {"calibration": calibration_html, "tone": tone_html}


def _reasons(task: Mapping[str, Any]) -> str:
    # every sampled item's id in a reason links to its card below
    name_of_task = str(task.get("task", "?"))
    ids = [mapping(d).get("id") for d in as_list(task.get("disagreements"))]
    rows = []
    if task.get("error"):
        rows.append(
            f'<li><div class="pp-error-box">{badge("ERROR")} {esc(task["error"])}</div></li>'
        )
    for c in checks_of(task):
        name = str(c["name"])
        title = registered.title(name)
        reasons = [r for r in as_list(c.get("reasons")) if r]
        items = "".join(f"<li>{link_ids(r, name_of_task, ids)}</li>" for r in reasons)
        rows.append(
            f"<li>{badge(c.get('status', 'SKIP'))} <strong>{esc(title)}</strong>"
            + (f"<ul>{items}</ul>" if items else "")
            + "</li>"
        )
    return f'<ul class="pp-checks">{"".join(rows)}</ul>' if rows else ""


def _notes(task: Mapping[str, Any]) -> str:
    """The source's facts about the items (records skipped, sampling overridden, baseline)."""
    notes = [n for n in as_list(task.get("notes")) if n]
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<ul class="pp-notes pp-muted">{items}</ul>'


def _early_stop(task: Mapping[str, Any]) -> str:
    """When and why an early-stopping task stopped: items asked of the available, the bound."""
    es = task.get("early_stop")
    if not isinstance(es, Mapping):
        return ""
    from pytest_parity.checks.earlystop import early_stop_line

    line = early_stop_line(dict(es), float(task.get("tolerance") or 0.0))
    return f'<p class="pp-early-stop">{esc(line)}</p>'


def task_html(
    task: Mapping[str, Any], holm: float | None = None, level: int = 2, anchor: bool = True
) -> str:
    """Everything about one task: verdict, reasons, numbers, plot, tables, disagreements.

    ``anchor=False`` leaves out the element id, for pages that show one task several times."""
    name = str(task.get("task", "?"))
    status = task.get("verdict", "SKIP")
    h, h2 = f"h{level}", f"h{level + 1}"
    safety = '<span class="pp-safety">safety-critical</span>' if task.get("safety_critical") else ""
    tables = [
        ("Numbers", numbers_table(task, holm)),
        ("Right and wrong, old vs new", flip_table(task)),
        ("Failure categories, old vs new", failure_table(task)),
        ("Direction of error (old \u2192 new)", direction_table(task)),
    ]
    for c in checks_of(task):
        check = str(c["name"])
        kind = check.split(":", 1)[0]
        if kind in OWN_SECTIONS:
            tables.append((registered.title(check), OWN_SECTIONS[kind](c)))
        elif kind not in OWN_TABLES:
            tables.append((registered.title(check), generic_table(c)))
    grid = "".join(f"<div><{h2}>{esc(t)}</{h2}>{body}</div>" for t, body in tables if body)
    return (
        f'<section class="pp-task pp-v-{status_class(status)}"'
        + (f' id="task-{esc(name)}">' if anchor else ">")
        + f"<{h}>{badge(status)} {esc(name)}{safety} "
        f'<span class="pp-muted">{esc(task.get("source", ""))}</span></{h}>'
        f"{_reasons(task)}{_notes(task)}{_early_stop(task)}"
        + (
            forest_svg([task], title=f"Delta of {name}", legend=False)
            if delta_numbers(task)
            else ""
        )
        + f'<div class="pp-grid">{grid}</div>'
        + slices_html(task, h2)
        + judge_html(task, h2)
        + f"<{h2}>Disagreements</{h2}>{disagreements_html(task)}"
        "</section>"
    )
