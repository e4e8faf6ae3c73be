"""The judge figures of a task (``TaskResult["judge"]``) as short sentences, for the terminal and
the Markdown summary (the HTML report draws them in :mod:`pytest_parity.report.html.judge`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["judge_facts", "judge_sentences"]


def _pct(x: Any) -> str:
    return "n/a" if not isinstance(x, int | float) or isinstance(x, bool) else f"{x:.1%}"


def _num(x: Any, digits: int = 2) -> str:
    return "n/a" if not isinstance(x, int | float) or isinstance(x, bool) else f"{x:.{digits}f}"


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def judge_facts(j: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows: what the judge is, what it found, and how far to trust it."""
    rows: list[tuple[str, str]] = [
        ("judge", f"{j.get('model') or '?'} ({j.get('kind') or '?'})"),
        ("prompt digest", str(j.get("prompt_digest") or "?")[:12]),
        ("template", str(j.get("template") or "?")),
        ("judge errors", str(j.get("errors", 0))),
    ]
    if j.get("mode") == "pairwise":
        rows.append(
            (
                "candidate wins / ties / losses",
                f"{j.get('wins', 0)} / {j.get('ties', 0)} / {j.get('losses', 0)}"
                f" (mean preference {_num(j.get('mean_preference'), 3)})",
            )
        )
        pos = _m(j.get("position"))
        rows.append(
            (
                "position bias",
                f"verdict flipped with the order on {_pct(pos.get('flip_rate'))} of items;"
                f" the first-shown answer won {_pct(pos.get('first_position_rate'))} of"
                " one-order verdicts (0.5 is unbiased)",
            )
        )
        rows.append(("tie rate", _pct(j.get("tie_rate"))))
        length = _m(j.get("length"))
        if length.get("lc_preference") is not None:
            rows.append(
                (
                    "length-controlled preference",
                    f"{_num(length.get('lc_preference'), 3)} (slope on log length ratio"
                    f" {_num(length.get('length_slope'), 3)})",
                )
            )
    elif j.get("mode") == "rubric":
        for side in ("baseline", "candidate"):
            s = _m(j.get(side))
            dist = ", ".join(f"{g}: {n}" for g, n in _m(s.get("distribution")).items())
            rows.append(
                (
                    f"{side} grades ({j.get('scale')})",
                    f"mean {_num(s.get('mean_grade'))}; {dist or 'none'}",
                )
            )
    cons = _m(j.get("consistency"))
    if cons.get("n"):
        rows.append(
            (
                "consistency",
                f"{_pct(cons.get('agreement'))} of {cons['n']} judgements asked twice came out"
                " the same",
            )
        )
    aa = _m(j.get("aa"))
    if aa:
        rows.append(
            (
                "A/A false differences",
                f"{_pct(aa.get('false_difference_rate'))} of {aa.get('n', 0)} baseline-vs-baseline"
                " items",
            )
        )
    human = _m(j.get("human"))
    if human:
        stat = (
            f"kappa {_num(human.get('kappa'))}"
            if human.get("kappa") is not None
            else f"Spearman {_num(human.get('spearman'))}"
        )
        rows.append(
            (
                "agreement with people",
                f"{_pct(human.get('agreement'))} of {human.get('n', 0)} labelled items, {stat}",
            )
        )
    return rows


def judge_sentences(task: str, j: Mapping[str, Any]) -> list[str]:
    """One or two terminal lines for a judged task."""
    parts = [f"{task}: judge {j.get('model') or '?'}"]
    if j.get("mode") == "pairwise":
        pos = _m(j.get("position"))
        parts.append(
            f"{j.get('wins', 0)} wins / {j.get('ties', 0)} ties / {j.get('losses', 0)} losses"
        )
        parts.append(f"position flips {_pct(pos.get('flip_rate'))}")
    cons = _m(j.get("consistency"))
    if cons.get("n"):
        parts.append(f"consistency {_pct(cons.get('agreement'))}")
    aa = _m(j.get("aa"))
    if aa:
        parts.append(f"A/A false differences {_pct(aa.get('false_difference_rate'))}")
    human = _m(j.get("human"))
    if human:
        parts.append(f"human agreement {_pct(human.get('agreement'))}")
    if j.get("errors"):
        parts.append(f"{j['errors']} judge errors")
    return ["; ".join(parts)]
