"""Tone drift: answers as long and in the same register as before (STATISTICS.md section 8).

Opt in per task with ``checks: {tone: {...}}``. On the items both stacks answered:

* **Length** (gated): per item ``r_i = log((len_new + 1) / (len_old + 1))`` in words (or
  ``length_unit: chars``); an equivalence
  test (TOST, paired t) that the mean of ``r`` lies within ``+-log(1 + length_tolerance)``
  (default 0.15: answers 15% shorter or longer on average). PASS when the (1 - 2 alpha) interval
  lies inside the margin, FAIL when it lies wholly outside (significantly shorter or longer),
  INCONCLUSIVE otherwise. The +1 keeps an empty answer finite.
* **Style markers** (gated): hedges, apologies, greetings, empathy phrases, bullet or numbered
  lists, questions back to the user: per item whether each answer shows the marker, old vs new as
  paired rates; items that lost it against items that gained it, exact McNemar test, Holm across
  the markers. A marker FAILS when its Holm-adjusted p < alpha AND its rate moved by more than
  ``marker_tolerance`` (default 0.10 of the items). ``markers: false`` turns them off, a list
  keeps only those named.
* **Rubric** (gated when configured): ``rubric_scorer`` names a scorer that scores each answer's
  tone in [0, 1] (warmth, formality, helpfulness, or the customer's own rubric text in
  ``rubric_options``): ``judge-rubric`` / ``judge-pairwise``, whose ``rubric_options`` the
  contract resolves as it does a task's main judge scorer's (rubric or criteria text or file,
  scale, template, structured); or ``package.module:function`` in any of the three scorer forms
  (an async one gets the contract's judge endpoint). Both answers are scored and the paired
  delta gets the same non-inferiority test as the task's score, with ``rubric_tolerance``
  (default 0.05). A judgement that fails counts as a judge error against ``max_error_rate`` and
  leaves that item out of the rubric. Without a rubric scorer nothing here depends on a judge.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.checks.base import Check, CheckContext
from pytest_parity.contract.spec import TaskSpec
from pytest_parity.records import CheckResult, ItemRecord, SideRecord, Status, check, worst

if TYPE_CHECKING:
    from pytest_parity.records import TaskRun

__all__ = ["MARKERS", "ToneCheck", "check_tone", "length_of", "markers_of"]

LENGTH_TOLERANCE = 0.15
MARKER_TOLERANCE = 0.10
RUBRIC_TOLERANCE = 0.05

_I = re.IGNORECASE
MARKERS: dict[str, re.Pattern[str]] = {
    "hedge": re.compile(
        r"\b(?:might|perhaps|possibly|probably|likely|i think|i believe|it seems|may be|could be"
        r"|not (?:entirely )?sure|generally|typically|in most cases)\b",
        _I,
    ),
    "apology": re.compile(r"\b(?:sorry|apologi[sz]e|apologies|regret)\b", _I),
    "greeting": re.compile(
        r"^\W*(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening)"
        r"|thanks? (?:you )?for (?:reaching out|contacting|your (?:message|question)))\b",
        _I,
    ),
    "empathy": re.compile(
        r"\b(?:i understand|i can (?:see|imagine|understand)|that sounds"
        r"|i(?:'m| am) sorry to hear|understandabl[ey]|i appreciate|happy to help|glad to help"
        r"|thank you for your patience|frustrating)\b",
        _I,
    ),
    "list": re.compile(r"(?m)^\s*(?:[-*\u2022]|\d+[.)])\s+\S"),
    "question": re.compile(r"\?(?:\s|$)"),
}
OPTIONS = (
    "length_tolerance",
    "length_unit",
    "markers",
    "marker_tolerance",
    "rubric_scorer",
    "rubric_options",
    "rubric_tolerance",
)
HIST_BINS = 12


class ToneCheck(Check):
    name = "tone"
    title = "Tone and length as before"
    column = "tone"
    default = False

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``checks: {tone: {length_tolerance: 0.15, length_unit: words, markers: true,
        marker_tolerance: 0.1, rubric_scorer: my.module:tone, rubric_options: {...},
        rubric_tolerance: 0.05}}``."""
        unknown = sorted(set(raw) - set(OPTIONS))
        if unknown:
            raise v.fail(f"{where}.{unknown[0]}", "unknown option", "known: " + ", ".join(OPTIONS))
        out: dict[str, Any] = {
            "length_tolerance": v.number(
                raw.get("length_tolerance", LENGTH_TOLERANCE), f"{where}.length_tolerance", 0, 10
            ),
            "length_unit": v.choice(
                raw.get("length_unit", "words"), f"{where}.length_unit", ("words", "chars")
            ),
            "marker_tolerance": v.number(
                raw.get("marker_tolerance", MARKER_TOLERANCE), f"{where}.marker_tolerance", 0, 1
            ),
            "rubric_tolerance": v.number(
                raw.get("rubric_tolerance", RUBRIC_TOLERANCE), f"{where}.rubric_tolerance", 0, 1
            ),
        }
        markers = raw.get("markers", True)
        if markers is True:
            out["markers"] = tuple(MARKERS)
        elif markers is False:
            out["markers"] = ()
        elif isinstance(markers, list) and all(m in MARKERS for m in markers):
            out["markers"] = tuple(markers)
        else:
            raise v.fail(
                f"{where}.markers",
                f"expected true, false or a list of markers, got {markers!r}",
                "known markers: " + ", ".join(MARKERS),
            )
        if raw.get("rubric_scorer") is not None:
            name = v.string(raw["rubric_scorer"], f"{where}.rubric_scorer")
            from pytest_parity import registry

            if ":" not in name and name not in registry.scorers:
                raise v.fail(
                    f"{where}.rubric_scorer",
                    registry.scorers.unknown(name),
                    "name a scorer, e.g. my_rubrics:warmth (an async scorer gets the judge)",
                )
            out["rubric_scorer"] = name
            out["rubric_options"] = dict(
                v.mapping(raw.get("rubric_options") or {}, f"{where}.rubric_options")
            )
        return MappingProxyType(out)

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        return [check_tone(task, run.records, self.settings(task), ctx.seed)]


