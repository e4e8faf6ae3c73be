"""The parity reports: JSON against its schema, Markdown for CI, the standalone HTML page.

``make_run`` builds a realistic three-task run (PASS / FAIL / INCONCLUSIVE) whose disagreements
carry the strings a hostile or broken model might produce; test_browser.py reuses it.
"""

from __future__ import annotations

import copy
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from run_builders import (
    HOSTILE,
    _delta,
    error_task,
    make_run,
    validate,
)

from pytest_parity import report
from pytest_parity.records import SCHEMA_VERSION, RunResult


def _side(text: str, score: float, category: str, direction: str) -> dict[str, Any]:
    return {
        "text": text,
        "finish_reason": "stop",
        "score": score,
        "parsed": True,
        "category": category,
        "direction": direction,
        "error": None,
        "latency_s": 0.42,
        "cached": False,
    }


# ----------------------------------------------------------------------------------------------
# a structural JSON Schema check (the subset report/schema.json uses), so no jsonschema needed


# ----------------------------------------------------------------------------------------------
# JSON


def test_json_matches_the_schema(schema: dict[str, Any]) -> None:
    doc = json.loads(report.to_json(make_run()))
    assert validate(doc, schema, schema) == []
    assert doc["format"] == "pytest-parity/report"
    assert doc["schema_version"] == SCHEMA_VERSION


def test_json_schema_check_catches_a_broken_document(schema: dict[str, Any]) -> None:
    doc = json.loads(report.to_json(make_run()))
    del doc["tasks"][0]["verdict"]
    doc["tasks"][1]["checks"]["delta"]["status"] = "MAYBE"
    doc["overall"] = 3
    errors = validate(doc, schema, schema)
    assert any("missing 'verdict'" in e for e in errors)
    assert any("'MAYBE' not in" in e for e in errors)
    assert any(e.startswith("$.overall") for e in errors)


def test_json_keeps_every_number_of_the_verdict() -> None:
    run = make_run()
    doc = json.loads(report.to_json(run))
    for got, want in zip(doc["tasks"], run["tasks"], strict=True):
        assert got["checks"] == want["checks"]
        assert got["disagreements"] == want["disagreements"]
    assert doc["holm"] == run["holm"]
    assert doc["pass_probability"] == run["pass_probability"]


def test_json_writes_non_finite_numbers_as_null_and_an_error_task(schema: dict[str, Any]) -> None:
    run = make_run()
    run["tasks"][0]["checks"]["delta"]["numbers"]["p_value"] = float("nan")
    run["tasks"][0]["checks"]["delta"]["numbers"]["mde"] = float("inf")
    run["tasks"].append(error_task())
    doc = json.loads(report.to_json(run))  # allow_nan=False inside: NaN would raise
    assert doc["tasks"][0]["checks"]["delta"]["numbers"]["p_value"] is None
    assert doc["tasks"][0]["checks"]["delta"]["numbers"]["mde"] is None
    assert validate(doc, schema, schema) == []


def test_json_strips_credentials_from_endpoint_urls(tmp_path: Path) -> None:
    path = tmp_path / "out" / "parity.json"
    report.write_json(make_run(), path)
    text = path.read_text(encoding="utf-8")
    assert "sk-SECRET" not in text and "user:pw" not in text
    cand = json.loads(text)["contract"]["candidate"]["base_url"]
    assert cand == "https://gpu.example/v1?api_key=REDACTED&x=1"


def test_json_is_deterministic() -> None:
    assert report.to_json(make_run()) == report.to_json(copy.deepcopy(make_run()))


# ----------------------------------------------------------------------------------------------
# Markdown


def test_markdown_leads_with_the_verdict_and_tabulates_every_task() -> None:
    md = report.to_markdown(make_run())
    first = md.splitlines()[0]
    assert first.startswith("## ") and "FAIL" in first and "llama-3.1-8b-fp8" in first
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3  # header + one row per task
    assert all(line.count(" | ") == 5 for line in rows)  # no cell broke the table
    assert "−2.10 \\[−3.40, −0.90\\] pts (90% CI)" in md  # brackets escaped: not a link
    assert "safety\\_refusals** (FAIL)" in md
    assert "unsafe\\_compliance: 0 → 6 items" in md  # the one arrow of every report


