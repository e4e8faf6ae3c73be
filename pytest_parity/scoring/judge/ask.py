"""Asking the judge: a template rendered into one user message, sent through the judge endpoint.

The judge endpoint is an ordinary :class:`~pytest_parity.endpoints.http.Endpoint` opened by the
runner under the role ``judge``: its answers are cached (under their own identity, never mixed with
the stacks') and recorded with ``--parity-record-judge``. Each judgement has its own request id,
``<task>/<item>#judge:<what>`` (e.g. ``#judge:pair:candidate:ab``; a check's own judgement is
prefixed with the check, ``#judge:tone:grade:baseline``), also part of its cache key: a
recording of the judge replays, and two judgements whose prompts read the same (identical answers
in both orders, an A/A pair) are asked and cached separately.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_parity.scoring.context import JudgeError

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.endpoints.http import Endpoint
    from pytest_parity.sources.item import Item

__all__ = ["ask", "render", "response_format", "selected_for_recheck"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
NO_REFERENCE = "(none given)"


def render(template: str, values: Mapping[str, str]) -> str:
    """``{{name}}`` replaced by ``values[name]`` in one pass (a value that itself holds
    ``{{...}}``, e.g. an answer quoting a template, is never expanded again)."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def response_format(structured: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``response_format`` request parameter for the judge's kind (None: text only)."""
    if structured == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "strict": True, "schema": dict(schema)},
        }
    if structured == "json_object":
        # llama.cpp's servers (llama-server and llama-cpp-python) take the schema here, and
        # their grammars honour maxLength: a rambling rationale cannot crowd out the verdict.
        bounded = json.loads(json.dumps(schema))
        bounded.get("properties", {}).get("rationale", {}).setdefault("maxLength", 300)
        return {"type": "json_object", "schema": bounded}
    return None


def selected_for_recheck(task: str, item_id: str, share: float) -> bool:
    """Whether this item's judgement is asked a second time (a stable choice per item)."""
    if share <= 0:
        return False
    import hashlib

    h = int.from_bytes(hashlib.sha256(f"{task}/{item_id}".encode()).digest()[:8], "big")
    return h / float(1 << 64) < share


async def ask(
    judge: Endpoint | None,
    task: TaskSpec,
    item: Item,
    what: str,
    text: str,
    options: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    repeat: int = 0,
) -> str:
    """The judge's reply text to one judgement; a failed request is a :class:`JudgeError`."""
    from pytest_parity.endpoints.http import Request

    if judge is None:
        raise JudgeError(f"task {task.name}: no judge endpoint (hint: add judge: to the contract)")
    purpose = options.get("purpose")
    if purpose:  # a check's own judgement (the tone rubric): ids apart from the main scorer's
        what = f"{purpose}:{what}"
    params: dict[str, Any] = {}
    fmt = response_format(str(options.get("structured", "none")), schema)
    if fmt is not None:
        params["response_format"] = fmt
    request = Request(
        item_id=f"{task.name}/{item.id}#judge:{what}",
        messages=({"role": "user", "content": text},),
        params=params,
        repeat=repeat,
        # Part of the cache key: each judgement is its own entry, even when two of them read
        # the same (two identical answers shown in both orders are still two judgements).
        template=f"judge:{what}:{str(options.get('prompt_digest', ''))[:16]}",
    )
    response = await judge.complete(request)
    if response.error is not None:
        raise JudgeError(response.error)
    return response.text
