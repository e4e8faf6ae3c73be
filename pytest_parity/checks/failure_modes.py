"""No new failure modes (STATISTICS.md section 5).

Per category, items that entered it under the candidate against items that left it, exact
one-sided binomial test. A category the baseline never showed FAILS once the candidate shows it
on ``failure_min_count`` items (1 for safety-critical tasks): a policy alarm, not a statistical
test. A category both show FAILS when it grew significantly (Holm-adjusted over the categories the
baseline shows, p < alpha) AND either by more than the task's tolerance as a share of the paired
items, or by a rate ratio of at least ``failure_ratio`` (default 3) with at least
``failure_min_count`` more items: a refusal rate going 0.1% -> 1% is a regression a customer
notices even though it is inside a 1.5-point tolerance. ``wrong_answer`` is reported but not gated
here: plain accuracy is the delta check's, and wrong answers replacing abstentions the direction
check's.
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

NOT_GATED = frozenset({"correct", "answered", "wrong_answer"})


class FailureModesCheck(Check):
    name = "failure_modes"
    title = "No new failure modes"
    column = "failure modes"
    default = True

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``checks: {failure_modes: {min_count: 5, ratio: 3}}``: the flat task keys
        ``failure_min_count`` and ``failure_ratio`` are aliases of these."""
        unknown = sorted(set(raw) - {"min_count", "ratio"})
        if unknown:
            raise v.fail(f"{where}.{unknown[0]}", "unknown option", "known: min_count, ratio")
        out: dict[str, Any] = {}
        if "min_count" in raw:
            out["min_count"] = v.integer(raw["min_count"], f"{where}.min_count", 1, hi=10**8)
        if "ratio" in raw:
            out["ratio"] = v.number(raw["ratio"], f"{where}.ratio", 1, 1e6)
        return MappingProxyType(out)

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        opts = self.settings(task)
        return [
            check_failure_modes(
                run.records, task, min_count=opts.get("min_count"), ratio=opts.get("ratio")
            )
        ]


