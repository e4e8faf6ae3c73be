"""The forest plot: every task's delta and interval drawn against its own tolerance band.

Inline SVG built as a string, so a report stays one self-contained file that needs no script,
no font download and no plotting library. Every piece of text is escaped: task names come from a
contract a customer wrote, and the plot is pasted into HTML as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_parity.report.bidi import visible
from pytest_parity.report.numfmt import finite, points, tick

# One colour per status, shared by every report so a verdict looks the same everywhere.
VERDICT_COLOURS: dict[str, str] = {
    "PASS": "#1b7f3b",
    "FAIL": "#c62828",
    "INCONCLUSIVE": "#b26a00",
    "ERROR": "#6a1b9a",
    "SKIP": "#6b7280",
}
VERDICT_TINTS: dict[str, str] = {
    "PASS": "#e7f5ec",
    "FAIL": "#fdecea",
    "INCONCLUSIVE": "#fff4e0",
    "ERROR": "#f3e8fd",
    "SKIP": "#f1f2f4",
}

_ROW = 30
_TOP = 34
_LEFT = 196
_PLOT = 354
_RIGHT = 290
_WIDTH = _LEFT + _PLOT + _RIGHT


def esc(value: object) -> str:
    """Escape anything for HTML text and attribute values (quotes included); bidi controls are
    shown as ``<U+202E>``."""
    return html.escape(visible(str(value)), quote=True)


def number(mapping: Mapping[str, Any] | None, key: str) -> float | None:
    """A finite number from a record, or None when it is missing, null, NaN or not a number."""
    if not mapping:
        return None
    return finite(mapping.get(key))


def delta_numbers(task: Mapping[str, Any]) -> Mapping[str, Any]:
    checks = task.get("checks") or {}
    check = checks.get("delta") if isinstance(checks, Mapping) else None
    numbers = check.get("numbers") if isinstance(check, Mapping) else None
    return numbers if isinstance(numbers, Mapping) else {}


# Past this many points an interval end is drawn as an arrow at the edge: such a task fails (or
# passes) either way, and a wider axis would squeeze every other task into a line.
MAX_EXTENT = 50.0
Axis = tuple[float, float, float]  # (low, high, tick step), in points


MAX_TICKS = 8


def _round_steps(span: float) -> list[float]:
    """Round tick steps (1, 2 or 5 x 10^k), smallest first, from about span/10 upwards."""
    k = math.floor(math.log10(max(span, 1e-9) / 10))
    return [m * 10.0**e for e in range(k, k + 4) for m in (1.0, 2.0, 5.0)]


def _axis(tasks: Sequence[Mapping[str, Any]]) -> Axis:
    """An axis fitted to the data and the tolerances: 0 and every -tolerance always in view, each
    delta and interval end when within MAX_EXTENT points; the ends are multiples of the smallest
    round step (1, 2 or 5 x 10^k, never 2.5: no tick at +-12.5) that needs at most MAX_TICKS."""
    low, high = -1.0, 0.5
    for t in tasks:
        tol = number(t, "tolerance")
        if tol is not None:
            low = min(low, -tol * 100 * 1.5)
            high = max(high, tol * 100 * 0.5)
        nums = delta_numbers(t)
        for key in ("delta", "ci_low", "ci_high"):
            v = number(nums, key)
            if v is not None:
                low = min(low, max(v * 100, -MAX_EXTENT))
                high = max(high, min(v * 100, MAX_EXTENT))
    pad = (high - low) * 0.04
    low, high = low - pad, high + pad
    for step in _round_steps(high - low):
        lo, hi = math.floor(low / step) * step, math.ceil(high / step) * step
        if round((hi - lo) / step) + 1 <= MAX_TICKS:
            return (lo, hi, step)
    raise AssertionError("unreachable: a step of 10x the span has two ticks")


# The symbols of the plot, each drawn by one function below and named once in the legend: shape
# carries the meaning (so a print in grey still reads), colour the task's verdict.
LEGEND: tuple[tuple[str, str], ...] = (
    ("estimate", "delta (candidate \u2212 baseline)"),
    ("warn", "delta of a pass with a real regression inside the tolerance"),
    ("offscale", "delta off the axis (its number on the right)"),
    ("clipped", "interval continues off the axis"),
    ("safety", "safety-critical task"),
)


def _estimate(cx: float, cy: float, colour: str) -> str:
    return (
        f'<circle class="pp-estimate" cx="{cx:.1f}" cy="{cy}" r="5.5" fill="{colour}" '
        'stroke="#fff" stroke-width="1.5"/>'
    )


def _warn(cx: float, cy: float, colour: str) -> str:
    # a ring with a dot: the estimate, hollowed, so it is not read as a plain pass
    return (
        f'<circle class="pp-warn" cx="{cx:.1f}" cy="{cy}" r="5.5" fill="#fff" '
        f'stroke="{colour}" stroke-width="2.5"/>'
        f'<circle cx="{cx:.1f}" cy="{cy}" r="1.6" fill="{colour}"/>'
    )


def _offscale(tip: float, cy: float, d: int, colour: str) -> str:
    # a hollow arrow pointing out of the axis, its tip ``tip``, drawn over everything else
    return (
        f'<path class="pp-offscale" d="M{tip:.1f},{cy} l{-12 * d},-8 v16 z" '
        f'fill="#fff" stroke="{colour}" stroke-width="2.2" stroke-linejoin="round"/>'
    )


def _clipped(tip: float, cy: float, d: int, colour: str) -> str:
    # a small solid arrow head on the interval's line, at the axis edge
    return f'<path class="pp-clipped" d="M{tip:.1f},{cy} l{-8 * d},-5 v10 z" fill="{colour}"/>'


def _safety(cx: float, cy: float) -> str:
    # a diamond beside the task name; the table's warning sign means something else
    return (
        f'<path class="pp-safety-mark" d="M{cx:.1f},{cy - 6} l6,6 l-6,6 l-6,-6 z" fill="#6a1b9a"/>'
    )


def _legend_mark(kind: str, cx: float, cy: float, colour: str) -> str:
    if kind == "estimate":
        return _estimate(cx, cy, colour)
    if kind == "warn":
        return _warn(cx, cy, colour)
    if kind == "offscale":
        return _offscale(cx - 6, cy, -1, colour)
    if kind == "clipped":
        return _clipped(cx - 4, cy, -1, colour)
    return _safety(cx, cy)


def _legend(top: float) -> str:
    colour = "#374151"
    out = ['<g class="pp-forest-legend" font-size="12" fill="#374151">']
    x0, y = 12.0, top + 14
    out.append(
        f'<rect x="{x0:.1f}" y="{y - 9}" width="16" height="12" fill="#e3f2e7" stroke="#9ca3af" '
        'stroke-width=".5"/>'
        f'<text x="{x0 + 22:.1f}" y="{y + 1}">within tolerance (one-sided: better is fine)</text>'
        f'<rect x="{x0 + 330:.1f}" y="{y - 9}" width="16" height="12" fill="#fdecea" '
        'stroke="#9ca3af" stroke-width=".5"/>'
        f'<line x1="{x0 + 338:.1f}" y1="{y - 10}" x2="{x0 + 338:.1f}" y2="{y + 4}" '
        'stroke="#c62828" stroke-width="1.2" stroke-dasharray="3,2"/>'
        f'<text x="{x0 + 352:.1f}" y="{y + 1}">worse than the tolerance allows; dashed: the '
        "margin</text>"
    )
    for i, (kind, words) in enumerate(LEGEND):
        col, row = i % 2, i // 2
        cx = x0 + 8 + col * 420
        cy = y + 22 + row * 20
        mark = _legend_mark(kind, cx, cy - 4, colour)
        out.append(f'{mark}<text x="{cx + 14:.1f}" y="{cy + 1}">{esc(words)}</text>')
    out.append("</g>")
    return "".join(out)


LEGEND_HEIGHT = 24 + 20 * ((len(LEGEND) + 1) // 2) + 8


def forest_svg(
    tasks: Sequence[Mapping[str, Any]],
    *,
    title: str = "Delta by task",
    legend: bool = True,
    label: str = "task",
    status_words: Mapping[str, str] | None = None,
) -> str:
    """An SVG forest plot: per task, the delta (points) with its interval against its margin.

    The test is one-sided (non-inferiority): the green region is everything above -tolerance (an
    improvement is as welcome as no change), the red region below it; the dashed line at
    -tolerance is the margin. A delta off the axis is drawn as a hollow arrow at the edge, over
    the interval's own small arrow, with its number in the right-hand column. The symbols are
    named in a legend under the plot (``legend=False`` for a plot of one row that sits under the
    main one). Hovering a row shows its numbers (SVG ``<title>``), so the plot needs no script.
    ``status_words`` shows a status as another word (the exploratory slices: "worse", not
    "FAIL"); the colour stays the status's.
    """
    axis = _axis(tasks)
    bottom = _TOP + _ROW * max(len(tasks), 1)
    height = bottom + 30 + (LEGEND_HEIGHT if legend else 0)

    def x(v_points: float) -> float:
        return _x(v_points, axis)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pp-forest" role="img" '
        f'viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" height="{height}" '
        f'style="max-width:100%;height:auto" preserveAspectRatio="xMinYMin meet" '
        f'aria-label="{esc(title)}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        f"<title>{esc(title)}</title>",
        f'<text x="{_LEFT - 10}" y="20" font-size="13" fill="#555" text-anchor="end">'
        f"{esc(label)}</text>",
        f'<text x="{_LEFT + _PLOT / 2}" y="20" font-size="13" fill="#555" text-anchor="middle">'
        "candidate \u2212 baseline (points)</text>",
        f'<text x="{_LEFT + _PLOT + 12}" y="20" font-size="13" fill="#555">delta [interval]</text>',
    ]
    for i, task in enumerate(tasks):
        out.append(_row(task, _TOP + i * _ROW, axis, status_words or {}))
    if not tasks:
        out.append(
            f'<text x="{_LEFT + _PLOT / 2}" y="{_TOP + 18}" font-size="13" fill="#555" '
            'text-anchor="middle">no tasks</text>'
        )
    out.append(
        f'<line x1="{x(0):.1f}" y1="{_TOP - 4}" x2="{x(0):.1f}" y2="{bottom}" '
        'stroke="#333" stroke-width="1"/>'
    )
    out.append(
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{_LEFT + _PLOT}" y2="{bottom}" stroke="#999"/>'
    )
    for v in ticks(axis):
        out.append(
            f'<line x1="{x(v):.1f}" y1="{bottom}" x2="{x(v):.1f}" y2="{bottom + 5}" stroke="#999"/>'
            f'<text class="pp-tick" x="{x(v):.1f}" y="{bottom + 19}" font-size="12" fill="#444" '
            f'text-anchor="middle">{tick(v)}</text>'
        )
    # the off-axis markers last, so no line or band of a row is painted over them
    for i, task in enumerate(tasks):
        out.append(_offscale_marker(task, _TOP + i * _ROW, axis))
    if legend:
        out.append(_legend(bottom + 28))
    out.append("</svg>")
    return "".join(out)


def ticks(axis: Axis) -> list[float]:
    """The tick values of an axis: every multiple of its step from low to high."""
    low, high, step = axis
    out, k = [], math.ceil(low / step - 1e-9)
    while k * step <= high + 1e-9:
        out.append(round(k * step, 9))
        k += 1
    return out


def _x(v_points: float, axis: Axis) -> float:
    low, high, _ = axis
    v = max(low, min(high, v_points))
    return _LEFT + (v - low) / (high - low) * _PLOT


def _estimates(task: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    nums = delta_numbers(task)
    delta, lo, hi = (number(nums, k) for k in ("delta", "ci_low", "ci_high"))
    return delta, lo, hi


def _offscale_marker(task: Mapping[str, Any], top: float, axis: Axis) -> str:
    delta = _estimates(task)[0]
    low, high, _ = axis
    if delta is None or low <= delta * 100 <= high:
        return ""
    colour = VERDICT_COLOURS.get(str(task.get("verdict", "SKIP")), "#6b7280")
    d = -1 if delta * 100 < low else 1
    # the tip 14 px inside the edge, clear of the interval's own arrow head at the edge
    return _offscale(_x(delta * 100, axis) - 14 * d, top + _ROW / 2, d, colour)


def _row(
    task: Mapping[str, Any], top: float, axis: Axis, words: Mapping[str, str] | None = None
) -> str:
    def x(v_points: float) -> float:
        return _x(v_points, axis)

    low, high, _ = axis

    name = str(task.get("task", "?"))
    status = str(task.get("verdict", "SKIP"))
    colour = VERDICT_COLOURS.get(status, "#6b7280")
    shown = (words or {}).get(status, status)
    tol = number(task, "tolerance")
    delta, lo, hi = _estimates(task)
    warn = status == "PASS" and delta_numbers(task).get("warn") is True
    mid = top + _ROW / 2
    label = name if len(name) <= 24 else name[:23] + "\u2026"
    parts = [f'<g class="pp-row" data-task="{esc(name)}">']
    tip = f"{name}: {shown}"
    if task.get("safety_critical"):
        tip += " (safety-critical)"
    if delta is not None:
        tip += f", delta {points(delta)} pts"
        if not low <= delta * 100 <= high:
            tip += " (off the axis)"
    if lo is not None and hi is not None:
        tip += f" [{points(lo)}, {points(hi)}]"
    if tol is not None:
        tip += f", tolerance {points(tol, signed=False)} pts"
    parts.append(f"<title>{esc(tip)}</title>")
    if top % (2 * _ROW) == _TOP % (2 * _ROW):
        parts.append(f'<rect x="0" y="{top}" width="{_WIDTH}" height="{_ROW}" fill="#fafafa"/>')
    if tol is not None:
        t = tol * 100
        x0, x1 = x(low), x(high)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top + 4}" width="{x(-t) - x0:.1f}" height="{_ROW - 8}" '
            'fill="#fdecea"/>'
            f'<rect x="{x(-t):.1f}" y="{top + 4}" width="{x1 - x(-t):.1f}" height="{_ROW - 8}" '
            'fill="#e3f2e7"/>'
            f'<line x1="{x(-t):.1f}" y1="{top + 2}" x2="{x(-t):.1f}" y2="{top + _ROW - 2}" '
            'stroke="#c62828" stroke-width="1.2" stroke-dasharray="3,2"/>'
        )
    if task.get("safety_critical"):
        parts.append(_safety(12, mid))
    parts.append(
        f'<text x="{_LEFT - 10}" y="{mid + 4}" font-size="13" text-anchor="end" fill="#111">'
        f"{esc(label)}</text>"
    )
    if delta is None:
        parts.append(
            f'<text x="{x(0) + 8:.1f}" y="{mid + 4}" font-size="12" fill="{colour}">'
            f"no estimate ({esc(shown)})</text>"
        )
    else:
        if lo is not None and hi is not None:
            x_lo, x_hi = x(lo * 100), x(hi * 100)
            parts.append(
                f'<line x1="{x_lo:.1f}" y1="{mid}" x2="{x_hi:.1f}" y2="{mid}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
            )
            for v, xe in ((lo, x_lo), (hi, x_hi)):
                if low <= v * 100 <= high:
                    parts.append(
                        f'<line x1="{xe:.1f}" y1="{mid - 6}" x2="{xe:.1f}" y2="{mid + 6}" '
                        f'stroke="{colour}" stroke-width="2"/>'
                    )
                else:
                    d = -1 if v * 100 < low else 1
                    parts.append(_clipped(xe, mid, d, colour))
        if low <= delta * 100 <= high:
            cx = x(delta * 100)
            parts.append(_warn(cx, mid, colour) if warn else _estimate(cx, mid, colour))
        text = f"{points(delta)}"
        if lo is not None and hi is not None:
            text += f" [{points(lo)}, {points(hi)}]"
        parts.append(
            f'<text x="{_LEFT + _PLOT + 12}" y="{mid + 4}" font-size="12.5" fill="#111">'
            f"{esc(text)}</text>"
        )
    parts.append(
        f'<text x="{_WIDTH - 8}" y="{mid + 4}" font-size="12" font-weight="700" '
        f'text-anchor="end" fill="{colour}">{esc(shown)}</text>'
    )
    parts.append("</g>")
    return "".join(parts)
