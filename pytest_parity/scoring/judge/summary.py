"""The judge's own figures for one task, from the judge facts kept on every answer.

A judge whose noise is unknown proves nothing, so each task judged by an LLM reports, next to its
verdict (``TaskResult["judge"]``):

* ``pairwise``: wins / ties / losses of the candidate (both orders agreeing), the mean preference
  (= the paired delta), the **position bias** (``flip_rate``: the share of items whose verdict
  changed with the order; ``first_position_rate``: the share of one-order verdicts that chose the
  answer shown first, 0.5 when the judge ignores positions) and the tie rate;
* ``rubric``: the grade distribution old vs new and the mean grades;
* ``consistency``: the same judgement asked twice (``recheck``): the share that came out the same;
* ``aa`` (with ``--parity-aa``): the judge on the baseline against a second sample of itself:
  its **false-difference rate** (pairwise: a winner declared; rubric: a different grade), to read
  next to old-vs-new;
* ``human`` (items with ``human_preference`` / ``human_score``): agreement of judge and people,
  Cohen's kappa (preferences, pass/fail) or Spearman's rho (graded scales);
* ``length`` (pairwise): the win rate by length-ratio bucket, and a length-controlled mean
  preference (the intercept of a least-squares fit of the preference on the log length ratio, in
  the spirit of AlpacaEval 2.0's length-controlled win rate: the preference expected at equal
  lengths).

Numbers that cannot be computed are None, never NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_parity.records import ItemRecord

__all__ = ["LENGTH_BUCKETS", "cohen_kappa", "human_preference", "judge_summary"]

# (label, lower bound, upper bound) of candidate length / baseline length, in characters
LENGTH_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("< 0.5", 0.0, 0.5),
    ("0.5-0.8", 0.5, 0.8),
    ("0.8-1.25", 0.8, 1.25),
    ("1.25-2", 1.25, 2.0),
    (">= 2", 2.0, math.inf),
)
_PREFERENCES = {
    "baseline": -1,
    "old": -1,
    "a": -1,
    "tie": 0,
    "equal": 0,
    "candidate": 1,
    "new": 1,
    "b": 1,
}


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def _finite(x: float) -> float | None:
    return float(x) if x == x and math.isfinite(x) else None


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's kappa of two raters' labels (None when undefined: fewer than 2 items, or both
    raters always gave the same single label)."""
    n = len(a)
    if n < 2 or n != len(b):
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if expected >= 1.0:
        return None
    return float((observed - expected) / (1.0 - expected))


