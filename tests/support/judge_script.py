"""A scripted judge for tests: deterministic verdicts with known preferences and injected biases.

It serves as the ``answer`` of a :class:`servers.FakeServer`, so the judge is a real HTTP server on
127.0.0.1. Answers it judges carry their quality as a marker, ``quality=N``; the judge reads the
answers out of the shipped templates' tags (``<answer>``, ``<answer_a>``, ``<answer_b>``) and:

* rubric prompts: grades ``N`` (``{"rationale": ..., "score": N}``);
* pairwise prompts: the higher quality wins; at equal quality the longer answer wins (a known
  length bias); at equal quality and length, a tie;
* ``position_bias``: items (by the ``Question <id>`` text of the prompt) for which the judge
  always answers "A", whatever it is shown (an injected position bias);
* ``inconsistent``: items for which the judge answers "tie" the second time it sees the very same
  prompt (an injected inconsistency);
* ``garbage``: items whose judgements get an unreadable reply (no verdict at all).

``seen`` counts the judge's prompts; ``bodies`` keeps every request body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_ID = re.compile(r"Question (\w+)")
_QUALITY = re.compile(r"quality=(\d+)")


def _between(text: str, tag: str) -> str:
    m = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    assert m is not None, f"no <{tag}> in the judge prompt"
    return m.group(1)


def quality(answer: str) -> int:
    m = _QUALITY.search(answer)
    return int(m.group(1)) if m else 0


@dataclass
class ScriptedJudge:
    position_bias: frozenset[str] = frozenset()
    inconsistent: frozenset[str] = frozenset()
    garbage: frozenset[str] = frozenset()
    garbage_when: str = ""  # only answers containing this text get garbage ("" = all)
    seen: dict[str, int] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        prompt = body["messages"][-1]["content"]
        self.seen[prompt] = self.seen.get(prompt, 0) + 1
        m = _ID.search(prompt)
        item = m.group(1) if m else ""
        if "<answer>" in prompt:
            answer = _between(prompt, "answer")
            if item in self.garbage and self.garbage_when in answer:
                return "I would rather not say."
            return json.dumps({"rationale": f"quality {quality(answer)}", "score": quality(answer)})
        a, b = _between(prompt, "answer_a"), _between(prompt, "answer_b")
        if item in self.garbage:
            return "Both have merits; hard to say."
        if item in self.position_bias:
            winner = "A"
        elif quality(a) != quality(b):
            winner = "A" if quality(a) > quality(b) else "B"
        elif len(a) != len(b):
            winner = "A" if len(a) > len(b) else "B"
        else:
            winner = "tie"
        if item in self.inconsistent and self.seen[prompt] == 2:
            winner = "tie"
        # Prose around a fenced object: the strict parser must still find the verdict.
        verdict = {"rationale": f"<b>{winner}</b> & scripted", "winner": winner}
        return f"Let me compare.\n```json\n{json.dumps(verdict)}\n```"
