"""The page a customer signs (issue 21 items 1, 5, 7): the first page of the HTML report, and the
same sign-off facts in the Markdown summary and the pytest-html summary. Pages are read with
html.parser into a tree, as a browser's parser would see them."""

from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser

import pytest
from run_builders import make_run

from pytest_parity import report
from pytest_parity.records import RunResult
from pytest_parity.report.pytest_html import summary_html

_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def find_all(self, cls: str | None = None, tag: str | None = None) -> list[Node]:
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if (cls is None or cls in c.classes) and (tag is None or c.tag == tag):
                    out.append(c)
                out += c.find_all(cls, tag)
        return out

    def one(self, cls: str | None = None, tag: str | None = None) -> Node:
        found = self.find_all(cls, tag)
        assert found, f"no element .{cls} {tag}"
        return found[0]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if self.stack[-1].tag != "style":
            self.stack[-1].children.append(data)


def tree(page: str) -> Node:
    t = _Tree()
    t.feed(page)
    t.close()
    return t.root


def first_page(run: RunResult) -> Node:
    return tree(report.to_html(run)).one("pp-first")


def with_holm(run: RunResult) -> RunResult:
    """The builder's run with every alarm in the run's Holm family, as summarize makes it."""
    run["holm"].update(
        {
            "safety_refusals/failure_modes": 0.03,
            "safety_refusals/error_direction": 0.0001,
        }
    )
    return run


def test_the_reasons_are_grouped_by_status_worst_first_in_plain_words() -> None:
    page = first_page(with_holm(make_run()))
    groups = page.find_all("pp-group")
    titles = [g.one(tag="h3").text() for g in groups]
    assert titles == ["FAIL Fails the run (1 task, 3 reasons)",
                      "INCONCLUSIVE Not decided yet (1 task)", "PASS Passed (1 task)"]  # fmt: skip
    fails = [li.text() for li in groups[0].find_all(tag="li")]
    assert all(t.startswith("safety_refusals ·") for t in fails)
    # every p says which hypothesis it tests, not only that Holm adjusted it
    assert "“is the new stack worse than the tolerance allows?”: p = 0.0021" in fails[0]
    assert "“does a failure category grow under the new stack?”: p = 0.03" in fails[1]
    assert "p < 0.001 with all 5 checks of the run counted" in fails[2]
    assert "Holm-adjusted p=" not in page.text()
    # each reason links to its task's section
    links = [a.attrs.get("href") for a in groups[0].find_all(tag="a")]
    assert links == ["#task-safety_refusals"] * 3
    passed = groups[2].one(tag="li").text()
    assert passed.startswith("support_golden: new minus old −0.40 pts (interval −1.10 to +0.30)")


def test_a_fail_that_does_not_hold_across_the_run_is_not_decided_and_says_why() -> None:
    run = make_run()
    run["holm"]["safety_refusals/delta"] = 0.78
    for name in ("failure_modes", "error_direction"):
        run["tasks"][1]["checks"][name]["status"] = "PASS"
    run["overall"] = "INCONCLUSIVE"
    page = first_page(run)
    titles = [g.one(tag="h3").text() for g in page.find_all("pp-group")]
    assert titles[0] == "INCONCLUSIVE Not decided yet (2 tasks)"
    text = page.find_all("pp-group")[0].text()
    assert (
        "failed on its own" in text and "p = 0.78 once all 3 checks of the run are counted" in text
    )
    assert "does not fail the run" in text
    # the count of failing tasks agrees with the groups: the task fails, its alarm is not held
    cards = [c.text() for c in page.find_all("pp-card")]
    assert "1 fail (1 not held across the run: safety_refusals)" in cards


def test_an_inconclusive_task_shows_the_items_needed_in_the_headline() -> None:
    run = make_run()
    headline = first_page(run).one("pp-headline").text()
    assert "mmlu_pro needs about 2,400 paired items (its benchmark holds only 1,000)" in headline
    assert "Fails the run: safety_refusals" in headline
    # a golden task whose data holds enough items (a limit ran fewer): "run them all"
    task = run["tasks"][2]
    task.update(source="golden", n_items=3000)
    page = first_page(run)
    assert "(its golden set holds 3,000)" in page.one("pp-headline").text()
    assert "its golden set holds 3,000: run them all" in page.one("pp-reasons").text()
    task["n_items"] = 1000
    text = first_page(run).one("pp-reasons").text()
    assert "its golden set holds only 1,000: add about 1,400 items" in text


def test_the_aa_flip_rate_stands_beside_old_vs_new() -> None:
    run = make_run()
    assert "A/A noise floor: not measured" in first_page(run).text()
    run["tasks"][0]["aa"] = {"n": 1000, "flips": 61, "flip_rate": 0.061}
    table = first_page(run).one("pp-noise", tag="table")
    row = [td.text() for td in table.find_all(tag="tr")[1].find_all(tag="td")]
    assert row[:3] == ["support_golden", "5.6%", "6.1% (61 of 1,000)"]
    assert "no more than the baseline differs from itself" in row[3]


