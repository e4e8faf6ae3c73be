"""The drift report (``--parity-monitor-report=PATH.html``): one self-contained page, the house
style of the parity report (same stylesheet, inline SVG, a Content-Security-Policy that forbids
any script).

Per task and segment: the status (ALERT / OK / resolved) and its reason, the confidence sequence
over time (the estimate as a line, the bound as a band, the alert line dashed), the change
detector against its threshold, the input-shift panels (this run's requests against the reference
window) and example pairs; per task, the segment-mix panel (every segment's share of requests in
the reference window and now). Input is the monitor's plain outcomes (see
:mod:`pytest_parity.report.alerts` for their keys); every string in them (segment names, prompts,
answers, links) is escaped, links other than http(s) are shown as text, never as ``href``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_parity.report.alerts import is_mix_row, mix_note
from pytest_parity.report.formats import safe_url
from pytest_parity.report.html.sections import CSS, as_list, mapping
from pytest_parity.report.html.svg import VERDICT_COLOURS, esc, number
from pytest_parity.report.numfmt import points

__all__ = ["cusum_svg", "mix_panel", "render_monitor", "sequence_svg"]

_W, _H, _L, _R, _T, _B = 760, 230, 64, 16, 14, 34  # plot size and margins (pixels)
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'
_BAND, _EST, _LINE = "#cfe0f3", "#1f5fa8", "#c62828"

_MONITOR_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6}
main.pp{max-width:1120px;margin:0 auto;background:#fff;padding:28px 40px 40px;min-height:100vh}
.pp header h1{font-size:26px;margin:0 0 2px}
.pp-sub{color:#5f6670;margin:0 0 18px}
.pp-seg{border:1px solid var(--line);border-left:6px solid var(--pass);border-radius:6px;
padding:4px 20px 12px;margin:18px 0}
.pp-seg.pp-alert{border-left-color:var(--fail)}.pp-seg.pp-resolved{border-left-color:var(--inc)}
.pp-plot{width:100%;max-width:780px;height:auto;display:block;margin:6px 0}
footer.pp-muted{margin-top:30px;border-top:1px solid var(--line);padding-top:8px}
@media print{body{background:#fff}main.pp{padding:0;max-width:none}.pp-seg{break-inside:avoid}}
"""


def _when(ts: Any) -> str:
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        return "?"
    t = dt.datetime.fromtimestamp(float(ts), tz=dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _points_of(history: Sequence[Any], *keys: str) -> list[dict[str, float]]:
    """History points with every key a finite number (others skipped)."""
    out = []
    for p in history:
        if not isinstance(p, Mapping):
            continue
        vals = {k: number(p, k) for k in keys}
        if all(v is not None for v in vals.values()):
            out.append({k: float(v) for k, v in vals.items() if v is not None})
    return out


def _nice(span: float) -> float:
    raw = span / 5 if span > 0 else 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return float(next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw))


def _frame(
    xs: Sequence[float], y_lo: float, y_hi: float, unit: str, title: str
) -> tuple[str, Any, Any]:
    """Axes, ticks and title; returns the SVG head and the x, y mappings."""
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    if y_hi <= y_lo:
        y_lo, y_hi = y_lo - 1, y_hi + 1

    def fx(v: float) -> float:
        return _L + (v - x0) / (x1 - x0) * (_W - _L - _R)

    def fy(v: float) -> float:
        v = min(max(v, y_lo), y_hi)
        return _T + (y_hi - v) / (y_hi - y_lo) * (_H - _T - _B)

    parts = [
        f'<rect x="{_L}" y="{_T}" width="{_W - _L - _R}" height="{_H - _T - _B}" fill="#fff" '
        'stroke="#e2e5e9"/>'
    ]
    step = _nice(y_hi - y_lo)
    v = math.ceil(y_lo / step) * step
    while v <= y_hi + 1e-12:
        y = fy(v)
        parts.append(
            f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>'
            f'<text x="{_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{esc(f'{v:+.4g}'.replace('-', chr(0x2212)))}</text>"
        )
        v += step
    xstep = _nice(x1 - x0)
    v = math.ceil(x0 / xstep) * xstep
    while v <= x1 + 1e-9:
        parts.append(
            f'<text x="{fx(v):.1f}" y="{_H - _B + 16}" font-size="11" text-anchor="middle">'
            f"{esc(f'{v:,.0f}')}</text>"
        )
        v += xstep
    parts.append(
        f'<text x="{(_L + _W - _R) / 2}" y="{_H - 4}" font-size="11" text-anchor="middle">'
        f"pairs counted</text>"
        f'<text x="14" y="{(_T + _H - _B) / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {(_T + _H - _B) / 2})">{esc(unit)}</text>'
    )
    head = (
        f'<svg class="pp-plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" '
        f'role="img" aria-label="{esc(title)}" {_FONT}><title>{esc(title)}</title>'
    )
    return head + "".join(parts), fx, fy


