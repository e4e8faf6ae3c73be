"""The calibration and tone checks' own report sections: a table of their numbers and inline SVG
(a reliability diagram old vs new; length and rubric histograms old vs new).

Built as strings like the forest plot, so the report stays one file; every piece of text and
every attribute is escaped, whatever the numbers or names hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_parity.report.html.sections import as_list, mapping
from pytest_parity.report.html.svg import esc, number

__all__ = ["calibration_html", "tone_html"]

OLD, NEW = "#1f5fa8", "#d9730d"  # baseline blue, candidate orange
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "n/a" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(nums: Mapping[str, Any], rows: Sequence[tuple[str, str, str]]) -> str:
    body = "".join(
        f"<tr><th>{esc(label)}</th><td class='pp-num'>{esc(_fmt(nums.get(a)))}</td>"
        f"<td class='pp-num'>{esc(_fmt(nums.get(b)))}</td></tr>"
        for label, a, b in rows
        if a in nums or b in nums
    )
    return f"<table><tr><th></th><th>old</th><th>new</th></tr>{body}</table>" if body else ""


def _legend(x: float, y: float) -> str:
    return (
        f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{OLD}"/>'
        f'<text x="{x + 14}" y="{y}" font-size="11">old (baseline)</text>'
        f'<rect x="{x + 110}" y="{y - 9}" width="10" height="10" fill="{NEW}"/>'
        f'<text x="{x + 124}" y="{y}" font-size="11">new (candidate)</text>'
    )


def reliability_svg(old: Sequence[Any], new: Sequence[Any], title: str) -> str:
    """Accuracy against mean confidence per bin, old vs new; the diagonal is perfect calibration.
    Point area grows with the bin's count; hovering a point shows its numbers."""
    size, pad = 260, 36
    w, h = size + 2 * pad, size + 2 * pad + 18

    def px(v: float) -> float:
        return pad + v * size

    def py(v: float) -> float:
        return pad + (1 - v) * size

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {w} {h}" width="{w}"'
        f' height="{h}" aria-label="{esc(title)}" {_FONT}>',
        f"<title>{esc(title)}</title>",
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="#fafafa" stroke="#bbb"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#999"'
        ' stroke-dasharray="4 3"/>',
        f'<text x="{pad + size / 2}" y="{h - 6}" font-size="11" text-anchor="middle">'
        "confidence</text>",
        f'<text x="10" y="{pad + size / 2}" font-size="11" text-anchor="middle"'
        f' transform="rotate(-90 10 {pad + size / 2})">accuracy</text>',
    ]
    for tick in (0, 0.5, 1):
        out.append(
            f'<text x="{px(tick)}" y="{pad + size + 13}" font-size="10" text-anchor="middle">'
            f"{tick:g}</text>"
            f'<text x="{pad - 4}" y="{py(tick) + 3}" font-size="10" text-anchor="end">'
            f"{tick:g}</text>"
        )
    total = sum(number(mapping(b), "n") or 0 for b in [*old, *new]) or 1
    for colour, label, bins in ((OLD, "old", old), (NEW, "new", new)):
        pts = []
        for b in bins:
            m = mapping(b)
            c, a, k = number(m, "confidence"), number(m, "accuracy"), number(m, "n")
            if c is None or a is None or k is None:
                continue
            pts.append((px(c), py(a), k, c, a))
        if pts:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, *_ in pts)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
            )
        for x, y, k, c, a in pts:
            r = 2.5 + 9 * (k / total) ** 0.5
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}" fill-opacity="0.6">'
                f"<title>{esc(label)}: {int(k)} answers, confidence {c:.2f}, accuracy {a:.2f}"
                "</title></circle>"
            )
    out.append(_legend(pad, 18))
    out.append("</svg>")
    return "".join(out)


