"""Drift after cutover: the shadow pairs judged since the last run, fed to a sequential monitor.

``pytest --parity-contract=drift.yaml --parity-monitor`` (scheduled by cron or CI) runs, per task
with ``source: shadow`` (or those ``monitor.tasks`` names):

1. read the store's checkpoint for the task: the stable key ``(ts, id)`` of the last pair counted;
2. judge the pairs after it, oldest first, up to ``monitor.max_pairs`` and never a pair younger
   than ``monitor.settle`` (a proxy flushes its batch a little later than the pair's time; several
   proxies writing to one PostgreSQL store each do), through the task's own scorer (the pairwise
   judge, both orders) with the runner, so the judge's retries and error budget apply;
3. per segment, feed the judged paired scores (candidate minus baseline, time order) into that
   segment's :class:`~pytest_parity.stats.drift.DriftMonitor` restored from the store: an
   anytime-valid confidence sequence and a CUSUM, so checking every hour inflates no false alarm;
4. save the checkpoint and every segment's state in one transaction, only if the checkpoint is
   still the one read in step 1: a pair is counted once, and a second monitor run at the same
   time fails with a one-line ERROR instead of counting twice.

A task whose judge failed on more pairs than its ``max_error_rate`` allows (a judge that is down)
is an ERROR and saves nothing: the same pairs are judged again on the next run; "no drift" is
never said of pairs nobody judged. Pairs where a stack failed have no judged score: they are
counted (``unjudged``) and left to the gate's failure checks.

Why it drifted: per segment, this run's requests against the reference window's (prompt length,
turns, tool use, script, model) and, per task, the segment mix (the share of pairs per segment),
tested in each segment's Holm family; a changed mix is said on its own line of the task, also
when no segment alerts.

The outcome of each task is plain data (:func:`monitor_task`); :func:`deliver` sends the
Alertmanager document to the webhook, :func:`write_metrics` the Prometheus textfile and
:func:`write_report` the drift report page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_parity.contract.spec import Contract, TaskSpec
    from pytest_parity.records import ItemRecord, TaskRun
    from pytest_parity.stats.drift import DriftMonitor
    from pytest_parity.stats.shift import MixResult
    from pytest_parity.store import Store

__all__ = [
    "ALERT_EXIT_CODE",
    "MonitorError",
    "deliver",
    "monitor_task",
    "monitored_tasks",
    "write_metrics",
    "write_report",
]

ALERT_EXIT_CODE = 10  # the run's exit code when a drift alert is firing (1: a task ERRORed)
CHUNK = 25  # scores per monitor update between two points of the sequence's history
MAX_HISTORY = 400  # points of each segment's sequence kept in the store for the report
MAX_SHIFT_ROWS = 2000  # requests of each window the input-shift tests read
TEXT_SHOWN = 400  # characters of a prompt or an answer in an example pair
DEFAULTS: dict[str, Any] = {
    "alpha": 0.05,
    "alert_at": 0.5,
    "settle": 300.0,
    "max_pairs": 5000,
    "examples": 3,
    "links": None,
    "reference": {"last": 7 * 86400.0, "since": None, "until": None},
    "webhook": None,
}


class MonitorError(RuntimeError):
    """A task that cannot be monitored this run (nothing saved); ``str()`` is one line."""


def settings(contract: Contract) -> dict[str, Any]:
    """The monitor's settings: the contract's ``monitor:`` block over the defaults."""
    from pytest_parity.contract.spec import thaw

    out = dict(DEFAULTS)
    out["tasks"] = [t.name for t in contract.tasks if t.source == "shadow"]
    if contract.monitor is not None:
        out.update(thaw(contract.monitor))
    return out


def monitored_tasks(contract: Contract) -> list[TaskSpec]:
    names = settings(contract)["tasks"]
    return [t for t in contract.tasks if t.name in names]


# -- one task --------------------------------------------------------------------------------


def _open(task: TaskSpec) -> Store:
    from pytest_parity.sources.shadow import shown_store, store_url
    from pytest_parity.store import open_store

    url = store_url(task.source_options)
    if "://" not in url and not Path(url).is_file():
        raise MonitorError(f"task {task.name}: no shadow store at {url}")
    try:
        return open_store(url)
    except Exception as exc:
        raise MonitorError(
            f"task {task.name}: the shadow store {shown_store(url)} cannot be opened:"
            f" {' '.join(str(exc).split())[:200]}"
        ) from None


def _window(task: TaskSpec, now: float, settle: float, first: bool) -> tuple[float | None, float]:
    """The monitored stream: from the task's window's start (an explicit ``since``; ``last:``
    only on the first run, so a first run does not judge the whole history and a run after a
    pause skips nothing), up to the settle time before now (or the window's ``until``)."""
    w = task.source_options["window"]
    until = now - settle
    if w.get("until") is not None:
        until = min(until, float(w["until"]))
    since = w.get("since")
    if first and w.get("last") is not None:
        since = now - float(w["last"])
    return since, until


def _restore(
    task: TaskSpec, segment: str, state: Mapping[str, Any], cfg: Mapping[str, Any]
) -> DriftMonitor:
    """A segment's stored monitor, checked against the task's tolerance and the monitor's
    ``alpha`` and ``alert_at`` now; a mismatch or a damaged state is a one-line MonitorError."""
    from pytest_parity.stats.drift import DriftMonitor as Monitor

    try:
        return Monitor.from_state(
            state,
            tolerance=task.tolerance,
            alpha=float(cfg["alpha"]),
            alert_at=float(cfg["alert_at"]),
        )
    except ValueError as exc:
        why = str(exc).removeprefix("DriftMonitor.from_state: ")
        why = why.replace("reset the monitor", "reset it with --parity-monitor-reset")
        raise MonitorError(
            f"task {task.name}: segment {segment}: {why}; nothing was judged or counted"
        ) from None


def _duration(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{seconds / n:g}{unit}"
    return f"{seconds:g}s"


def _score(rec: ItemRecord) -> float | None:
    a, b = rec["baseline"]["score"], rec["candidate"]["score"]
    if a is None or b is None:
        return None
    return float(b) - float(a)


def _judge_failed(rec: ItemRecord) -> bool:
    return any(
        (rec[side]["facts"] or {}).get("judge_error") is not None
        or rec[side]["category"] == "judge_error"
        for side in ("baseline", "candidate")
    )


def _example(rec: ItemRecord, task: str, segment: str, links: str | None) -> dict[str, Any]:
    meta = rec["metadata"] or {}
    pid = meta.get("pair_id")
    return {
        "pair_id": pid,
        "ts": meta.get("ts"),
        "link": None if links is None else links.format(pair_id=pid, segment=segment, task=task),
        "score": _score(rec),
        "prompt": rec["prompt"][:TEXT_SHOWN],
        "baseline": rec["baseline"]["text"][:TEXT_SHOWN],
        "candidate": rec["candidate"]["text"][:TEXT_SHOWN],
    }


def monitor_task(
    task: TaskSpec,
    run_task: Callable[[TaskSpec], TaskRun],
    cfg: Mapping[str, Any],
    *,
    reset: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Judge the task's new pairs, advance every segment's monitor, save the state; the task's
    outcome as plain data. Raises :class:`MonitorError` when nothing could be counted."""
    from pytest_parity.contract.spec import _frozen, thaw
    from pytest_parity.runner.taskrun import TaskRunError
    from pytest_parity.stats.drift import DriftMonitor
    from pytest_parity.store import MonitorConflict

    now = time.time() if now is None else now
    with _open(task) as st:
        stored = st.monitor_load(task.name)
        # Alerts firing before a reset are resolved by it: the receiver hears that they cleared.
        firing_before = {seg for seg, s in stored.states.items() if s.get("alerting")}
        before_reset = stored.states
        since, until = _window(task, now, float(cfg["settle"]), stored.checkpoint is None)
        start = stored.checkpoint
        if reset:
            # Start over from now: the stored history is not judged again, the sequences begin
            # with the pairs after the newest one stored.
            st.monitor_reset(task.name)
            stored = st.monitor_load(task.name)
            start = st.last_key(until=until)
        # Every stored sequence restored before any pair is judged: one started under another
        # tolerance, alpha or alert_at is refused (its guarantee holds for those only).
        restored = {
            seg: _restore(task, seg, state["monitor"], cfg)
            for seg, state in stored.states.items()
            if state.get("monitor")
        }
        opts = thaw(task.source_options)
        opts.update(
            window={"last": None, "since": since, "until": until},
            sample=None,
            after=None if start is None else list(start),
            limit=int(cfg["max_pairs"]),
        )
        mtask = replace(task, source_options=_frozen(opts))
        try:
            run = run_task(mtask)
        except TaskRunError as exc:
            raise MonitorError(str(exc)) from None
        records = list(run.records)
        judge_failed = sum(_judge_failed(r) for r in records)
        budget = int(task.max_error_rate * len(records))
        if run.aborted or judge_failed > budget:
            why = run.aborted or (
                f"the judge failed on {judge_failed} of {len(records)} pairs, more than the"
                f" task's max_error_rate {task.max_error_rate:g} allows ({budget})"
            )
            prefix = f"task {task.name}: "
            raise MonitorError(
                f"{prefix}{why.removeprefix(prefix)}; nothing was counted, the next run judges"
                " these pairs again"
            )
        from pytest_parity import registry

        last_key = registry.sources.get(task.source).last_key(mtask)
        by_segment: dict[str, list[ItemRecord]] = {}
        for r in records:
            by_segment.setdefault(str((r["metadata"] or {}).get("segment")), []).append(r)
        states = {seg: dict(s) for seg, s in stored.states.items()}
        segments = []
        for seg in sorted(set(states) | set(by_segment) | firing_before):
            state = states.get(seg) or {}
            monitor = restored.get(seg) or DriftMonitor(
                task.tolerance, alpha=float(cfg["alpha"]), alert_at=float(cfg["alert_at"])
            )
            recs = by_segment.get(seg, [])
            scored = [(r, d) for r in recs if (d := _score(r)) is not None]
            history: list[dict[str, Any]] = list(state.get("history") or [])
            status = None
            for i0 in range(0, len(scored), CHUNK):
                chunk = scored[i0 : i0 + CHUNK]
                status = monitor.update([d for _, d in chunk])
                point = {"ts": (chunk[-1][0]["metadata"] or {}).get("ts"), **status.to_dict()}
                history.append(point)
            history = history[-MAX_HISTORY:]
            last = status.to_dict() if status is not None else (state.get("last") or None)
            was = seg in firing_before
            alerting = bool(last and last.get("alert"))
            shown = last
            if last is None and was:
                # reset while firing: the resolved alert names the last status it had
                shown = before_reset[seg].get("last")
            losses = [r for r, d in scored if d < 0][::-1]  # the newest losses first
            examples = [
                _example(r, task.name, seg, cfg.get("links"))
                for r in losses[: int(cfg["examples"])]
            ]
            first_ts = state.get("first_ts")
            if first_ts is None and recs:
                first_ts = (recs[0]["metadata"] or {}).get("ts")
            states[seg] = {
                "monitor": monitor.to_state(),
                "alerting": alerting,
                "last": last,
                "history": history,
                "first_ts": first_ts,
                "examples": examples or state.get("examples") or [],
            }
            segments.append(
                {
                    "segment": seg,
                    "new_pairs": len(recs),
                    "judged": len(scored),
                    "unjudged": len(recs) - len(scored),
                    "status": shown,
                    "alert": alerting,
                    "was_alerting": was,
                    "resolved": was and not alerting,
                    "examples": states[seg]["examples"],
                    "history": history,
                    "first_ts": first_ts,
                }
            )
        checkpoint = start if last_key is None else last_key
        try:
            st.monitor_save(task.name, stored.checkpoint, checkpoint, states)
        except MonitorConflict as exc:
            raise MonitorError(str(exc)) from None
        mix = _mix(st, task, segments, cfg, start)
        for s in segments:
            s["shift"] = _shift(st, task, s, cfg, start, checkpoint, mix)
        mix_row = _mix_row(segments, mix)
        # What the next run will judge: pairs beyond max_pairs, and pairs younger than the
        # settle time (said, so that a run right after the proxy stored them is not a mystery).
        seg_only = task.source_options.get("segment")
        keep = bool(task.source_options.get("client_errors"))
        backlog = st.count(since, until, seg_only, after=checkpoint, client_errors=keep)
        settling = st.count(until, None, seg_only, after=checkpoint, client_errors=keep)
    from pytest_parity.report.alerts import inputs_line, mix_line

    alerts = [s["segment"] for s in segments if s["alert"]]
    bound = -task.tolerance * float(cfg["alert_at"])
    reasons = [
        f"{len(records):,} new pairs judged ({judge_failed} judge failures),"
        f" {sum(s['unjudged'] for s in segments):,} without a judged score (a stack failed)"
        + (
            f"; {backlog:,} more wait for the next run (max_pairs {cfg['max_pairs']})"
            if backlog
            else ""
        )
        + (
            f"; {settling:,} younger than settle ({_duration(float(cfg['settle']))}) wait for"
            " the next run"
            if settling
            else ""
        )
    ]
    for s in segments:
        st_ = s["status"] or {}
        if not st_:
            continue
        lo, up = (100 * float(st_.get(k, 0.0)) for k in ("lower", "upper"))
        reasons.append(
            f"segment {s['segment']}: n={st_.get('n', 0):,}, estimate"
            f" {100 * float(st_.get('estimate', 0.0)):+.2f} pts, bound [{lo:+.2f}, {up:+.2f}]"
            f" against {100 * bound:+.2f}: "
            + ("ALERT " + str(st_.get("reason") or "") if s["alert"] else "no drift shown")
            + (" (resolved)" if s["resolved"] else "")
            + ("; " + inputs_line(s.get("shift") or [], mix_row) if s["alert"] else "")
        )
    if mix_row is not None and mix_row.get("shifted"):
        # said whether or not a segment alerts: each segment stable while the mix moved is the
        # case where the task's pooled score changes although no segment's quality did
        reasons.append(mix_line(mix_row, alerting=bool(alerts)))
    return {
        "task": task.name,
        "status": "ALERT" if alerts else "OK",
        "alerts": alerts,
        "reasons": reasons,
        "tolerance": task.tolerance,
        "alert_at": float(cfg["alert_at"]),
        "bound": bound,
        "pairs_read": len(records),
        "waiting": {"backlog": backlog, "settling": settling},
        "judge_failed": judge_failed,
        "checkpoint": None if checkpoint is None else list(checkpoint),
        "previous_checkpoint": None if stored.checkpoint is None else list(stored.checkpoint),
        "segments": segments,
        "mix": mix_row,
        "notes": list(run.notes),
    }


def _reference_window(
    cfg: Mapping[str, Any], first: Any
) -> tuple[float | None, float | None] | None:
    """The reference window: the monitor's ``reference`` since/until, else ``reference.last``
    from the first pair counted (``first``; None: no window yet)."""
    ref = cfg["reference"]
    since, until = ref.get("since"), ref.get("until")
    if since is None and until is None:
        if first is None:
            return None
        return float(first), float(first) + float(ref.get("last") or DEFAULTS["reference"]["last"])
    return since, until


def _mix(
    st: Store,
    task: TaskSpec,
    segments: Sequence[Mapping[str, Any]],
    cfg: Mapping[str, Any],
    before: tuple[float, int] | None,
) -> MixResult | None:
    """The task's segment mix: this run's new pairs per segment against the pairs per segment
    of the reference window (from the task's first pair counted) that earlier runs counted. A
    task reading one segment (``segment:``) has no mix."""
    from pytest_parity.stats.shift import segment_mix

    if before is None or task.source_options.get("segment") is not None:
        return None
    current = {str(s["segment"]): int(s["new_pairs"]) for s in segments if s["new_pairs"]}
    firsts = [float(s["first_ts"]) for s in segments if s.get("first_ts") is not None]
    window = _reference_window(cfg, min(firsts) if firsts else None)
    if not current or window is None:
        return None
    since, until = window
    keep = bool(task.source_options.get("client_errors"))
    reference = {
        seg: n - st.count(since, until, seg, after=before, client_errors=keep)
        for seg, n in st.segments(since, until, client_errors=keep).items()
    }
    return segment_mix(reference, current)


def _mix_row(segments: Sequence[Mapping[str, Any]], mix: MixResult | None) -> dict[str, Any] | None:
    """The task's segment-mix result as the reports show it: of the segments whose features
    were tested with it (one Holm family per segment), the row with the largest Holm p-value,
    so the task never calls the mix changed where a segment's explanation does not; with no
    such segment, the mix test alone."""
    from pytest_parity.stats.shift import MIX, mix_alone

    if mix is None:
        return None
    rows = [r for s in segments for r in s.get("shift") or [] if r.get("feature") == MIX]
    if rows:
        widest: dict[str, Any] = max(rows, key=lambda r: float(r["p_holm"]))
        return widest
    return mix_alone(mix).to_dict()


def _shift(
    st: Store,
    task: TaskSpec,
    seg: Mapping[str, Any],
    cfg: Mapping[str, Any],
    before: tuple[float, int] | None,
    after: tuple[float, int] | None,
    mix: MixResult | None = None,
) -> list[dict[str, Any]]:
    """Input shift of the segment: this run's new requests (after ``before``, up to ``after``)
    against the reference window's requests counted by earlier runs (never this run's own: a
    window holding the pairs it is compared with would hide their change). The task's segment
    ``mix`` is one more test of the segment's family (Holm across them)."""
    from pytest_parity.stats.shift import input_shift

    if not seg["new_pairs"] or before is None:
        return []
    window = _reference_window(cfg, seg.get("first_ts"))
    if window is None:
        return []
    since, until = window
    reference = [
        p.request
        for p in st.pairs(since, until, seg["segment"], limit=MAX_SHIFT_ROWS)
        if (p.ts, p.id) <= before
    ]
    current = [
        p.request
        for p in st.pairs(None, None, seg["segment"], after=before, limit=MAX_SHIFT_ROWS)
        if after is None or (p.ts, p.id) <= after
    ]
    if not reference or not current:
        return []
    return [r.to_dict() for r in input_shift(reference, current, mix=mix)]


# -- after every task: webhook, gauges, report ------------------------------------------------


def deliver(
    outcomes: Sequence[Mapping[str, Any]], cfg: Mapping[str, Any], *, transport: Any = None
) -> list[str]:
    """POST the firing (and resolved) alerts to the webhook; one line per delivery. A failed
    delivery is a line starting ``ERROR``: the caller makes the run say so."""
    import os

    from pytest_parity.endpoints.webhook import WebhookError, headers_from_env, post_json
    from pytest_parity.report.alerts import alert_payload

    hook = cfg.get("webhook")
    if not hook:
        return []
    firing = [(o, s) for o in outcomes for s in o["segments"] if s["alert"]]
    resolved = [(o, s) for o in outcomes for s in o["segments"] if s["resolved"]]
    if not hook.get("send_resolved", True):
        resolved = []
    if not firing and not resolved:
        return []
    url = hook.get("url") or os.environ.get(str(hook.get("url_env")))
    if not url:
        return [
            f"ERROR webhook: environment variable {hook.get('url_env')} is not set; the alert"
            " was NOT delivered"
        ]
    try:
        headers = headers_from_env(hook.get("headers_env") or {})
    except WebhookError as exc:
        return [f"ERROR {exc}; the alert was NOT delivered"]
    payload = alert_payload(firing=firing, resolved=resolved)
    got = post_json(
        url,
        payload,
        headers=headers,
        retries=int(hook.get("retries", 3)),
        timeout=float(hook.get("timeout", 10)),
        transport=transport,
    )
    return [got.line() if got.ok else "ERROR " + got.line()]


def write_metrics(outcomes: Iterable[Mapping[str, Any]], path: Path) -> None:
    """The Prometheus gauges in node_exporter's textfile format, replaced atomically."""
    from pytest_parity.report.alerts import prometheus_gauges

    text = prometheus_gauges(list(outcomes))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_report(outcomes: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> None:
    """The drift report page (per segment: the sequence, its bound, the alert line, input
    shift, example pairs)."""
    from pytest_parity.report.html.monitor import render_monitor

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_monitor(list(outcomes), title=title), encoding="utf-8")
