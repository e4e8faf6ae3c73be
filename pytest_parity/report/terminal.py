"""The "parity verdict" terminal section: one row per task, then the overall verdict."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_parity.records import RunResult, TaskResult
from pytest_parity.report import checks as shown_checks
from pytest_parity.report.bidi import visible
from pytest_parity.report.slices import lines as slice_lines


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}"


def _row(t: TaskResult, aa: bool, names: Sequence[str]) -> list[str]:
    d = t["checks"].get("delta")
    num = d["numbers"] if d else {}
    if d and "delta" in num:
        delta = f"{num['delta'] * 100:+.2f}"
        ci = f"[{num['ci_low'] * 100:+.2f}, {num['ci_high'] * 100:+.2f}]"
        b, c = num.get("b"), num.get("c")
        flips = f"{b}/{c}" if b is not None else f"{num.get('flip_rate', 0):.0%}"
    else:
        delta, ci, flips = "-", "-", "-"
    cols = [
        t["task"] + (" (safety)" if t["safety_critical"] else ""),
        _pct(t["baseline_score"]),
        _pct(t["candidate_score"]),
        delta,
        ci,
        f"{t['tolerance'] * 100:.2f}",
        # a verdict on fewer items than the task holds says so on its own row: "900/1000"
        f"{t['n_paired']}/{t['n_items']}"
        if 0 < t["n_paired"] < t["n_items"] and not t["error"]
        else str(t["n_paired"]),
        flips,
    ]
    if aa:
        floor = t.get("aa") or {}
        rate = floor.get("flip_rate")
        cols.append("-" if rate is None else f"{floor['flips']} ({rate:.1%})")
    for name in names:
        c_ = t["checks"].get(name)
        status = shown_checks.status(t["checks"], name) or ("ERROR" if t["error"] else "-")
        cols.append("PASS*" if c_ and status == "PASS" and c_["numbers"].get("warn") else status)
    cols.append(t["verdict"])
    return cols


HEADER = [
    "task",
    "old %",
    "new %",
    "delta pts",
    "CI pts",
    "tol",
    "n",
    "flips b/c",
]


def verdict_lines(run: RunResult, disagreement_files: Sequence[str] = ()) -> list[str]:
    aa = any(t.get("aa") for t in run["tasks"])
    names = shown_checks.shown(run["tasks"])
    header = [
        *HEADER,
        *(["A/A flips"] if aa else []),
        *(shown_checks.column(n) for n in names),
        "verdict",
    ]
    rows = [header] + [_row(t, aa, names) for t in run["tasks"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for t in run["tasks"]:
        lines.extend(f"{t['task']}: {note}" for note in t.get("notes") or ())
        if t["error"]:
            lines.append(f"{t['task']}: ERROR: {t['error']}")
            continue
        shown: list[str] = []
        for c in t["checks"].values():
            if c["status"] != "PASS":
                for reason in c["reasons"][:3]:
                    shown.append(reason)
                    lines.append(f"{t['task']} {c['name']} {c['status']}: {reason}")
            elif c["numbers"].get("warn"):
                # A pass whose whole interval lies below 0: a real regression, inside tolerance.
                note = next((r for r in c["reasons"] if "real regression" in r), c["reasons"][0])
                lines.append(f"{t['task']} {c['name']} PASS with a warning: {note}")
        es = t.get("early_stop")
        if es:
            from pytest_parity.checks.earlystop import early_stop_line

            line = early_stop_line(es, t["tolerance"])
            if line not in shown:  # when and why it stopped, also when the task passed
                lines.append(f"{t['task']}: {line}")
        lines.extend(f"{t['task']}: {line}" for line in slice_lines(t))
        judge = t.get("judge")
        if judge:
            from pytest_parity.report.judge import judge_sentences

            lines.extend(judge_sentences(t["task"], judge))
        if t["disagreements_total"]:
            lines.append(
                f"{t['task']}: {t['disagreements_total']} disagreements between the stacks,"
                f" {len(t['disagreements'])} sampled for review"
            )
    for path in disagreement_files:
        lines.append(f"wrote {path}")
    pp = run["pass_probability"]
    if pp is not None and len(run["tasks"]) > 1:
        lines.append(
            f"chance that a migration with no real change passes every task's delta check at these"
            f" item counts: {pp:.0%} (the failure-mode and direction checks are not in this figure)"
        )
    lines.append(f"OVERALL: {run['overall']}")
    lines.extend(f"  {r}" for r in run["overall_reasons"])
    lock = run.get("lock")
    if lock:
        how = [f"checked against {lock['checked']}"] if lock.get("checked") else []
        how += [f"written to {lock['written']}"] if lock.get("written") else []
        lines.append(f"lock digest {lock['digest']}" + (f" ({', '.join(how)})" if how else ""))
    audit = run.get("audit") or []
    if audit:  # the head line and the gaps by name; --parity-audit prints the hints
        gaps = [a.split(": ")[1] for a in audit[1:] if ": MISSING" in a]
        warned = sorted({a.split(":")[0] for a in audit[1:] if a.startswith("golden set")})
        tail = f": {', '.join(gaps)}" if gaps else ""
        if warned:
            tail += f"; {', '.join(warned)} flagged"
        lines.append(audit[0] + tail + (" (--parity-audit for the hints)" if tail else ""))
    # a task name or reason holding an U+202E must not reverse the terminal line
    return [visible(line) for line in lines]
