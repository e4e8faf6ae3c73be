"""The "LLM judge" block of a task: who judged, what it found, and how far to trust it.

A win / tie / loss bar (pairwise) or the grade distribution old vs new (rubric), position bias,
consistency, the A/A false-difference rate, agreement with people, and the win rate by length
ratio. Inline SVG only; every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_parity.report.html.sections import as_list, mapping
from pytest_parity.report.html.svg import esc
from pytest_parity.report.judge import judge_facts

__all__ = ["judge_html", "judge_rationale_html"]

_COLOURS = {"wins": "#2e7d32", "ties": "#9e9e9e", "losses": "#c62828"}


def _bar(j: Mapping[str, Any]) -> str:
    n = sum(int(j.get(k) or 0) for k in _COLOURS)
    if n <= 0:
        return ""
    width, x, parts, labels = 360.0, 0.0, [], []
    for key, colour in _COLOURS.items():
        k = int(j.get(key) or 0)
        w = width * k / n
        if w > 0:
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="18" fill="{colour}">'
                f"<title>{esc(key)}: {k}</title></rect>"
            )
        labels.append(f"{esc(key)} {k}")
        x += w
    return (
        f'<svg class="pp-judge-bar" role="img" width="{width:.0f}" height="18"'
        f' viewBox="0 0 {width:.0f} 18"><title>candidate {" / ".join(labels)}</title>'
        + "".join(parts)
        + f'</svg><div class="pp-muted">candidate {" · ".join(labels)}</div>'
    )


def _length_table(j: Mapping[str, Any]) -> str:
    rows = []
    for b in as_list(mapping(j.get("length")).get("buckets")):
        b = mapping(b)
        if not b.get("n"):
            continue
        rate = b.get("win_rate")
        rows.append(
            f'<tr><td>{esc(b.get("ratio", "?"))}</td><td class="pp-num">{esc(b.get("n"))}</td>'
            f'<td class="pp-num">{esc(b.get("wins"))} / {esc(b.get("ties"))} /'
            f" {esc(b.get('losses'))}</td>"
            f'<td class="pp-num">{"n/a" if rate is None else f"{float(rate):.1%}"}</td></tr>'
        )
    if not rows:
        return ""
    return (
        "<table><tr><th>length ratio (new / old)</th><th>items</th><th>wins / ties / losses</th>"
        "<th>candidate win rate (ties half)</th></tr>" + "".join(rows) + "</table>"
    )


def _grades_table(j: Mapping[str, Any]) -> str:
    old = mapping(mapping(j.get("baseline")).get("distribution"))
    new = mapping(mapping(j.get("candidate")).get("distribution"))
    grades = sorted({*old, *new}, key=lambda g: float(g))
    if not grades:
        return ""
    rows = "".join(
        f'<tr><td>{esc(g)}</td><td class="pp-num">{esc(old.get(g, 0))}</td>'
        f'<td class="pp-num">{esc(new.get(g, 0))}</td></tr>'
        for g in grades
    )
    return f"<table><tr><th>grade</th><th>old</th><th>new</th></tr>{rows}</table>"


def judge_html(task: Mapping[str, Any], h: str = "h3") -> str:
    """The judge block of one task ("" when the task was not judged by an LLM)."""
    j = mapping(task.get("judge"))
    if not j:
        return ""
    facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in judge_facts(j))
    body = _bar(j) + _length_table(j) if j.get("mode") == "pairwise" else _grades_table(j)
    return (
        f'<div class="pp-judge"><{h}>LLM judge</{h}>'
        '<p class="pp-muted">The judge is an instrument with its own noise: position bias,'
        " consistency and the A/A false-difference rate say how far its verdicts can be"
        " trusted.</p>"
        f'<table class="pp-numbers">{facts}</table>{body}</div>'
    )


def judge_rationale_html(d: Mapping[str, Any], role: str | None = None) -> str:
    """The judge's verdict and rationale on a disagreement card (escaped, as model text is)."""
    j = mapping(d.get("judge"))
    if not j:
        return ""
    if role is not None:
        j = mapping(j.get(role))
        if not j:
            return ""
        head = f"judge grade {esc(j.get('grade'))}"
        reasons = [j.get("rationale")]
    else:
        shown = []
        for w, first in zip(as_list(j.get("winners")), ("old", "new"), strict=False):
            second = "new" if first == "old" else "old"
            better = {"A": first, "B": second}.get(str(w))
            verdict = f"{better} better" if better else "tie"
            shown.append(f"{verdict} ({first} shown first)")
        head = "judge: " + esc("; ".join(shown))
        if j.get("flipped"):
            head += esc(" - the order changed the verdict: a tie")
        reasons = as_list(j.get("rationale"))
    text = "".join(f'<div class="pp-pre">{esc(r)}</div>' for r in reasons if r)
    return f'<div class="pp-judge-why"><span class="pp-label">{head}</span>{text}</div>'
