"""LLM-as-judge scorers, measured as instruments.

* ``judge-rubric`` (:mod:`.rubric`): the judge grades each answer against a rubric on a scale;
* ``judge-pairwise`` (:mod:`.pairwise`): the judge compares both answers, in both orders;
* :mod:`.summary`: the judge's own figures per task (position bias, ties, consistency, A/A
  false differences, agreement with human labels, win rate by length ratio);
* :mod:`.options` checks the contract's options; :mod:`.parse` reads verdicts strictly;
  :mod:`.ask` renders the prompt templates (``pytest_parity/scoring/templates/``) and asks the
  judge endpoint (role ``judge``).
"""

from __future__ import annotations

__all__ = ["JUDGE_SCORERS"]

JUDGE_SCORERS = ("judge-rubric", "judge-pairwise")