def sequence_svg(history: Sequence[Any], line: float | None, title: str) -> str:
    """The estimate over time (points x100) with the confidence sequence's band and the dashed
    alert line; the band is clipped to the plotted range (early bounds span the whole scale)."""
    pts = _points_of(history, "n", "estimate", "lower", "upper")
    if not pts:
        return '<p class="pp-muted">No points of the sequence yet.</p>'
    ests = [100 * p["estimate"] for p in pts]
    lin = 100 * line if line is not None else None
    late = [p for p in pts[len(pts) // 3 :]] or pts
    y_lo = min([*ests, *(100 * p["lower"] for p in late), *([2 * lin] if lin else [])])
    y_hi = max([*ests, *(100 * p["upper"] for p in late), *([-lin] if lin else []), 0.0])
    pad = 0.08 * (y_hi - y_lo or 1.0)
    head, fx, fy = _frame([p["n"] for p in pts], y_lo - pad, y_hi + pad, "points", title)
    upper = " ".join(f"{fx(p['n']):.1f},{fy(100 * p['upper']):.1f}" for p in pts)
    lower = " ".join(f"{fx(p['n']):.1f},{fy(100 * p['lower']):.1f}" for p in reversed(pts))
    est = " ".join(f"{fx(p['n']):.1f},{fy(v):.1f}" for p, v in zip(pts, ests, strict=True))
    parts = [head, f'<polygon points="{upper} {lower}" fill="{_BAND}" stroke="none"/>']
    if len(pts) == 1:
        p = pts[0]
        parts.append(
            f'<line x1="{fx(p["n"]):.1f}" x2="{fx(p["n"]):.1f}" y1="{fy(100 * p["upper"]):.1f}"'
            f' y2="{fy(100 * p["lower"]):.1f}" stroke="{_BAND}" stroke-width="8"/>'
        )
    zero = fy(0.0)
    parts.append(f'<line x1="{_L}" x2="{_W - _R}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#999"/>')
    if lin is not None:
        y = fy(lin)
        parts.append(
            f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_LINE}" '
            f'stroke-dasharray="6 4" stroke-width="1.5"/>'
            f'<text x="{_W - _R - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{_LINE}">alert line {esc(points(line))}</text>'
        )
    parts.append(f'<polyline points="{est}" fill="none" stroke="{_EST}" stroke-width="2"/>')
    for p, v in zip(pts, ests, strict=True):
        parts.append(f'<circle cx="{fx(p["n"]):.1f}" cy="{fy(v):.1f}" r="2.2" fill="{_EST}"/>')
    return "".join(parts) + "</svg>"


def cusum_svg(history: Sequence[Any], title: str) -> str:
    """The change detector's log e-value over time against its threshold."""
    pts = _points_of(history, "n", "cusum", "cusum_threshold")
    if not pts:
        return ""
    thr = pts[-1]["cusum_threshold"]
    vals = [p["cusum"] for p in pts]
    y_lo, y_hi = min([*vals, -1.0]), max([*vals, thr])
    pad = 0.08 * (y_hi - y_lo)
    head, fx, fy = _frame([p["n"] for p in pts], y_lo - pad, y_hi + pad, "log e-value", title)
    line = " ".join(f"{fx(p['n']):.1f},{fy(p['cusum']):.1f}" for p in pts)
    y = fy(thr)
    return (
        head + f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_LINE}" '
        'stroke-dasharray="6 4" stroke-width="1.5"/>'
        f'<text x="{_W - _R - 4}" y="{y - 4:.1f}" font-size="11" text-anchor="end" '
        f'fill="{_LINE}">threshold {esc(f"{thr:.2f}")}</text>'
        f'<polyline points="{line}" fill="none" stroke="#6a1b9a" stroke-width="2"/></svg>'
    )


def _link(url: Any, text: Any) -> str:
    s = str(url or "")
    if s.startswith(("https://", "http://")):
        return f'<a href="{esc(safe_url(s))}" rel="noreferrer noopener">{esc(text)}</a>'
    return esc(text)