def histogram_svg(
    edges: Sequence[Any], old: Sequence[Any], new: Sequence[Any], title: str, unit: str
) -> str:
    """Two histograms on shared bins, side-by-side bars per bin."""
    counts_o = [int(number({"v": v}, "v") or 0) for v in old]
    counts_n = [int(number({"v": v}, "v") or 0) for v in new]
    bins = min(len(counts_o), len(counts_n), max(len(edges) - 1, 0))
    if bins == 0:
        return ""
    width, height, pad = 420, 170, 30
    bar = (width - 2 * pad) / bins
    peak = max([*counts_o[:bins], *counts_n[:bins], 1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height + 40}"'
        f' width="{width}" height="{height + 40}" aria-label="{esc(title)}" {_FONT}>',
        f"<title>{esc(title)}</title>",
        f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#999"/>',
    ]
    for i in range(bins):
        lo, hi = number({"v": edges[i]}, "v") or 0.0, number({"v": edges[i + 1]}, "v") or 0.0
        for j, (colour, label, k) in enumerate(
            ((OLD, "old", counts_o[i]), (NEW, "new", counts_n[i]))
        ):
            bh = (height - pad) * k / peak
            x = pad + i * bar + j * bar / 2
            out.append(
                f'<rect x="{x:.1f}" y="{height - bh:.1f}" width="{bar / 2 - 1:.1f}"'
                f' height="{bh:.1f}" fill="{colour}"><title>{esc(label)}: {k} answers with'
                f" {lo:.3g}-{hi:.3g} {esc(unit)}</title></rect>"
            )
        if i % max(bins // 6, 1) == 0:
            out.append(
                f'<text x="{pad + i * bar:.1f}" y="{height + 13}" font-size="10">{lo:.3g}</text>'
            )
    out.append(
        f'<text x="{width / 2}" y="{height + 28}" font-size="11" text-anchor="middle">'
        f"{esc(unit)}</text>"
    )
    out.append(_legend(pad, 16))
    out.append("</svg>")
    return "".join(out)


CAL_ROWS = (
    ("Brier score", "brier_baseline", "brier_candidate"),
    ("AURC (selective risk)", "aurc_baseline", "aurc_candidate"),
    ("ECE (not gated)", "ece_baseline", "ece_candidate"),
    ("Mean confidence", "mean_confidence_baseline", "mean_confidence_candidate"),
    ("Accuracy", "accuracy_baseline", "accuracy_candidate"),
    ("Share at or above the threshold", "above_share_baseline", "above_share_candidate"),
    ("Error rate above the threshold", "above_error_baseline", "above_error_candidate"),
    ("Answers without a confidence", "missing_baseline", "missing_candidate"),
)
CAL_DELTAS = (
    ("Brier delta", "brier_delta", "brier_ci_low", "brier_ci_high", "brier_tolerance"),
    ("AURC delta", "aurc_delta", "aurc_ci_low", "aurc_ci_high", "aurc_tolerance"),
    ("Above-threshold share delta", "above_share_delta", "above_share_ci_low",
     "above_share_ci_high", ""),
    ("Above-threshold error delta", "above_error_delta", "above_error_ci_low",
     "above_error_ci_high", ""),
)  # fmt: skip


def _deltas(nums: Mapping[str, Any], rows: Sequence[tuple[str, str, str, str, str]]) -> str:
    body = []
    for label, d, lo, hi, tol in rows:
        if number(nums, d) is None:
            continue
        ci = (
            f"[{number(nums, lo):+.4f}, {number(nums, hi):+.4f}]"
            if number(nums, lo) is not None and number(nums, hi) is not None
            else "n/a"
        )
        t = f"{number(nums, tol):g}" if tol and number(nums, tol) is not None else "not gated"
        body.append(
            f"<tr><th>{esc(label)}</th><td class='pp-num'>{number(nums, d):+.4f}</td>"
            f"<td class='pp-num'>{esc(ci)}</td><td class='pp-num'>{esc(t)}</td></tr>"
        )
    if not body:
        return ""
    return (
        "<table><tr><th></th><th>new \u2212 old</th><th>interval</th><th>tolerance</th></tr>"
        + "".join(body)
        + "</table>"
    )


def calibration_html(check: Mapping[str, Any]) -> str:
    nums = mapping(check.get("numbers"))
    parts = [
        f"<p class='pp-muted'>confidence: {esc(nums.get('confidence_method', 'n/a'))}, "
        f"{esc(nums.get('n_paired', 'n/a'))} paired items; ECE noise floor at this n "
        f"{esc(_fmt(nums.get('ece_noise_floor')))}</p>",
        _table(nums, CAL_ROWS),
        _deltas(nums, CAL_DELTAS),
    ]
    old, new = as_list(nums.get("reliability_baseline")), as_list(nums.get("reliability_candidate"))
    if old or new:
        parts.append("<h4>Reliability diagram</h4>" + reliability_svg(old, new, "Reliability"))
    return "".join(p for p in parts if p)


TONE_ROWS = (
    ("Mean length", "mean_length_baseline", "mean_length_candidate"),
    ("Tone rubric", "rubric_baseline", "rubric_candidate"),
)


def tone_html(check: Mapping[str, Any]) -> str:
    nums = mapping(check.get("numbers"))
    unit = str(nums.get("length_unit", "words"))
    parts = [_table(nums, TONE_ROWS)]
    if number(nums, "length_ratio") is not None:
        parts.append(
            "<p>length ratio new/old (geometric mean) "
            f"{esc(_fmt(nums.get('length_ratio')))} [{esc(_fmt(nums.get('length_ratio_ci_low')))},"
            f" {esc(_fmt(nums.get('length_ratio_ci_high')))}], equivalence band \u00b1"
            f"{esc(_fmt(nums.get('length_tolerance')))}: {esc(nums.get('length_status', ''))}</p>"
        )
    markers = mapping(nums.get("markers"))
    if markers:
        rows = "".join(
            f"<tr><th>{esc(name)}</th><td class='pp-num'>{esc(_pct(row, 'baseline'))}</td>"
            f"<td class='pp-num'>{esc(_pct(row, 'candidate'))}</td>"
            f"<td class='pp-num'>{esc(_fmt(mapping(row).get('lost')))} / "
            f"{esc(_fmt(mapping(row).get('gained')))}</td>"
            f"<td class='pp-num'>{esc(_fmt(mapping(row).get('p_holm')))}</td>"
            f"<td>{esc(mapping(row).get('status', ''))}</td></tr>"
            for name, row in markers.items()
        )
        parts.append(
            "<table><tr><th>style marker</th><th>old</th><th>new</th><th>lost / gained</th>"
            f"<th>Holm p</th><th></th></tr>{rows}</table>"
        )
    edges = as_list(nums.get("length_hist_edges"))
    if edges:
        parts.append(
            "<h4>Length histogram</h4>"
            + histogram_svg(
                edges,
                as_list(nums.get("length_hist_baseline")),
                as_list(nums.get("length_hist_candidate")),
                "Length histogram",
                unit,
            )
        )
    if as_list(nums.get("rubric_hist_baseline")):
        parts.append(
            "<h4>Tone rubric distribution</h4>"
            + histogram_svg(
                [i / 10 for i in range(11)],
                as_list(nums.get("rubric_hist_baseline")),
                as_list(nums.get("rubric_hist_candidate")),
                f"Tone rubric ({nums.get('rubric_scorer', '')})",
                "rubric score",
            )
        )
    return "".join(p for p in parts if p)


def _pct(row: Any, key: str) -> str:
    v = number(mapping(row), key)
    return "n/a" if v is None else f"{v:.0%}"
