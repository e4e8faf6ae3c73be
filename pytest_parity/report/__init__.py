"""Reports made from a RunResult: JSON, Markdown, the standalone HTML page, the terminal section
and the pytest-html extras. Each format is a pure ``to_*`` function plus a ``write_*`` one."""

from __future__ import annotations

from pytest_parity.report.formats import (
    FORMAT,
    SCHEMA_PATH,
    forest_svg,
    plain,
    safe_url,
    to_html,
    to_json,
    to_markdown,
    write_html,
    write_json,
    write_markdown,
)

__all__ = [
    "FORMAT",
    "SCHEMA_PATH",
    "forest_svg",
    "plain",
    "safe_url",
    "to_html",
    "to_json",
    "to_markdown",
    "write_html",
    "write_json",
    "write_markdown",
]