def length_of(side: SideRecord, unit: str) -> int:
    text = side["text"] or ""
    if unit == "chars":
        return len(text)
    return len(text.split())


def markers_of(text: str) -> dict[str, bool]:
    return {name: bool(rx.search(text)) for name, rx in MARKERS.items()}


def _histogram(values: Any, edges: Sequence[float]) -> list[int]:
    import numpy as np

    counts, _ = np.histogram(np.asarray(values, dtype=float), bins=np.asarray(edges))
    return [int(c) for c in counts]


def check_tone(
    task: TaskSpec, records: Sequence[ItemRecord], opts: Mapping[str, Any], seed: int
) -> CheckResult:
    """Length equivalence, style markers and (when configured) the tone rubric."""
    import numpy as np

    from pytest_parity.stats.calibration import tost_paired
    from pytest_parity.stats.intervals import holm, mcnemar_exact

    pairs = [
        r for r in records if r["baseline"]["error"] is None and r["candidate"]["error"] is None
    ]
    n = len(pairs)
    if n < 2:
        return check(
            "tone",
            "INCONCLUSIVE",
            [f"only {n} item(s) answered by both stacks; tone cannot be compared"],
            n_paired=n,
        )
    unit = str(opts.get("length_unit", "words"))
    tol = float(opts.get("length_tolerance", LENGTH_TOLERANCE))
    margin = math.log1p(tol)
    lo = np.array([length_of(r["baseline"], unit) for r in pairs], dtype=float)
    ln = np.array([length_of(r["candidate"], unit) for r in pairs], dtype=float)
    ratio = np.log((ln + 1) / (lo + 1))
    alpha = task.alpha
    t = tost_paired(ratio, margin, alpha)
    statuses: list[Status] = [t.status]  # type: ignore[list-item]
    relation = {"PASS": "inside", "FAIL": "outside"}.get(t.status, "straddling")
    reasons = [
        f"length ({unit}) new/old: geometric mean ratio {math.exp(t.mean):.3f}"
        f" ({math.exp(t.mean) - 1:+.1%}), {1 - 2 * alpha:.0%} CI [{math.exp(t.low):.3f},"
        f" {math.exp(t.high):.3f}] {relation} the equivalence band [{1 / (1 + tol):.3f},"
        f" {1 + tol:.3f}] (TOST p={t.p_equivalence:.3g}): {t.status}",
        f"median length {np.median(lo):g} -> {np.median(ln):g} {unit} over {n} paired items",
    ]
    p_alarms: list[float] = []
    if t.status == "FAIL" or t.status == "INCONCLUSIVE":
        p_alarms.append(t.p_outside)
    # Length histograms old vs new, on shared log-spaced edges (for the HTML report).
    top = max(float(lo.max()), float(ln.max()), 1.0)
    edges = [0.0] + [float(x) for x in np.geomspace(1, top + 1, HIST_BINS)]
    numbers: dict[str, Any] = {
        "n_paired": n,
        "length_unit": unit,
        "length_tolerance": tol,
        "log_ratio_mean": t.mean,
        "log_ratio_ci_low": t.low,
        "log_ratio_ci_high": t.high,
        "length_ratio": math.exp(t.mean),
        "length_ratio_ci_low": math.exp(t.low),
        "length_ratio_ci_high": math.exp(t.high),
        "tost_p": t.p_equivalence,
        "length_status": t.status,
        "mean_length_baseline": float(lo.mean()),
        "mean_length_candidate": float(ln.mean()),
        "length_hist_edges": edges,
        "length_hist_baseline": _histogram(lo, edges),
        "length_hist_candidate": _histogram(ln, edges),
    }
    names = [m for m in opts.get("markers", tuple(MARKERS)) if m in MARKERS]
    if names:
        mtol = float(opts.get("marker_tolerance", MARKER_TOLERANCE))
        table: dict[str, dict[str, Any]] = {}
        old_m = [markers_of(r["baseline"]["text"]) for r in pairs]
        new_m = [markers_of(r["candidate"]["text"]) for r in pairs]
        for name in names:
            a = np.array([m[name] for m in old_m])
            b = np.array([m[name] for m in new_m])
            lost, gained = int(np.sum(a & ~b)), int(np.sum(~a & b))
            table[name] = {
                "baseline": float(a.mean()),
                "candidate": float(b.mean()),
                "delta": float(b.mean() - a.mean()),
                "lost": lost,
                "gained": gained,
                "p_value": mcnemar_exact(lost, gained),
            }
        adjusted = holm([table[k]["p_value"] for k in names])
        moved: list[str] = []
        for name, q in zip(names, adjusted, strict=True):
            row = table[name]
            row["p_holm"] = q
            row["status"] = "moved" if q < alpha and abs(row["delta"]) > mtol else "ok"
            if row["status"] == "moved":
                moved.append(name)
                reasons.append(
                    f"style marker {name!r}: {row['baseline']:.0%} -> {row['candidate']:.0%} of"
                    f" answers (lost on {row['lost']}, gained on {row['gained']}, exact McNemar"
                    f" Holm-adjusted p={q:.3g}, moved more than {mtol:.0%}): FAIL"
                )
        if not moved:
            shown = ", ".join(
                f"{k} {table[k]['baseline']:.0%}->{table[k]['candidate']:.0%}" for k in names
            )
            reasons.append(f"no style marker moved significantly beyond {mtol:.0%} ({shown})")
        else:
            statuses.append("FAIL")
        p_alarms.append(min(adjusted))
        numbers["markers"] = table
        numbers["markers_moved"] = moved
        numbers["marker_tolerance"] = mtol
    if opts.get("rubric_scorer"):
        statuses.append(_rubric(task, pairs, opts, seed, reasons, numbers, p_alarms))
    if p_alarms:
        # Length, markers and rubric: Bonferroni inside the check, Holm across the run.
        numbers["p_alarm"] = min(1.0, len(p_alarms) * min(p_alarms))
    return check("tone", worst(statuses), reasons, **numbers)