def _summary_text(summary: Mapping[str, Any]) -> str:
    if "shares" in summary:
        shares = mapping(summary.get("shares"))
        return ", ".join(
            f"{k} {float(v):.0%}" for k, v in shares.items() if number(shares, k) is not None
        )
    keys = [k for k in ("median", "p90", "mean") if number(summary, k) is not None]
    return ", ".join(f"{k} {number(summary, k):.4g}" for k in keys)


def shift_table(shift: Sequence[Any]) -> str:
    rows = []
    for r in shift:
        if not isinstance(r, Mapping):
            continue
        eff = number(r, "effect_size")
        ph = number(r, "p_holm")
        cls = ' class="pp-hot"' if r.get("shifted") else ""
        if is_mix_row(r):  # the task's segment mix, tested in this segment's family
            changes = [c for c in as_list(r.get("changes")) if isinstance(c, Mapping)]
            was = ", ".join(f"{c.get('segment')} {_pct(c.get('before'))}" for c in changes[:5])
            now = ", ".join(f"{c.get('segment')} {_pct(c.get('after'))}" for c in changes[:5])
        else:
            was = _summary_text(mapping(r.get("reference_summary")))
            now = _summary_text(mapping(r.get("current_summary")))
        rows.append(
            f"<tr{cls}><th>{esc(r.get('feature', '?'))}</th><td>{esc(r.get('test', ''))}</td>"
            f"<td>{esc(was)}</td><td>{esc(now)}</td>"
            f"<td class='pp-num'>{esc('n/a' if eff is None else f'{eff:+.2f}')}"
            f" <span class='pp-muted'>{esc(r.get('effect', ''))}</span></td>"
            f"<td class='pp-num'>{esc('n/a' if ph is None else f'{ph:.2g}')}</td>"
            f"<td>{'shifted' if r.get('shifted') else 'no'}</td></tr>"
        )
    if not rows:
        return (
            '<p class="pp-muted">No input-shift test this run '
            "(no new or no reference requests).</p>"
        )
    moved = [r for r in shift if isinstance(r, Mapping) and r.get("shifted")]
    shifted = [str(r.get("feature")) for r in moved if not is_mix_row(r)]
    mixed = [r for r in moved if is_mix_row(r)]
    lead = (
        f"<p>The inputs changed: {esc(', '.join(shifted))}.</p>"
        if shifted
        else "<p>No material change of the inputs against the reference window.</p>"
    ) + "".join(f"<p><b>{esc(_cap(mix_note(r)))}.</b></p>" for r in mixed)
    return (
        lead + "<table><tr><th>feature</th><th>test</th><th>reference</th><th>now</th>"
        "<th>effect</th><th>Holm p</th><th>shifted</th></tr>" + "".join(rows) + "</table>"
    )


