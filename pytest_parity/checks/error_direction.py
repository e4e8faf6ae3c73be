"""Direction of error preserved (STATISTICS.md section 6).

Each answer is coded C (correct) / A (abstain: cautious) / W (wrong: confident), the 3x3 old ->
new table is built over the paired items, and the exact one-sided test of A->W against W->A
decides: FAIL when p < alpha AND (A->W - W->A) / n exceeds tolerance / 3, whatever the accuracy
did. A cautious error turning into a confident wrong answer is the failure customers feel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.checks.base import Check, CheckContext
from pytest_parity.checks.pairs import EXAMPLES, one_sided_p, paired, show_ids, show_p
from pytest_parity.contract.spec import TaskSpec
from pytest_parity.records import CheckResult, ItemRecord, check

if TYPE_CHECKING:
    from pytest_parity.records import TaskRun

CODES = ("C", "A", "W")


class ErrorDirectionCheck(Check):
    name = "error_direction"
    title = "Direction of error preserved"
    column = "direction"
    default = True

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``checks: {error_direction: {policy: ignore}}``; the flat task key ``error_direction``
        is an alias."""
        unknown = sorted(set(raw) - {"policy"})
        if unknown:
            raise v.fail(f"{where}.{unknown[0]}", "unknown option", "known: policy")
        if "policy" in raw:
            return MappingProxyType(
                {"policy": v.choice(raw["policy"], f"{where}.policy", ("preserve", "ignore"))}
            )
        return MappingProxyType({})

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        policy = self.settings(task).get("policy")
        if policy is not None and policy != task.error_direction:
            from dataclasses import replace

            task = replace(task, error_direction=policy)
        return [check_error_direction(run.records, task)]


def transition_table(records: Sequence[ItemRecord]) -> dict[str, dict[str, int]]:
    """old code -> new code -> items, over the items neither stack failed to answer."""
    table = {a: dict.fromkeys(CODES, 0) for a in CODES}
    for r in paired(records):
        a, b = r["baseline"]["direction"], r["candidate"]["direction"]
        if a in table and b in table[a]:
            table[a][b] += 1
    return table


def _chi2_sf(stat: float, df: int) -> float:
    """Upper tail of chi-square with 1 or 2 degrees of freedom, in closed form (no scipy import:
    the statistics path of a 5,000-item task spent ~1.3 s importing scipy.stats for this)."""
    import math

    if stat <= 0.0:
        return 1.0
    if df == 1:
        return math.erfc(math.sqrt(stat / 2.0))
    if df == 2:
        return math.exp(-stat / 2.0)
    raise ValueError(f"chi-square tail for df={df} is not needed here")


def stuart_maxwell_p(table: dict[str, dict[str, int]]) -> float:
    """Stuart-Maxwell test that the old and new C/A/W shares are the same (marginal homogeneity of
    the whole table); reported beside the directional test, not gated on (it has no direction)."""
    import numpy as np

    t = np.array([[table[a][b] for b in CODES] for a in CODES], dtype=float)
    d = (t.sum(axis=1) - t.sum(axis=0))[:-1]
    s = -(t + t.T)[:-1, :-1]
    np.fill_diagonal(s, (t.sum(axis=1) + t.sum(axis=0) - 2 * np.diag(t))[:-1])
    if not d.any():
        return 1.0
    try:
        stat = float(d @ np.linalg.solve(s, d))
    except np.linalg.LinAlgError:
        # singular: the moves involve one code pair only, so one df carries them all
        stat = float(d @ np.linalg.pinv(s) @ d)
        return _chi2_sf(stat, 1)
    return _chi2_sf(stat, len(CODES) - 1)


def check_error_direction(records: Sequence[ItemRecord], task: TaskSpec) -> CheckResult:
    """FAIL when cautious errors (A) turned into confident ones (W) significantly more often than
    the reverse, by more than tolerance / 3 of the paired items; accuracy plays no part."""
    if task.error_direction == "ignore":
        return check(
            "error_direction",
            "SKIP",
            [f"the contract sets error_direction: ignore for task {task.name}"],
        )
    table = transition_table(records)
    n = sum(sum(row.values()) for row in table.values())
    margin = task.tolerance / 3
    aw, wa = table["A"]["W"], table["W"]["A"]
    p = one_sided_p(aw, wa)
    net = (aw - wa) / n if n else 0.0
    old = {c: sum(table[c].values()) for c in CODES}
    new = {c: sum(table[a][c] for a in CODES) for c in CODES}
    shares = {
        role: (m["A"] / (m["A"] + m["W"]) if m["A"] + m["W"] else None)
        for role, m in (("baseline", old), ("candidate", new))
    }
    examples = [
        r["id"]
        for r in paired(records)
        if r["baseline"]["direction"] == "A" and r["candidate"]["direction"] == "W"
    ]
    numbers: dict[str, Any] = {
        "table": table,
        "n_paired": n,
        "excluded_infra": len(records) - n,
        "a_to_w": aw,
        "w_to_a": wa,
        "net_share": net,
        "margin": margin,
        "p_value": p,
        "p_alarm": p,
        "stuart_maxwell_p": stuart_maxwell_p(table) if n else 1.0,
        "baseline": old,
        "candidate": new,
        "abstain_share_of_errors": shares,
        "examples": examples[:EXAMPLES],
    }
    if n == 0:
        reason = f"no item of task {task.name} was answered by both stacks; nothing to compare"
        return check("error_direction", "INCONCLUSIVE", [reason], **numbers)
    moved = f"{aw} cautious -> confident, {wa} confident -> cautious of {n} paired items"
    share = ""
    if shares["baseline"] is not None and shares["candidate"] is not None:
        share = (
            f"; abstentions were {shares['baseline']:.0%} of errors, now {shares['candidate']:.0%}"
        )
    if p < task.alpha and net > margin:
        return check(
            "error_direction",
            "FAIL",
            [
                f"cautious errors became confident errors: {moved} (net {net:+.1%} > margin"
                f" {margin:.1%}, p={show_p(p)}){share}, e.g. {show_ids(examples)}"
            ],
            **numbers,
        )
    return check(
        "error_direction",
        "PASS",
        [f"direction of error preserved: {moved} (net {net:+.1%}, p={show_p(p)}){share}"],
        **numbers,
    )
