"""Calibration drift: the candidate's confidence still means what the baseline's meant
(STATISTICS.md section 7).

Opt in per task with ``checks: {calibration: {...}}``. Each answer's confidence is computed the
same way on both stacks (:mod:`pytest_parity.scoring.confidence`; ``confidence: logprobs`` by
default, so the task or the endpoints must ask for ``params: {logprobs: true, top_logprobs: 5}``)
and kept in the records (``facts.confidence``, ``facts.confidence_method``, ``facts.logprobs``).

Gated, each a non-inferiority test on the items both stacks answered with a confidence:

* **Brier score** (mean ``(confidence - correct)**2``, lower is better): paired interval of the
  per-item differences, FAIL when the (1 - 2 alpha) interval of Brier(new) - Brier(old) lies
  above ``brier_tolerance``. Default **0.01**: a systematic confidence gap ``g`` adds exactly
  ``g**2`` to the Brier score, so 0.01 is a candidate that became 10 points over- (or under-)
  confident on every answer at equal accuracy, about the smallest drift that moves a routing
  threshold by a visible share of traffic.
* **AURC** (mean selective risk over all coverages, lower is better): paired bootstrap of
  AURC(new) - AURC(old), FAIL when its interval lies above ``aurc_tolerance``. Default **0.02**:
  two points of error rate averaged over every coverage a customer could pick, the same scale as
  the accuracy tolerance (a ranking that got worse by that much costs at least as much, at some
  threshold, as a two-point accuracy drop).

Not gated: ECE (15 bins; its noise floor ~1.17/sqrt(n) is shown beside it), the reliability
diagram (old vs new, in the HTML report), and with ``confidence_threshold: t`` the operating
point: the change in the share of answers at or above ``t`` (paired, Tango interval, exact
McNemar) and in the error rate among those answers (paired bootstrap interval).

A stack whose replies carry no logprobs makes the check ERROR, naming the endpoint and the option
to set; answers whose confidence could not be read for another reason are left out and counted. A
multiple-choice answer that names no option is scored wrong and, by default (``no_option:
first_token``), keeps a confidence: the probability of the option the model ranked first at the
answer's first token (``no_option: skip`` leaves those answers out instead); the reasons count
them per stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.checks.base import Check, CheckContext
from pytest_parity.contract.spec import TaskSpec
from pytest_parity.records import CheckResult, ItemRecord, Status, check, worst

if TYPE_CHECKING:
    from pytest_parity.records import TaskRun

__all__ = ["CalibrationCheck", "check_calibration"]

BRIER_TOLERANCE = 0.01
AURC_TOLERANCE = 0.02
OPTION_HINT = "params: {logprobs: true, top_logprobs: 5}"
OPTIONS = (
    "confidence",
    "mode",
    "span",
    "brier_tolerance",
    "aurc_tolerance",
    "confidence_threshold",
    "max_missing",
    "no_option",
)


class CalibrationCheck(Check):
    name = "calibration"
    title = "Confidence as calibrated as before"
    column = "calibration"
    default = False

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``checks: {calibration: {confidence: logprobs | verbalized | module:function,
        mode: auto | option | span, span: mean | total, no_option: first_token | skip,
        brier_tolerance: 0.01,
        aurc_tolerance: 0.02, confidence_threshold: 0.8, max_missing: 0.2}}``."""
        unknown = sorted(set(raw) - set(OPTIONS))
        if unknown:
            raise v.fail(f"{where}.{unknown[0]}", "unknown option", "known: " + ", ".join(OPTIONS))
        out: dict[str, Any] = {}
        method = raw.get("confidence", "logprobs")
        method = v.string(method, f"{where}.confidence")
        if method not in ("logprobs", "verbalized") and ":" not in method:
            raise v.fail(
                f"{where}.confidence",
                f"unknown confidence method {method!r}",
                "use logprobs, verbalized or package.module:function",
            )
        out["confidence"] = method
        out["mode"] = v.choice(raw.get("mode", "auto"), f"{where}.mode", ("auto", "option", "span"))
        out["span"] = v.choice(raw.get("span", "mean"), f"{where}.span", ("mean", "total"))
        out["no_option"] = v.choice(
            raw.get("no_option", "first_token"), f"{where}.no_option", ("first_token", "skip")
        )
        out["brier_tolerance"] = v.number(
            raw.get("brier_tolerance", BRIER_TOLERANCE), f"{where}.brier_tolerance", 0, 1
        )
        out["aurc_tolerance"] = v.number(
            raw.get("aurc_tolerance", AURC_TOLERANCE), f"{where}.aurc_tolerance", 0, 1
        )
        out["max_missing"] = v.number(
            raw.get("max_missing", 0.2), f"{where}.max_missing", 0, 1, lo_open=False
        )
        if raw.get("confidence_threshold") is not None:
            out["confidence_threshold"] = v.number(
                raw["confidence_threshold"], f"{where}.confidence_threshold", 0, 1
            )
        return MappingProxyType(out)

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        return [check_calibration(task, run.records, self.settings(task), ctx.seed, run.endpoints)]