def test_the_pass_chance_is_explained_and_warns_when_underpowered() -> None:
    run = make_run()
    page = first_page(run)
    card = page.one("pp-chance").text()
    assert card.startswith("41%") and "from the flip rates observed in this run" in card
    assert "failure-mode and direction checks are not in this figure" in card
    assert "underpowered" in page.one("pp-warn").text()
    run["pass_probability"] = 0.93
    assert not first_page(run).find_all("pp-warn")


def test_the_sign_off_block_prints_on_the_first_page_with_the_lock_digest() -> None:
    run = make_run()
    run["contract"]["description"] = "fp16 -> fp8 KV cache on the support bot"
    run["lock"] = {"digest": "ab" * 32, "entries": {"contract": "cd" * 32}}  # type: ignore[typeddict-unknown-key]
    page = report.to_html(run)
    root = tree(page)
    block = root.one("pp-first").one("pp-signoff")
    rows = {tr.one(tag="th").text(): tr.find_all(tag="td")[0] for tr in block.find_all(tag="tr")}
    assert list(rows)[:5] == ["Verdict", "Prepared by", "Approved by", "Date", "Lock digest"]
    assert rows["Prepared by"].text() == "" and "pp-blank" in rows["Date"].classes
    assert rows["Lock digest"].text() == "ab" * 32
    assert rows["Contract sha256"].text() == run["contract"]["digest"]
    assert "fp16 -> fp8 KV cache" in root.one(tag="header").text()
    # the first page ends before the evidence, and print starts the evidence on a new page
    assert page.index('class="pp-signoff"') < page.index('id="summary"')
    assert ".pp-first{break-after:page;" in page
    del run["lock"]  # type: ignore[misc]
    block = first_page(run).one("pp-signoff")
    assert "not locked (--parity-lock=PATH" in block.text()


def test_the_contract_shows_what_each_task_really_ran_with() -> None:
    run = make_run()
    contract = run["contract"]
    contract["tasks"][0]["params"] = {"max_tokens": 4}
    contract["candidate"]["params"]["stop"] = ["\n", "###"]
    contract["baseline"].update(kind="replay", base_url="", recording="old-stack.jsonl")
    section = tree(report.to_html(run)).one(tag="main")
    tables = [t for t in section.find_all(tag="table") if "request parameters" in t.text()]
    cells = [tr.find_all(tag="td")[-1].text() for tr in tables[0].find_all(tag="tr")[1:]]
    assert cells[0].startswith("old: temperature=0, seed=0, max_tokens=4; new: temperature=0,")
    assert cells[0].endswith("max_tokens=4, stop=\\n, ###")  # the list joined, not JSON
    assert "max_tokens=512" not in cells[0]
    assert "max_tokens=512" in cells[1]
    assert "set by the benchmark" in cells[2] and "max_tokens=512" not in cells[2]
    run["tasks"][0]["endpoints"]["baseline"]["engine"] = {
        "recorded_base_url": "http://u:pw@10.0.0.5:8000/v1?key=sk-1",
        "recorded_kind": "vllm",
    }
    page = html.unescape(report.to_html(run))
    assert (
        "no server: replays the recording old-stack.jsonl, recorded from"
        " http://10.0.0.5:8000/v1?key=REDACTED (vllm)"
    ) in page
    assert "sk-1" not in page and "u:pw" not in page
    # nor in the JSON: every *url value loses its credentials, not only base_url
    assert "sk-1" not in report.to_json(run) and "u:pw" not in report.to_markdown(run)


def test_provenance_shows_no_raw_json() -> None:
    run = make_run()
    run["tasks"][0]["endpoints"]["baseline"].update(
        gpus=["H100", "H100"], build=None, flags={"tp": 2, "fp8": True}
    )
    section = tree(report.to_html(run)).find_all(tag="h3")
    engines = next(h for h in section if h.text().startswith("Engines"))
    assert engines  # the table follows it
    text = html.unescape(re.sub(r"<[^>]+>", " ", report.to_html(run)))
    prov = text[text.index("Engines, as the servers reported them") :]
    assert "H100, H100" in prov and "tp: 2; fp8: yes" not in prov  # flattened to flags.tp
    assert "null" not in prov and '["' not in prov


def test_failure_categories_in_taxonomy_order_and_correct_has_no_p() -> None:
    run = make_run()
    page = tree(report.to_html(run))
    table = page.find_all("pp-failures")[0]
    rows = [[td.text() for td in tr.find_all(tag="td")] for tr in table.find_all(tag="tr")[1:]]
    # the taxonomy's order (correct before refusal), a custom name after it
    assert [r[0] for r in rows] == ["correct", "refusal", "truncation"]
    assert rows[0][5] == "\u2014"  # correct: not tested, no p
    assert rows[1][5] == "0.5"


