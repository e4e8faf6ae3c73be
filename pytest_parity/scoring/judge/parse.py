"""Reading a judge's verdict out of its reply, strictly.

The judge is asked for one JSON object (``{"rationale": ..., "score": 4}``, ``{"rationale": ...,
"verdict": "pass"}`` or ``{"rationale": ..., "winner": "A"}``), with the server's structured output
where its kind has one. The reply is read in this order, and the first rule that finds the key
decides:

1. the whole reply as JSON;
2. JSON objects inside the reply (in a code fence or amid prose): every object holding the key
   must give the same value (the key asked for, else a name judges use for it: ``grade`` or
   ``rating`` for ``score``, ``better``, ``preferred`` or ``choice`` for ``winner``);
3. without any such object, a line of its own such as ``Score: 4``, ``Verdict: pass``,
   ``Winner: B``, or MT-Bench's ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (tie): exactly one distinct
   value may appear.

A value outside the scale, two different values, or nothing found is a :class:`JudgeError`: the
item is not scored (an infrastructure failure of the judge, never a failure of the model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pytest_parity.scoring.context import JudgeError
from pytest_parity.scoring.judge.options import Scale

__all__ = ["parse_grade", "parse_winner"]

# The key the judge is asked for first, then names judges use on their own.
SCORE_KEYS = ("score", "grade", "rating")
VERDICT_KEYS = ("verdict", "result", "pass")
WINNER_KEYS = ("winner", "verdict", "better", "preferred", "choice")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_SCORE_LINE = re.compile(
    r"^[\s>*#_-]*(?:final\s+)?(?:score|grade|rating)[\s*_]*[:=][\s*_]*"
    r"(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?[\s*_.]*$",
    re.IGNORECASE | re.MULTILINE,
)
_VERDICT_LINE = re.compile(
    r"^[\s>*#_-]*(?:final\s+)?(?:verdict|grade|result)[\s*_]*[:=][\s*_]*\"?(pass|fail)\"?[\s*_.]*$",
    re.IGNORECASE | re.MULTILINE,
)
_WINNER_LINE = re.compile(
    r"^[\s>*#_-]*(?:final\s+)?(?:winner|verdict|better(?:\s+answer)?)[\s*_]*[:=][\s*_]*"
    r"\"?(?:answer\s+)?(A|B|tie)\"?[\s*_.]*$",
    re.IGNORECASE | re.MULTILINE,
)
_MT_BENCH = re.compile(r"\[\[(A|B|C)\]\]")


def _objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object in ``text``: the whole text, fenced blocks, then objects amid prose."""
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    found: list[dict[str, Any]] = []
    for block in _FENCE.findall(text):
        try:
            obj = json.loads(block.strip())
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    if found:
        return found
    decoder = json.JSONDecoder()
    i = text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", end)
    return found


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 80 else flat[:77] + "...")


def _decide(
    text: str,
    keys: tuple[str, ...],
    read: Callable[[Any], Any],
    lines: list[Any],
    what: str,
) -> tuple[Any, str]:
    found = _objects(text)
    # the first of the key's accepted names that any object uses
    key = next((k for k in keys if any(k in o for o in found)), keys[0])
    objects = [o for o in found if key in o]
    if objects:
        values = {json.dumps(o[key], sort_keys=True) for o in objects}
        if len(values) > 1:
            raise JudgeError(f"unparseable verdict: conflicting {key} values in {_short(text)}")
        value = read(objects[0][key])
        rationale = objects[0].get("rationale", objects[0].get("explanation", ""))
        return value, str(rationale) if rationale is not None else ""
    distinct = {str(x).lower() for x in lines}
    if len(distinct) == 1:
        return read(lines[0]), text.strip()
    if len(distinct) > 1:
        raise JudgeError(f"unparseable verdict: several {what} in {_short(text)}")
    raise JudgeError(f"unparseable verdict: no {what} in {_short(text)}")


def parse_grade(text: str, scale: Scale) -> tuple[float, str]:
    """(the raw grade on the scale, the rationale): 1 or 0 for pass/fail."""
    if scale.binary:

        def read_verdict(value: Any) -> float:
            if isinstance(value, bool):
                return float(value)
            word = str(value).strip().lower()
            if word not in ("pass", "fail"):
                raise JudgeError(f"unparseable verdict: verdict {value!r} is not pass or fail")
            return 1.0 if word == "pass" else 0.0

        return _decide(
            text, VERDICT_KEYS, read_verdict, _VERDICT_LINE.findall(text), "pass/fail verdict"
        )

    def read_score(value: Any) -> float:
        if isinstance(value, bool):
            raise JudgeError(f"unparseable verdict: score {value!r} is not a number")
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise JudgeError(f"unparseable verdict: score {value!r} is not a number") from None
        if x != int(x) or not scale.lo <= x <= scale.hi:
            raise JudgeError(
                f"unparseable verdict: score {value!r} is not a whole number in"
                f" {scale.lo}-{scale.hi}"
            )
        return x

    return _decide(text, SCORE_KEYS, read_score, _SCORE_LINE.findall(text), "score")


def parse_winner(text: str) -> tuple[str, str]:
    """("A" | "B" | "tie", the rationale)."""

    def read(value: Any) -> str:
        word = str(value).strip().lower()
        word = {"answer a": "a", "answer b": "b", "draw": "tie"}.get(word, word)
        if word not in ("a", "b", "tie"):
            raise JudgeError(f"unparseable verdict: winner {value!r} is not A, B or tie")
        return "tie" if word == "tie" else word.upper()

    lines = _WINNER_LINE.findall(text) or [
        "tie" if w == "C" else w for w in _MT_BENCH.findall(text)
    ]
    value, rationale = _decide(text, WINNER_KEYS, read, lines, "winner")
    return str(value), rationale
