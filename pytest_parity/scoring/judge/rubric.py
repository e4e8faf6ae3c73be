"""``scorer: {name: judge-rubric, rubric: ..., scale: 1-5}``: each answer graded by the judge.

The judge sees the rubric, the prompt, the reference when the item has one, and the answer (the
shipped template ``templates/rubric.md``, or the contract's ``template``). Its grade maps onto
[0, 1] linearly (1-5: (g - 1) / 4; 0-10: g / 10; pass/fail: 1 / 0) and goes through the same
paired statistics as every other continuous score. The grade, the scale and the rationale are kept
in the answer's facts (``facts["judge"]``); a share of items (``recheck``) is graded twice, for
the judge's consistency figure.
"""

from __future__ import annotations

from typing import Any

from pytest_parity.scoring.builtin import Score
from pytest_parity.scoring.context import JudgeError, ScoreContext
from pytest_parity.scoring.judge.ask import NO_REFERENCE, ask, render, selected_for_recheck
from pytest_parity.scoring.judge.options import parse_scale
from pytest_parity.scoring.judge.parse import parse_grade

__all__ = ["grade_schema", "judge_rubric"]


def grade_schema(scale_text: str) -> dict[str, Any]:
    scale = parse_scale(scale_text)
    if scale.binary:
        verdict: dict[str, Any] = {"type": "string", "enum": ["pass", "fail"]}
        key = "verdict"
    else:
        verdict = {"type": "integer", "enum": list(range(scale.lo, scale.hi + 1))}
        key = "score"
    return {
        "type": "object",
        "properties": {"rationale": {"type": "string"}, key: verdict},
        "required": ["rationale", key],
        "additionalProperties": False,
    }


def _format(scale_text: str) -> str:
    scale = parse_scale(scale_text)
    if scale.binary:
        return '{"rationale": "<one or two sentences>", "verdict": "pass" or "fail"}'
    return (
        f'{{"rationale": "<one or two sentences>", "score": <whole number {scale.lo}-{scale.hi}>}}'
    )


async def judge_rubric(ctx: ScoreContext) -> Score:
    opts = ctx.options
    scale = parse_scale(opts["scale"])
    text = render(
        str(opts["template"]),
        {
            "rubric": str(opts["rubric"]),
            "prompt": ctx.item.display_prompt(),
            "reference": ctx.item.reference if ctx.item.reference is not None else NO_REFERENCE,
            "answer": ctx.response.text,
            "scale": scale.describe(),
            "format": _format(scale.text),
        },
    )
    schema = grade_schema(scale.text)
    what = f"grade:{ctx.role}"
    reply = await ask(ctx.judge, ctx.task, ctx.item, what, text, opts, schema)
    raw, rationale = parse_grade(reply, scale)
    facts: dict[str, Any] = {"grade": raw, "scale": scale.text, "rationale": rationale}
    if selected_for_recheck(ctx.task.name, ctx.item.id, float(opts.get("recheck", 0.0))):
        try:
            again = await ask(ctx.judge, ctx.task, ctx.item, what, text, opts, schema, repeat=1)
            facts["recheck"] = parse_grade(again, scale)[0]
        except JudgeError as exc:  # the grade stands; only the consistency figure misses it
            facts["recheck_error"] = str(exc)
    return Score(scale.to_unit(raw), True, {"judge": facts})
