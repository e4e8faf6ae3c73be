"""Confidence of one answer, the same way on both stacks (the calibration check reads it).

``checks: {calibration: {confidence: ...}}`` names the method:

* ``logprobs`` (the default): from the answer's token logprobs, which the request must ask for
  (``params: {logprobs: true, top_logprobs: 5}``).

  - multiple choice (the ``choice`` scorer, or ``mode: option``): the probability of the chosen
    option among the options, at the token where the answer names it: each option letter's
    probability mass in that token's ``top_logprobs`` (variants such as ``" B"`` and ``"B"``
    summed; an option absent from the list gets the smallest probability listed, its upper
    bound), renormalised over the options. Needs ``top_logprobs``. An answer that names no
    option (it is scored wrong) gets, with ``no_option: first_token`` (the default), the
    probability of the option ranked first among the options at its first token, the same way
    (:func:`first_token_option`), and is marked ``confidence_from: first_token``; with
    ``no_option: skip`` it has no confidence and is left out (counted).
  - free text (``mode: span``): ``exp(mean token logprob)`` of the whole answer (the geometric
    mean token probability, comparable across lengths), or with ``span: total`` ``exp(sum)``
    (the probability of the whole answer, which falls with length).
* ``verbalized``: the last number the answer states as its confidence, ``confidence: 0.8``,
  ``confidence: 80%`` or ``confidence 80`` (a whole number above 1 read as a percentage).
* ``package.module:function``: ``function(response, item) -> float | None`` in [0, 1].

:func:`confidence` returns ``(value, problem)``: a value in [0, 1], or None with a one-line
problem that the check reports (never a silent skip).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_parity.scoring.builtin import parse_choice

if TYPE_CHECKING:
    from pytest_parity.endpoints.http import Response
    from pytest_parity.sources.item import Item

__all__ = [
    "NO_LOGPROBS",
    "NO_OPTION",
    "NO_TOP_LOGPROBS",
    "confidence",
    "first_token_option",
    "named_no_option",
    "option_mode",
    "option_probability",
    "verbalized",
]

# Problems the check turns into an ERROR naming the endpoint and the option to set.
NO_LOGPROBS = "the reply carries no token logprobs"
NO_TOP_LOGPROBS = "the reply carries no top_logprobs"
NO_OPTION = "no option could be parsed from the answer"

_VERBAL = re.compile(
    r"confiden(?:ce|t)(?:\s+(?:level|score))?\s*(?:is|of|:|=)?\s*(\d+(?:\.\d+)?|\.\d+)\s*(%)?",
    re.IGNORECASE,
)
_STRIP = " \t\n\r()[]{}.:,;*_\"'`\u2581\u0120"  # sentencepiece / GPT-2 space markers too


def _norm(token: str) -> str:
    return token.strip(_STRIP).upper()


def verbalized(text: str) -> float | None:
    """The last ``confidence: x`` the answer states, in [0, 1] (percent and 0-100 scaled)."""
    found = _VERBAL.findall(text)
    if not found:
        return None
    number, percent = found[-1]
    value = float(number)
    if percent:
        value /= 100.0
    elif value > 1.0:
        # "confidence 90" is a percentage; "confidence: 1.7" is no confidence at all.
        if not number.isdigit():
            return None
        value /= 100.0
    return value if 0.0 <= value <= 1.0 else None


def _option_mass(
    token: str, logprob: float, top: Mapping[str, float], letters: str
) -> dict[str, float] | None:
    """Each option's probability at one token position (spelling variants summed); an option
    absent from ``top`` gets the smallest probability listed there (its mass is at most that:
    a truncated list never makes an answer look certain). None: no option is listed at all."""
    alternatives = dict(top)
    alternatives.setdefault(token, logprob)
    mass = dict.fromkeys(letters.upper(), 0.0)
    seen = set()
    for alt, lp in alternatives.items():
        key = _norm(alt)
        if key in mass:
            mass[key] += math.exp(lp)
            seen.add(key)
    if not seen:
        return None
    floor = min(math.exp(lp) for lp in alternatives.values())
    for key in set(mass) - seen:
        mass[key] = floor
    return mass


def option_probability(response: Response, letters: str) -> tuple[float | None, str | None]:
    """P(chosen option | the options) at the first token that names the chosen option."""
    chosen = parse_choice(response.text, letters)
    if chosen is None:
        return None, NO_OPTION
    if not response.logprobs or response.tokens is None:
        return None, NO_LOGPROBS
    if response.top_logprobs is None:
        return None, NO_TOP_LOGPROBS
    for i, tok in enumerate(response.tokens):
        if _norm(tok) != chosen.upper():
            continue
        top = response.top_logprobs[i] if i < len(response.top_logprobs) else {}
        mass = _option_mass(tok, response.logprobs[i], top, letters)
        total = 0.0 if mass is None else sum(mass.values())
        if mass is None or total <= 0:
            return None, "the options carry no probability at the answer's token"
        return mass[chosen.upper()] / total, None
    return None, f"no token of the answer is the chosen option {chosen!r} on its own"


def first_token_option(response: Response, letters: str) -> tuple[float | None, str | None]:
    """For an answer that names no option (``no_option: first_token``): the probability of the
    option the model ranks first among the options at the answer's first token, renormalised
    over the options (absent ones floored as in :func:`option_probability`). The answer itself
    stays wrong (its scorer found no option): this is how sure the model was of the option it
    would have named, so confident non-answers count against calibration instead of vanishing
    from it."""
    if not response.logprobs or response.tokens is None:
        return None, NO_LOGPROBS
    if response.top_logprobs is None:
        return None, NO_TOP_LOGPROBS
    top = response.top_logprobs[0] if response.top_logprobs else {}
    mass = _option_mass(response.tokens[0], response.logprobs[0], top, letters)
    if mass is None:
        return None, (
            f"{NO_OPTION}, and no option is among its first token's top_logprobs"
            " (hint: ask for more, top_logprobs: 20)"
        )
    return max(mass.values()) / sum(mass.values()), None


def _span(response: Response, total: bool) -> tuple[float | None, str | None]:
    if not response.logprobs:
        return None, NO_LOGPROBS
    lps = response.logprobs
    s = float(sum(lps))
    return math.exp(s if total else s / len(lps)), None


def _hook(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"confidence hook {path}: {module_name} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def option_mode(options: Mapping[str, Any], *, multiple_choice: bool) -> bool:
    """Whether logprob confidence reads the chosen option (else the answer span)."""
    mode = str(options.get("mode", "auto"))
    return mode == "option" or (mode == "auto" and multiple_choice)


def named_no_option(
    response: Response, options: Mapping[str, Any], *, multiple_choice: bool, letters: str
) -> bool:
    """Whether this answer's logprob confidence came from :func:`first_token_option`."""
    return (
        str(options.get("confidence", "logprobs")) == "logprobs"
        and option_mode(options, multiple_choice=multiple_choice)
        and options.get("no_option", "first_token") == "first_token"
        and parse_choice(response.text, letters) is None
    )


def confidence(
    response: Response,
    item: Item,
    options: Mapping[str, Any],
    *,
    multiple_choice: bool,
    letters: str = "ABCD",
) -> tuple[float | None, str | None]:
    """One answer's confidence under the calibration check's ``options`` (see the module)."""
    method = str(options.get("confidence", "logprobs"))
    if method == "verbalized":
        value = verbalized(response.text)
        return (value, None) if value is not None else (None, "the answer states no confidence")
    if ":" in method:
        got = _hook(method)(response, item)
        if got is None:
            return None, f"the hook {method} gave no confidence"
        value = float(got)
        if not 0.0 <= value <= 1.0:  # also false for NaN
            return None, f"the hook {method} gave {value!r}, outside [0, 1]"
        return value, None
    if option_mode(options, multiple_choice=multiple_choice):
        value, problem = option_probability(response, letters)
        if problem == NO_OPTION and options.get("no_option", "first_token") == "first_token":
            return first_token_option(response, letters)
        return value, problem
    return _span(response, total=options.get("span", "mean") == "total")