def _rubric(
    task: TaskSpec,
    pairs: Sequence[ItemRecord],
    opts: Mapping[str, Any],
    seed: int,
    reasons: list[str],
    numbers: dict[str, Any],
    p_alarms: list[float],
) -> Status:
    import numpy as np

    from pytest_parity import stats

    name = str(opts["rubric_scorer"])
    rtol = float(opts.get("rubric_tolerance", RUBRIC_TOLERANCE))
    old: list[float] = []
    new: list[float] = []
    judge_errors = 0
    for r in pairs:
        fa, fb = r["baseline"]["facts"] or {}, r["candidate"]["facts"] or {}
        if "tone_rubric" in fa and "tone_rubric" in fb:
            old.append(float(fa["tone_rubric"]))
            new.append(float(fb["tone_rubric"]))
        elif "tone_rubric_error" in fa:
            judge_errors += 1
    numbers["rubric_judge_errors"] = judge_errors
    if judge_errors:
        # counted against max_error_rate with the task's other judgements (a task past it is
        # an ERROR before any check runs); here only the items left out
        reasons.append(
            f"tone rubric {name}: the judge gave no verdict on {judge_errors} item(s), left out"
        )
    if len(old) < 2:
        reasons.append(f"tone rubric {name}: scored on {len(old)} item(s) only")
        return "ERROR"
    rng = np.random.default_rng(stats.task_seed(seed, f"{task.name}/tone-rubric"))
    iv = stats.paired_interval(old, new, confidence=1 - 2 * task.alpha, rng=rng)
    ni = stats.noninferiority(iv, rtol, alpha=task.alpha)
    reasons.append(
        f"tone rubric {name}: {np.mean(old):.3f} -> {np.mean(new):.3f}, delta {iv.delta:+.3f},"
        f" {iv.confidence:.0%} CI [{iv.low:+.3f}, {iv.high:+.3f}] vs tolerance -{rtol:g}:"
        f" {ni.status}"
    )
    p_alarms.append(ni.p_fail)
    edges = [i / 10 for i in range(11)]
    numbers.update(
        {
            "rubric_scorer": name,
            "rubric_baseline": float(np.mean(old)),
            "rubric_candidate": float(np.mean(new)),
            "rubric_delta": iv.delta,
            "rubric_ci_low": iv.low,
            "rubric_ci_high": iv.high,
            "rubric_tolerance": rtol,
            "rubric_status": ni.status,
            "rubric_hist_baseline": _histogram(old, edges),
            "rubric_hist_candidate": _histogram(new, edges),
        }
    )
    status: Status = ni.status  # type: ignore[assignment]
    return status
