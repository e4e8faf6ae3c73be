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


def esc(value: object) -> str:
    """Escape anything for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)


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


def _nice_limit(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above x (axis end, in points)."""
    if x <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(x))
    for m in (1.0, 2.0, 2.5, 5.0):
        if m * scale >= x - 1e-12:
            return m * scale
    return 10.0 * scale


def _limit(tasks: Sequence[Mapping[str, Any]]) -> float:
    extent = 1.0
    for t in tasks:
        nums = delta_numbers(t)
        tol = number(t, "tolerance") or 0.0
        extent = max(extent, tol * 100 * 1.6)
        for key in ("delta", "ci_low", "ci_high"):
            v = number(nums, key)
            if v is not None:
                extent = max(extent, abs(v) * 100 * 1.1)
    # Past 50 points the interval is clipped with an arrow: such a task fails either way.
    return _nice_limit(min(extent, 50.0))


def forest_svg(tasks: Sequence[Mapping[str, Any]], *, title: str = "Delta by task") -> str:
    """An SVG forest plot: per task, the delta (points) with its interval over the tolerance band.

    The green band is [-tolerance, +tolerance]; left of it is the red region a task must stay out
    of; the dashed line at -tolerance is the non-inferiority margin. Hovering a row shows its
    numbers (SVG ``<title>``), so the plot needs no script.
    """
    lim = _limit(tasks)
    height = _TOP + _ROW * max(len(tasks), 1) + 34

    def x(v_points: float) -> float:
        return _x(v_points, lim)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pp-forest" role="img" '
        f'viewBox="0 0 {_WIDTH} {height}" width="{_WIDTH}" height="{height}" '
        f'aria-label="{esc(title)}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        f"<title>{esc(title)}</title>",
        f'<text x="{_LEFT - 10}" y="20" font-size="12" fill="#555" text-anchor="end">task</text>',
        f'<text x="{_LEFT + _PLOT / 2}" y="20" font-size="12" fill="#555" text-anchor="middle">'
        "candidate \u2212 baseline (points)</text>",
        f'<text x="{_LEFT + _PLOT + 12}" y="20" font-size="12" fill="#555">delta [interval]</text>',
    ]
    for i, task in enumerate(tasks):
        out.append(_row(task, _TOP + i * _ROW, lim))
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
    step = lim / 2
    for k in range(-2, 3):
        v = k * step
        out.append(
            f'<line x1="{x(v):.1f}" y1="{bottom}" x2="{x(v):.1f}" y2="{bottom + 5}" stroke="#999"/>'
            f'<text x="{x(v):.1f}" y="{bottom + 18}" font-size="11" fill="#555" '
            f'text-anchor="middle">{_tick(v)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _tick(v: float) -> str:
    return "0" if v == 0 else f"{v:+g}".replace("-", "\u2212")


def _x(v_points: float, lim: float) -> float:
    v = max(-lim, min(lim, v_points))
    return _LEFT + (v + lim) / (2 * lim) * _PLOT


def _row(task: Mapping[str, Any], top: float, lim: float) -> str:
    def x(v_points: float) -> float:
        return _x(v_points, lim)

    name = str(task.get("task", "?"))
    status = str(task.get("verdict", "SKIP"))
    colour = VERDICT_COLOURS.get(status, "#6b7280")
    tol = number(task, "tolerance")
    nums = delta_numbers(task)
    delta, lo, hi = (number(nums, k) for k in ("delta", "ci_low", "ci_high"))
    mid = top + _ROW / 2
    label = name if len(name) <= 26 else name[:25] + "\u2026"
    marker = " \u26a0" if task.get("safety_critical") else ""
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
        x0 = x(-lim)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top + 4}" width="{x(-t) - x0:.1f}" height="{_ROW - 8}" '
            'fill="#fdecea"/>'
            f'<rect x="{x(-t):.1f}" y="{top + 4}" width="{x(t) - x(-t):.1f}" height="{_ROW - 8}" '
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
                clipped = abs(v * 100) > lim
                if clipped:
                    d = -1 if v < 0 else 1
                    parts.append(f'<path d="M{xe:.1f},{mid} l{-6 * d},-5 v10 z" fill="{colour}"/>')
                else:
                    parts.append(
                        f'<line x1="{xe:.1f}" y1="{mid - 6}" x2="{xe:.1f}" y2="{mid + 6}" '
                        f'stroke="{colour}" stroke-width="2"/>'
                    )
        parts.append(
            f'<circle cx="{x(delta * 100):.1f}" cy="{mid}" r="5.5" fill="{colour}" '
            'stroke="#fff" stroke-width="1.5"/>'
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