def test_markdown_neutralises_html_and_table_breakers() -> None:
    run = make_run()
    run["tasks"][0]["task"] = "a|b<script>alert(1)</script>"
    run["overall_reasons"].append("x </td> | <img src=x onerror=alert(1)>\nsecond line")
    md = report.to_markdown(run)
    assert "<script>" not in md and "<img" not in md and "</td>" not in md
    assert "a\\|b&lt;script&gt;" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(re.sub(r"\\\|", "", line).count("|") == 7 for line in rows)


def test_markdown_appends_for_github_step_summary(tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## Unit tests\nall green\n", encoding="utf-8")
    report.write_markdown(make_run(), summary, append=True)
    report.write_markdown(make_run(), summary, append=True)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## Unit tests\nall green\n\n## ")
    assert text.count("Parity FAIL") == 2
    report.write_markdown(make_run(), summary)  # without append: replaced
    assert summary.read_text(encoding="utf-8").count("Parity FAIL") == 1


# ----------------------------------------------------------------------------------------------
# HTML


class _Collector(HTMLParser):
    """Tags, attributes and text as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collector:
    p = _Collector()
    p.feed(page)
    p.close()
    return p


def test_html_shows_hostile_model_output_as_text_only() -> None:
    run = make_run()
    run["tasks"].append(error_task())
    page = report.to_html(run)
    parsed = _parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not [a for a, _ in parsed.attrs if a.startswith("on")]
    text = "".join(parsed.text)
    for bad in HOSTILE:
        assert bad in text  # shown to the reader, verbatim
    assert "last error: <timeout>" in text


def test_html_escapes_task_names_and_endpoint_fields_everywhere() -> None:
    run = make_run()
    evil = '"><script>alert(2)</script>'
    run["tasks"][2]["task"] = "mmlu" + evil
    run["contract"]["baseline"]["model"] = evil
    run["overall_reasons"].append(evil)
    parsed = _parse(report.to_html(run))
    assert "script" not in parsed.tags
    assert not [a for a, _ in parsed.attrs if a.startswith("on")]
    # the quote did not close the attribute: the whole name is still the attribute's value
    assert ("id", "task-mmlu" + evil) in parsed.attrs
    assert ("data-task", "mmlu" + evil) in parsed.attrs
    assert ("href", "#task-mmlu" + evil) in parsed.attrs


def test_html_is_self_contained_and_forbids_scripts() -> None:
    page = report.to_html(make_run())
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith("#"), attr  # only in-page links: nothing is fetched
    assert "@media print" in page


def test_html_leads_with_the_verdict_then_contract_tasks_and_provenance() -> None:
    page = report.to_html(make_run())
    order = [page.index(s) for s in (
        'class="pp-verdict"', 'id="summary"', 'id="contract"', 'id="tasks"', 'id="provenance"'
    )]  # fmt: skip
    assert order == sorted(order)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for needle in (
        "The candidate is worse than the baseline beyond the contract",
        "safety_refusals: FAIL",
        "sglang 0.4.1",
        "3f1a9c0e5b7d2468ace0135792468ace0135792468ace0135792468ace01357",
        "about 2,400 paired items would settle it",
        "unsafe_compliance",
        "0.0021",  # Holm-adjusted p of the safety task
        "sha256-of-mmlu_pro-data",
    ):
        assert needle in text, needle
    assert "sk-SECRET" not in page and "user:pw" not in page


def test_html_tables_carry_the_counts() -> None:
    page = report.to_html(make_run())
    # 2x2 of the safety task: n=400, b=11, c=3, old right = round(0.97 * 400) = 388
    section = page[page.index('id="task-safety_refusals"') :]
    section = section[: section.index("</section>")]
    flip = section[section.index('class="pp-flip"') :]
    flip_cells = re.findall(r'<td class="pp-num[^"]*">([^<]*)</td>', flip)[:4]
    assert flip_cells == ["377", "11", "3", "9"]
    direction = section[section.index('class="pp-direction"') :]
    assert 'class="pp-num pp-hot">22</td>' in direction  # cautious -> confident flagged


def test_html_survives_a_task_without_checks() -> None:
    run = make_run()
    run["tasks"] = [error_task()]
    run["overall"] = "ERROR"
    page = report.to_html(run)
    assert "no estimate (ERROR)" in page
    assert "Some tasks could not be judged" in page


def test_writers_create_parent_directories(tmp_path: Path) -> None:
    report.write_html(make_run(), tmp_path / "a" / "r.html")
    report.write_json(make_run(), tmp_path / "b" / "r.json")
    report.write_markdown(make_run(), tmp_path / "c" / "r.md")
    assert (tmp_path / "a" / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert json.loads((tmp_path / "b" / "r.json").read_text(encoding="utf-8"))["overall"] == "FAIL"
    assert (tmp_path / "c" / "r.md").read_text(encoding="utf-8").startswith("## ")


def test_html_reads_disagreements_given_as_item_records() -> None:
    run = make_run()
    failed = _side("", 0.0, "transport_error", "X")
    failed["error"] = "timeout after 120 s <no body>"
    run["tasks"][0]["disagreements"] = [
        {
            "id": "q-7",
            "prompt": "Summarise",
            "reference": None,
            "cluster": "doc-3",
            "baseline": _side("old <b>bold</b>", 1.0, "correct", "C"),
            "candidate": failed,
        }
    ]
    page = report.to_html(run)
    section = page[page.index('id="task-support_golden"') :]
    assert "old &lt;b&gt;bold&lt;/b&gt;" in section
    assert "timeout after 120 s &lt;no body&gt;" in section
    assert "cluster doc-3" in section and "request failed" in section


def test_html_marks_the_failure_category_that_failed() -> None:
    page = report.to_html(make_run())
    section = page[page.index('id="task-safety_refusals"') :]
    table = section[
        section.index('class="pp-failures"') : section.index(
            "</table>", section.index('class="pp-failures"')
        )
    ]
    hot = re.findall(r'<tr class="pp-hot"><td>([^<]*)</td>', table)
    assert hot == ["unsafe_compliance"]


def test_markdown_explains_only_what_did_not_pass() -> None:
    md = report.to_markdown(make_run())
    why = md[md.index("### Every check that did not pass") :]
    assert "support\\_golden" not in why  # passed: nothing to explain
    assert "about 2,400 paired items would settle it" in why
    assert "ignores error direction" not in why  # a skipped check is no reason


def test_html_shows_extra_metric_deltas() -> None:
    run = make_run()
    brier = _delta("PASS", 0.002, -0.001, 0.005, 1000, 30, 26)
    brier["name"] = "delta:brier"
    run["tasks"][0]["checks"]["delta:brier"] = brier
    page = report.to_html(run)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "Delta of brier" in text
    assert "+0.20 [−0.10, +0.50] pts (90% CI) · PASS" in text


# ----------------------------------------------------------------------------------------------
# robustness: any shape a check may leave behind renders, and nothing in it becomes markup

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_text = st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE))
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True), _text)
_junk = st.recursive(_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)), max_leaves=8)  # fmt: skip


@st.composite
def _damaged_run(draw: st.DrawFn) -> RunResult:
    run = make_run()
    for task in run["tasks"]:
        for key in draw(st.lists(st.sampled_from(sorted(task)), max_size=4)):
            task[key] = draw(_junk)  # type: ignore[literal-required]
        checks = task.get("checks")
        if isinstance(checks, dict):
            for c in checks.values():
                if isinstance(c, dict) and isinstance(c.get("numbers"), dict):
                    for key in draw(
                        st.lists(st.sampled_from(sorted(c["numbers"]) or ["x"]), max_size=4)
                    ):
                        c["numbers"][key] = draw(_junk)
    return run


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_damaged_run())
def test_any_damaged_record_renders_without_markup_from_data(run: RunResult) -> None:
    page = report.to_html(run)
    parsed = _parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not [a for a, _ in parsed.attrs if a.startswith("on")]
    md = report.to_markdown(run)
    assert "<script" not in md and "<img" not in md
    json.loads(report.to_json(run))


def test_a_pass_with_a_real_regression_says_so() -> None:
    run = make_run()
    nums = run["tasks"][0]["checks"]["delta"]["numbers"]
    nums.update(delta=-0.006, ci_low=-0.011, ci_high=-0.001, warn=True)
    text = html.unescape(re.sub(r"<[^>]+>", " ", report.to_html(run)))
    assert "a real regression, inside the tolerance" in text  # the task's numbers
    assert "regression within tolerance" in text  # the summary row
    nums["warn"] = False
    text = html.unescape(re.sub(r"<[^>]+>", " ", report.to_html(run)))
    assert "a real regression, inside the tolerance" not in text
    assert "regression within tolerance" not in text


def test_html_gives_times_in_utc() -> None:
    text = html.unescape(re.sub(r"<[^>]+>", " ", report.to_html(make_run())))
    assert "2026-11-26 09:12:31 UTC" in text and "2026-11-26 09:00:00 UTC" in text


def test_bidirectional_controls_are_shown_not_obeyed() -> None:
    run = make_run()
    run["tasks"][0]["disagreements"][0]["candidate_output"] = "abc\u202edcba\u2066x\u2069"
    page = report.to_html(run)
    assert "\u202e" not in page and "\u2066" not in page
    assert "abc&lt;U+202E&gt;dcba&lt;U+2066&gt;x&lt;U+2069&gt;" in page


def test_the_contract_description_is_in_every_report(schema: dict[str, Any]) -> None:
    run = make_run()
    run["contract"]["description"] = "fp16 -> fp8 <b>KV cache</b>"
    doc = json.loads(report.to_json(run))
    assert doc["contract"]["description"] == "fp16 -> fp8 <b>KV cache</b>"
    assert validate(doc, schema, schema) == []
    assert "*fp16 -&gt; fp8 &lt;b&gt;KV cache&lt;/b&gt;*" in report.to_markdown(run)
    page = report.to_html(run)
    header = page[page.index("<header>") : page.index("</header>")]
    assert "fp16 -&gt; fp8 &lt;b&gt;KV cache&lt;/b&gt;" in header
    del run["contract"]["description"]
    assert "KV cache" not in report.to_html(run) + report.to_markdown(run)


def test_the_pass_probability_says_it_covers_the_delta_checks_only() -> None:
    # issue 11 item 3: the figure is the product of the delta checks' powers; every place that
    # shows it says the failure-mode and direction checks are not in it
    from pytest_parity.report.terminal import verdict_lines

    run = make_run()
    shown = {
        "terminal": " ".join(verdict_lines(run)),
        "markdown": report.to_markdown(run),
        "html": html.unescape(report.to_html(run)),
    }
    for where, text in shown.items():
        assert "41%" in text, where
        assert "delta check" in text and "direction checks" in text, where
        assert "checks not included" in text or "checks are not in this figure" in text, where


def test_the_reports_say_how_many_answers_came_from_the_cache() -> None:
    # issue 12 item 2: not only the terminal and the JSON: the HTML and Markdown reports too
    run = make_run()
    run["cache"] = {
        "mode": "reuse",
        "baseline": {"answers": 200, "from_cache": 200},
        "candidate": {"answers": 200, "from_cache": 13},
    }
    line = "answers from the response cache (reuse): baseline 200/200, candidate 13/200"
    assert line in html.unescape(report.to_html(run))
    assert line in report.to_markdown(run)
    run["cache"] = {"mode": "off"}
    assert "response cache off" in report.to_markdown(run)
    run["cache"] = {"mode": "reuse", "baseline": "damaged"}  # never a crash
    assert "response cache (reuse): none" in report.to_markdown(run)


def test_a_task_judged_on_fewer_items_says_so_on_its_terminal_row() -> None:
    # issue 12 item 3: 900 of 1,000 items paired (100 failed requests left out): "900/1000"
    from pytest_parity.report.terminal import verdict_lines

    run = make_run()
    task = run["tasks"][0]
    full = next(line for line in verdict_lines(run) if line.startswith(task["task"]))
    assert f" {task['n_paired']} " in full and "/" + str(task["n_items"]) not in full
    task["n_items"], task["n_paired"] = 1000, 900
    short = next(line for line in verdict_lines(run) if line.startswith(task["task"]))
    assert " 900/1000 " in short
