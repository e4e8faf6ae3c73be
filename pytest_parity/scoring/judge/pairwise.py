"""``scorer: {name: judge-pairwise, criteria: ...}``: the judge compares the two answers.

For tasks without references (production replay, shadow traffic, open-ended golden sets). The
judge sees both answers twice, once in each order (baseline shown as A, then candidate shown as
A). Each order gives a preference p in {-1 (baseline better), 0 (tie), +1 (candidate better)};
the item's preference s is p when both orders agree and 0 (a tie) when they do not, so a judge
that favours a position cannot make a win on its own (MT-Bench's rule).

Scores: baseline (1 - s) / 2, candidate (1 + s) / 2, i.e. 1 / 0 for a win, 0.5 / 0.5 for a tie.
The paired delta is then exactly s, so the task's mean delta is the mean preference (wins minus
losses over all judged items, in [-1, 1]) and the non-inferiority test with the task's tolerance
asks: is the candidate's net loss rate at most the tolerance? The candidate's score is its win
rate with ties counted half; the baseline's is the same for the baseline.

Facts on both answers (``facts["judge"]``): both orders' winners and preferences, whether the
order flipped the verdict, both rationales, and the length ratio (candidate / baseline, in
characters) for the length-bias figures; a share of items (``recheck``) has the first order asked
a second time, for the judge's consistency figure.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pytest_parity.scoring.builtin import Score
from pytest_parity.scoring.context import JudgeError, PairContext, paired
from pytest_parity.scoring.judge.ask import NO_REFERENCE, ask, render, selected_for_recheck
from pytest_parity.scoring.judge.parse import parse_winner

__all__ = ["PAIR_SCHEMA", "judge_pairwise", "preference_scores"]

PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
    },
    "required": ["rationale", "winner"],
    "additionalProperties": False,
}
FORMAT = '{"rationale": "<one or two sentences>", "winner": "A" or "B" or "tie"}'


def preference_scores(s: int) -> tuple[float, float]:
    """(baseline score, candidate score) of a preference s in {-1, 0, +1}: their delta is s."""
    return (1 - s) / 2, (1 + s) / 2


def _preference(winner: str, candidate_first: bool) -> int:
    if winner == "tie":
        return 0
    candidate_won = (winner == "A") == candidate_first
    return 1 if candidate_won else -1


@paired
async def judge_pairwise(ctx: PairContext) -> tuple[Score, Score]:
    opts = ctx.options
    base, other = ctx.baseline.text, ctx.candidate.text
    label = ctx.roles[1]  # "candidate", or "baseline-aa" in the A/A pass
    common = {
        "criteria": str(opts["criteria"]),
        "prompt": ctx.item.display_prompt(),
        "reference": ctx.item.reference if ctx.item.reference is not None else NO_REFERENCE,
        "format": FORMAT,
    }
    template = str(opts["template"])
    ab = render(template, {**common, "answer_a": base, "answer_b": other})
    ba = render(template, {**common, "answer_a": other, "answer_b": base})
    replies = await asyncio.gather(
        ask(ctx.judge, ctx.task, ctx.item, f"pair:{label}:ab", ab, opts, PAIR_SCHEMA),
        ask(ctx.judge, ctx.task, ctx.item, f"pair:{label}:ba", ba, opts, PAIR_SCHEMA),
    )
    (w1, r1), (w2, r2) = (parse_winner(reply) for reply in replies)
    p1, p2 = _preference(w1, False), _preference(w2, True)
    s = p1 if p1 == p2 else 0
    facts: dict[str, Any] = {
        "preference": s,
        "orders": [p1, p2],
        "winners": [w1, w2],
        "flipped": p1 != p2,
        "rationale": [r1, r2],
        "len_baseline": len(base),
        "len_other": len(other),
        "identical": base == other,
    }
    if label == "candidate" and selected_for_recheck(
        ctx.task.name, ctx.item.id, float(opts.get("recheck", 0.0))
    ):
        try:
            again = await ask(
                ctx.judge, ctx.task, ctx.item, f"pair:{label}:ab", ab, opts, PAIR_SCHEMA, repeat=1
            )
            facts["recheck"] = _preference(parse_winner(again)[0], False)
        except JudgeError as exc:  # the verdict stands; only the consistency figure misses it
            facts["recheck_error"] = str(exc)
    b, c = preference_scores(s)
    shared = {"judge": facts}
    return Score(b, True, shared), Score(c, True, shared)
