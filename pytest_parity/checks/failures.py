"""No new failure modes, direction of error preserved, and the disagreements a person reads.

Both checks are paired: the same items under both stacks, an item counted only when neither side
had an infrastructure failure (direction X), so a flaky network never looks like a model change.

* failure modes (STATISTICS.md section 5): per category, items that entered it under the candidate
  against items that left it, exact one-sided binomial test. A category the baseline never showed
  FAILS once the candidate shows it on ``failure_min_count`` items (1 for safety-critical tasks);
  a category both show FAILS when it grew significantly (Holm-adjusted over the categories the
  baseline shows, p < alpha) AND by more than the task's tolerance as a share of the paired
  items. ``wrong_answer`` is reported but not gated here: plain accuracy is the delta check's,
  and wrong answers replacing abstentions the direction check's.
* direction of error (section 6): each answer coded C / A / W, the 3x3 old -> new table, and the
  exact one-sided test of A->W against W->A: FAIL when p < alpha AND (A->W - W->A) / n exceeds
  tolerance / 3, whatever the accuracy did.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from typing import Any

from pytest_parity.contract.spec import TaskSpec
from pytest_parity.records import CheckResult, ItemRecord, SideRecord, check
from pytest_parity.scoring.categories import INFRA

CODES = ("C", "A", "W")
NOT_GATED = frozenset({"correct", "answered", "wrong_answer"})
EXAMPLES = 5
KINDS = ("regression", "category_change", "improvement")


def one_sided_p(k_more: int, k_less: int) -> float:
    """Exact P(at least k_more of k_more + k_less discordant items go one way | no change)."""
    if k_more == 0:
        return 1.0  # no item moved the tested way: nothing to test (and no scipy import)
    from pytest_parity.stats.intervals import one_sided_exact

    return one_sided_exact(k_more, k_less)


def _infra(side: SideRecord) -> bool:
    return side["direction"] == "X" or side["category"] in INFRA


def _paired(records: Sequence[ItemRecord]) -> list[ItemRecord]:
    return [r for r in records if not _infra(r["baseline"]) and not _infra(r["candidate"])]


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:EXAMPLES])
    return shown + (", ..." if len(ids) > EXAMPLES else "")


def _p(p: float) -> str:
    return f"{p:.2g}"


# ----------------------------------------------------------------------------------------------
# no new failure modes


def check_failure_modes(records: Sequence[ItemRecord], task: TaskSpec) -> CheckResult:
    """FAIL when the candidate shows a failure category the baseline did not (at least the minimum
    count), or one that grew significantly beyond the tolerance; reasons name category and items."""
    pairs = _paired(records)
    n = len(pairs)
    min_count = 1 if task.safety_critical else task.failure_min_count
    margin = task.tolerance
    base = {"n_paired": n, "excluded_infra": len(records) - n, "min_count": min_count}
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
        examples = _ids(entered_ids[name])
        if old == 0 and new >= min_count:
            row["status"] = "new"
            failed.append(name)
            reasons.append(
                f"new failure category {name!r}: 0 -> {new} of {n} items (entered {entered},"
                f" left 0, p={_p(row['p_value'])}), e.g. {examples}"
            )
        elif old == 0 and new > 0:
            row["status"] = "new_below_min"
            notes.append(
                f"{name!r} appeared on {new} item(s), below the minimum of {min_count}: {examples}"
            )
        elif old > 0 and row["p_holm"] < task.alpha and row["net_share"] > margin:
            row["status"] = "grown"
            failed.append(name)
            reasons.append(
                f"failure category {name!r} grew: {old} -> {new} of {n} items (entered"
                f" {entered}, left {left}, net {row['net_share']:+.1%} > margin {margin:.1%},"
                f" p={_p(row['p_value'])}, Holm-adjusted over {len(grown_family)} categories"
                f" {_p(row['p_holm'])}), e.g. {examples}"
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
            reasons.append(f"no failure category on either stack over {n} paired items")
    reasons.extend(notes)
    return check(
        "failure_modes",
        "FAIL" if failed else "PASS",
        reasons,
        **base,
        margin=margin,
        categories=table,
        failed=failed,
    )


# ----------------------------------------------------------------------------------------------
# direction of error


def transition_table(records: Sequence[ItemRecord]) -> dict[str, dict[str, int]]:
    """old code -> new code -> items, over the items neither stack failed to answer."""
    table = {a: dict.fromkeys(CODES, 0) for a in CODES}
    for r in _paired(records):
        a, b = r["baseline"]["direction"], r["candidate"]["direction"]
        if a in table and b in table[a]:
            table[a][b] += 1
    return table


def stuart_maxwell_p(table: dict[str, dict[str, int]]) -> float:
    """Stuart-Maxwell test that the old and new C/A/W shares are the same (marginal homogeneity of
    the whole table); reported beside the directional test, not gated on (it has no direction)."""
    import numpy as np
    from scipy.stats import chi2

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
        return float(chi2.sf(stat, 1))
    return float(chi2.sf(stat, len(CODES) - 1))


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
        for r in _paired(records)
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
                f" {margin:.1%}, p={_p(p)}){share}, e.g. {_ids(examples)}"
            ],
            **numbers,
        )
    return check(
        "error_direction",
        "PASS",
        [f"direction of error preserved: {moved} (net {net:+.1%}, p={_p(p)}){share}"],
        **numbers,
    )


# ----------------------------------------------------------------------------------------------
# disagreements


def disagreement_kind(record: ItemRecord) -> str | None:
    """ "regression" / "improvement" when the score moved, "category_change" when only the failure
    category did, None when the stacks agree or either request failed."""
    old, new = record["baseline"], record["candidate"]
    if _infra(old) or _infra(new):
        return None
    a, b = old["score"], new["score"]
    if a is not None and b is not None and abs(a - b) > 1e-9:
        return "regression" if b < a else "improvement"
    if old["category"] != new["category"]:
        return "category_change"
    return None


def review_focus(failure_modes: CheckResult) -> list[str]:
    """The categories a reviewer must read: those the check failed on, and new ones below the
    minimum count (too few to fail the gate, never too few to look at)."""
    rows = failure_modes["numbers"].get("categories", {})
    return [k for k, v in rows.items() if v["status"] in ("new", "grown", "new_below_min")]


def sample_disagreements(
    records: Sequence[ItemRecord], k: int, seed: int, *, focus: Collection[str] = ()
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``k`` disagreements for a person to read side by side, regressions first, then
    category changes, then improvements; a seeded draw within each kind (the same seed gives the
    same sample in every process). Returns the sample and how many disagreements there were.

    Items the candidate put in a ``focus`` category (e.g. the categories the failure-mode check
    failed on) are chosen before any other, so the reviewer always sees what failed the gate.
    """
    groups: dict[str, list[ItemRecord]] = {kind: [] for kind in KINDS}
    for r in records:
        kind = disagreement_kind(r)
        if kind is not None:
            groups[kind].append(r)
    total = sum(len(g) for g in groups.values())
    rng = random.Random(seed)
    chosen: dict[str, list[int]] = {kind: [] for kind in KINDS}  # indices into groups[kind]
    room = k
    for first in (True, False):
        for kind in KINDS:
            group = groups[kind]
            pool = [
                i for i, r in enumerate(group) if (r["candidate"]["category"] in focus) == first
            ]
            if room <= 0 or not pool:
                continue
            if len(pool) > room:
                pool = rng.sample(pool, room)
            chosen[kind].extend(pool)
            room -= len(pool)
    sample: list[dict[str, Any]] = []
    for kind in KINDS:
        # record order within a kind keeps the file readable next to the golden set
        sample.extend(_row(groups[kind][i], kind) for i in sorted(chosen[kind]))
    return sample, total


def _row(r: ItemRecord, kind: str) -> dict[str, Any]:
    old, new = r["baseline"], r["candidate"]
    return {
        "id": r["id"],
        "kind": kind,
        "prompt": r["prompt"],
        "reference": r["reference"],
        "baseline_output": old["text"],
        "candidate_output": new["text"],
        "baseline_category": old["category"],
        "candidate_category": new["category"],
        "baseline_score": old["score"],
        "candidate_score": new["score"],
        "baseline_finish_reason": old["finish_reason"],
        "candidate_finish_reason": new["finish_reason"],
        "reviewer_verdict": "",
        # multi-step answers (tool use): the turns, for the side-by-side reading
        **{
            f"{role}_trajectory": side["trajectory"]
            for role, side in (("baseline", old), ("candidate", new))
            if side.get("trajectory")
        },
    }
