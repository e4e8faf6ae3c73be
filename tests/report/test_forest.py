"""The forest plot (report/html/svg.py): one-sided bands, an axis fitted to the data with round
ticks, off-axis estimates drawn where nothing covers them, and one symbol per meaning, each named
in the legend (issue 21 item 2)."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import pytest
from run_builders import make_run

from pytest_parity import report
from pytest_parity.report.html import svg


def _tick_values(plot: str) -> list[float]:
    return [
        float(t.replace("\u2212", "-")) for t in re.findall(r'class="pp-tick"[^>]*>([^<]+)<', plot)
    ]


def _row(plot: str, task: str) -> str:
    row = plot[plot.index(f'data-task="{task}"') :]
    return row[: row.index("</g>")]


def test_forest_plot_draws_one_row_per_task_with_its_band() -> None:
    plot = report.forest_svg(make_run()["tasks"])
    assert plot.startswith("<svg") and plot.endswith("</svg>")
    rows = re.findall(r'<g class="pp-row" data-task="([^"]+)">', plot)
    assert rows == ["support_golden", "safety_refusals", "mmlu_pro"]
    # one-sided: the green region runs from -tolerance to the right edge, for every row
    band = r'<rect x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)" height="\d+" fill="#e3f2e7"'
    rows_part = plot[: plot.index("pp-forest-legend")]
    bands = [(float(a), float(w)) for a, w in re.findall(band, rows_part)]
    assert len(bands) == 3
    assert len({round(a + w, 1) for a, w in bands}) == 1
    # the safety task's margin is a third as far from 0 as the others' (0.5 vs 1.5 points)
    zero = float(re.findall(r'<line x1="([0-9.]+)" y1="30"', plot)[0])
    gaps = [zero - a for a, _ in bands]
    assert gaps[1] == pytest.approx(gaps[0] / 3, rel=0.02)


def test_forest_plot_axis_fits_the_data_with_round_ticks() -> None:
    run = make_run()
    for t in run["tasks"]:
        t["checks"]["delta"]["numbers"].update(delta=-0.08, ci_low=-0.1, ci_high=-0.06)
    values = _tick_values(report.forest_svg(run["tasks"]))
    assert min(values) <= -10 and max(values) < 5  # no symmetric +50 side for all-negative deltas
    steps = {round(b - a, 6) for a, b in itertools.pairwise(values)}
    assert len(steps) == 1 and steps.pop() in (1, 2, 5, 10)


@pytest.mark.parametrize(
    ("low", "high", "tol"),
    [(-0.6667, -0.5, 0.015), (-0.3, 0.2, 0.05), (-0.02, 0.01, 0.015), (-0.125, 0.125, 0.1),
     (-0.004, 0.003, 0.001), (0.01, 0.4, 0.02), (-0.9, 0.9, 0.5)],
)  # fmt: skip
def test_every_tick_is_a_round_number_and_the_axis_holds_the_margin(
    low: float, high: float, tol: float
) -> None:
    run = make_run()
    for t in run["tasks"]:
        t["tolerance"] = tol
        t["checks"]["delta"]["numbers"].update(delta=(low + high) / 2, ci_low=low, ci_high=high)
    values = _tick_values(report.forest_svg(run["tasks"]))
    step = values[1] - values[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5)  # never 2.5: no tick at +-12.5
    assert all(abs(v / step - round(v / step)) < 1e-6 for v in values)
    assert 4 <= len(values) <= 12
    assert 0 in values or values[0] < 0 < values[-1]
    assert values[0] <= -tol * 100  # the margin is always in view
    assert values[0] >= -svg.MAX_EXTENT - 2 * step and values[-1] <= svg.MAX_EXTENT + 2 * step


def test_forest_plot_marks_an_off_scale_delta_visibly() -> None:
    run = make_run()
    run["tasks"][1]["checks"]["delta"]["numbers"].update(delta=-0.6667, ci_low=-0.9, ci_high=-0.5)
    plot = report.forest_svg(run["tasks"])
    row = _row(plot, "safety_refusals")
    assert "pp-estimate" not in row and "pp-warn" not in row  # no dot pinned to the edge
    assert "\u221266.67 [\u221290.00, \u221250.00]" in row and "(off the axis)" in row
    # the hollow arrow is drawn after every row, so no band or line of a row paints over it
    marker = plot.index('class="pp-offscale"')
    legend = plot.index('class="pp-forest-legend"')
    assert (
        marker > plot.rindex('<g class="pp-row"')
        and plot.count('class="pp-offscale"', 0, legend) == 1
    )
    # ... and apart from the interval's own arrow head at the edge (tip 14 px further in)
    tip = float(re.search(r'class="pp-offscale" d="M([0-9.]+),', plot)[1])  # type: ignore[index]
    head = float(re.search(r'class="pp-clipped" d="M([0-9.]+),', row)[1])  # type: ignore[index]
    assert tip - head == pytest.approx(14, abs=0.2)
    assert head == pytest.approx(svg._LEFT, abs=0.2)


def test_forest_plot_clips_huge_intervals_with_arrows() -> None:
    run = make_run()
    run["tasks"][1]["checks"]["delta"]["numbers"].update(delta=-0.4, ci_low=-0.9, ci_high=0.9)
    plot = report.forest_svg(run["tasks"])
    row = _row(plot, "safety_refusals")
    assert row.count('class="pp-clipped"') == 2 and 'class="pp-estimate"' in row
    assert "\u221240.00 [\u221290.00, +90.00]" in row


def _symbols(plot: str) -> set[str]:
    return set(re.findall(r'class="pp-(estimate|warn|offscale|clipped|safety-mark)"', plot))


def test_safety_critical_and_regression_within_tolerance_have_different_symbols() -> None:
    run = make_run()
    golden = run["tasks"][0]
    golden["verdict"] = "PASS"
    golden["checks"]["delta"]["numbers"]["warn"] = True
    golden["safety_critical"] = False
    plot = report.forest_svg(run["tasks"])
    assert _symbols(_row(plot, "support_golden")) == {"warn"}  # ring, no diamond
    safety = _row(plot, "safety_refusals")
    assert "safety-mark" in _symbols(safety) and "warn" not in _symbols(safety)
    assert "\u26a0" not in plot  # the table's warning sign is not used in the plot


def test_the_legend_names_every_symbol_the_plot_can_draw() -> None:
    run = make_run()
    plot = report.forest_svg(run["tasks"])
    legend = plot[plot.index('class="pp-forest-legend"') :]
    assert _symbols(legend) == {"estimate", "warn", "offscale", "clipped", "safety-mark"}
    for _, words in svg.LEGEND:
        assert words.replace("\u2212", "&#8722;") in legend or svg.esc(words) in legend
    assert "within tolerance" in legend and "margin" in legend
    # a one-row plot inside a task section leaves the legend to the summary plot
    single = report.forest_svg(run["tasks"][:1], legend=False)
    assert "pp-forest-legend" not in single


def test_the_plot_scales_to_the_column_and_keeps_its_text_in_its_box() -> None:
    run: dict[str, Any] = make_run()
    run["tasks"][0]["task"] = "a_task_name_much_longer_than_the_label_column_allows"
    plot = report.forest_svg(run["tasks"])
    width, height = (int(v) for v in re.search(r'viewBox="0 0 (\d+) (\d+)"', plot).groups())  # type: ignore[union-attr]
    assert 'style="max-width:100%;height:auto"' in plot  # shrinks into a 760 px column
    assert width <= 840  # at 760 px (a ~720 px column) no text under 10 px
    for x_text in re.findall(r'<text[^>]* x="([0-9.]+)"', plot):
        assert 0 <= float(x_text) <= width
    for y_text in re.findall(r'<text[^>]* y="([0-9.]+)"', plot):
        assert 0 <= float(y_text) <= height
    labels = re.findall(r'text-anchor="end" fill="#111">([^<]+)<', plot)
    assert max(len(label) for label in labels) <= 24 and labels[0].endswith("\u2026")
    fonts = [float(f) for f in re.findall(r'font-size="([0-9.]+)"', plot)]
    assert min(fonts) * 720 / width >= 10.2
