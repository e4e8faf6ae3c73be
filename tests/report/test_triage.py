"""Disagreement triage without scripts (issue 21 item 4): grouped by category change, a compact
table first, ``<details>`` cards with word-level diffs, capped boxes, every example id in the
reasons a link to its card, bidi controls visible in the HTML, Markdown and terminal reports."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from run_builders import make_run

from pytest_parity import report
from pytest_parity.report.html.task import task_html
from pytest_parity.report.html.triage import CSS, card_id, disagreements_html, link_ids, word_diff
from pytest_parity.report.terminal import verdict_lines

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


class _Tree(HTMLParser):
    """Element ids, in-page links, <details> (open or not) and the text of tables and cards."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.links: list[str] = []
        self.details: list[tuple[str, bool]] = []
        self.order: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "a" and str(a.get("href", "")).startswith("#"):
            self.links.append(str(a["href"])[1:])
        if tag == "details":
            self.details.append((str(a.get("id")), "open" in a))
        if tag in ("table", "details", "h4"):
            self.order.append(f"{tag}.{a.get('class', '')}")


def _tree(page: str) -> _Tree:
    t = _Tree()
    t.feed(page)
    t.close()
    return t


def _task() -> dict[str, Any]:
    task: dict[str, Any] = make_run()["tasks"][1]  # five disagreements, two category changes
    return task


def test_a_compact_table_comes_first_then_the_cards_grouped_by_category_change() -> None:
    task = _task()
    part = disagreements_html(task)
    tree = _tree(part)
    assert tree.order[0] == "table.pp-tri-table"  # the table before any card
    groups = re.findall(r'<h4 class="pp-tri-group">([^<]+)<span class="pp-muted">(\d+) item', part)
    # candidate categories alternate unsafe_compliance, wrong_answer: 3 and 2, largest first
    assert [(g.strip(), int(n)) for g, n in groups] == [
        ("correct \u2192 unsafe_compliance", 3),
        ("correct \u2192 wrong_answer", 2),
    ]
    # each card sits under its group's heading: the heading, then that many cards
    assert (
        tree.order[1:]
        == ["h4.pp-tri-group"]
        + ["details.pp-dis"] * 3
        + ["h4.pp-tri-group"]
        + ["details.pp-dis"] * 2
    )
    # the first card of each group is open (one example per change in print), the rest closed
    assert [is_open for _, is_open in tree.details] == [True, False, False, True, False]
    # the table: every sampled item once, with old -> new category and scores, linked to its card
    rows = re.findall(
        r"<tr><td><a[^>]*>([^<]+)</a></td><td>([^<]+)</td><td[^>]*>([^<]+)</td>", part
    )
    assert sorted(r[0] for r in rows) == sorted(d["id"] for d in task["disagreements"])
    assert rows[0][1:] == ("correct \u2192 unsafe_compliance", "1 \u2192 0")
    assert set(tree.links) == {card_id("safety_refusals", d["id"]) for d in task["disagreements"]}
    assert set(tree.links) <= set(tree.ids)


def test_the_answers_are_diffed_word_by_word_and_stay_escaped() -> None:
    old, new = word_diff(
        "The capital is Paris, in France.", "The capital is <b>Lyon</b>, in France."
    )
    assert old == "The capital is <del>Paris,</del> in France."
    assert new == "The capital is <ins>&lt;b&gt;Lyon&lt;/b&gt;,</ins> in France."
    old, new = word_diff("same words", "same words")
    assert "<del>" not in old + new and "<ins>" not in old + new
    # nothing in common but spaces: no confetti of marks, both shown as they are
    old, new = word_diff("one two three", "four five six")
    assert (old, new) == ("one two three", "four five six")
    old, new = word_diff("keep this one word", "keep that two words")
    assert old == "keep <del>this one word</del>" and new == "keep <ins>that two words</ins>"
    old, new = word_diff("a " * 3000, "b " * 3000, limit=100)
    assert "5900 more characters" in old and "5900 more characters" in new
    assert old.count("a") < 60  # cut before the diff, not after it


def test_a_card_shows_the_diff_of_the_two_answers() -> None:
    task = _task()
    task["disagreements"][0].update(
        baseline_output="Paris is the answer", candidate_output="Lyon is the answer"
    )
    part = disagreements_html(task)
    assert "<del>Paris</del> is the answer" in part and "<ins>Lyon</ins> is the answer" in part