def _endpoint(role: str, endpoints: Mapping[str, Any]) -> str:
    ident = endpoints.get(role) or {}
    where = ident.get("base_url") or ident.get("kind") or "?"
    model = f", model {ident['model']}" if ident.get("model") else ""
    return f"{role} endpoint {where}{model}"


def _side_facts(side: Mapping[str, Any]) -> Mapping[str, Any]:
    facts = side.get("facts")
    return facts if isinstance(facts, Mapping) else {}


def check_calibration(
    task: TaskSpec,
    records: Sequence[ItemRecord],
    opts: Mapping[str, Any],
    seed: int,
    endpoints: Mapping[str, Any] | None = None,
) -> CheckResult:
    """Brier and AURC non-inferiority of the candidate's confidence; see the module docstring."""
    import numpy as np

    from pytest_parity import stats
    from pytest_parity.scoring.confidence import NO_LOGPROBS, NO_TOP_LOGPROBS
    from pytest_parity.stats import calibration as cal

    endpoints = endpoints or {}
    method = str(opts.get("confidence", "logprobs"))
    # A server that does not return logprobs: an ERROR naming it and the option, never a skip.
    for role in ("baseline", "candidate"):
        answers = [r["baseline"] if role == "baseline" else r["candidate"] for r in records]
        sides = [_side_facts(a) for a in answers if a["error"] is None]
        lacking = [
            f for f in sides if f.get("confidence_problem") in (NO_LOGPROBS, NO_TOP_LOGPROBS)
        ]
        if lacking:
            problem = lacking[0]["confidence_problem"]
            what = "top_logprobs" if problem == NO_TOP_LOGPROBS else "token logprobs"
            return check(
                "calibration",
                "ERROR",
                [
                    f"{_endpoint(role, endpoints)}: {len(lacking)} of {len(sides)} replies carry no"
                    f" {what}, so confidence (confidence: {method}) cannot be computed; ask for"
                    f" them with {OPTION_HINT} on the task or the endpoint, or use"
                    " confidence: verbalized"
                ],
                confidence_method=method,
                missing_role=role,
                missing=len(lacking),
            )
    first_token = {"baseline": 0, "candidate": 0}  # paired answers that named no option
    old_c: list[float] = []
    new_c: list[float] = []
    old_y: list[float] = []
    new_y: list[float] = []
    clusters: list[str] = []
    missing: dict[str, int] = {"baseline": 0, "candidate": 0}
    problems: dict[str, str] = {}
    scored = 0
    for r in records:
        a, b = r["baseline"], r["candidate"]
        if a["score"] is None or b["score"] is None:
            continue
        scored += 1
        fa, fb = _side_facts(a), _side_facts(b)
        ca, cb = fa.get("confidence"), fb.get("confidence")
        for role, c, f in (("baseline", ca, fa), ("candidate", cb, fb)):
            if c is None:
                missing[role] += 1
                problems.setdefault(role, str(f.get("confidence_problem", "no confidence")))
        if ca is None or cb is None:
            continue
        for role, f in (("baseline", fa), ("candidate", fb)):
            first_token[role] += f.get("confidence_from") == "first_token"
        old_c.append(float(ca))
        new_c.append(float(cb))
        old_y.append(float(a["score"]))
        new_y.append(float(b["score"]))
        clusters.append(r["cluster"] or "")
    n = len(old_c)
    # The method the answers' confidences came from (lm-eval's multiple choice gives it
    # directly as "loglikelihood"; elsewhere it is the option's method).
    used = {
        str(_side_facts(r[role]).get("confidence_method"))
        for r in records
        for role in ("baseline", "candidate")
        if _side_facts(r[role]).get("confidence") is not None
    }
    if len(used) == 1:
        method = used.pop()
    base: dict[str, Any] = {
        "confidence_method": method,
        "n_paired": n,
        "n_scored": scored,
        "missing_baseline": missing["baseline"],
        "missing_candidate": missing["candidate"],
        "first_token_baseline": first_token["baseline"],
        "first_token_candidate": first_token["candidate"],
    }
    if n < 2:
        why = "; ".join(f"{k}: {v}" for k, v in problems.items()) or "no item answered by both"
        return check(
            "calibration",
            "INCONCLUSIVE",
            [
                f"only {n} item(s) with a confidence on both stacks out of {scored} scored"
                f" ({why}); calibration cannot be compared"
            ],
            **base,
        )
    co, cn = np.asarray(old_c), np.asarray(new_c)
    yo, yn = np.asarray(old_y), np.asarray(new_y)
    alpha = task.alpha
    level = 1 - 2 * alpha
    rng = np.random.default_rng(stats.task_seed(seed, f"{task.name}/calibration"))
    reasons: list[str] = []
    statuses: list[Status] = []
    # Brier: higher-is-better scores are -Brier per item, so the delta's tooling applies as is.
    b_old, b_new = cal.brier_items(co, yo), cal.brier_items(cn, yn)
    btol = float(opts.get("brier_tolerance", BRIER_TOLERANCE))
    iv = stats.paired_interval(
        -b_old, -b_new, confidence=level, rng=rng, clusters=clusters if task.cluster_key else None
    )
    ni = stats.noninferiority(iv, btol, alpha=alpha)
    brier_status: Status = ni.status  # type: ignore[assignment]
    statuses.append(brier_status)
    brier_delta = -iv.delta
    reasons.append(
        f"Brier {b_old.mean():.4f} -> {b_new.mean():.4f}: delta {brier_delta:+.4f}, {level:.0%} CI"
        f" [{-iv.high:+.4f}, {-iv.low:+.4f}] vs tolerance +{btol:g} (lower is better):"
        f" {brier_status}"
    )
    # AURC: rank-based, so the whole statistic is bootstrapped on shared resamples.
    atol = float(opts.get("aurc_tolerance", AURC_TOLERANCE))
    ad = cal.aurc_delta(co, 1 - yo, cn, 1 - yn, confidence=level, rng=rng)
    if ad.low > atol:
        aurc_status: Status = "FAIL"
    elif ad.high < atol:
        aurc_status = "PASS"
    else:
        aurc_status = "INCONCLUSIVE"
    statuses.append(aurc_status)
    reasons.append(
        f"AURC (selective risk) {ad.old:.4f} -> {ad.new:.4f}: delta {ad.delta:+.4f}, {level:.0%}"
        f" bootstrap CI [{ad.low:+.4f}, {ad.high:+.4f}] vs tolerance +{atol:g}: {aurc_status}"
    )
    from statistics import NormalDist

    if ad.se > 0:
        p_aurc = NormalDist().cdf((atol - ad.delta) / ad.se)
    else:
        p_aurc = 0.0 if ad.delta > atol else 1.0
    # Two alarms in one check: Bonferroni inside it, Holm across the run (verdict.summarize).
    p_alarm = min(1.0, 2 * min(ni.p_fail, p_aurc))
    ece_old, ece_new = cal.ece(co, yo), cal.ece(cn, yn)
    floor = cal.ece_noise_floor(n)
    reasons.append(
        f"ECE {ece_old:.3f} -> {ece_new:.3f} (not gated: a perfectly calibrated system shows about"
        f" {floor:.3f} at n={n})"
    )
    reasons.append(
        f"mean confidence {co.mean():.3f} -> {cn.mean():.3f}, accuracy {yo.mean():.3f} ->"
        f" {yn.mean():.3f} on {n} items (confidence: {method})"
    )
    if first_token["baseline"] or first_token["candidate"]:
        reasons.append(
            f"answers that named no option (scored wrong; confidence: the top option's probability"
            f" at the first token, no_option: first_token): {first_token['baseline']} baseline,"
            f" {first_token['candidate']} candidate of {n}"
        )
    left_out = scored - n
    if left_out:
        why = "; ".join(f"{k}: {v}" for k, v in problems.items())
        reasons.append(f"{left_out} of {scored} scored items left out without a confidence ({why})")
        if left_out > float(opts.get("max_missing", 0.2)) * scored:
            statuses.append("INCONCLUSIVE")
            reasons.append(
                f"more than {float(opts.get('max_missing', 0.2)):.0%} of the items lack a"
                " confidence: the comparison may not stand for the task"
            )
    numbers: dict[str, Any] = {
        **base,
        "brier_baseline": float(b_old.mean()),
        "brier_candidate": float(b_new.mean()),
        "brier_delta": brier_delta,
        "brier_ci_low": -iv.high,
        "brier_ci_high": -iv.low,
        "brier_tolerance": btol,
        "brier_status": brier_status,
        "brier_p_fail": ni.p_fail,
        "aurc_baseline": ad.old,
        "aurc_candidate": ad.new,
        "aurc_delta": ad.delta,
        "aurc_ci_low": ad.low,
        "aurc_ci_high": ad.high,
        "aurc_tolerance": atol,
        "aurc_status": aurc_status,
        "aurc_p_fail": p_aurc,
        "ece_baseline": ece_old,
        "ece_candidate": ece_new,
        "ece_noise_floor": floor,
        "mean_confidence_baseline": float(co.mean()),
        "mean_confidence_candidate": float(cn.mean()),
        "accuracy_baseline": float(yo.mean()),
        "accuracy_candidate": float(yn.mean()),
        "reliability_baseline": cal.reliability(co, yo),
        "reliability_candidate": cal.reliability(cn, yn),
        "p_alarm": p_alarm,
    }
    threshold = opts.get("confidence_threshold")
    if threshold is not None:
        numbers.update(_operating_point(float(threshold), co, yo, cn, yn, level, rng, reasons))
    return check("calibration", worst(statuses), reasons, **numbers)