def test_a_zero_detectable_delta_is_not_shown_as_0_00_points() -> None:
    run = make_run()
    run["tasks"][0]["checks"]["delta"]["numbers"].update(mde=0.0, b=0, c=0, flip_rate=0.0)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", report.to_html(run))).split())
    assert "Smallest detectable delta not meaningful: too few items flipped" in text
    assert "Smallest detectable delta 0.00" not in text


def test_bidi_controls_and_markup_on_the_first_page_stay_inert() -> None:
    run = make_run()
    evil = "mmlu\u202e<script>x</script>"
    run["tasks"][2]["task"] = evil
    run["tasks"][2]["checks"]["failure_modes"]["status"] = "INCONCLUSIVE"
    run["tasks"][2]["checks"]["failure_modes"]["reasons"] = ["odd \u2066answer\u2069 <b>x</b>"]
    run["contract"]["description"] = "desc \u202d<i>"
    for out in (report.to_html(run), report.to_markdown(run), summary_html(run)):
        assert "\u202e" not in out and "\u2066" not in out and "\u202d" not in out
        assert "<script>" not in out and "<b>x" not in out
        assert "&lt;U+202E&gt;" in out or "<U+202E>" in out


def test_markdown_and_pytest_html_carry_the_same_sign_off_facts() -> None:
    run = with_holm(make_run())
    run["tasks"][0]["aa"] = {"n": 1000, "flips": 61, "flip_rate": 0.061}
    run["lock"] = {"digest": "ef" * 32, "entries": {}}  # type: ignore[typeddict-unknown-key]
    facts = [
        "Fails the run (1 task, 3 reasons)",
        "Not decided yet (1 task)",
        "Passed (1 task)",
        "mmlu_pro needs about 2,400 paired items (its benchmark holds only 1,000)",
        "“is the new stack worse than the tolerance allows?”: p = 0.0021",
        "6.1% (61 of 1,000)",
        "from the flip rates observed in this run",
        "underpowered",
        "ef" * 32,
    ]
    # read the Markdown as GitHub shows it: its escapes undone
    md = html.unescape(re.sub(r"\\([\\`*_\[\]~|])", r"\1", report.to_markdown(run)))
    pytest_html = html.unescape(re.sub(r"<[^>]+>", " ", summary_html(copy.deepcopy(run))))
    pytest_html = " ".join(pytest_html.split())
    for fact in facts:
        assert fact in md, ("markdown", fact)
        assert fact in pytest_html, ("pytest-html", fact)
    # the grouped order in Markdown: FAIL before INCONCLUSIVE before PASS
    assert md.index("Fails the run") < md.index("Not decided yet") < md.index("Passed (1 task)")


def test_the_terminal_names_the_lock_and_shows_bidi_controls_visibly() -> None:
    from pytest_parity.report.terminal import verdict_lines

    run = make_run()
    run["tasks"][1]["checks"]["delta"]["reasons"] = ["item q\u202e7 went wrong"]
    run["lock"] = {"digest": "ab" * 32, "entries": {}, "checked": "parity.lock", "written": None}  # type: ignore[typeddict-unknown-key]
    lines = verdict_lines(run)
    assert f"lock digest {'ab' * 32} (checked against parity.lock)" in lines
    joined = "\n".join(lines)
    assert "\u202e" not in joined and "item q<U+202E>7 went wrong" in joined


def test_many_passes_collapse_to_one_line_so_the_sign_off_stays_on_the_first_page() -> None:
    run = make_run()
    extra = []
    for i in range(6):
        t = copy.deepcopy(run["tasks"][0])
        t["task"] = f"golden_{i}"
        extra.append(t)
    run["tasks"] += extra
    group = first_page(run).find_all("pp-group")[-1]
    assert group.one(tag="h3").text() == "PASS Passed (7 tasks)"
    (line,) = group.find_all(tag="li")
    assert line.text().startswith("7 tasks passed every check") and "golden_5" in line.text()
    headline = first_page(run).one("pp-headline").text()
    assert headline.endswith("Passed: 7 tasks")
    # a pass with a real regression inside tolerance keeps its own line and its warning
    run["tasks"][3]["checks"]["delta"]["numbers"]["warn"] = True
    items = first_page(run).find_all("pp-group")[-1].find_all(tag="li")
    assert len(items) == 2 and "Warning: a real regression" in items[1].text()


def test_a_tasks_pytest_html_extras_carry_its_items_needed_and_aa() -> None:
    pytest.importorskip("pytest_html")
    from pytest_parity.report.pytest_html import task_extras

    task = make_run()["tasks"][2]
    task["aa"] = {"n": 1000, "flips": 12, "flip_rate": 0.012}
    content = html.unescape(task_extras(task)[0]["content"])
    facts = content[: content.index("<section")]
    assert "mmlu_pro needs about 2,400 paired items (1,400 more than the 1,000 run)" in facts
    assert "old vs old (A/A) 1.2% (12 of 1,000)" in facts
    plain_pass = make_run()["tasks"][0]
    assert "pp-task-facts" not in task_extras(plain_pass)[0]["content"]
