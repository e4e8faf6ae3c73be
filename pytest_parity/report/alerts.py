"""What a drift alert looks like to other systems: the Alertmanager webhook document and the
Prometheus gauges (pure: plain data in, a dict or a string out; sending is the monitor's job).

Both read the monitor's outcomes (``pytest_parity.monitor.monitor_task``): one mapping per task
with ``task``, ``tolerance``, ``alert_at``, ``bound`` and ``segments``, each segment a mapping with
``segment``, ``status`` (a :class:`~pytest_parity.stats.drift.DriftStatus` as a dict, or None),
``alert``, ``resolved``, ``examples`` (``pair_id``, ``link``) and ``history`` (points with ``ts``);
the task's ``mix`` is its segment-mix row (``stats.shift.segment_mix``) or None.

The webhook document follows Alertmanager's webhook format (version "4"): a receiver written for
Alertmanager (PagerDuty bridges, Slack relays, alerta) reads it as it is. Labels and annotations
are strings; ``startsAt`` is the time of the first check that saw the alert, ``endsAt`` the zero
time while firing and the time of this run once resolved.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ALERT_NAME",
    "alert_payload",
    "inputs_line",
    "is_mix_row",
    "mix_line",
    "mix_note",
    "prometheus_gauges",
]

ALERT_NAME = "ParityDrift"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"
_PREFIX = "parity_drift"

Pair = tuple[Mapping[str, Any], Mapping[str, Any]]  # (task outcome, segment outcome)


def _rfc3339(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _pts(v: Any) -> str:
    x = _num(v)
    return "n/a" if x is None else f"{100 * x:+.2f} pts"


def _started(seg: Mapping[str, Any], now: float) -> float:
    """The time of the first history point that showed the alert (else of the newest one)."""
    history = [p for p in seg.get("history") or [] if isinstance(p, Mapping)]
    for p in history:
        if p.get("alert") and _num(p.get("ts")) is not None:
            return float(p["ts"])
    for p in reversed(history):
        if _num(p.get("ts")) is not None:
            return float(p["ts"])
    return now


def is_mix_row(row: Mapping[str, Any]) -> bool:
    """Whether an input-shift row is the segment-mix test (``stats.shift.MIX``)."""
    from pytest_parity.stats.shift import MIX

    return row.get("feature") == MIX


def mix_note(row: Mapping[str, Any]) -> str:
    """``segment mix changed: enterprise 10% -> 40% of requests (p=3e-07 Holm, Cramer's V
    0.35)``: the largest share changes of a segment-mix row (segment names as they came, raw:
    each report makes them inert)."""
    from pytest_parity.stats.shift import mix_changes_text

    changes = [c for c in row.get("changes") or [] if isinstance(c, Mapping)]
    moved = mix_changes_text(changes) if changes else "shares"
    p, eff = _num(row.get("p_holm")), _num(row.get("effect_size"))
    stats = (
        f" (p={p:.2g} Holm-adjusted, Cramer's V {eff:.2f})"
        if p is not None and eff is not None
        else ""
    )
    word = "changed" if row.get("shifted") else "unchanged"
    return f"segment mix {word}: {moved} of requests{stats}"


def mix_line(row: Mapping[str, Any], *, alerting: bool) -> str:
    """The task's line for a changed segment mix; without an alert it says what that means."""
    n_r = _num(_sub(row, "reference_summary", "n"))
    n_c = _num(_sub(row, "current_summary", "n"))
    counts = (
        f" ({n_r:,.0f} reference, {n_c:,.0f} new requests)"
        if n_r is not None and n_c is not None
        else ""
    )
    tail = (
        ""
        if alerting
        else "; no segment drifted: a change of the task's pooled score is this mix shift,"
        " not the quality within any segment"
    )
    return mix_note(row) + counts + tail


def _sub(row: Mapping[str, Any], key: str, sub: str) -> Any:
    inner = row.get(key)
    return inner.get(sub) if isinstance(inner, Mapping) else None


def inputs_line(shift: Sequence[Any], mix: Mapping[str, Any] | None = None) -> str:
    """Whether the inputs changed, in one line: the shifted features with their effect, or how
    many were tested and found unchanged, or that no test ran (no earlier window yet); then,
    when the segment mix changed, that note (from ``shift``, else the task's ``mix`` row)."""
    rows = [r for r in shift if isinstance(r, Mapping)]
    mixes = [r for r in rows if is_mix_row(r)]
    rows = [r for r in rows if not is_mix_row(r)]
    mix_row = mixes[0] if mixes else mix
    note = (
        "; " + mix_note(mix_row) if isinstance(mix_row, Mapping) and mix_row.get("shifted") else ""
    )
    if not rows:
        return "inputs: not tested this run (no reference window counted before it)" + note
    moved = [r for r in rows if r.get("shifted")]
    if not moved:
        with_mix = " and the segment mix" if mix_row is not None else ""
        return (
            f"inputs unchanged ({len(rows)} feature{'s' if len(rows) != 1 else ''}{with_mix}"
            " tested against the reference"
            " window)" + note
        )
    parts = []
    for r in moved:
        eff = _num(r.get("effect_size"))
        p = _num(r.get("p_holm"))
        parts.append(
            f"{r.get('feature')} ({r.get('effect') or 'effect'} {eff:+.2f}, Holm p {p:.2g})"
            if eff is not None and p is not None
            else str(r.get("feature"))
        )
    return "inputs changed: " + ", ".join(parts) + note


