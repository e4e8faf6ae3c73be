"""One formatter for every report (issue 21 item 5): points, percents, p-values, signs, arrows."""

from __future__ import annotations

import html
import re

import pytest
from run_builders import make_run

from pytest_parity import report
from pytest_parity.report.numfmt import (
    change,
    count,
    p_text,
    percent,
    points,
    prose,
    pvalue,
    tick,
    visible,
)


@pytest.mark.parametrize(
    ("p", "shown"),
    [(0.31, "0.31"), (0.016, "0.016"), (0.0021, "0.0021"), (0.05, "0.05"), (0.00004, "< 0.001"),
     (0.999, "1.0"), (None, "n/a"), (float("nan"), "n/a")],
)  # fmt: skip
def test_p_values_have_two_significant_digits_down_to_one_in_a_thousand(
    p: float | None, shown: str
) -> None:
    assert pvalue(p) == shown
    assert p_text(p) == (f"p {shown}" if shown.startswith("<") else f"p = {shown}")


def test_points_use_a_true_minus_and_never_show_minus_zero() -> None:
    assert points(-0.004) == "\u22120.40" and points(0.012) == "+1.20"
    assert points(-0.00001) == "+0.00" and points(0.015, signed=False) == "1.50"
    assert points(True) == "n/a"  # a flag is not a number
    assert percent(0.8421) == "84.2%" and count(2400) == "2,400" and change(0, 56) == "0 → 56"


def test_prose_signs_numbers_but_not_ids_or_words() -> None:
    assert prose("bound -0.90 pts, -tolerance, q-1, 0 -> 6 (-1.5)") == (
        "bound \u22120.90 pts, -tolerance, q-1, 0 → 6 (\u22121.5)"
    )
    assert visible("a\u202eb\u200fc") == "a<U+202E>b<U+200F>c"


def test_the_same_delta_reads_the_same_in_html_markdown_and_pytest_html() -> None:
    from pytest_parity.report.pytest_html import row_cells

    run = make_run()
    shown = "\u22122.10 [\u22123.40, \u22120.90] pts"
    page = html.unescape(re.sub(r"<[^>]+>", " ", report.to_html(run)))
    md = report.to_markdown(run).replace("\\[", "[").replace("\\]", "]")
    cells = html.unescape(" ".join(row_cells(run["tasks"][1])))
    assert shown in page and shown in md and shown in cells


def test_the_forest_plot_formats_with_numfmt_too() -> None:
    from pytest_parity.report.html import svg

    assert tick(0.0) == "0" and tick(-2.5) == "\u22122.5" and tick(5.0) == "+5"
    assert svg.points is points  # one formatter: the plot has no copy of its own
    plot = report.forest_svg(make_run()["tasks"])
    shown = re.findall(r'class="pp-tick"[^>]*>([^<]+)<', plot)
    assert shown and all(s == tick(float(s.replace("\u2212", "-"))) for s in shown)
    assert "\u22122.10 [\u22123.40, \u22120.90]" in plot