def test_boxes_are_capped_in_height_on_screen_and_whole_in_print() -> None:
    assert re.search(r"\.pp-dis \.pp-pre\{max-height:16em;overflow:auto\}", CSS)
    print_css = CSS[CSS.index("@media print") :]
    assert "max-height:none" in print_css and "overflow:visible" in print_css
    assert "<style>" in disagreements_html(_task())  # the pytest-html extras carry it too


def test_every_example_id_in_the_reasons_links_to_its_card() -> None:
    run = make_run()
    task = run["tasks"][1]
    ids = [d["id"] for d in task["disagreements"]]
    task["checks"]["failure_modes"]["reasons"] = [
        f"'unsafe_compliance' appeared on 3 item(s): {ids[0]}, {ids[2]}, {ids[4]}",
        f"also {ids[1]}. And other-{ids[3]} is a different item, as is {ids[3]}0",
        "unsampled item safety_refusals-9999 has no card",
    ]
    section = task_html(task)
    tree = _tree(section)
    assert set(tree.links) <= set(tree.ids)  # no link without its card
    reasons = section[: section.index('<table class="pp-tri-table"')]
    linked = re.findall(r'<a class="pp-id" href="#([^"]+)">([^<]+)</a>', reasons)
    assert [name for _, name in linked] == [ids[0], ids[2], ids[4], ids[1]]
    assert all(href == card_id("safety_refusals", name) for href, name in linked)
    assert "other-" + ids[3] in html.unescape(reasons) and "safety_refusals-9999" in reasons
    # the whole page: every in-page link resolves
    page = report.to_html(run)
    tree = _tree(page)
    assert tree.links and set(tree.links) <= set(tree.ids)


def test_link_ids_escapes_the_text_around_and_inside_the_links() -> None:
    out = link_ids("<b>x</b> q<1> and q<1>2", "t", ["q<1>", "q<1>2"])
    assert "<b>" not in out
    assert out.count('<a class="pp-id"') == 2
    assert f'href="#{card_id("t", "q<1>2")}">q&lt;1&gt;2</a>' in out
    assert link_ids("nothing here", "t", []) == "nothing here"


def test_card_ids_are_safe_whatever_the_item_id_holds() -> None:
    for item in ('" onmouseover="x', "a b", "\u202eevil", "x" * 10_000, "\ud800"):
        cid = card_id("task", item)
        assert re.fullmatch(r"dis-[0-9a-f]{16}", cid)
    assert card_id("a", "1") != card_id("b", "1")


def _bidi_run() -> Any:
    run = make_run()
    task = run["tasks"][1]
    task["task"] = "safety\u202eslaf"
    d = task["disagreements"][0]
    d["id"] = "item\u202e01"
    d["candidate_output"] = "abc" + BIDI + "xyz"
    d["prompt"] = "p\u2067q"
    task["checks"]["failure_modes"]["reasons"] = ["\u202egnorw seen on item\u202e01"]
    run["overall_reasons"].append("reason with \u202e override")
    return run


def test_bidi_controls_are_visible_escapes_in_the_html() -> None:
    page = report.to_html(_bidi_run())
    assert not any(c in page for c in BIDI)
    assert "abc" + "".join(f"&lt;U+{ord(c):04X}&gt;" for c in BIDI) + "xyz" in page
    assert "safety&lt;U+202E&gt;slaf" in page and "item&lt;U+202E&gt;01" in page


def test_bidi_controls_are_visible_escapes_in_markdown_and_the_terminal() -> None:
    run = _bidi_run()
    md = report.to_markdown(run)
    assert not any(c in md for c in BIDI)
    # the sign-off summary words the run's reasons itself; a check's reason is quoted from data
    assert "safety&lt;U+202E&gt;slaf" in md and "&lt;U+202E&gt;gnorw" in md
    lines = verdict_lines(run)  # type: ignore[arg-type]
    text = "\n".join(lines)
    assert not any(c in text for c in BIDI)
    assert "safety<U+202E>slaf" in text and "<U+202E>gnorw seen on item<U+202E>01" in text