def _pct(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "n/a"
    return f"{100 * float(v):.1f}%"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def mix_panel(row: Any) -> str:
    """The task's segment mix: the verdict and every segment's share before and after."""
    if not isinstance(row, Mapping):
        return ""
    changes = [c for c in as_list(row.get("changes")) if isinstance(c, Mapping)]
    body = "".join(
        f"<tr><th>{esc(c.get('segment', '?'))}</th><td class='pp-num'>{esc(_pct(c.get('before')))}"
        f"</td><td class='pp-num'>{esc(_pct(c.get('after')))}</td><td class='pp-num'>"
        f"{esc(_signed_pts(c.get('change')))}</td></tr>"
        for c in changes
    )
    lead = (
        f"<p><b>{esc(_cap(mix_note(row)))}.</b></p>"
        if row.get("shifted")
        else "<p>No material change of the segment mix against the reference window "
        f"({esc(mix_note(row).split(': ', 1)[-1])}).</p>"
    )
    return (
        f"<h3>Did the segment mix change?</h3>{lead}<table><tr><th>segment</th>"
        "<th>reference share</th><th>share now</th><th>change</th></tr>" + body + "</table>"
    )


def _signed_pts(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "n/a"
    return f"{100 * float(v):+.1f} pts".replace("-", "\u2212")


def examples_html(examples: Sequence[Any]) -> str:
    out = []
    for e in examples:
        if not isinstance(e, Mapping):
            continue
        score = number(e, "score")
        head = (
            f"pair {_link(e.get('link'), e.get('pair_id'))} \u00b7 {esc(_when(e.get('ts')))}"
            f" \u00b7 judged {esc('n/a' if score is None else f'{score:+g}')}"
        )
        out.append(
            f'<div class="pp-dis"><div class="pp-dis-head">{head}</div><div class="pp-dis-body">'
            '<div class="pp-label">prompt</div>'
            f'<div class="pp-pre">{esc(e.get("prompt", ""))}</div>'
            '<div class="pp-pair"><div><div class="pp-label">old (baseline)</div>'
            f'<div class="pp-pre">{esc(e.get("baseline", ""))}</div></div>'
            '<div><div class="pp-label">new (candidate)</div>'
            f'<div class="pp-pre">{esc(e.get("candidate", ""))}</div></div></div></div></div>'
        )
    return "".join(out)


def _segment_html(task: Mapping[str, Any], seg: Mapping[str, Any]) -> str:
    status = mapping(seg.get("status"))
    name = f"{task.get('task', '?')} / {seg.get('segment', '?')}"
    if seg.get("alert"):
        word, cls, colour = "ALERT", "pp-alert", VERDICT_COLOURS["FAIL"]
    elif seg.get("resolved"):
        word, cls, colour = "RESOLVED", "pp-resolved", VERDICT_COLOURS["INCONCLUSIVE"]
    else:
        word, cls, colour = "OK", "", VERDICT_COLOURS["PASS"]
    line = number(task, "bound")
    if line is None:
        line = number(status, "alert_line")
    history = as_list(seg.get("history"))
    nums = (
        f"n = {int(number(status, 'n') or 0):,}"
        f" \u00b7 estimate {points(number(status, 'estimate'))}"
        f" \u00b7 bound [{points(number(status, 'lower'))}, {points(number(status, 'upper'))}]"
        f" \u00b7 alert line {points(line)}"
        if status
        else "no judged pairs yet"
    )
    counts = (
        f"this run: {int(number(seg, 'new_pairs') or 0):,} new pairs, "
        f"{int(number(seg, 'judged') or 0):,} judged, {int(number(seg, 'unjudged') or 0):,} "
        "without a judged score"
    )
    examples = as_list(seg.get("examples"))
    return (
        f'<section class="pp-seg {cls}"><h3>{esc(name)} '
        f'<span class="pp-badge" style="background:{colour};color:#fff">{esc(word)}</span></h3>'
        f"<p>{esc(status.get('reason') or '')}</p><p class='pp-muted'>{esc(nums)} \u00b7 "
        f"{esc(counts)}</p>"
        f"<h4>The sequence</h4>{sequence_svg(history, line, f'Confidence sequence of {name}')}"
        '<p class="pp-muted">line: running mean of the judged paired score (new \u2212 old) in '
        "points; band: the anytime-valid confidence sequence; dashed: the alert line.</p>"
        f"{cusum_svg(history, f'Change detector of {name}')}"
        f"<h4>Did the inputs change?</h4>{shift_table(as_list(seg.get('shift')))}"
        + (f"<h4>Example pairs (newest losses)</h4>{examples_html(examples)}" if examples else "")
        + "</section>"
    )


def render_monitor(outcomes: Sequence[Mapping[str, Any]], *, title: str = "Drift report") -> str:
    """The whole page for the monitor's outcomes (one per task)."""
    tasks = [o for o in outcomes if isinstance(o, Mapping)]
    alerts = [
        f"{t.get('task')} / {s.get('segment')}"
        for t in tasks
        for s in as_list(t.get("segments"))
        if isinstance(s, Mapping) and s.get("alert")
    ]
    head = (
        f"<p><b style='color:{VERDICT_COLOURS['FAIL']}'>Drift alert</b> on "
        f"{esc(', '.join(alerts))}.</p>"
        if alerts
        else "<p>No drift alert is firing.</p>"
    )
    body = []
    for t in tasks:
        reasons = "".join(f"<li>{esc(r)}</li>" for r in as_list(t.get("reasons")))
        tol = number(t, "tolerance")
        body.append(
            f'<h2 id="{esc("task-" + str(t.get("task", "")))}">{esc(t.get("task", "?"))}</h2>'
            f"<p class='pp-muted'>tolerance {esc(points(tol, signed=False))} \u00b7 alert line "
            f"{esc(points(number(t, 'bound')))}</p><ul>{reasons}</ul>"
            + mix_panel(t.get("mix"))
            + "".join(
                _segment_html(t, s) for s in as_list(t.get("segments")) if isinstance(s, Mapping)
            )
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{_MONITOR_CSS}</style></head>"
        f'<body><main class="pp"><header><h1>{esc(title)}</h1><p class="pp-sub">'
        "the judged paired score of the shadow pairs, per segment, monitored with an "
        "anytime-valid confidence sequence and a change detector</p></header>"
        f"{head}{''.join(body)}"
        '<footer class="pp-muted">Made by pytest-parity. This file is self-contained: no '
        "scripts, no network requests.</footer></main></body></html>\n"
    )
