"""The contract and provenance sections of the standalone report.

The contract as it was gated: endpoints (a replay's recording instead of a blank address), each
task's tolerance, policy and the request parameters it really ran with (the endpoint's, with the
task's own laid over them); provenance: versions, times, digests (contract, lock, data, judge
prompts) and the engines as the servers reported them. Values are written for a person: lists
joined, mappings as ``key: value``, nothing as a dash; never raw ``null`` or JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_parity.records import RunResult
from pytest_parity.report.formats import FORMAT, cache_text, plain, safe_url
from pytest_parity.report.html.first_page import when
from pytest_parity.report.html.sections import as_list, mapping
from pytest_parity.report.html.svg import esc, number
from pytest_parity.report.numfmt import points

_EMPTY = "\u2014"
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def value_text(value: Any) -> str:
    """A setting or an engine fact as a person reads it: lists joined, mappings as ``k: v``,
    nothing as a dash (never raw ``null`` or JSON)."""
    if value is None or value == "" or value == [] or value == {}:
        return _EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {value_text(v)}" for k, v in value.items())
    # a stop string of "\n" reads as \n, not as an invisible line break
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def _params_text(params: Any) -> str:
    if not isinstance(params, Mapping) or not params:
        return "(none)"
    return ", ".join(f"{k}={value_text(v)}" for k, v in params.items())


def _base_url(ep: Mapping[str, Any], engine: Mapping[str, Any]) -> str:
    """The endpoint's address; a replay has none: it answers from a recording, whose header
    says which server it recorded (the ``engine`` facts a task's run reported)."""
    url = ep.get("base_url")
    if ep.get("kind") == "replay" or not url:
        rec = ep.get("recording")
        text = "no server: replays " + (f"the recording {rec}" if rec else "a recording")
        was = engine.get("recorded_base_url")
        if isinstance(was, str) and was:
            kind = engine.get("recorded_kind")
            text += f", recorded from {safe_url(was)}" + (f" ({kind})" if kind else "")
        return text
    return safe_url(str(url))


def _engine_of(tasks: Sequence[Mapping[str, Any]], role: str) -> Mapping[str, Any]:
    for t in tasks:
        engine = mapping(mapping(mapping(t.get("endpoints")).get(role)).get("engine"))
        if engine:
            return engine
    return {}


def _endpoint_rows(contract: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> str:
    roles = ["baseline", "candidate"]
    judged = isinstance(contract.get("judge"), Mapping)
    if judged:
        roles.append("judge")
    sides = [(mapping(contract.get(r)), _engine_of(tasks, r)) for r in roles]
    rows = []
    for k in ("kind", "model", "base_url", "api", "params"):
        cells = []
        for ep, engine in sides:
            if k == "params":
                v = _params_text(ep.get(k)) + " (endpoint defaults; each task's own below)"
            elif k == "base_url":
                v = _base_url(ep, engine)
            else:
                v = value_text(ep.get(k))
            cells.append(f'<td class="pp-hash">{esc(v)}</td>')
        rows.append(f"<tr><th>{esc(k)}</th>{''.join(cells)}</tr>")
    return (
        '<table class="pp-wrap"><tr><th></th><th>baseline (old)</th><th>candidate (new)</th>'
        + ("<th>judge</th>" if judged else "")
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


# What an lm-eval benchmark sets per request itself (sources/lmeval/models.py BENCHMARK_OWNED).
_BENCHMARK_OWNED = ("max_tokens", "max_completion_tokens", "stop", "n", "logprobs")


def effective_params(contract: Mapping[str, Any], task: Mapping[str, Any]) -> str:
    """The request parameters a task really ran with: each endpoint's, with the task's own laid
    over them (runner/requests.py); one line when both stacks got the same."""
    own = mapping(task.get("params"))
    shown = []
    for role in ("baseline", "candidate"):
        merged = {**mapping(mapping(contract.get(role)).get("params")), **own}
        if task.get("source") == "lm-eval":
            merged = {k: v for k, v in merged.items() if k not in _BENCHMARK_OWNED}
            merged["max_tokens, stop"] = "set by the benchmark"
        shown.append(_params_text(merged))
    if shown[0] == shown[1]:
        return shown[0]
    return f"old: {shown[0]}; new: {shown[1]}"


def contract_html(contract: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]] = ()) -> str:
    rows, params = [], []
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
        params.append(
            f"<tr><td>{esc(t.get('name', '?'))}</td>"
            f'<td class="pp-kv pp-hash">{esc(effective_params(contract, t))}</td></tr>'
        )
    description = contract.get("description")
    return (
        '<h2 class="pp-part" id="contract">The contract</h2>'
        + (f'<p class="pp-desc">{esc(description)}</p>' if description else "")
        + "<h3>Endpoints</h3>"
        + _endpoint_rows(contract, tasks)
        + "<h3>Tasks and tolerances</h3>"
        '<table class="pp-wrap"><tr><th>task</th><th>source</th><th>scorer</th><th>tolerance</th>'
        "<th>interval</th><th>if inconclusive</th><th>error direction</th></tr>"
        + "".join(rows)
        + "</table><h3>Request parameters each task ran with</h3>"
        '<table class="pp-wrap pp-params"><tr><th>task</th><th>request parameters (the'
        " endpoint's, with the task's own laid over them)</th></tr>" + "".join(params) + "</table>"
    )


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested engine information as ``baseline.engine  vllm 0.6.3`` lines."""
    if isinstance(value, Mapping) and value:
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value_text(value))]


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
        + "".join(
            f'<td class="pp-hash">{esc(facts.get(r, {}).get(k, _EMPTY))}</td>'
            for r in ("baseline", "candidate")
        )
        + "</tr>"
        for k in keys
    )
    return (
        "<h3>Engines, as the servers reported them</h3>"
        '<table class="pp-wrap"><tr><th></th><th>baseline (old)</th><th>candidate (new)</th></tr>'
        f"{rows}</table>"
    )


def provenance_html(run: RunResult) -> str:
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
    lock = mapping(run.get("lock"))
    if lock.get("digest"):
        rows.append(("lock digest", lock["digest"]))
        rows += [(f"lock: {k}", v) for k, v in mapping(lock.get("entries")).items()]
    head = "".join(
        f'<tr><th>{esc(k)}</th><td class="pp-hash">{esc(value_text(v))}</td></tr>' for k, v in rows
    )
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
            f'<td class="pp-kv pp-hash">{"<br>".join(esc(d) for d in digests) or "n/a"}</td></tr>'
        )
    return (
        '<h2 class="pp-part" id="provenance">Provenance</h2>'
        f'<table class="pp-wrap">{head}</table>'
        + _engines_html(tasks)
        + '<h3>Items</h3><table class="pp-wrap"><tr><th>task</th><th>items</th><th>paired</th>'
        "<th>request errors (old / new)</th><th>data digest</th></tr>"
        + "".join(task_rows)
        + "</table>"
    )
