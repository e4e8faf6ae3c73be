"""A task's exploratory slices in HTML: per field, the caution, a small forest plot, a table.

The plot is the report's forest plot (svg.py) with one row per slice against the task's
tolerance band, its status shown as "within" / "worse" / "unclear" (report/slices.py) so no
slice reads as a verdict. Field names and slice values are a customer's data: every one goes
through :func:`esc` (HTML-escaped, bidi controls shown as ``<U+202E>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_parity.report import slices as sl
from pytest_parity.report.bidi import visible
from pytest_parity.report.html.sections import percent
from pytest_parity.report.html.svg import esc, forest_svg, number
from pytest_parity.report.numfmt import count, pvalue

__all__ = ["slices_html"]


LABEL_CHARS = 20  # of the plot's label column (196 px at 13 px): "<", "W" and "%" are wide


def _label(value: object) -> str:
    """A slice value as the plot's row label: bidi controls shown first (``<U+202E>`` counts in
    the width), then cut; the table beside the plot shows it whole."""
    text = visible(str(value))
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"


def _rows_for_plot(task: Mapping[str, Any], f: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each slice as the forest plot's row: its value, status, the task's tolerance, the delta."""
    return [
        {
            "task": _label(s.get("value", "?")),
            "verdict": str(s.get("status", "SKIP")),
            "tolerance": sl.tolerance(task),
            "checks": {
                "delta": {
                    "numbers": {
                        k: s.get(k) for k in ("delta", "ci_low", "ci_high", "confidence", "warn")
                    }
                }
            },
        }
        for s in f["slices"]
    ]


def _table(f: Mapping[str, Any]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "slice",
            "items",
            "baseline",
            "candidate",
            "delta [interval], pts",
            "flips b/c",
            "status",
            "Holm p",
        )
    )
    rows = []
    for s in f["slices"]:
        b, c = s.get("b"), s.get("c")
        flips = "n/a" if b is None else f"{count(b)}/{count(c)}"
        word = sl.status_word(s.get("status"))
        hot = ' class="pp-hot"' if s.get("status") == "FAIL" else ""
        rows.append(
            f"<tr{hot}><td>{esc(s.get('value', '?'))}</td>"
            f'<td class="pp-num">{esc(count(s.get("n")))}</td>'
            f'<td class="pp-num">{esc(percent(number(s, "baseline_score")))}</td>'
            f'<td class="pp-num">{esc(percent(number(s, "candidate_score")))}</td>'
            f'<td class="pp-num">{esc(sl.slice_interval(s, unit=False))}</td>'
            f'<td class="pp-num">{esc(flips)}</td>'
            f"<td>{esc(word)}</td>"
            f'<td class="pp-num">{esc(pvalue(s.get("p_holm")))}</td></tr>'
        )
    return f'<table class="pp-slices"><tr>{head}</tr>{"".join(rows)}</table>'


def slices_html(task: Mapping[str, Any], h2: str = "h3") -> str:
    """The task's slices section; empty when it has none."""
    shown = sl.fields(task)
    notes = sl.notes(task)
    if not shown and not notes:
        return ""
    name = str(task.get("task", "?"))
    out = [f'<div class="pp-slices-block"><{h2}>Slices (exploratory)</{h2}>']
    if shown:
        out.append(f'<p class="pp-slices-caution">{esc(sl.caution(task))}</p>')
    for f in shown:
        field = str(f.get("field", "?"))
        out.append(f"<p><strong>By {esc(field)}</strong>: {esc(sl.field_line(task, f))}</p>")
        plot = forest_svg(
            _rows_for_plot(task, f),
            title=f"Delta of {name} by {field} (exploratory)",
            legend=False,
            label=field,
            status_words=sl.STATUS_WORDS,
        )
        out.append(f'<div class="pp-slices-plot">{plot}</div>')
        out.append(_table(f))
    if shown:
        out.append(f'<p class="pp-muted">{esc(sl.STATUS_MEANING)}</p>')
    out += [f'<p class="pp-muted">{esc(n)}</p>' for n in notes]
    out.append("</div>")
    return "".join(out)
