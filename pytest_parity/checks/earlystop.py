"""The delta check of an early-stopping task, and the note the other checks carry.

A task the confidence sequence decided (runner/earlystop.py) gets that decision: PASS when the
sequence's lower bound cleared -tolerance, FAIL when its upper bound fell below it, with the
anytime p-value as the FAIL alarm's p. A task that ran to the end undecided gets the fixed-n
verdict at the rest of alpha (a_fix = alpha - a_seq, stats/sequential.py), so the whole
procedure keeps its false PASS at -tolerance at most alpha; its items-needed figure is at a_fix.
The other checks run on the items that were asked and say so.

The FAIL alarm's p (``p_alarm``, adjusted by Holm across the run at alpha) is the anytime
p-value divided by alpha_share when the sequence decided, the fixed-n p divided by
(1 - alpha_share) when it did not: a weighted Bonferroni split of the same alpha, so the alarm's
p stays valid and a FAIL of either part comes out below alpha.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pytest_parity.records import CheckResult, Status

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.records import TaskRun

__all__ = ["asked_note", "early_stop_line", "sequential_delta"]


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def early_stop_line(es: dict[str, Any], tolerance: float) -> str:
    """When and why the task stopped (or did not), in one sentence: the reports' line."""
    conf = f"{es['confidence']:.0%}"
    bound = f"[{_pts(es['ci_low'])}, {_pts(es['ci_high'])}]"
    asked = f"{es['asked']:,} of {es['available']:,} items"
    looks = f"{es['looks']} look{'s' * (es['looks'] != 1)} of {es['batch']}"
    if es["decision"] == "PASS":
        why = f"its lower bound has cleared {_pts(-tolerance)}"
    elif es["decision"] == "FAIL":
        why = f"its upper bound has fallen below {_pts(-tolerance)}"
    else:
        return (
            f"early stop: not decided after {asked} ({looks}); {conf} confidence sequence"
            f" {bound} pts; the fixed-n verdict at alpha {es['alpha_fixed']:g} decides"
        )
    when = "stopped early" if es["stopped"] else "decided at the last look"
    saved = es["available"] - es["asked"]
    tail = f"; {saved:,} items ({saved / es['available']:.0%}) never asked" if saved else ""
    return (
        f"early stop: {es['decision']}, {when} after {asked} ({looks}): the {conf} confidence"
        f" sequence {bound} pts, {why}{tail}"
    )


def sequential_delta(task: TaskSpec, run: TaskRun, seed: int) -> CheckResult:
    """The delta check of a task run with ``early_stop`` (see the module docstring)."""
    from pytest_parity.checks.delta import check_delta

    es = run.early_stop
    assert es is not None
    asked = int(es["asked"])
    decided = es["decision"]
    # The fixed-n figures: the verdict itself when the sequence did not decide (at a_fix), for
    # reference otherwise (a fixed-n interval is not valid after a data-dependent stop).
    fixed = check_delta(
        replace(task, alpha=float(es["alpha_fixed"])), run.records, seed, n_items=asked
    )
    numbers = dict(fixed["numbers"])
    numbers["early_stop"] = dict(es)
    line = early_stop_line(es, task.tolerance)
    share = float(es["alpha_share"])
    if decided is None:
        # Holm reads p_alarm at alpha: the fallback's p weighted by its share of alpha (and the
        # looks' by theirs, below), so P(p_alarm <= u) <= share u + (1 - share) u = u.
        p_fixed = fixed["numbers"].get("p_alarm")
        if p_fixed is not None:
            numbers["p_alarm"] = min(1.0, float(p_fixed) / (1.0 - share))
        reasons = [
            *fixed["reasons"][:1],
            line + f" (alpha {task.alpha:g} = {es['alpha_seq']:g} on the looks + the rest)",
            *fixed["reasons"][1:],
        ]
        return {"name": "delta", "status": fixed["status"], "reasons": reasons, "numbers": numbers}
    status: Status = "PASS" if decided == "PASS" else "FAIL"
    numbers["p_alarm"] = min(1.0, float(es["p_fail"]) / share)
    numbers["items_needed"] = None
    numbers["ci_low"], numbers["ci_high"] = float(es["ci_low"]), float(es["ci_high"])
    numbers["sequence_confidence"] = float(es["confidence"])
    reasons = [
        line,
        f"fixed-n interval on the {fixed['numbers'].get('n', asked):,} asked items, for"
        " reference only (not valid after a data-dependent stop): " + fixed["reasons"][0],
    ]
    if status == "PASS" and int(es["paired"]) < task.min_items:
        status = "INCONCLUSIVE"
        reasons.append(
            f"only {es['paired']} paired items; the contract asks for at least {task.min_items}"
            " before a pass counts"
        )
    if status == "PASS" and float(es["ci_high"]) < 0.0:
        numbers["warn"] = True
        reasons.append(
            f"upper bound {_pts(es['ci_high'])} pts < 0: a real regression, within tolerance"
        )
    return {"name": "delta", "status": status, "reasons": reasons, "numbers": numbers}


def asked_note(es: dict[str, Any]) -> str:
    """The line the other checks of a stopped task carry."""
    return (
        f"on the {es['asked']:,} of {es['available']:,} items asked before the early stop"
        " (the rest were never sent)"
    )
