"""The HTML pieces of a parity report: one task's tables, plots, reasons and disagreements.

Shared by the standalone report (:func:`pytest_parity.report.to_html`) and the pytest-html
integration (:mod:`pytest_parity.report_html`). Every value that came from a contract, a model or
a dataset goes through :func:`esc` (``html.escape`` with ``quote=True``) on its way in, so a
response holding ``<script>`` or ``</td>`` shows as text. Class names carry a ``pp-`` prefix so
the stylesheet can sit inside pytest-html's page without touching its own rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_parity.report import checks as registered
from pytest_parity.report.html.svg import VERDICT_COLOURS, delta_numbers, esc, number
from pytest_parity.report.numfmt import count, pvalue
from pytest_parity.report.numfmt import percent as _percent
from pytest_parity.report.numfmt import points as points

DIRECTIONS: dict[str, str] = {
    "C": "correct",
    "A": "abstained (cautious)",
    "W": "wrong (confident)",
    "X": "request failed",
}
DASH = "\u2014"

CSS = """
.pp{--pass:#1b7f3b;--fail:#c62828;--inc:#b26a00;--err:#6a1b9a;--skip:#6b7280;--line:#e2e5e9;
color:#1a1d21;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
overflow-wrap:break-word}
.pp td{overflow-wrap:anywhere}.pp td.pp-num,.pp-badge{overflow-wrap:normal}
.pp-scroll{max-width:100%;overflow-x:auto}
.pp h2,.pp h3,.pp h4{line-height:1.25;margin:1.2em 0 .5em}
.pp table{border-collapse:collapse;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
.pp th,.pp td{border:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
.pp th{background:#f6f7f9;font-weight:600}
.pp td.pp-num{text-align:right;white-space:nowrap}
.pp-badge{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-weight:700;
font-size:12px;letter-spacing:.03em;vertical-align:middle;white-space:nowrap}
.pp-pass{background:#1b7f3b}.pp-fail{background:#c62828}
.pp-inconclusive{background:#b26a00}.pp-error{background:#6a1b9a}.pp-skip{background:#6b7280}
.pp-safety{display:inline-block;padding:0 7px;border:1px solid #c62828;color:#c62828;
border-radius:10px;font-size:11px;font-weight:700;margin-left:6px;vertical-align:middle}
.pp-task{border:1px solid var(--line);border-left:6px solid var(--skip);border-radius:6px;
padding:4px 20px 12px;margin:18px 0;break-inside:auto}
.pp-task.pp-v-pass{border-left-color:var(--pass)}.pp-task.pp-v-fail{border-left-color:var(--fail)}
.pp-task.pp-v-inconclusive{border-left-color:var(--inc)}.pp-task.pp-v-error{border-left-color:var(--err)}
.pp-checks{list-style:none;padding:0;margin:.3em 0 1em}
.pp-checks>li{margin:.35em 0}.pp-checks ul{margin:.2em 0 .2em 1.2em;padding:0}
.pp-grid{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
.pp-grid>div{min-width:min(260px,100%);max-width:100%}
.pp-hot{background:#fdecea;font-weight:700}.pp-good{background:#e7f5ec}
.pp-muted{color:#5f6670;font-size:12.5px}
.pp-dis{border:1px solid var(--line);border-radius:6px;margin:10px 0;break-inside:avoid}
.pp-dis-head{background:#f6f7f9;padding:4px 10px;font-size:12.5px;
border-bottom:1px solid var(--line)}
.pp-dis-body{padding:6px 10px}
.pp-pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.pp-qa{display:grid;grid-template-columns:2fr 1fr;gap:10px}.pp-qa>div:only-child{grid-column:1/-1}
.pp-pre{white-space:pre-wrap;word-break:break-word;
font:12.5px/1.45 ui-monospace,Menlo,Consolas,monospace;
background:#fbfbfc;border:1px solid #eceef1;border-radius:4px;padding:6px 8px;margin:2px 0 6px}
.pp-label{font-size:11.5px;font-weight:700;text-transform:uppercase;letter-spacing:.04em;color:#5f6670}
.pp-cat{display:inline-block;background:#eef0f3;border-radius:8px;padding:0 7px;font-size:11.5px;
margin-left:4px}
.pp-forest{width:100%;max-width:980px;height:auto;display:block;margin:6px 0}
.pp-summary{width:100%}.pp-summary th,.pp-summary td{padding:4px 7px}
.pp-summary .pp-badge{font-size:11px;padding:1px 7px}
.pp-summary .pp-ci{white-space:nowrap}.pp-summary td:first-child{min-width:8em}
.pp-chk{display:inline-block;white-space:nowrap;margin:0 8px 2px 0;font-size:12px;color:#5f6670}
@media (max-width:1000px){
.pp-summary th,.pp-summary td{padding:3px 4px;font-size:12px}
.pp-summary td.pp-num{white-space:normal}
.pp-summary .pp-badge{font-size:9.5px;padding:1px 4px;letter-spacing:0}
}
@media print{.pp-summary th,.pp-summary td{padding:2px 4px;font-size:10.5px}
.pp-summary td.pp-num{white-space:normal}
.pp-scroll{overflow:visible}.pp table{max-width:100%}
.pp-pre{break-before:avoid}}
.pp table.pp-wrap{width:100%}
.pp table.pp-wrap th{overflow-wrap:normal;word-break:normal}
.pp table.pp-wrap td.pp-hash,.pp td.pp-hash code{overflow-wrap:anywhere}
.pp-error-box{background:#f3e8fd;border:1px solid #d7b8f3;border-radius:4px;padding:6px 10px}
.pp-slices-caution{background:#fff8e6;border:1px solid #f0d9a8;border-radius:4px;
padding:6px 10px;margin:.4em 0 .6em}
.pp-slices-plot{max-width:760px}
.pp table.pp-slices{width:100%;max-width:980px}
.pp table.pp-slices td:first-child{overflow-wrap:anywhere}
@media (max-width:1000px){.pp table.pp-slices th,.pp table.pp-slices td{padding:3px 5px;
font-size:12px}}
@media print{.pp table.pp-slices th,.pp table.pp-slices td{padding:2px 4px;font-size:10.5px}}
"""


_TABLE_OPEN = re.compile(r"<table(?=[\s>])")


def scrollable(fragment: str) -> str:
    """Every table of an HTML fragment in a ``pp-scroll`` wrapper: one too wide for a narrow
    screen scrolls sideways inside it instead of widening the page (in print the wrapper lets
    it be, and the table fits the page). Safe on a whole fragment: every value in it is
    escaped, so each ``<table`` is one the report wrote."""
    return _TABLE_OPEN.sub('<div class="pp-scroll"><table', fragment).replace(
        "</table>", "</table></div>"
    )


def status_class(status: object) -> str:
    return str(status).lower() if str(status) in VERDICT_COLOURS else "skip"


def badge(status: object) -> str:
    # Colours inline too: a pytest-html row cell may be drawn before any of our CSS is on the page.
    colour = VERDICT_COLOURS.get(str(status), VERDICT_COLOURS["SKIP"])
    return (
        f'<span class="pp-badge pp-{status_class(status)}" '
        f'style="background:{colour};color:#fff">{esc(status)}</span>'
    )


def percent(x: float | None) -> str:
    return _percent(x)


def interval_text(nums: Mapping[str, Any], confidence: bool = True) -> str:
    """``−0.40 [−1.10, +0.30] pts (90% CI)``: the number every report leads with."""
    delta, lo, hi = (number(nums, k) for k in ("delta", "ci_low", "ci_high"))
    if delta is None:
        return "n/a"
    text = f"{points(delta)}"
    if lo is not None and hi is not None:
        text += f" [{points(lo)}, {points(hi)}]"
    text += " pts"
    conf = number(nums, "confidence")
    if confidence and conf is not None and lo is not None:
        text += f" ({conf * 100:.0f}% CI)"
    return text


def mapping(value: Any) -> Mapping[str, Any]:
    """A record's mapping field, or {} when it is missing or not a mapping."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """A record's list field, or [] when it is missing or not a list (never iterate a string)."""
    return value if isinstance(value, list) else []


def checks_of(task: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The task's checks in the registry's order, extra metrics after their check."""
    checks = mapping(task.get("checks"))
    return [{**mapping(checks[k]), "name": k} for k in registered.ordered(checks)]


def generic_table(check: Mapping[str, Any]) -> str:
    """A check without a section of its own: its scalar numbers, one row each."""
    rows = []
    for key, value in mapping(check.get("numbers")).items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        rows.append(_row(str(key).replace("_", " "), shown))
    return f"<table>{''.join(rows)}</table>" if rows else ""


def _row(label: str, value: str, hint: str = "") -> str:
    tip = f' title="{esc(hint)}"' if hint else ""
    return f'<tr><th{tip}>{esc(label)}</th><td class="pp-num">{esc(value)}</td></tr>'


def numbers_table(task: Mapping[str, Any], holm: float | None = None) -> str:
    nums = delta_numbers(task)
    n = number(nums, "n")
    rows = [
        _row("Baseline score", percent(number(task, "baseline_score"))),
        _row("Candidate score", percent(number(task, "candidate_score"))),
        _row("Delta (candidate \u2212 baseline)", interval_text(nums)),
        _row("Tolerance", f"{points(number(task, 'tolerance'), signed=False)} pts"),
        _row("Paired items", f"{task.get('n_paired', 'n/a')} of {task.get('n_items', 'n/a')}"),
        _row(
            "Request errors (old / new)",
            f"{task.get('baseline_errors', 0)} / {task.get('candidate_errors', 0)}",
        ),
    ]
    if number(nums, "flip_rate") is not None:
        rows.append(
            _row("Flip rate", percent(number(nums, "flip_rate")), "items scored differently")
        )
    if number(nums, "p_value") is not None:
        rows.append(
            _row(
                "p-value (any difference)",
                pvalue(number(nums, "p_value")),
                "two-sided: do the stacks score differently at all?",
            )
        )
    if holm is not None:
        rows.append(
            _row(
                "p, worse than the tolerance (all checks of the run counted)",
                pvalue(holm),
                "one-sided: is the new stack worse than the tolerance allows? Holm-adjusted over"
                " every alarm of the run",
            )
        )
    if number(nums, "mde") is not None:
        rows.append(_row("Smallest detectable delta", _mde_text(nums)))
    if number(nums, "items_needed") is not None:
        rows.append(_row("Items needed to decide", count(number(nums, "items_needed"))))
    if nums.get("method"):
        rows.append(_row("Interval method", str(nums["method"])))
    if _warn_note(task):
        rows.append(_row("Note", WARN_TEXT))
    if n is None and not nums:
        rows.append(_row("Delta check", "not computed"))
    for c in checks_of(task):
        # extra metrics the task gates on (delta:brier, delta:aurc, ...), one line each
        if str(c["name"]).startswith("delta:"):
            metric = str(c["name"])[len("delta:") :]
            text = f"{interval_text(mapping(c.get('numbers')))} · {c.get('status', '?')}"
            rows.append(_row(f"Delta of {metric}", text))
    return f'<table class="pp-numbers">{"".join(rows)}</table>'


def _mde_text(nums: Mapping[str, Any]) -> str:
    """The minimum detectable effect; where nothing flipped it rounds to 0.00 and means little
    (the interval's width is what bounds an unseen regression), so say that instead."""
    mde = number(nums, "mde")
    if mde is not None and round(mde * 100, 2) > 0:
        return f"{points(mde, False)} pts"
    return "not meaningful: too few items flipped (the interval above bounds what went unseen)"


def flip_table(task: Mapping[str, Any]) -> str:
    """The 2x2 of right/wrong old vs new. Both-right and both-wrong are derived when not given."""
    nums = delta_numbers(task)
    n, b, c = (number(nums, k) for k in ("n", "b", "c"))
    if n is None or b is None or c is None:
        return ""
    both_right = number(nums, "both_right")
    if both_right is None:
        old = number(nums, "baseline_score")
        old = old if old is not None else number(task, "baseline_score")
        both_right = None if old is None else round(old * n) - b
    both_wrong = None if both_right is None else n - both_right - b - c
    if both_right is None or both_wrong is None or min(both_right, both_wrong) < 0:
        both_right = both_wrong = None  # scores are not binary: only the flips mean something

    def cell(v: float | None, cls: str = "") -> str:
        text = DASH if v is None else f"{v:,.0f}"
        return f'<td class="pp-num {cls}">{text}</td>'

    return (
        '<table class="pp-flip"><tr><th></th><th>new right</th><th>new wrong</th></tr>'
        f"<tr><th>old right</th>{cell(both_right)}{cell(b, 'pp-hot' if b and b > c else '')}</tr>"
        f"<tr><th>old wrong</th>{cell(c, 'pp-good' if c else '')}{cell(both_wrong)}</tr></table>"
    )


def _first(v: Mapping[str, Any], *keys: str) -> float | None:
    for k in keys:
        x = number(v, k)
        if x is not None:
            return x
    return None


def failure_table(task: Mapping[str, Any]) -> str:
    """Failure categories old vs new; categories that failed the check are highlighted."""
    check = mapping(mapping(task.get("checks")).get("failure_modes"))
    nums = mapping(check.get("numbers"))
    source = nums.get("categories") if isinstance(nums.get("categories"), Mapping) else nums
    cats = {str(k): mapping(v) for k, v in mapping(source).items() if isinstance(v, Mapping)}
    if not cats:
        return ""
    failed = {str(f) for f in as_list(nums.get("failed"))}
    rows = []
    for name, v in sorted(cats.items(), key=lambda kv: _category_rank(kv[0])):
        old, new = _first(v, "baseline", "old"), _first(v, "candidate", "new")
        state = str(v.get("status") or "")
        # A category the check does not test (correct, wrong answers: the delta's job) has no p.
        p = None if state == "not_gated" else _first(v, "p_value", "p")
        hot = name in failed or state in ("new", "grown")
        note = {
            "not_gated": "not tested here (accuracy is the delta check's)",
            "new_below_min": "new, below minimum",
        }.get(state, state)
        rows.append(
            f'<tr class="{"pp-hot" if hot else ""}"><td>{esc(name)}</td>'
            + "".join(
                f'<td class="pp-num">{DASH if x is None else f"{x:,.0f}"}</td>'
                for x in (old, new, number(v, "entered"), number(v, "left"))
            )
            + f'<td class="pp-num">{DASH if p is None else pvalue(p)}</td>'
            f"<td>{esc(note)}</td></tr>"
        )
    return (
        '<table class="pp-failures"><tr><th>failure category</th><th>old</th><th>new</th>'
        '<th title="items in this category only under the new stack">entered</th>'
        '<th title="items in this category only under the old stack">left</th><th>p</th>'
        "<th>status</th></tr>" + "".join(rows) + "</table>"
    )


def _category_rank(name: str) -> tuple[int, str]:
    """The taxonomy's order (scoring/categories.py), custom categories after it by name."""
    from pytest_parity.scoring.categories import CATEGORIES

    order = list(CATEGORIES)
    return (order.index(name) if name in order else len(order), name)


def direction_table(task: Mapping[str, Any]) -> str:
    check = mapping(mapping(task.get("checks")).get("error_direction"))
    table = mapping(mapping(check.get("numbers")).get("table"))
    if not table:
        return ""
    keys = [k for k in DIRECTIONS if k in table or any(k in mapping(r) for r in table.values())]
    # Cautious -> confident is the regression this table exists to show; the reverse is a gain.
    hot, good = {("A", "W"), ("C", "W")}, {("W", "A"), ("W", "C"), ("A", "C")}
    head = "".join(f"<th>new: {esc(DIRECTIONS[k])}</th>" for k in keys)
    rows = []
    for old in keys:
        cells = []
        for new in keys:
            v = number(mapping(table.get(old)), new)
            cls = (
                "pp-hot"
                if (old, new) in hot and v
                else "pp-good"
                if (old, new) in good and v
                else ""
            )
            cells.append(f'<td class="pp-num {cls}">{DASH if v is None else f"{v:,.0f}"}</td>')
        rows.append(f"<tr><th>old: {esc(DIRECTIONS[old])}</th>{''.join(cells)}</tr>")
    return f'<table class="pp-direction"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


WARN_TEXT = "a real regression, inside the tolerance (the whole interval is below 0)"


def _warn_note(task: Mapping[str, Any]) -> str:
    """A PASS whose interval lies wholly below zero: passed, but not free."""
    nums = delta_numbers(task)
    if task.get("verdict") != "PASS" or nums.get("warn") is not True:
        return ""
    return (
        f'<div class="pp-muted" title="{esc(WARN_TEXT)}">\u26a0 regression within tolerance</div>'
    )


def _delta_cell(nums: Mapping[str, Any]) -> str:
    """``−0.40 [−1.10, +0.30] pts`` that may wrap before the interval, never inside it."""
    text = interval_text(nums, confidence=False).removesuffix(" pts")  # the header says pts
    head, sep, rest = text.partition(" [")
    return esc(head) + (f' <span class="pp-ci">[{esc(rest)}</span>' if sep else "")


# Past this many checks, the summary shows them in one column (each as "name STATUS", wrapping)
# instead of one column each: thirteen columns of badges fit neither 760 px nor an A4 page.
MAX_CHECK_COLUMNS = 3


def _checks_cell(checks: Mapping[str, Any], names: Sequence[str]) -> str:
    items = [
        f'<span class="pp-chk">{esc(registered.column(k))} {badge(st)}</span>'
        for k in names
        if (st := registered.status(checks, k))
    ]
    return f'<td class="pp-chks">{" ".join(items)}</td>'


def summary_table(tasks: Sequence[Mapping[str, Any]]) -> str:
    names = registered.shown(tasks)
    one_column = len(names) > MAX_CHECK_COLUMNS
    head = (
        '<tr><th>task</th><th title="baseline (old) score">old</th>'
        '<th title="candidate (new) score">new</th><th>delta, pts [interval]</th>'
        "<th>tol., pts</th>"
        + (
            "<th>checks</th>"
            if one_column
            else "".join(f"<th>{esc(registered.column(n))}</th>" for n in names)
        )
        + "<th>verdict</th></tr>"
    )
    rows = []
    for t in tasks:
        name = str(t.get("task", "?"))
        checks = mapping(t.get("checks"))
        cells = (
            _checks_cell(checks, names)
            if one_column
            else "".join(
                f"<td>{badge(st) if (st := registered.status(checks, k)) else ''}</td>"
                for k in names
            )
        )
        safety = '<span class="pp-safety">safety</span>' if t.get("safety_critical") else ""
        rows.append(
            f'<tr><td><a href="#task-{esc(name)}">{esc(name)}</a>{safety}</td>'
            f'<td class="pp-num">{percent(number(t, "baseline_score"))}</td>'
            f'<td class="pp-num">{percent(number(t, "candidate_score"))}</td>'
            f'<td class="pp-num">{_delta_cell(delta_numbers(t))}</td>'
            f'<td class="pp-num">{esc(points(number(t, "tolerance"), signed=False))}</td>'
            f"{cells}<td>{badge(t.get('verdict', 'SKIP'))}{_warn_note(t)}</td></tr>"
        )
    return f'<table class="pp-summary">{head}{"".join(rows)}</table>'
