"""Disagreement triage: the sampled items where the stacks disagree, ready to read without a script.

A compact table first (item, old -> new category, old -> new score), then the cards grouped by
their category change, each a ``<details>`` element (the first of each group open, so a print
shows one example per change) with the two answers diffed word by word. Every example id that a
check's reasons name links to its card (:func:`link_ids`). Model text is escaped, bidi controls
shown as ``<U+202E>``, long text cut at ``MAX_TEXT`` characters and its box capped in height on
screen (whole in print).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_parity.report.html.judge import judge_rationale_html
from pytest_parity.report.html.sections import DIRECTIONS, as_list, mapping
from pytest_parity.report.html.svg import esc, number

# Long answers are cut so one runaway generation cannot turn the report into a book.
MAX_TEXT = 4000
NONE = "none"

CSS = """
.pp-tri-table{width:100%;font-size:12.5px}
.pp-tri-table td,.pp-tri-table th{padding:3px 7px}
.pp-tri-table td:first-child{overflow-wrap:anywhere;word-break:break-word;max-width:18em}
.pp-tri-group{font-size:13.5px;margin:1em 0 .3em}
details.pp-dis>summary{cursor:pointer;background:#f6f7f9;padding:4px 10px;font-size:12.5px;
border-bottom:1px solid var(--line,#e2e5e9);overflow-wrap:anywhere}
details.pp-dis:not([open])>summary{border-bottom:0}
.pp-dis .pp-pre{max-height:16em;overflow:auto}
.pp-dis ins,.pp-dis del{text-decoration:none;border-radius:2px}
.pp-dis ins{background:#c8ecd2}.pp-dis del{background:#f7cdd0}
.pp-dis:target{outline:3px solid #b26a00}
a.pp-id{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}
@media (max-width:800px){.pp-pair,.pp-qa{grid-template-columns:1fr!important}}
@media print{.pp-dis .pp-pre{max-height:none;overflow:visible}
details.pp-dis>summary{break-after:avoid}}
"""


def clip(text: object, limit: int = MAX_TEXT) -> str:
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return esc(s)
    return (
        esc(s[:limit]) + f'<span class="pp-muted"> \u2026 ({len(s) - limit} more characters)</span>'
    )


def card_id(task: object, item: object) -> str:
    """The element id of an item's card: safe in an id and a URL whatever the ids hold."""
    digest = hashlib.sha256(f"{task}\0{item}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"dis-{digest[:16]}"


def _change(d: Mapping[str, Any]) -> tuple[str, str]:
    old = d.get("baseline_category", mapping(d.get("baseline")).get("category"))
    new = d.get("candidate_category", mapping(d.get("candidate")).get("category"))
    return _category(old), _category(new)


def _category(value: object) -> str:
    return NONE if value in (None, "") else str(value)


def _score(d: Mapping[str, Any], role: str) -> float | None:
    value = d.get(f"{role}_score", mapping(d.get(role)).get("score"))
    return number({"v": value}, "v")


def _score_text(v: float | None) -> str:
    return "n/a" if v is None else f"{v:g}"


_WORDS = re.compile(r"\s+|[^\s]+")


def word_diff(old: object, new: object, limit: int = MAX_TEXT) -> tuple[str, str]:
    """Both answers as escaped HTML with the words only one side has marked (``<del>`` in the
    old, ``<ins>`` in the new); each cut at ``limit`` characters before the diff."""
    a_text, b_text = ("" if t is None else str(t) for t in (old, new))
    a, b = _WORDS.findall(a_text[:limit]), _WORDS.findall(b_text[:limit])
    out_a: list[str] = []
    out_b: list[str] = []
    # whitespace never starts a match, so two answers with no word in common are not cut into
    # pieces at their shared spaces; with nothing in common both are shown as they are
    matcher = difflib.SequenceMatcher(str.isspace, a, b, autojunk=False)
    opcodes = matcher.get_opcodes()
    if not any(op == "equal" and "".join(a[i1:i2]).strip() for op, i1, i2, _, _ in opcodes):
        opcodes = [("equal", 0, len(a), 0, len(b))]
    for op, i1, i2, j1, j2 in opcodes:
        left, right = esc("".join(a[i1:i2])), esc("".join(b[j1:j2]))
        if op == "equal":
            out_a.append(left)
            out_b.append(right)
            continue
        if left:
            out_a.append(f"<del>{left}</del>")
        if right:
            out_b.append(f"<ins>{right}</ins>")
    tail_a = _more(a_text, limit)
    tail_b = _more(b_text, limit)
    return "".join(out_a) + tail_a, "".join(out_b) + tail_b


def _more(text: str, limit: int) -> str:
    if len(text) <= limit:
        return ""
    return f'<span class="pp-muted"> \u2026 ({len(text) - limit} more characters)</span>'


def trajectory_text(turns: list[Any]) -> str:
    """A multi-step answer's turns as plain lines (escaped by the caller): what the model said
    and called at each step, and what the tools answered."""
    lines = []
    for t in (mapping(x) for x in turns):
        head = f"{t.get('step', '?')} {t.get('role', '?')}"
        if t.get("role") == "assistant":
            calls = [f"{c.get('name')}({c.get('arguments')})" for c in
                     (mapping(c) for c in as_list(t.get("tool_calls")))]  # fmt: skip
            said = str(t.get("text") or "").strip()
            lines.append(f"{head}: {said}" + (f" -> calls {', '.join(calls)}" if calls else ""))
        elif t.get("role") == "tool":
            lines.append(f"{head} {t.get('name')}: {t.get('result')}")
        else:
            lines.append(f"{head}: {t.get('error', t)}")
    return "\n".join(lines)


def _side(record: Mapping[str, Any], role: str, label: str, body: str, judged: bool) -> str:
    # Two shapes: failures.sample_disagreements' flat row (baseline_output, baseline_category,
    # ...) and an ItemRecord with a nested SideRecord per stack.
    nested = mapping(record.get(role))
    category = record.get(f"{role}_category", nested.get("category"))
    finish = record.get(f"{role}_finish_reason", nested.get("finish_reason"))
    direction = nested.get("direction")
    meta = []
    if category:
        meta.append(f'<span class="pp-cat">{esc(category)}</span>')
    if isinstance(direction, str) and direction in DIRECTIONS and category != "correct":
        meta.append(f'<span class="pp-cat">{esc(DIRECTIONS[direction])}</span>')
    score = _score(record, role)
    if score is not None:
        meta.append(f'<span class="pp-cat">score {score:g}</span>')
    if finish not in (None, "stop"):
        meta.append(f'<span class="pp-cat">finish: {esc(finish)}</span>')
    turns = as_list(record.get(f"{role}_trajectory", nested.get("trajectory")))
    steps = (
        '<span class="pp-label">trajectory</span>'
        f'<div class="pp-pre">{clip(trajectory_text(turns))}</div>'
        if turns
        else ""
    )
    return (
        f'<div><span class="pp-label">{esc(label)}</span>{"".join(meta)}'
        f'<div class="pp-pre">{body}</div>{steps}'
        + (judge_rationale_html(record, role) if judged else "")
        + "</div>"
    )


def _text(record: Mapping[str, Any], role: str) -> object:
    nested = mapping(record.get(role))
    text = record.get(f"{role}_output", nested.get("text"))
    if text in (None, "") and nested.get("error"):
        return nested.get("error")
    return text


def _card(task: str, d: Mapping[str, Any], n: int, is_open: bool) -> str:
    old_cat, new_cat = _change(d)
    judge = mapping(d.get("judge"))
    pairwise = "preference" in judge
    ref = d.get("reference")
    old_html, new_html = word_diff(_text(d, "baseline"), _text(d, "candidate"))
    scores = f"{_score_text(_score(d, 'baseline'))} \u2192 {_score_text(_score(d, 'candidate'))}"
    summary = (
        f"#{n} \u00b7 item <b>{esc(d.get('id', '?'))}</b> \u00b7 {esc(old_cat)} \u2192 "
        f"{esc(new_cat)} \u00b7 score {esc(scores)}"
        + (f" \u00b7 {esc(str(d['kind']).replace('_', ' '))}" if d.get("kind") else "")
        + (f" \u00b7 cluster {esc(d['cluster'])}" if d.get("cluster") else "")
    )
    return (
        f'<details class="pp-dis" id="{card_id(task, d.get("id", n))}"'
        + (" open" if is_open else "")
        + f"><summary>{summary}</summary>"
        '<div class="pp-dis-body"><div class="pp-qa">'
        f'<div><span class="pp-label">prompt</span><div class="pp-pre">{clip(d.get("prompt"))}'
        "</div></div>"
        + (
            f'<div><span class="pp-label">reference</span><div class="pp-pre">{clip(ref)}'
            "</div></div>"
            if ref not in (None, "")
            else ""
        )
        + '</div><div class="pp-pair">'
        + _side(d, "baseline", "old (baseline)", old_html, bool(judge) and not pairwise)
        + _side(d, "candidate", "new (candidate)", new_html, bool(judge) and not pairwise)
        + "</div>"
        + (judge_rationale_html(d) if pairwise else "")
        + "</div></details>"
    )


def groups(items: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str, str], list[int]]]:
    """Indices of the items by category change, the largest group first (ties by name), items
    in their sampled order within a group."""
    by: dict[tuple[str, str], list[int]] = {}
    for i, d in enumerate(items):
        by.setdefault(_change(d), []).append(i)
    return sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def disagreements_html(task: Mapping[str, Any]) -> str:
    """The triage block of one task: a count, the compact table, the grouped cards."""
    name = str(task.get("task", "?"))
    items = [mapping(d) for d in as_list(task.get("disagreements"))]
    total = task.get("disagreements_total", len(items))
    if not items:
        return f'<p class="pp-muted">No disagreements to read ({esc(total)} in all).</p>'
    grouped = groups(items)
    number_of = {i: n for n, i in enumerate((i for _, ix in grouped for i in ix), 1)}
    rows = []
    for (old_cat, new_cat), ix in grouped:
        for i in ix:
            d = items[i]
            rows.append(
                f'<tr><td><a class="pp-id" href="#{card_id(name, d.get("id", number_of[i]))}">'
                f"{esc(d.get('id', '?'))}</a></td>"
                f"<td>{esc(old_cat)} \u2192 {esc(new_cat)}</td>"
                f'<td class="pp-num">{esc(_score_text(_score(d, "baseline")))} \u2192 '
                f"{esc(_score_text(_score(d, 'candidate')))}</td></tr>"
            )
    out = [
        f"<style>{CSS}</style>",
        f'<p class="pp-muted">{len(items)} of {esc(total)} items where the stacks disagree, '
        f"sampled for a person to read side by side, in {len(grouped)} "
        f"group{'s' if len(grouped) != 1 else ''} by category change (old \u2192 new).</p>",
        '<table class="pp-tri-table"><thead><tr><th>item</th><th>category old \u2192 new</th>'
        f"<th>score old \u2192 new</th></tr></thead><tbody>{''.join(rows)}</tbody></table>",
    ]
    for (old_cat, new_cat), ix in grouped:
        out.append(
            f'<h4 class="pp-tri-group">{esc(old_cat)} \u2192 {esc(new_cat)} '
            f'<span class="pp-muted">{len(ix)} item{"s" if len(ix) != 1 else ""}</span></h4>'
        )
        out.extend(_card(name, items[i], number_of[i], k == 0) for k, i in enumerate(ix))
    return "".join(out)


def link_ids(text: object, task: str, ids: Iterable[object]) -> str:
    """``text`` escaped, with every whole-word occurrence of a sampled item's id a link to its
    card. Ids without a card (not in the sample) stay plain text."""
    s = "" if text is None else str(text)
    known = sorted({str(i) for i in ids if i not in (None, "")}, key=len, reverse=True)
    if not known or not s:
        return esc(s)
    pattern = re.compile(
        r"(?<![\w.-])(" + "|".join(re.escape(i) for i in known) + r")(?![\w-]|\.\w)"
    )
    out, pos = [], 0
    for m in pattern.finditer(s):
        out.append(esc(s[pos : m.start()]))
        out.append(f'<a class="pp-id" href="#{card_id(task, m.group(1))}">{esc(m.group(1))}</a>')
        pos = m.end()
    out.append(esc(s[pos:]))
    return "".join(out)
