"""The standalone parity report (``--parity-report=PATH.html``): one self-contained page.

Laid out for the customer who signs the contract: the verdict and why first, every task at a
glance (forest plot and table), the contract, then each task's evidence, then provenance. Inline
CSS and SVG only; a Content-Security-Policy forbids any script, so even a slip in escaping could
not run what a model wrote. Print CSS starts each task on a new page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pytest_parity.records import RunResult
from pytest_parity.report.formats import (
    FORMAT,
    HEADLINES,
    ICONS,
    cache_text,
    endpoint_name,
    plain,
    safe_url,
)
from pytest_parity.report.html.sections import (
    CSS,
    as_list,
    mapping,
    status_class,
    summary_table,
)
from pytest_parity.report.html.svg import VERDICT_TINTS, esc, forest_svg, number, points
from pytest_parity.report.html.task import task_html

_PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6}
main.pp{max-width:1120px;margin:0 auto;background:#fff;padding:28px 40px 40px;min-height:100vh}
.pp header h1{font-size:26px;margin:0 0 2px}
.pp-sub{color:#5f6670;margin:0 0 18px}
.pp-verdict{border-radius:8px;padding:16px 22px;margin:0 0 20px;border:2px solid}
.pp-verdict .pp-big{font-size:30px;font-weight:800;letter-spacing:.02em}
.pp-verdict p{margin:.2em 0;font-size:16px}
.pp-verdict ul{margin:.5em 0 0 1.1em;padding:0}
.pp-cards{display:flex;gap:12px;flex-wrap:wrap;margin:0 0 18px}
.pp-card{flex:1 1 120px;border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.pp-card b{display:block;font-size:24px}
.pp-card span{color:#5f6670;font-size:12.5px}
.pp h2.pp-part{border-bottom:2px solid #1a1d21;padding-bottom:4px;margin-top:34px}
.pp-legend{font-size:12.5px;color:#5f6670}
.pp-legend i{display:inline-block;width:14px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.pp-kv{font-size:12.5px}.pp-kv b{font-weight:600;color:#5f6670}
footer.pp-muted{margin-top:30px;border-top:1px solid var(--line);padding-top:8px}
@media print{
  @page{size:A4;margin:14mm}
  body{background:#fff}
  main.pp{padding:0;max-width:none;min-height:0}
  .pp *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  .pp-task{break-before:page}
  .pp table,.pp-verdict,.pp-cards,.pp-forest{break-inside:avoid}
  .pp a{color:inherit;text-decoration:none}
}
"""


