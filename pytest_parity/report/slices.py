"""How every report words a task's exploratory slices (``TaskResult["slices"]``, checks/slices.py).

The terminal, the Markdown summary and the HTML page say the same sentences: the caution (slices
are exploratory, the number K of them, how to gate one), one line per field with its worst slice
and the Holm-adjusted p of that slice, and per slice a status word that is not a verdict word
("within", "worse", "unclear"): a slice never passes or fails a task.

Field names and slice values come from a customer's data: the sentences here are plain text,
each report escapes them on the way out (HTML-escaped, Markdown-escaped, bidi controls shown).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_parity.report.numfmt import count, p_text, points

__all__ = [
    "STATUS_WORDS",
    "caution",
    "field_line",
    "fields",
    "lines",
    "notes",
    "slice_interval",
    "status_word",
    "tolerance",
]

# A slice's status against the task's tolerance, in words that do not read as a verdict.
STATUS_WORDS = {
    "PASS": "within",
    "FAIL": "worse",
    "INCONCLUSIVE": "unclear",
}
STATUS_MEANING = (
    "within: the slice's interval lies above \u2212tolerance; worse: it lies below it;"
    " unclear: it straddles it, or the slice has fewer items than min_items"
)


def status_word(status: object) -> str:
    return STATUS_WORDS.get(str(status), str(status).lower())


def fields(task: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The task's sliced fields that have slices (damaged entries are left out, never raised)."""
    sl = task.get("slices")
    if not isinstance(sl, Mapping) or not isinstance(sl.get("fields"), list):
        return []
    return [
        f
        for f in sl["fields"]
        if isinstance(f, Mapping)
        and isinstance(f.get("slices"), list)
        and f["slices"]
        and all(isinstance(s, Mapping) for s in f["slices"])
    ]


def notes(task: Mapping[str, Any]) -> list[str]:
    sl = task.get("slices")
    got = sl.get("notes") if isinstance(sl, Mapping) else None
    return [str(n) for n in got if n] if isinstance(got, list) else []


def caution(task: Mapping[str, Any]) -> str:
    """The sentence every breakdown carries."""
    k = sum(len(f["slices"]) for f in fields(task))
    return (
        f"slices are exploratory: with {k} slices, some will look worse by chance; declare a"
        " slice as its own task to gate it (they add no test and do not change the verdict)"
    )


def slice_interval(s: Mapping[str, Any], unit: bool = True) -> str:
    """``−10.00 [−20.50, −3.03] pts`` (``unit=False``: without "pts", for a table's column)."""
    text = f"{points(s.get('delta'))} [{points(s.get('ci_low'))}, {points(s.get('ci_high'))}]"
    return text + " pts" if unit else text


def tolerance(task: Mapping[str, Any]) -> Any:
    """The tolerance the slices' statuses were judged against (the task's)."""
    sl = task.get("slices")
    own = sl.get("tolerance") if isinstance(sl, Mapping) else None
    return own if isinstance(own, int | float) else task.get("tolerance")


def field_line(task: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    """One field in one sentence: its slices, the worst with its numbers and Holm-adjusted p,
    how many look worse than the tolerance."""
    slices = f["slices"]
    k = sum(len(g["slices"]) for g in fields(task))
    worst = next((s for s in slices if s.get("value") == f.get("worst")), slices[0])
    worse = sum(1 for s in slices if s.get("status") == "FAIL")
    line = (
        f"slices by {f.get('field')} ({len(slices)}, exploratory): worst {worst.get('value')}"
        f" {slice_interval(worst)} over {count(worst.get('n'))} items"
        f" ({status_word(worst.get('status'))}; {p_text(worst.get('p_fail'))} of being worse"
        f" than the tolerance, Holm-adjusted over {k} slices {p_text(worst.get('p_holm'))})"
    )
    line += f"; {worse} of {len(slices)} look worse than the tolerance"
    unsliced = f.get("unsliced")
    if isinstance(unsliced, int) and unsliced:
        line += f"; {count(unsliced)} paired items have no {f.get('field')}"
    return line


def lines(task: Mapping[str, Any]) -> list[str]:
    """Every sentence about the task's slices: a line per field, the caution, the notes."""
    shown = fields(task)
    out = [field_line(task, f) for f in shown]
    if shown:
        out.append(caution(task))
    return out + notes(task)