def _alert(
    task: Mapping[str, Any],
    seg: Mapping[str, Any],
    firing: bool,
    now: float,
    contract: str | None,
    generator_url: str | None,
) -> dict[str, Any]:
    status = seg.get("status") or {}
    tol = _num(task.get("tolerance"))
    upper = _num(status.get("upper"))
    line = _num(task.get("bound"))
    if line is None:
        line = _num(status.get("alert_line"))
    critical = firing and tol is not None and upper is not None and upper < -tol
    labels = {
        "alertname": ALERT_NAME,
        "task": str(task.get("task", "")),
        "segment": str(seg.get("segment", "")),
        "severity": "critical" if critical else "warning",
    }
    if contract:
        labels["contract"] = contract
    examples = [e for e in seg.get("examples") or [] if isinstance(e, Mapping)]
    links = [str(e.get("link") or e.get("pair_id")) for e in examples]
    links = [x for x in links if x and x != "None"]
    where = f"task {labels['task']}, segment {labels['segment']}"
    if firing:
        summary = f"Drift on {where}: the new stack is worse than the alert line {_pts(line)}" + (
            " (beyond the whole tolerance)" if critical else ""
        )
    else:
        summary = f"Resolved: the drift alert on {where} cleared"
    annotations = {
        "summary": summary,
        "description": str(status.get("reason") or summary),
        "estimate": _pts(status.get("estimate")),
        "bound": f"[{_pts(status.get('lower'))}, {_pts(status.get('upper'))}]",
        "alert_line": _pts(line),
        "tolerance": _pts(tol).lstrip("+") if tol is not None else "n/a",
        "pairs": str(status.get("n", 0)),
    }
    if firing:
        mix = task.get("mix") if isinstance(task.get("mix"), Mapping) else None
        annotations["inputs"] = inputs_line(seg.get("shift") or [], mix)
        if mix is not None and mix.get("shifted"):
            annotations["segment_mix"] = mix_note(mix)
    if links:
        annotations["examples"] = " ".join(links)
    fingerprint = hashlib.sha256(
        "\x00".join(f"{k}={labels[k]}" for k in sorted(labels)).encode()
    ).hexdigest()[:16]
    alert: dict[str, Any] = {
        "status": "firing" if firing else "resolved",
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(_started(seg, now)),
        "endsAt": ZERO_TIME if firing else _rfc3339(now),
        "generatorURL": generator_url or (links[0] if links else ""),
        "fingerprint": fingerprint,
    }
    return alert


def alert_payload(
    firing: Sequence[Pair] = (),
    resolved: Sequence[Pair] = (),
    *,
    contract: str | None = None,
    generator_url: str | None = None,
    receiver: str = "pytest-parity",
    now: float | None = None,
) -> dict[str, Any]:
    """The Alertmanager webhook document for the firing and the resolved segments.

    ``generator_url`` (e.g. the drift report's URL) goes into every alert; without it, an alert's
    first example link. ``status`` is ``firing`` when any alert fires, else ``resolved``."""
    now = time.time() if now is None else now
    alerts = [_alert(t, s, True, now, contract, generator_url) for t, s in firing]
    alerts += [_alert(t, s, False, now, contract, generator_url) for t, s in resolved]
    common_labels: dict[str, str] = {}
    if alerts:
        first = alerts[0]["labels"]
        common_labels = {
            k: v for k, v in first.items() if all(a["labels"].get(k) == v for a in alerts)
        }
    group = {"alertname": ALERT_NAME}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="' + ALERT_NAME + '"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": common_labels,
        "commonAnnotations": {},
        "externalURL": generator_url or "",
        "alerts": alerts,
    }


# -- Prometheus --------------------------------------------------------------------------------

_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("estimate", "estimate", "Running mean of the judged paired score (new minus old, -1..1)"),
    ("lower", "lower", "Lower end of the anytime-valid confidence sequence of the mean"),
    ("upper", "upper", "Upper end of the anytime-valid confidence sequence of the mean"),
    ("alert_line", "alert_line", "The alert line: -tolerance x alert_at"),
    ("pairs", "n", "Judged pairs counted by the monitor"),
    ("cusum", "cusum", "Change detector: log e-value (alerts at its threshold)"),
    ("cusum_threshold", "cusum_threshold", "Change detector threshold, log(2 / alpha)"),
    ("alert", "alert", "1 while a drift alert is firing on the segment"),
)


def _label(v: object) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: Any) -> str | None:
    if isinstance(v, bool):
        return "1" if v else "0"
    x = _num(v)
    return None if x is None else repr(x)


def prometheus_gauges(outcomes: Sequence[Mapping[str, Any]]) -> str:
    """Each segment's current numbers in the Prometheus text exposition format (a file for
    node_exporter's textfile collector). Segments without a status yet are left out; a segment's
    ``alert`` gauge follows the outcome's ``alert`` (0 once resolved)."""
    rows: dict[str, list[str]] = {name: [] for name, _, _ in _GAUGES}
    for task in outcomes:
        for seg in task.get("segments") or []:
            status = dict(seg.get("status") or {})
            if not status:
                continue
            status["alert"] = bool(seg.get("alert"))
            if status.get("alert_line") is None:
                status["alert_line"] = task.get("bound")
            labels = (
                f'task="{_label(task.get("task", ""))}",segment="{_label(seg.get("segment", ""))}"'
            )
            for name, key, _ in _GAUGES:
                v = _value(status.get(key))
                if v is not None:
                    rows[name].append(f"{_PREFIX}_{name}{{{labels}}} {v}")
    out: list[str] = []
    for name, _, help_ in _GAUGES:
        out += [f"# HELP {_PREFIX}_{name} {help_}", f"# TYPE {_PREFIX}_{name} gauge", *rows[name]]
    return "\n".join(out) + "\n"