def _endpoint_rows(contract: Mapping[str, Any]) -> str:
    sides = [contract.get("baseline") or {}, contract.get("candidate") or {}]
    judged = isinstance(contract.get("judge"), Mapping)
    if judged:
        sides.append(contract["judge"])
    keys = ("kind", "model", "base_url", "api", "params")
    rows = []
    for k in keys:
        cells = []
        for ep in sides:
            v = ep.get(k) if isinstance(ep, Mapping) else None
            if k == "params" and isinstance(v, Mapping):
                v = ", ".join(f"{pk}={json.dumps(pv)}" for pk, pv in v.items()) or "(none)"
            elif k == "base_url" and isinstance(v, str):
                v = safe_url(v)
            cells.append(f"<td>{esc('' if v is None else v)}</td>")
        rows.append(f"<tr><th>{esc(k)}</th>{''.join(cells)}</tr>")
    return (
        "<table><tr><th></th><th>baseline (old)</th><th>candidate (new)</th>"
        + ("<th>judge</th>" if judged else "")
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _contract_html(contract: Mapping[str, Any]) -> str:
    rows = []
    for t in [t for t in as_list(contract.get("tasks")) if isinstance(t, Mapping)]:
        alpha = number(t, "alpha")
        rows.append(
            f"<tr><td>{esc(t.get('name', '?'))}"
            + ('<span class="pp-safety">safety-critical</span>' if t.get("safety_critical") else "")
            + f"</td><td>{esc(t.get('source', ''))}</td><td>{esc(t.get('scorer', ''))}</td>"
            f'<td class="pp-num">{points(number(t, "tolerance"), signed=False)} pts</td>'
            f'<td class="pp-num">{"n/a" if alpha is None else f"{(1 - 2 * alpha):.0%}"}</td>'
            f"<td>{esc(t.get('inconclusive', ''))}</td><td>{esc(t.get('error_direction', ''))}</td>"
            "</tr>"
        )
    return (
        '<h2 class="pp-part" id="contract">The contract</h2>'
        "<h3>Endpoints</h3>" + _endpoint_rows(contract) + "<h3>Tasks and tolerances</h3>"
        "<table><tr><th>task</th><th>source</th><th>scorer</th><th>tolerance</th>"
        "<th>interval</th><th>if inconclusive</th><th>error direction</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested engine information as ``baseline.engine  vllm 0.6.3`` lines."""
    if isinstance(value, Mapping) and value:
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return [(prefix, text)]


# Already shown in the contract section: the engine table lists only what the servers told us.
_IDENTITY_KEYS = {"role", "kind", "base_url", "model", "api", "params", "url"}


def _engines_html(tasks: list[Any]) -> str:
    facts: dict[str, dict[str, str]] = {}
    for role in ("baseline", "candidate"):
        for t in tasks:
            ep = mapping(t.get("endpoints")).get(role)
            if isinstance(ep, Mapping) and ep:
                rest = {k: v for k, v in ep.items() if k not in _IDENTITY_KEYS}
                facts[role] = dict(_flatten(plain(rest)))
                break
    keys = list(dict.fromkeys(k for f in facts.values() for k in f))
    if not keys:
        return ""
    rows = "".join(
        f"<tr><th>{esc(k)}</th>"
        + "".join(f"<td>{esc(facts.get(r, {}).get(k, ''))}</td>" for r in ("baseline", "candidate"))
        + "</tr>"
        for k in keys
    )
    return (
        "<h3>Engines, as the servers reported them</h3>"
        f"<table><tr><th></th><th>baseline (old)</th><th>candidate (new)</th></tr>{rows}</table>"
    )


def _provenance_html(run: RunResult) -> str:
    contract = mapping(run.get("contract"))
    rows = [
        ("pytest-parity", run.get("tool_version", "?")),
        ("started", when(run.get("started"))),
        ("finished", when(run.get("finished"))),
        ("contract", contract.get("path", "?")),
        ("contract version", contract.get("version", "?")),
        ("contract sha256", contract.get("digest", "?")),
        ("report schema", f"{FORMAT} v{run.get('schema_version', '?')}"),
    ]
    cached = cache_text(run)
    if cached is not None:
        rows.append(("response cache", cached))
    head = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    tasks = [t for t in as_list(run.get("tasks")) if isinstance(t, Mapping)]
    task_rows = []
    for t in tasks:
        digests = [
            str(v) if k == "data_digest" else f"{k}: {v}"
            for k, v in t.items()
            if k.endswith("digest") and v
        ]
        judge = mapping(t.get("judge"))
        if judge:
            digests.append(
                f"judge {judge.get('model') or '?'}, prompt sha256 {judge.get('prompt_digest')}"
            )
        task_rows.append(
            f"<tr><td>{esc(t.get('task', '?'))}</td>"
            f'<td class="pp-num">{esc(t.get("n_items", "?"))}</td>'
            f'<td class="pp-num">{esc(t.get("n_paired", "?"))}</td>'
            f'<td class="pp-num">{esc(t.get("baseline_errors", 0))} / '
            f"{esc(t.get('candidate_errors', 0))}</td>"
            f'<td class="pp-kv">{"<br>".join(esc(d) for d in digests) or "n/a"}</td></tr>'
        )
    return (
        '<h2 class="pp-part" id="provenance">Provenance</h2>'
        f"<table>{head}</table>"
        + _engines_html(tasks)
        + "<h3>Items</h3><table><tr><th>task</th><th>items</th><th>paired</th>"
        "<th>request errors (old / new)</th><th>data digest</th></tr>"
        + "".join(task_rows)
        + "</table>"
    )


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


def _audit_html(run: RunResult) -> str:
    """The coverage audit: kinds of eval and failure modes covered, gaps with their hints."""
    audit = [str(a) for a in as_list(run.get("audit"))]
    if not audit:
        return ""
    items = "".join(
        f'<li class="{"pp-missing" if "MISSING" in a else "pp-muted"}">{esc(a)}</li>'
        for a in audit[1:]
    )
    return (
        f'<h2 class="pp-part" id="audit">Coverage audit</h2><p>{esc(audit[0])}</p>'
        f'<ul class="pp-audit">{items}</ul>'
    )


def page(run: RunResult) -> str:
    """One self-contained page for the customer: verdict first, then the evidence."""
    contract = mapping(run.get("contract"))
    overall = str(run.get("overall", "SKIP"))
    tasks = [t for t in as_list(run.get("tasks")) if isinstance(t, Mapping)]
    holm = mapping(run.get("holm"))
    colour = _var(overall)
    cand, base = endpoint_name(contract, "candidate"), endpoint_name(contract, "baseline")
    reasons = "".join(f"<li>{esc(r)}</li>" for r in as_list(run.get("overall_reasons")))
    counts = {s: sum(1 for t in tasks if t.get("verdict") == s) for s in ICONS}
    cards = "".join(
        f'<div class="pp-card"><b style="color:{_var(s)}">{n}</b>'
        f"<span>{esc(s.lower())}</span></div>"
        for s, n in counts.items()
        if n or s in ("PASS", "FAIL", "INCONCLUSIVE")
    )
    pp = number(run, "pass_probability")
    items = sum(int(number(t, "n_paired") or 0) for t in tasks)
    cards += f'<div class="pp-card"><b>{items:,}</b><span>paired items judged</span></div>'
    if pp is not None:
        cards += (
            f'<div class="pp-card"><b>{pp:.0%}</b><span>chance an equal migration '
            "passes every task's delta check at these item counts (failure-mode and direction"
            " checks not included)</span></div>"
        )
    legend = (
        '<p class="pp-legend">dot: delta, candidate \u2212 baseline, in points; bar: interval;'
        '<i style="background:#e3f2e7"></i>within tolerance'
        '<i style="background:#fdecea"></i>worse than the tolerance allows'
        "; dashed line: the non-inferiority margin</p>"
    )
    body = "".join(task_html(t, number(holm, f"{t.get('task')}/delta")) for t in tasks)
    title = f"Parity {overall}: {cand} vs {base}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # No script may run in this file, whatever a model wrote into it.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}{_PAGE_CSS}</style></head>"
        '<body><main class="pp">'
        f'<header><h1>Parity report</h1><p class="pp-sub">candidate <strong>{esc(cand)}</strong>'
        f" against baseline <strong>{esc(base)}</strong> \u00b7 {esc(when(run.get('finished')))}"
        f" \u00b7 contract {esc(str(contract.get('digest', ''))[:12])}</p>"
        + (
            f'<p class="pp-sub">{esc(contract["description"])}</p>'
            if contract.get("description")
            else ""
        )
        + "</header>"
        f'<section class="pp-verdict" style="background:{VERDICT_TINTS.get(overall, "#fff")};'
        f'border-color:{colour}"><div class="pp-big" style="color:{colour}">{esc(overall)}</div>'
        f"<p>{esc(HEADLINES.get(overall, ''))}</p><ul>{reasons}</ul></section>"
        f'<div class="pp-cards">{cards}</div>'
        '<h2 class="pp-part" id="summary">Every task at a glance</h2>'
        f"{forest_svg(tasks)}{legend}{summary_table(tasks)}"
        f"{_contract_html(contract)}{_audit_html(run)}"
        f'<h2 class="pp-part" id="tasks">Task by task</h2>{body}'
        f"{_provenance_html(run)}"
        '<footer class="pp-muted">Made by pytest-parity. This file is self-contained: no '
        "scripts, no network requests.</footer></main></body></html>\n"
    )
