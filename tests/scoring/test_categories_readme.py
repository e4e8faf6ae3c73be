"""The README's failure-categories table is one Markdown table holding every category, in the
order the rules are tried, with its direction and rule as the code has them (a blank line inside
it once pushed every row after `judge_error` out of the table)."""

from __future__ import annotations

from pathlib import Path

from pytest_parity.scoring.categories import CATEGORIES, direction_of

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> list[list[str]]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| category | direction | rule |")
    assert lines[start + 1].startswith("|---")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break  # a Markdown table ends at the first line that is not a row
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_the_table_is_contiguous_and_holds_every_category_in_rule_order() -> None:
    rows = _table()
    assert [r[0].strip("`") for r in rows] == list(CATEGORIES)


def test_each_row_says_what_the_code_does() -> None:
    for name, direction, rule in _table():
        category = name.strip("`")
        assert direction == direction_of(category), category
        assert rule == CATEGORIES[category], category
