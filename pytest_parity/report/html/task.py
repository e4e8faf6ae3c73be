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
from pytest_parity.report.html.judge import judge_html, judge_rationale_html
from pytest_parity.report.html.sections import (
    DIRECTIONS,
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
from pytest_parity.report.html.svg import delta_numbers, esc, forest_svg, number

# The checks whose numbers have tables of their own below; any other check (one registered by a
# conftest.py or a plugin) gets a generic table of its numbers.
OWN_TABLES = frozenset({"delta", "failure_modes", "error_direction", "calibration", "tone"})
# Checks whose section is drawn by a function of their own (tables and inline SVG).
OWN_SECTIONS = {"calibration": calibration_html, "tone": tone_html}

# Long answers are cut so one runaway generation cannot turn the report into a book.
MAX_TEXT = 4000


def clip(text: object, limit: int = MAX_TEXT) -> str:
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return esc(s)
    return (
        esc(s[:limit]) + f'<span class="pp-muted"> \u2026 ({len(s) - limit} more characters)</span>'
    )


def _reasons(task: Mapping[str, Any]) -> str:
    rows = []
    if task.get("error"):
        rows.append(
            f'<li><div class="pp-error-box">{badge("ERROR")} {esc(task["error"])}</div></li>'
        )
    for c in checks_of(task):
        name = str(c["name"])
        title = registered.title(name)
        reasons = [r for r in as_list(c.get("reasons")) if r]
        items = "".join(f"<li>{esc(r)}</li>" for r in reasons)
        rows.append(
            f"<li>{badge(c.get('status', 'SKIP'))} <strong>{esc(title)}</strong>"
            + (f"<ul>{items}</ul>" if items else "")
            + "</li>"
        )
    return f'<ul class="pp-checks">{"".join(rows)}</ul>' if rows else ""


def _side(record: Mapping[str, Any], role: str, label: str, judged: bool = False) -> str:
    # Two shapes: failures.sample_disagreements' flat row (baseline_output, baseline_category,
    # ...) and an ItemRecord with a nested SideRecord per stack.
    nested = mapping(record.get(role))
    side = {
        "text": record.get(f"{role}_output", nested.get("text")),
        "category": record.get(f"{role}_category", nested.get("category")),
        "score": record.get(f"{role}_score", nested.get("score")),
        "finish_reason": record.get(f"{role}_finish_reason", nested.get("finish_reason")),
        "direction": nested.get("direction"),
        "error": nested.get("error"),
    }
    meta = []
    if side["category"]:
        meta.append(f'<span class="pp-cat">{esc(side["category"])}</span>')
    direction = side["direction"] if isinstance(side["direction"], str) else None
    if direction in DIRECTIONS and side["category"] != "correct":
        meta.append(f'<span class="pp-cat">{esc(DIRECTIONS[str(direction)])}</span>')
    score = number(side, "score")
    if score is not None:
        meta.append(f'<span class="pp-cat">score {score:g}</span>')
    if side["finish_reason"] not in (None, "stop"):
        meta.append(f'<span class="pp-cat">finish: {esc(side["finish_reason"])}</span>')
    text = side["error"] if side["text"] in (None, "") and side["error"] else side["text"]
    turns = as_list(record.get(f"{role}_trajectory", nested.get("trajectory")))
    steps = (
        '<span class="pp-label">trajectory</span>'
        f'<div class="pp-pre">{clip(trajectory_text(turns))}</div>'
        if turns
        else ""
    )
    return (
        f'<div><span class="pp-label">{esc(label)}</span>{"".join(meta)}'
        f'<div class="pp-pre">{clip(text)}</div>{steps}'
        + (judge_rationale_html(record, role) if judged else "")
        + "</div>"
    )


def trajectory_text(turns: list[Any]) -> str:
    """A multi-step answer's turns as plain lines (escaped by the caller): what the model said
    and called at each step, and what the tools answered."""
    lines = []
    for t in (mapping(x) for x in turns):
        head = f"{t.get('step', '?')} {t.get('role', '?')}"
        if t.get("role") == "assistant":
            calls = [f"{c.get('name')}({c.get('arguments')})" for c in
                     (mapping(c) for c in as_list(t.get("tool_calls")))]  # fmt: skip
            said = str(t.get("text") or "").strip()
            lines.append(f"{head}: {said}" + (f" -> calls {', '.join(calls)}" if calls else ""))
        elif t.get("role") == "tool":
            lines.append(f"{head} {t.get('name')}: {t.get('result')}")
        else:
            lines.append(f"{head}: {t.get('error', t)}")
    return "\n".join(lines)


def disagreements_html(task: Mapping[str, Any]) -> str:
    items = [mapping(d) for d in as_list(task.get("disagreements"))]
    total = task.get("disagreements_total", len(items))
    if not items:
        return f'<p class="pp-muted">No disagreements to read ({esc(total)} in all).</p>'
    out = [
        f'<p class="pp-muted">{len(items)} of {esc(total)} items where the stacks disagree, '
        "sampled for a person to read side by side.</p>"
    ]
    for i, d in enumerate(items, 1):
        ref = d.get("reference")
        judge = mapping(d.get("judge"))
        pairwise = "preference" in judge
        out.append(
            f'<div class="pp-dis"><div class="pp-dis-head">#{i} \u00b7 item {esc(d.get("id", "?"))}'
            + (f" \u00b7 {esc(str(d['kind']).replace('_', ' '))}" if d.get("kind") else "")
            + (f" \u00b7 cluster {esc(d['cluster'])}" if d.get("cluster") else "")
            + '</div><div class="pp-dis-body"><div class="pp-qa">'
            f'<div><span class="pp-label">prompt</span><div class="pp-pre">{clip(d.get("prompt"))}'
            "</div></div>"
            + (
                f'<div><span class="pp-label">reference</span><div class="pp-pre">{clip(ref)}'
                "</div></div>"
                if ref not in (None, "")
                else ""
            )
            + "</div>"
            + '<div class="pp-pair">'
            + _side(d, "baseline", "old (baseline)", bool(judge) and not pairwise)
            + _side(d, "candidate", "new (candidate)", bool(judge) and not pairwise)
            + "</div>"
            + (judge_rationale_html(d) if pairwise else "")
            + "</div></div>"
        )
    return "".join(out)


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
        + judge_html(task, h2)
        + f"<{h2}>Disagreements</{h2}>{disagreements_html(task)}"
        "</section>"
    )
