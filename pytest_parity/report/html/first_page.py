"""The sign-off page: the first page of the standalone report, and the pytest-html summary.

The verdict, the headline (which tasks fail, which are open and the items each needs), the
reasons grouped by status in plain words, the pass chance with what it covers and a warning
when the contract is underpowered, the A/A noise floor beside old vs new, and a block to sign
(prepared by, approved by, date, the lock digest) that prints on the first page. Every fact is
read from :func:`pytest_parity.report.signoff.sign_off`, as the Markdown summary reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_parity.records import RunResult
from pytest_parity.report.formats import HEADLINES, ICONS
from pytest_parity.report.html.sections import as_list, badge, status_class
from pytest_parity.report.html.svg import VERDICT_TINTS, esc, number
from pytest_parity.report.numfmt import count, percent
from pytest_parity.report.signoff import PASS_CHANCE_NOTE, SignOff, group_title, sign_off

FIRST_PAGE_CSS = """
.pp-verdict{border-radius:8px;padding:16px 22px;margin:0 0 20px;border:2px solid}
.pp-verdict .pp-big{font-size:30px;font-weight:800;letter-spacing:.02em}
.pp-verdict p{margin:.2em 0;font-size:16px}
.pp-verdict ul{margin:.5em 0 0 1.1em;padding:0}
.pp-cards{display:flex;gap:12px;flex-wrap:wrap;margin:0 0 18px}
.pp-card{flex:1 1 120px;border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.pp-card b{display:block;font-size:24px}
.pp-card span{color:#5f6670;font-size:12.5px}
.pp-headline{font-size:15px}
.pp-warn{background:#fff4e0;border:1px solid #e0b060;border-radius:6px;padding:8px 12px}
.pp-group h3{margin:.9em 0 .3em}.pp-group ul{margin:.2em 0 .6em 1.2em;padding:0}
.pp-group li{margin:.25em 0;max-width:110ch}.pp-more{font-size:12px}
.pp-chance{flex:3 1 320px}
.pp-signoff{border:2px solid #1a1d21;border-radius:6px;padding:4px 18px 10px;margin:22px 0}
.pp-signoff h2{margin:.5em 0}.pp-signoff table{width:100%}
.pp-signoff th{width:11em}.pp-signoff td.pp-blank{height:2.4em}
.pp code{font:12px ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
@media print{
  .pp-first{break-after:page;font-size:10.5px;line-height:1.35}
  .pp-first .pp-verdict{padding:6px 14px;margin:0 0 8px}
  .pp-first .pp-big{font-size:20px}
  .pp-first .pp-verdict p{font-size:12px}
  .pp-first .pp-cards{gap:6px;margin:0 0 6px}
  .pp-first .pp-card{padding:3px 8px}.pp-first .pp-card b{font-size:15px}
  .pp-first .pp-card span{font-size:9.5px}
  .pp-first .pp-warn{padding:4px 8px;margin:4px 0}
  .pp-first .pp-group h3{font-size:12px;margin:.4em 0 .15em}
  .pp-first .pp-group li{margin:.05em 0}
  .pp-first table{margin:.2em 0 .4em}.pp-first th,.pp-first td{padding:2px 6px}
  .pp-first h3{font-size:12px;margin:.5em 0 .2em}
  .pp-signoff{margin:8px 0 0;padding:2px 12px 6px}.pp-signoff h2{font-size:15px;margin:.3em 0}
  .pp-signoff,.pp-verdict,.pp-cards,.pp-group li{break-inside:avoid}
}
"""


def when(iso: Any) -> str:
    """``2026-11-26 09:12 UTC`` from an ISO 8601 time; anything else as it is."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso or "?")
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _var(status: str) -> str:
    return (
        "var(--" + {"INCONCLUSIVE": "inc", "ERROR": "err"}.get(status, status_class(status)) + ")"
    )


def _details(task: str) -> str:
    return f' <a class="pp-more" href="#task-{esc(task)}">details</a>'


def _reasons_html(facts: SignOff, links: bool = True) -> str:
    """The reasons grouped by status, worst first, each linking to its task's section."""
    out = []
    for status, reasons in facts.groups:
        items = "".join(
            f"<li>{esc(r.text)}{_details(r.task) if r.task and links else ''}</li>" for r in reasons
        )
        out.append(
            f'<div class="pp-group pp-g-{status_class(status)}"><h3>{badge(status)} '
            f"{esc(group_title(status, reasons))}</h3><ul>{items}</ul></div>"
        )
    return "".join(out)


def _noise_html(facts: SignOff, tasks: list[Any]) -> str:
    """The A/A noise floor beside old vs new: how often the baseline disagrees with itself."""
    if not facts.noise:
        return (
            '<p class="pp-muted pp-noise">A/A noise floor: not measured (run with'
            " --parity-aa=rerun to see how often the baseline disagrees with itself).</p>"
        )
    rows = "".join(
        f"<tr><td>{esc(n.task)}</td>"
        f'<td class="pp-num">{"n/a" if n.rate is None else percent(n.rate)}</td>'
        f'<td class="pp-num">{percent(n.aa_rate)} ({count(n.aa_flips)} of {count(n.aa_n)})</td>'
        f"<td>{esc(n.sentence().split(': ', 2)[-1] if n.rate is not None else '')}</td></tr>"
        for n in facts.noise
    )
    return (
        '<h3 id="noise">Noise floor: the baseline against itself (A/A)</h3>'
        '<table class="pp-noise"><tr><th>task</th><th>old vs new: items that flipped</th>'
        "<th>old vs old (A/A)</th><th>reading</th></tr>" + rows + "</table>"
    )


def _signoff_html(facts: SignOff, run: RunResult) -> str:
    """The printable block a customer fills in: who prepared and approved it, when, on what."""
    lock = facts.lock_digest or (
        "none: this run was not locked (--parity-lock=PATH writes the digests of its inputs)"
    )
    blank = '<td class="pp-blank"></td>'
    return (
        '<section class="pp-signoff" id="sign-off"><h2>Sign-off</h2>'
        '<table class="pp-wrap">'
        f"<tr><th>Verdict</th><td>{badge(facts.overall)}</td></tr>"
        f"<tr><th>Prepared by</th>{blank}</tr>"
        f"<tr><th>Approved by</th>{blank}</tr>"
        f"<tr><th>Date</th>{blank}</tr>"
        f'<tr><th>Lock digest</th><td class="pp-hash"><code>{esc(lock)}</code></td></tr>'
        '<tr><th>Contract sha256</th><td class="pp-hash">'
        f"<code>{esc(facts.contract_digest or '?')}</code></td></tr>"
        f"<tr><th>Run finished</th><td>{esc(when(run.get('finished')))} \u00b7 pytest-parity "
        f"{esc(run.get('tool_version', '?'))}</td></tr>"
        "</table></section>"
    )


def first_page(run: RunResult, facts: SignOff | None = None, links: bool = True) -> str:
    """The sign-off page (see the module docstring); ``links=False`` where the tasks' sections
    carry no anchors (pytest-html)."""
    facts = sign_off(run) if facts is None else facts
    tasks = [t for t in as_list(run.get("tasks")) if isinstance(t, Mapping)]
    overall = facts.overall
    colour = _var(overall)
    counts = {s: sum(1 for t in tasks if t.get("verdict") == s) for s in ICONS}
    # A task can FAIL on its own while its alarm does not hold across the run (Holm): say so
    # beside the count, so "3 fail" agrees with "Fails the run: 2 tasks".
    failing = {n for status, rs in facts.groups if status == "FAIL" for r in rs for n in r.names()}
    not_held = [
        str(t.get("task"))
        for t in tasks
        if t.get("verdict") == "FAIL" and str(t.get("task")) not in failing
    ]
    labels = {s: s.lower() for s in counts}
    if not_held:
        shown = ", ".join(not_held[:3]) + (", ..." if len(not_held) > 3 else "")
        labels["FAIL"] += f" ({len(not_held)} not held across the run: {shown})"
    cards = "".join(
        f'<div class="pp-card"><b style="color:{_var(s)}">{n}</b>'
        f"<span>{esc(labels[s])}</span></div>"
        for s, n in counts.items()
        if n or s in ("PASS", "FAIL", "INCONCLUSIVE")
    )
    items = sum(int(number(t, "n_paired") or 0) for t in tasks)
    cards += f'<div class="pp-card"><b>{count(items)}</b><span>paired items judged</span></div>'
    if facts.pass_chance is not None:
        cards += (
            f'<div class="pp-card pp-chance"><b>{percent(facts.pass_chance, 0)}</b>'
            f"<span>{esc(PASS_CHANCE_NOTE)}</span></div>"
        )
    warning = facts.warning()
    headline = facts.headline()
    return (
        '<section class="pp-first">'
        f'<section class="pp-verdict" style="background:{VERDICT_TINTS.get(overall, "#fff")};'
        f'border-color:{colour}"><div class="pp-big" style="color:{colour}">{esc(overall)}</div>'
        f"<p>{esc(HEADLINES.get(overall, ''))}</p>"
        + (f'<p class="pp-headline"><strong>{esc(headline)}</strong></p>' if headline else "")
        + "</section>"
        + f'<div class="pp-cards">{cards}</div>'
        + (f'<p class="pp-warn" role="alert">\u26a0 {esc(warning)}</p>' if warning else "")
        + _noise_html(facts, tasks)
        # The block to sign before the reasons: it always prints on the first page, however
        # many reasons follow (four long FAIL reasons pushed it onto a page of its own).
        + _signoff_html(facts, run)
        + f'<div class="pp-reasons">{_reasons_html(facts, links)}</div>'
        + "</section>"
    )