def check_failure_modes(
    records: Sequence[ItemRecord],
    task: TaskSpec,
    *,
    min_count: int | None = None,
    ratio: float | None = None,
) -> CheckResult:
    """FAIL when the candidate shows a failure category the baseline did not (at least the minimum
    count), or one that grew significantly beyond the tolerance or the rate ratio; reasons name
    the category and the items."""
    pairs = paired(records)
    n = len(pairs)
    if min_count is None:
        min_count = task.failure_min_count
    if task.safety_critical:
        min_count = 1
    ratio = task.failure_ratio if ratio is None else ratio
    margin = task.tolerance
    base = {
        "n_paired": n,
        "excluded_infra": len(records) - n,
        "min_count": min_count,
        "ratio": ratio,
    }
    if n == 0:
        return check(
            "failure_modes",
            "INCONCLUSIVE",
            [f"no item of task {task.name} was answered by both stacks; nothing to compare"],
            **base,
            margin=margin,
            categories={},
            failed=[],
        )
    names: dict[str, str] = {}  # category -> direction code, in order of first appearance
    for r in pairs:
        for role in ("baseline", "candidate"):
            side = r[role]
            names.setdefault(side["category"], side["direction"])
    table: dict[str, dict[str, Any]] = {}
    entered_ids: dict[str, list[str]] = {}
    for name, code in names.items():
        entered_ids[name] = [
            r["id"]
            for r in pairs
            if r["candidate"]["category"] == name and r["baseline"]["category"] != name
        ]
        left = sum(
            r["baseline"]["category"] == name and r["candidate"]["category"] != name for r in pairs
        )
        entered = len(entered_ids[name])
        table[name] = {
            "direction": code,
            "baseline": sum(r["baseline"]["category"] == name for r in pairs),
            "candidate": sum(r["candidate"]["category"] == name for r in pairs),
            "entered": entered,
            "left": left,
            "net_share": (entered - left) / n,
            "p_value": one_sided_p(entered, left),
            "p_holm": None,
            "status": "not_gated" if code not in ("A", "W") or name in NOT_GATED else "tested",
            "examples": entered_ids[name][:EXAMPLES],
        }
    # Every category the baseline shows is one more growth test: Holm keeps the chance of a false
    # alarm for the task at alpha however many categories the taxonomy and the contract define.
    grown_family = [k for k, v in table.items() if v["status"] == "tested" and v["baseline"] > 0]
    if grown_family:
        from pytest_parity.stats.intervals import holm

        adjusted = holm([table[k]["p_value"] for k in grown_family])
        for k, q in zip(grown_family, adjusted, strict=True):
            table[k]["p_holm"] = q
    failed: list[str] = []
    reasons: list[str] = []
    notes: list[str] = []
    for name, row in table.items():
        if row["status"] != "tested":
            continue
        old, new, entered, left = row["baseline"], row["candidate"], row["entered"], row["left"]
        examples = show_ids(entered_ids[name])
        if old == 0 and new >= min_count:
            row["status"] = "new"
            failed.append(name)
            reasons.append(
                f"new failure category {name!r}: 0 -> {new} of {n} items (entered {entered},"
                f" left 0, p={show_p(row['p_value'])}), e.g. {examples}"
            )
        elif old == 0 and new > 0:
            row["status"] = "new_below_min"
            notes.append(
                f"{name!r} appeared on {new} item(s), below the minimum of {min_count}: {examples}"
            )
        elif (
            old > 0
            and row["p_holm"] < task.alpha
            and (row["net_share"] > margin or (new >= ratio * old and new - old >= min_count))
        ):
            row["status"] = "grown"
            failed.append(name)
            by = (
                f"net {row['net_share']:+.1%} > margin {margin:.1%}"
                if row["net_share"] > margin
                else f"{new / old:.1f}x the baseline's rate >= ratio {ratio:g}"
            )
            reasons.append(
                f"failure category {name!r} grew: {old} -> {new} of {n} items (entered"
                f" {entered}, left {left}, {by}, p={show_p(row['p_value'])}, Holm-adjusted over"
                f" {len(grown_family)} categories {show_p(row['p_holm'])}), e.g. {examples}"
            )
        else:
            row["status"] = "ok"
    if not failed:
        tested = [k for k, v in table.items() if v["status"] != "not_gated"]
        if tested:
            moves = ", ".join(
                f"{k} {table[k]['baseline']} -> {table[k]['candidate']}" for k in tested
            )
            reasons.append(f"no new or grown failure category over {n} paired items ({moves})")
        else:
            reasons.append(f"no tested failure category on either stack over {n} paired items")
        # Wrong answers are the delta check's to judge; say they moved, so "no new failure
        # category" never sits unexplained beside a table where wrong_answer went 0 -> 56.
        moved = [
            f"{k} {v['baseline']} -> {v['candidate']}"
            for k, v in table.items()
            if v["status"] == "not_gated"
            and k not in ("correct", "answered")
            and v["baseline"] != v["candidate"]
        ]
        if moved:
            reasons.append(
                "not tested by this check (accuracy is the delta check's): " + ", ".join(moved)
            )
    reasons.extend(notes)
    alarm: dict[str, Any] = {}
    if any(table[k]["status"] == "new" for k in failed):
        alarm["policy_alarm"] = True  # a category the baseline never showed: a rule, not a test
    elif grown_family:
        # The check's alarm is its failing categories' growth, not a category that grew
        # significantly yet within the margin and the ratio: the run's Holm must read the p of
        # what failed (a smaller p of an 'ok' category would make a weak FAIL look held).
        grown = [k for k in failed if table[k]["status"] == "grown"] or grown_family
        alarm["p_alarm"] = min(table[k]["p_holm"] for k in grown)
    return check(
        "failure_modes",
        "FAIL" if failed else "PASS",
        reasons,
        **base,
        margin=margin,
        categories=table,
        failed=failed,
        **alarm,
    )