def _operating_point(
    t: float,
    co: Any,
    yo: Any,
    cn: Any,
    yn: Any,
    level: float,
    rng: Any,
    reasons: list[str],
) -> dict[str, Any]:
    """Share of answers at or above the threshold, and their error rate, old vs new."""
    import numpy as np

    from pytest_parity import stats

    above_o = (co >= t).astype(float)
    above_n = (cn >= t).astype(float)
    share = stats.paired_interval(above_o, above_n, confidence=level, rng=rng)
    eo, en = 1 - yo, 1 - yn

    def err(e: Any, above: Any) -> Any:
        k = above.sum(axis=-1)
        return np.where(k > 0, (e * above).sum(axis=-1) / np.maximum(k, 1), np.nan)

    err_o, err_n = float(err(eo, above_o)), float(err(en, above_n))
    n = co.size
    idx = rng.integers(0, n, (2000, n))
    boot = err(en[idx], above_n[idx]) - err(eo[idx], above_o[idx])
    boot = boot[np.isfinite(boot)]
    tail = (1 - level) / 2
    if boot.size >= 100 and np.isfinite(err_o) and np.isfinite(err_n):
        lo, hi = (float(x) for x in np.quantile(boot, [tail, 1 - tail]))
        err_text = (
            f"error rate among them {err_o:.1%} -> {err_n:.1%} (delta {err_n - err_o:+.1%},"
            f" {level:.0%} CI [{lo:+.1%}, {hi:+.1%}])"
        )
    else:
        lo = hi = float("nan")
        err_text = "too few answers above the threshold on one stack for an error-rate interval"
    reasons.append(
        f"at confidence >= {t:g}: {above_o.mean():.1%} -> {above_n.mean():.1%} of answers"
        f" (delta {share.delta:+.1%}, {level:.0%} CI [{share.low:+.1%}, {share.high:+.1%}],"
        f" McNemar p={share.p_value if share.p_value is not None else 1.0:.3g}); {err_text}"
        " (reported, not gated)"
    )
    return {
        "confidence_threshold": t,
        "above_share_baseline": float(above_o.mean()),
        "above_share_candidate": float(above_n.mean()),
        "above_share_delta": share.delta,
        "above_share_ci_low": share.low,
        "above_share_ci_high": share.high,
        "above_error_baseline": err_o if np.isfinite(err_o) else None,
        "above_error_candidate": err_n if np.isfinite(err_n) else None,
        "above_error_delta": (err_n - err_o) if np.isfinite(err_n - err_o) else None,
        "above_error_ci_low": lo if np.isfinite(lo) else None,
        "above_error_ci_high": hi if np.isfinite(hi) else None,
    }
