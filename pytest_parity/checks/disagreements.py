"""The disagreements a person reads: which items changed, and a seeded, capped sample of them."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from typing import Any

from pytest_parity.checks.pairs import infra
from pytest_parity.records import CheckResult, ItemRecord, SideRecord

DISAGREEMENT_KINDS = ("regression", "category_change", "improvement")
# What a sampled row shows of a prompt or an answer: its head and tail, so an answer just under
# max_response_bytes (16 MiB) is not copied whole into the JSON, the HTML report and the
# disagreement file (20 such answers made a 315 MB parity.json); the cache and recordings keep
# the whole text.
SHOWN_CHARS = 64_000


def shown(text: str | None) -> str | None:
    """``text`` as a reviewer reads it: whole up to SHOWN_CHARS, else head and tail around a
    note of what was left out."""
    if text is None or len(text) <= SHOWN_CHARS:
        return text
    half = SHOWN_CHARS // 2
    left = len(text) - 2 * half
    return f"{text[:half]}\n[... {left:,} characters not shown ...]\n{text[-half:]}"


def disagreement_kind(record: ItemRecord) -> str | None:
    """ "regression" / "improvement" when the score moved, "category_change" when only the failure
    category did, None when the stacks agree or either request failed."""
    old, new = record["baseline"], record["candidate"]
    if infra(old) or infra(new):
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
    groups: dict[str, list[ItemRecord]] = {kind: [] for kind in DISAGREEMENT_KINDS}
    for r in records:
        kind = disagreement_kind(r)
        if kind is not None:
            groups[kind].append(r)
    total = sum(len(g) for g in groups.values())
    rng = random.Random(seed)
    # indices into groups[kind]
    chosen: dict[str, list[int]] = {kind: [] for kind in DISAGREEMENT_KINDS}
    room = k
    for first in (True, False):
        for kind in DISAGREEMENT_KINDS:
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
    for kind in DISAGREEMENT_KINDS:
        # record order within a kind keeps the file readable next to the golden set
        sample.extend(_row(groups[kind][i], kind) for i in sorted(chosen[kind]))
    return sample, total


def _row(r: ItemRecord, kind: str) -> dict[str, Any]:
    old, new = r["baseline"], r["candidate"]
    return {
        "id": r["id"],
        "kind": kind,
        "prompt": shown(r["prompt"]),
        "reference": r["reference"],
        "baseline_output": shown(old["text"]),
        "candidate_output": shown(new["text"]),
        "baseline_category": old["category"],
        "candidate_category": new["category"],
        "baseline_score": old["score"],
        "candidate_score": new["score"],
        "baseline_finish_reason": old["finish_reason"],
        "candidate_finish_reason": new["finish_reason"],
        **_judge_of(old, new),
        "reviewer_verdict": "",
        # multi-step answers (tool use): the turns, for the side-by-side reading
        **{
            f"{role}_trajectory": side["trajectory"]
            for role, side in (("baseline", old), ("candidate", new))
            if side.get("trajectory")
        },
    }


def _judge_of(old: SideRecord, new: SideRecord) -> dict[str, Any]:
    """The LLM judge's verdict and rationale for a reviewer (``judge`` key; none when the task
    was not judged): pairwise, the shared comparison; rubric, each side's grade."""
    jo, jn = (((s.get("facts") or {}).get("judge")) for s in (old, new))
    if not isinstance(jn, dict) and not isinstance(jo, dict):
        return {}
    if isinstance(jn, dict) and "preference" in jn:
        keep = ("preference", "winners", "rationale", "flipped")
        return {"judge": {k: jn.get(k) for k in keep}}
    sides = {
        role: {"grade": j.get("grade"), "rationale": j.get("rationale")}
        for role, j in (("baseline", jo), ("candidate", jn))
        if isinstance(j, dict)
    }
    return {"judge": sides}