def human_preference(value: Any) -> int | None:
    """A person's preference as -1 (baseline better), 0 (tie), +1 (candidate better)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value in (-1, 0, 1):
        return int(value)
    if isinstance(value, str):
        return _PREFERENCES.get(value.strip().lower())
    return None


def _judge(side: Mapping[str, Any]) -> Mapping[str, Any] | None:
    facts = side.get("facts") or {}
    got = facts.get("judge")
    return got if isinstance(got, Mapping) else None


def _aa_judge(rec: ItemRecord) -> Mapping[str, Any] | None:
    aa = (rec["baseline"].get("facts") or {}).get("aa")
    if not isinstance(aa, Mapping):
        return None
    got = aa.get("judge")
    return got if isinstance(got, Mapping) else None


def _meta(rec: ItemRecord, key: str) -> Any:
    return (rec.get("metadata") or {}).get(key)


def _outcomes(prefs: Sequence[int]) -> dict[str, Any]:
    n = len(prefs)
    wins, ties, losses = prefs.count(1), prefs.count(0), prefs.count(-1)
    return {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "win_rate": _share(wins, n),
        "tie_rate": _share(ties, n),
        "loss_rate": _share(losses, n),
        "mean_preference": _share(wins - losses, n),
    }


def _position(judged: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    flips = sum(bool(j.get("flipped")) for j in judged)
    first = decided = 0
    for j in judged:
        for w in j.get("winners") or ():
            if w in ("A", "B"):
                decided += 1
                first += w == "A"
    return {
        "flip_rate": _share(flips, len(judged)),
        "flips": flips,
        "first_position_rate": _share(first, decided),
        "decided_judgements": decided,
    }


def _length(judged: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    buckets: list[dict[str, Any]] = []
    xs: list[float] = []
    ys: list[float] = []
    rows: dict[str, list[int]] = {label: [] for label, _, _ in LENGTH_BUCKETS}
    for j in judged:
        lb, lo = int(j.get("len_baseline") or 0), int(j.get("len_other") or 0)
        ratio = (lo / lb) if lb else (1.0 if lo == 0 else math.inf)
        s = int(j["preference"])
        for label, low, high in LENGTH_BUCKETS:
            if low <= ratio < high:
                rows[label].append(s)
                break
        if lb and lo:
            xs.append(max(-3.0, min(3.0, math.log(ratio))))
            ys.append(float(s))
    for label, _, _ in LENGTH_BUCKETS:
        prefs = rows[label]
        n = len(prefs)
        buckets.append(
            {
                "ratio": label,
                "n": n,
                "wins": prefs.count(1),
                "ties": prefs.count(0),
                "losses": prefs.count(-1),
                "win_rate": _share(2 * prefs.count(1) + prefs.count(0), 2 * n),
            }
        )
    out: dict[str, Any] = {"buckets": buckets, "lc_preference": None, "length_slope": None}
    if len(xs) >= 10:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx > 1e-12:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
            # the fitted preference at log ratio 0 (equal lengths), kept in [-1, 1]
            out["lc_preference"] = max(-1.0, min(1.0, my - slope * mx))
            out["length_slope"] = slope
    return out


def _pairwise(records: Sequence[ItemRecord]) -> dict[str, Any]:
    judged = [j for r in records if (j := _judge(r["candidate"])) is not None]
    out: dict[str, Any] = {"mode": "pairwise", **_outcomes([int(j["preference"]) for j in judged])}
    out["position"] = _position(judged)
    rechecked = [j for j in judged if "recheck" in j]
    same = sum(j["recheck"] == (j.get("orders") or [None])[0] for j in rechecked)
    out["consistency"] = {"n": len(rechecked), "agreement": _share(same, len(rechecked))}
    aa = [j for r in records if (j := _aa_judge(r)) is not None]
    if aa:
        prefs = [int(j["preference"]) for j in aa]
        diff = sum(p != 0 for p in prefs)
        out["aa"] = {
            **_outcomes(prefs),
            "false_difference_rate": _share(diff, len(prefs)),
            "identical_answers": sum(bool(j.get("identical")) for j in aa),
            "position": _position(aa),
        }
    else:
        out["aa"] = None
    pairs: list[tuple[int, int]] = []
    for r in records:
        j = _judge(r["candidate"])
        h = human_preference(_meta(r, "human_preference"))
        if j is not None and h is not None:
            pairs.append((h, int(j["preference"])))
    out["human"] = None
    if pairs:
        hs, js = [p[0] for p in pairs], [p[1] for p in pairs]
        decided = [(h, x) for h, x in pairs if h != 0 and x != 0]
        out["human"] = {
            "n": len(pairs),
            "agreement": _share(sum(h == x for h, x in pairs), len(pairs)),
            "kappa": cohen_kappa(hs, js),
            "n_decided": len(decided),
            "agreement_decided": _share(sum(h == x for h, x in decided), len(decided)),
        }
    out["length"] = _length(judged)
    return out


def _grades(records: Sequence[ItemRecord], side: str) -> list[float]:
    return [float(j["grade"]) for r in records if (j := _judge(r[side])) is not None]  # type: ignore[literal-required]


def _human_scores(rec: ItemRecord) -> dict[str, float]:
    raw = _meta(rec, "human_score")
    if isinstance(raw, Mapping):
        return {
            k: float(v)
            for k, v in raw.items()
            if k in ("baseline", "candidate")
            and isinstance(v, int | float)
            and not isinstance(v, bool)
        }
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return {"baseline": float(raw)}  # a grade of the answer people read: the baseline's
    return {}


def _rubric(records: Sequence[ItemRecord], scale: str) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": "rubric", "scale": scale}
    for side in ("baseline", "candidate"):
        grades = _grades(records, side)
        counts = Counter(grades)
        out[side] = {
            "n": len(grades),
            "mean_grade": sum(grades) / len(grades) if grades else None,
            "distribution": {f"{g:g}": counts[g] for g in sorted(counts)},
        }
    rechecked = [
        j
        for r in records
        for side in ("baseline", "candidate")
        if (j := _judge(r[side])) is not None and "recheck" in j
    ]
    same = sum(j["recheck"] == j["grade"] for j in rechecked)
    out["consistency"] = {
        "n": len(rechecked),
        "agreement": _share(same, len(rechecked)),
        "mean_abs_diff": sum(abs(j["recheck"] - j["grade"]) for j in rechecked) / len(rechecked)
        if rechecked
        else None,
    }
    aa_pairs = [
        (float(b["grade"]), float(a["grade"]))
        for r in records
        if (a := _aa_judge(r)) is not None and (b := _judge(r["baseline"])) is not None
    ]
    out["aa"] = None
    if aa_pairs:
        diff = sum(x != y for x, y in aa_pairs)
        out["aa"] = {
            "n": len(aa_pairs),
            "false_difference_rate": _share(diff, len(aa_pairs)),
            "mean_abs_diff": sum(abs(x - y) for x, y in aa_pairs) / len(aa_pairs),
        }
    human: list[tuple[float, float]] = []
    for r in records:
        for side, h in _human_scores(r).items():
            j = _judge(r[side])  # type: ignore[literal-required]
            if j is not None:
                human.append((h, float(j["grade"])))
    out["human"] = None
    if human:
        hs, js = [p[0] for p in human], [p[1] for p in human]
        entry: dict[str, Any] = {
            "n": len(human),
            "agreement": _share(sum(h == x for h, x in human), len(human)),
            "spearman": None,
            "kappa": None,
        }
        if scale == "pass/fail":
            entry["kappa"] = cohen_kappa(hs, js)
        elif len(human) >= 3 and len(set(hs)) > 1 and len(set(js)) > 1:
            from scipy import stats

            entry["spearman"] = _finite(float(stats.spearmanr(hs, js).statistic))
        out["human"] = entry
    return out


def judge_summary(
    scorer: str,
    options: Mapping[str, Any],
    records: Sequence[ItemRecord],
    judge_errors: int,
    judge_endpoint: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The judge figures of one task (None when the task is not judged by an LLM)."""
    if scorer == "judge-pairwise":
        out = _pairwise(records)
    elif scorer == "judge-rubric":
        out = _rubric(records, str(options.get("scale", "1-5")))
    else:
        return None
    ep = judge_endpoint or {}
    return {
        **out,
        "model": ep.get("model"),
        "kind": ep.get("kind"),
        "engine_model": ep.get("engine_model"),
        "prompt_digest": options.get("prompt_digest"),
        "template": options.get("template_source"),
        "structured": options.get("structured"),
        "errors": judge_errors,
    }
