"""Parity reports made from a :class:`~pytest_parity.results.RunResult`: JSON, Markdown, HTML.

Each format is a pure ``to_*`` function returning a string and a ``write_*`` function that puts
it in a file. Every text that came from a contract, a model or a dataset is escaped for the
format it lands in; endpoint URLs lose credentials and secret-looking query values on the way.

The JSON report (``--parity-json=PATH``) is one UTF-8 object: ``format`` ("pytest-parity/report"),
``schema_version`` (1; bumped when a field changes meaning or goes away, new fields may appear),
``tool_version``, ``started``/``finished`` (ISO 8601 UTC), ``overall`` and ``overall_reasons``,
``pass_probability``, ``holm`` (task -> Holm-adjusted p), ``contract`` (Contract.describe(),
endpoints without secrets) and ``tasks`` (one TaskResult each: scores, counts, ``checks`` with
status, reasons and numbers, sampled ``disagreements``). ``pytest_parity/report/schema.json``
(JSON Schema 2020-12) describes every field. Scores, deltas, intervals and tolerances are on the
0-1 scale (0.015 = 1.5 points); numbers that could not be computed are null, never NaN.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pytest_parity.records import RunResult
from pytest_parity.report.html.sections import (
    as_list,
    checks_of,
    interval_text,
    mapping,
    percent,
)
from pytest_parity.report.html.svg import delta_numbers, esc, forest_svg, number
from pytest_parity.report.numfmt import count, points, prose, pvalue
from pytest_parity.report.signoff import SignOff, group_title, sign_off

__all__ = [
    "FORMAT",
    "SCHEMA_PATH",
    "forest_svg",
    "to_html",
    "to_json",
    "to_markdown",
    "write_html",
    "write_json",
    "write_markdown",
]

FORMAT = "pytest-parity/report"
SCHEMA_PATH = Path(__file__).with_name("schema.json")  # JSON Schema of to_json's output
ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️", "ERROR": "⛔", "SKIP": "⏭️"}
HEADLINES = {
    "PASS": "The candidate is as good as the baseline on every task of the contract.",
    "FAIL": "The candidate is worse than the baseline beyond the contract's tolerance.",
    "INCONCLUSIVE": "The data cannot yet show the candidate is as good as the baseline.",
    "ERROR": "Some tasks could not be judged: an endpoint or the data failed.",
    "SKIP": "No task was run.",
}
_SECRET_KEYS = {"api_key", "apikey", "authorization", "password", "secret", "token", "headers"}
_SECRET_QUERY = re.compile(r"key|token|secret|sig|pass|auth|credential", re.IGNORECASE)


def safe_url(url: str) -> str:
    """The URL without user:password and with secret-looking query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode(
        [(k, "REDACTED" if _SECRET_QUERY.search(k) else v) for k, v in parse_qsl(parts.query)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def plain(value: Any, key: str = "") -> Any:
    """Builtins only, NaN/inf as null, secrets dropped: safe for json.dumps(allow_nan=False)."""
    if isinstance(value, Mapping):
        return {
            str(k): plain(v, str(k)) for k, v in value.items() if str(k).lower() not in _SECRET_KEYS
        }
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        # base_url, url, recorded_base_url ...: an address never keeps its credentials
        return safe_url(value) if key.lower().endswith("url") else value
    if hasattr(value, "item"):  # numpy scalars
        return plain(value.item(), key)
    return str(value)


def _public(run: RunResult) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": FORMAT, "schema_version": run.get("schema_version", 1)}
    doc.update({k: v for k, v in run.items() if k != "schema_version"})
    data: dict[str, Any] = plain(doc)
    return data


def to_json(run: RunResult) -> str:
    """The run as versioned JSON (schema above); keys in a stable order, UTF-8 text kept."""
    return json.dumps(_public(run), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(run: RunResult, path: str | Path) -> None:
    _write(path, to_json(run))


# ----------------------------------------------------------------------------------------------
# Markdown (GitHub-flavoured, for $GITHUB_STEP_SUMMARY)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]~|])")


def _md(text: object) -> str:
    """One table cell or list item: Markdown and HTML both neutralised, on one line."""
    s = _MD_SPECIAL.sub(r"\\\1", str(text))
    return esc(" ".join(s.split()))


def cache_text(run: Mapping[str, Any]) -> str | None:
    """How many answers per stack came from the response cache, in which mode; None when the
    run carries no counts (an older or hand-made result)."""
    cache = run.get("cache")
    if not isinstance(cache, Mapping):
        return None
    mode = str(cache.get("mode", "?"))
    if mode == "off":
        return "response cache off: every answer was asked for"
    parts = [
        f"{role} {c.get('from_cache', '?')}/{c.get('answers', '?')}"
        for role, c in cache.items()
        if role != "mode" and isinstance(c, Mapping)
    ]
    return f"answers from the response cache ({mode}): {', '.join(parts) or 'none'}"


def endpoint_name(contract: Mapping[str, Any], role: str) -> str:
    ep = contract.get(role)
    if not isinstance(ep, Mapping):
        return role
    return f"{ep.get('model', '?')} ({ep.get('kind', '?')})"


def to_markdown(run: RunResult) -> str:
    """A step summary: the verdict and why, a table of tasks, the reasons of every non-PASS."""
    contract = mapping(run.get("contract"))
    overall = str(run.get("overall", "SKIP"))
    tasks = [t for t in as_list(run.get("tasks")) if isinstance(t, Mapping)]
    lines = [
        f"## {ICONS.get(overall, '')} Parity {_md(overall)}: "
        f"{_md(endpoint_name(contract, 'candidate'))} vs "
        f"{_md(endpoint_name(contract, 'baseline'))}",
        "",
        _md(HEADLINES.get(overall, "")),
        "",
    ]
    if contract.get("description"):
        lines += [f"*{_md(contract['description'])}*", ""]
    lines += signoff_markdown(sign_off(run))
    counts = {s: sum(1 for t in tasks if t.get("verdict") == s) for s in ICONS}
    lines += [
        "",
        "**Tasks:** "
        + " · ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (f" (of {len(tasks)})" if tasks else "none"),
        "",
        "| Task | Baseline | Candidate | Delta, pts [interval] | Tolerance, pts | Verdict |",
        "|---|--:|--:|---|--:|---|",
    ]
    for t in tasks:
        safety = " (safety-critical)" if t.get("safety_critical") else ""
        verdict = str(t.get("verdict", "SKIP"))
        lines.append(
            f"| {_md(t.get('task', '?'))}{safety} | {percent(number(t, 'baseline_score'))} "
            f"| {percent(number(t, 'candidate_score'))} | {_md(interval_text(delta_numbers(t)))} "
            f"| {points(number(t, 'tolerance'), signed=False)} "
            f"| {ICONS.get(verdict, '')} {_md(verdict)} |"
        )
    details = []
    for t in tasks:
        if t.get("verdict") == "PASS":
            continue
        why = [t["error"]] if t.get("error") else []
        for c in checks_of(t):
            if c.get("status") not in ("PASS", "SKIP"):
                reasons = c.get("reasons")
                why += (
                    [f"{c['name']}: {r}" for r in reasons if r] if isinstance(reasons, list) else []
                )
        details.append(f"**{_md(t.get('task', '?'))}** ({_md(t.get('verdict', '?'))})")
        details += [f"- {_md(prose(w))}" for w in why] + [""]
    if details:
        lines += ["", "### Every check that did not pass", "", *details]
    notes = [
        f"- **{_md(t.get('task', '?'))}**: {_md(n)}"
        for t in tasks
        for n in as_list(t.get("notes"))
        if n
    ]
    if notes:
        lines += ["", "### Notes", "", *notes]
    audit = [str(a) for a in as_list(run.get("audit"))]
    if audit:
        lines += ["", "### Coverage audit", "", _md(audit[0]), ""]
        lines += [f"- {_md(a)}" for a in audit[1:]]
    stopped = [t for t in tasks if isinstance(t.get("early_stop"), Mapping)]
    if stopped:
        from pytest_parity.checks.earlystop import early_stop_line

        lines += ["", "### Early stopping", ""]
        lines += [
            f"- **{_md(t.get('task', '?'))}**: "
            + _md(early_stop_line(dict(t["early_stop"]), float(t.get("tolerance") or 0.0)))
            for t in stopped
        ]
    lines += _slices_markdown(tasks)
    judged = [t for t in tasks if isinstance(t.get("judge"), Mapping)]
    if judged:
        from pytest_parity.report.judge import judge_facts

        lines += ["", "### LLM judge", ""]
        for t in judged:
            lines.append(f"**{_md(t.get('task', '?'))}**")
            lines += [f"- {_md(k)}: {_md(v)}" for k, v in judge_facts(t["judge"])]
            lines.append("")
    digest = str(contract.get("digest", ""))[:12]
    cached = cache_text(run)
    if cached is not None:
        lines += ["", _md(cached)]
    lines += [
        "",
        f"<sub>contract {_md(contract.get('path', '?'))} · digest {_md(digest)} · "
        f"pytest-parity {_md(run.get('tool_version', '?'))} · {_md(run.get('finished', ''))}"
        "</sub>",
        "",
    ]
    return "\n".join(lines)


def _slices_markdown(tasks: list[Mapping[str, Any]]) -> list[str]:
    """Per task and sliced field: the caution, then a row per slice (report/slices.py)."""
    from pytest_parity.report import slices as sl

    sliced = [t for t in tasks if sl.fields(t) or sl.notes(t)]
    if not sliced:
        return []
    out = ["", "### Slices (exploratory, not part of the verdict)", ""]
    for t in sliced:
        name = _md(t.get("task", "?"))
        if sl.fields(t):
            out += [f"**{name}**: {_md(sl.caution(t))}", ""]
        for f in sl.fields(t):
            out += [
                f"*{name} by {_md(f.get('field', '?'))}*: {_md(sl.field_line(t, f))}",
                "",
                "| Slice | Items | Baseline | Candidate | Delta, pts [interval] | Flips b/c "
                "| Status | Holm p |",
                "|---|--:|--:|--:|---|--:|---|--:|",
            ]
            for s in f["slices"]:
                b, c = s.get("b"), s.get("c")
                out.append(
                    f"| {_md(s.get('value', '?'))} | {count(s.get('n'))} "
                    f"| {percent(number(s, 'baseline_score'))} "
                    f"| {percent(number(s, 'candidate_score'))} "
                    f"| {_md(sl.slice_interval(s, unit=False))} "
                    f"| {'n/a' if b is None else f'{count(b)}/{count(c)}'} "
                    f"| {_md(sl.status_word(s.get('status')))} | {pvalue(s.get('p_holm'))} |"
                )
            out.append("")
        out += [f"- {name}: {_md(n)}" for n in sl.notes(t)]
    out += ["", f"<sub>{_md(sl.STATUS_MEANING)}</sub>"]
    return out


def signoff_markdown(facts: SignOff) -> list[str]:
    """The sign-off facts (report/signoff.py) as Markdown: the headline, the reasons grouped by
    status, the A/A noise floor, the pass chance with what it covers, the lock digest."""
    lines: list[str] = []
    if facts.headline():
        lines += [f"**{_md(facts.headline())}**", ""]
    for status, reasons in facts.groups:
        lines += [f"### {ICONS.get(status, '')} {_md(group_title(status, reasons))}", ""]
        lines += [f"- {_md(r.text)}" for r in reasons] + [""]
    if facts.noise:
        lines += [
            "**A/A noise floor** (the baseline against itself):",
            "",
            "| Task | Old vs new flips | Old vs old (A/A) |",
            "|---|--:|--:|",
        ]
        lines += [
            f"| {_md(n.task)} | {'n/a' if n.rate is None else percent(n.rate)} "
            f"| {percent(n.aa_rate)} ({count(n.aa_flips)} of {count(n.aa_n)}) |"
            for n in facts.noise
        ] + [""]
    else:
        lines += ["A/A noise floor: not measured (`--parity-aa=rerun` measures it).", ""]
    if facts.pass_chance is not None:
        lines += [f"**Chance an equal migration passes:** {_md(facts.pass_chance_text())}", ""]
    if facts.warning():
        lines += [f"> ⚠️ {_md(facts.warning())}", ""]
    lock = facts.lock_digest or "none (not locked: --parity-lock=PATH)"
    lines += [f"**Lock digest:** {_md(lock)}", ""]
    return lines


def write_markdown(run: RunResult, path: str | Path, append: bool = False) -> None:
    """Write (or, for ``$GITHUB_STEP_SUMMARY``, append) the Markdown summary."""
    text = to_markdown(run)
    p = Path(path)
    if append and p.is_file() and p.stat().st_size > 0:
        text = "\n" + text  # a blank line so our heading does not glue onto earlier content
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a" if append else "w", encoding="utf-8") as f:
        f.write(text)


def to_html(run: RunResult) -> str:
    """One self-contained page for the customer: verdict first, then the evidence."""
    # The page module builds on this one's helpers (plain, safe_url, headlines).
    from pytest_parity.report.html.page import page

    return page(run)


def write_html(run: RunResult, path: str | Path) -> None:
    _write(path, to_html(run))


def _write(path: str | Path, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
