"""The forest plot: every task's delta and interval drawn against its own tolerance band.

Inline SVG built as a string, so a report stays one self-contained file that needs no script,
no font download and no plotting library. Every piece of text is escaped: task names come from a
contract a customer wrote, and the plot is pasted into HTML as it is.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

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
_LEFT = 210
_PLOT = 380
_RIGHT = 250
_WIDTH = _LEFT + _PLOT + _RIGHT


# Bidirectional controls (an U+202E in an answer visibly reverses the text after it) are shown as
# visible escapes, so what a reviewer reads is what the model sent, in order.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def esc(value: object) -> str:
    """Escape anything for HTML text and attribute values (quotes included); bidi controls are
    shown as ``<U+202E>``."""
    text = html.escape(str(value), quote=True)
    return _BIDI.sub(lambda m: f"&lt;U+{ord(m.group()):04X}&gt;", text)


def number(mapping: Mapping[str, Any] | None, key: str) -> float | None:
    """A finite number from a record, or None when it is missing, null, NaN or not a number."""
    if not mapping:
        return None
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def points(x: float | None, signed: bool = True, digits: int = 2) -> str:
    """A 0-1 quantity as points (x100); a true minus sign so negative deltas read at a glance."""
    if x is None:
        return "n/a"
    v = x * 100
    if abs(v) < 0.5 * 10**-digits:
        v = 0.0
    text = f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"
    return text.replace("-", "\u2212")


def delta_numbers(task: Mapping[str, Any]) -> Mapping[str, Any]:
    checks = task.get("checks") or {}
    check = checks.get("delta") if isinstance(checks, Mapping) else None
    numbers = check.get("numbers") if isinstance(check, Mapping) else None
    return numbers if isinstance(numbers, Mapping) else {}


# Past this many points an interval end is drawn as an arrow at the edge: such a task fails (or
# passes) either way, and a wider axis would squeeze every other task into a line.
MAX_EXTENT = 50.0
Axis = tuple[float, float, float]  # (low, high, tick step), in points


def _nice_step(span: float) -> float:
    """A round tick step (1, 2, 2.5 or 5 x 10^k) giving about five ticks over ``span`` points."""
    raw = max(span, 1e-9) / 5
    scale = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * scale >= raw - 1e-12:
            return m * scale
    return 10.0 * scale


def _axis(tasks: Sequence[Mapping[str, Any]]) -> Axis:
    """An axis fitted to the data and the tolerances: 0 and every -tolerance always in view, each
    delta and interval end when within MAX_EXTENT points, ends rounded to the tick step."""
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
    pad = (high - low) * 0.06
    step = _nice_step(high - low + 2 * pad)
    return (
        math.floor((low - pad) / step) * step,
        math.ceil((high + pad) / step) * step,
        step,
    )


def forest_svg(tasks: Sequence[Mapping[str, Any]], *, title: str = "Delta by task") -> str:
    """An SVG forest plot: per task, the delta (points) with its interval against its margin.

    The test is one-sided (non-inferiority): the green region is everything above -tolerance (an
    improvement is as welcome as no change), the red region below it; the dashed line at
    -tolerance is the margin. A delta off the axis is drawn as a hollow arrow at the edge, an
    interval end off the axis as a solid one, each with its number in the right-hand column.
    Hovering a row shows its numbers (SVG ``<title>``), so the plot needs no script.
    """
    axis = _axis(tasks)
    height = _TOP + _ROW * max(len(tasks), 1) + 34

    def x(v_points: float) -> float:
        return _x(v_points, axis)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pp-forest" role="img" '
        f'viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" height="{height}" '
        f'style="max-width:100%;height:auto" preserveAspectRatio="xMinYMin meet" '
        f'aria-label="{esc(title)}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        f"<title>{esc(title)}</title>",
        f'<text x="{_LEFT - 10}" y="20" font-size="12" fill="#555" text-anchor="end">task</text>',
        f'<text x="{_LEFT + _PLOT / 2}" y="20" font-size="12" fill="#555" text-anchor="middle">'
        "candidate \u2212 baseline (points)</text>",
        f'<text x="{_LEFT + _PLOT + 12}" y="20" font-size="12" fill="#555">delta [interval]</text>',
    ]
    for i, task in enumerate(tasks):
        out.append(_row(task, _TOP + i * _ROW, axis))
    if not tasks:
        out.append(
            f'<text x="{_LEFT + _PLOT / 2}" y="{_TOP + 18}" font-size="13" fill="#555" '
            'text-anchor="middle">no tasks</text>'
        )
    bottom = _TOP + _ROW * max(len(tasks), 1)
    out.append(
        f'<line x1="{x(0):.1f}" y1="{_TOP - 4}" x2="{x(0):.1f}" y2="{bottom}" '
        'stroke="#333" stroke-width="1"/>'
    )
    out.append(
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{_LEFT + _PLOT}" y2="{bottom}" stroke="#999"/>'
    )
    low, high, step = axis
    k = math.ceil(low / step - 1e-9)
    while k * step <= high + 1e-9:
        v = k * step
        out.append(
            f'<line x1="{x(v):.1f}" y1="{bottom}" x2="{x(v):.1f}" y2="{bottom + 5}" stroke="#999"/>'
            f'<text x="{x(v):.1f}" y="{bottom + 18}" font-size="11" fill="#555" '
            f'text-anchor="middle">{_tick(v)}</text>'
        )
        k += 1
    out.append("</svg>")
    return "".join(out)


def _tick(v: float) -> str:
    if abs(v) < 1e-9:
        return "0"
    return f"{round(v, 6):+g}".replace("-", "\u2212")


def _x(v_points: float, axis: Axis) -> float:
    low, high, _ = axis
    v = max(low, min(high, v_points))
    return _LEFT + (v - low) / (high - low) * _PLOT


def _row(task: Mapping[str, Any], top: float, axis: Axis) -> str:
    def x(v_points: float) -> float:
        return _x(v_points, axis)

    low, high, _ = axis

    name = str(task.get("task", "?"))
    status = str(task.get("verdict", "SKIP"))
    colour = VERDICT_COLOURS.get(status, "#6b7280")
    tol = number(task, "tolerance")
    nums = delta_numbers(task)
    delta, lo, hi = (number(nums, k) for k in ("delta", "ci_low", "ci_high"))
    mid = top + _ROW / 2
    label = name if len(name) <= 26 else name[:25] + "\u2026"
    marker = " (safety)" if task.get("safety_critical") else ""
    parts = [f'<g class="pp-row" data-task="{esc(name)}">']
    tip = f"{name}: {status}"
    if delta is not None:
        tip += f", delta {points(delta)} pts"
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
    parts.append(
        f'<text x="{_LEFT - 10}" y="{mid + 4}" font-size="13" text-anchor="end" fill="#111">'
        f"{esc(label)}{esc(marker)}</text>"
    )
    if delta is None:
        parts.append(
            f'<text x="{x(0) + 8:.1f}" y="{mid + 4}" font-size="12" fill="{colour}">'
            f"no estimate ({esc(status)})</text>"
        )
    else:
        if lo is not None and hi is not None:
            x_lo, x_hi = x(lo * 100), x(hi * 100)
            parts.append(
                f'<line x1="{x_lo:.1f}" y1="{mid}" x2="{x_hi:.1f}" y2="{mid}" '
                f'stroke="{colour}" stroke-width="2.5"/>'
            )
            for v, xe in ((lo, x_lo), (hi, x_hi)):
                clipped = not (low <= v * 100 <= high)
                if clipped:
                    d = -1 if v * 100 < low else 1
                    parts.append(
                        f'<path d="M{xe + 7 * d:.1f},{mid} l{-9 * d},-6 v12 z" fill="{colour}"/>'
                    )
                else:
                    parts.append(
                        f'<line x1="{xe:.1f}" y1="{mid - 6}" x2="{xe:.1f}" y2="{mid + 6}" '
                        f'stroke="{colour}" stroke-width="2"/>'
                    )
        if low <= delta * 100 <= high:
            parts.append(
                f'<circle cx="{x(delta * 100):.1f}" cy="{mid}" r="5.5" fill="{colour}" '
                'stroke="#fff" stroke-width="1.5"/>'
            )
        else:  # the estimate itself is off the axis: a hollow arrow inside the edge, labelled
            d = -1 if delta * 100 < low else 1
            xe = x(delta * 100) - 12 * d
            parts.append(
                f'<path class="pp-offscale" d="M{xe + 6 * d:.1f},{mid} l{-10 * d},-7 v14 z" '
                f'fill="#fff" stroke="{colour}" stroke-width="2"/>'
            )
        text = f"{points(delta)}"
        if lo is not None and hi is not None:
            text += f" [{points(lo)}, {points(hi)}]"
        parts.append(
            f'<text x="{_LEFT + _PLOT + 12}" y="{mid + 4}" font-size="12" fill="#111">'
            f"{esc(text)}</text>"
        )
    parts.append(
        f'<text x="{_WIDTH - 8}" y="{mid + 4}" font-size="11" font-weight="700" '
        f'text-anchor="end" fill="{colour}">{esc(status)}</text>'
    )
    parts.append("</g>")
    return "".join(parts)
