"""Parity per context-length bucket, and a test for a decline with length (STATISTICS.md s. 8).

A migration that keeps short prompts intact can still lose long ones (4-bit weights, a new
attention kernel, a KV-cache layout): a task-wide delta averages that away. This check groups a
task's paired items by a numeric field (``by``, default ``context_tokens``: the item's metadata,
else the baseline answer's facts) into buckets (``edges``, default 2k / 8k / 32k tokens, so
``0-2k``, ``2k-8k``, ``8k-32k``, ``32k+``), and gives each bucket its own non-inferiority verdict
(the task's tolerance and alpha, or ``tolerance`` here): one test per bucket,
``test_parity[<task>-buckets:2k-8k]``.

``buckets:trend`` regresses the paired difference d_i = new - old on log2(length_i) (ordinary
least squares, HC3 heteroscedasticity-robust standard error, t with n - 2 degrees of freedom)
and tests one-sided for a negative slope. It FAILS when the slope is significant (p < alpha)
and the fitted decline across the observed lengths exceeds the tolerance; a significant decline
smaller than that is a PASS with a warning: a real trend, inside the margin.

Contract, per task::

    checks: {buckets: {by: context_tokens, edges: [2048, 8192, 32768], tolerance: 0.03}}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.checks.base import Check, CheckContext
from pytest_parity.records import CheckResult, ItemRecord, Status

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.runner import TaskRun

__all__ = ["BucketsCheck", "Trend", "bucket_label", "bucket_labels", "trend_test"]

DEFAULT_EDGES = (2048, 8192, 32768)
OPTION_KEYS = ("by", "edges", "tolerance", "trend")


def _size(v: float) -> str:
    if v >= 1024 and v % 1024 == 0:
        return f"{int(v) // 1024}k"
    return f"{v:g}"


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``[2048, 8192]`` -> ``["0-2k", "2k-8k", "8k+"]``: buckets are [lo, hi)."""
    bounds = [0.0, *edges]
    labels = [f"{_size(lo)}-{_size(hi)}" for lo, hi in itertools.pairwise(bounds)]
    return [*labels, f"{_size(bounds[-1])}+"]


def bucket_label(value: float, edges: Sequence[float]) -> str:
    labels = bucket_labels(edges)
    for edge, label in zip(edges, labels, strict=False):
        if value < edge:
            return label
    return labels[-1]


@dataclass(frozen=True)
class Trend:
    """The OLS slope of d on log2(length), with its HC3 standard error and one-sided p."""

    slope: float  # change of the mean difference per doubling of the length
    se: float
    p_value: float  # one-sided: the slope is negative
    n: int
    x_range: float  # log2(longest / shortest): doublings covered
    decline: float  # -slope * x_range: the fitted loss from the shortest to the longest item

    def to_dict(self) -> dict[str, Any]:
        return {
            "slope": self.slope,
            "se": self.se,
            "p_value": self.p_value,
            "n": self.n,
            "doublings": self.x_range,
            "decline": self.decline,
        }


def trend_test(lengths: Sequence[float], d: Sequence[float]) -> Trend | None:
    """One-sided test of a negative slope of ``d`` on log2(``lengths``); None when the lengths
    do not vary (at least two distinct lengths and three items are needed)."""
    import numpy as np

    from pytest_parity.stats.distributions import t_cdf

    x = np.log2(np.asarray(lengths, dtype=np.float64))
    y = np.asarray(d, dtype=np.float64)
    n = x.size
    if n < 3 or np.ptp(x) == 0.0:
        return None
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (y - y.mean())) / sxx
    resid = y - y.mean() - slope * xc
    leverage = 1.0 / n + xc * xc / sxx
    # HC3: each squared residual inflated by its leverage; robust to the unequal variance of
    # paired differences (long items flip more often) and sound for small n.
    weights = (xc * resid / np.maximum(1.0 - leverage, 1e-12)) ** 2
    se = math.sqrt(float(weights.sum())) / sxx
    # A perfect fit (no residual) leaves only the slope's sign.
    p = (0.0 if slope < 0 else 1.0) if se == 0.0 else t_cdf(slope / se, n - 2)
    x_range = float(np.ptp(x))
    return Trend(slope, se, p, n, x_range, -slope * x_range)


def _length(record: ItemRecord, by: str) -> float | None:
    value = (record.get("metadata") or {}).get(by)
    if value is None:
        value = (record["baseline"].get("facts") or {}).get(by)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


class BucketsCheck(Check):
    """See the module docstring."""

    name = "buckets"
    title = "Parity per context length"
    column = "buckets"
    default = False

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        v.keys(raw, where, OPTION_KEYS)
        by = v.string(raw.get("by", "context_tokens"), f"{where}.by")
        edges_raw = raw.get("edges", list(DEFAULT_EDGES))
        if not isinstance(edges_raw, list) or not edges_raw:
            raise v.fail(f"{where}.edges", f"expected a list of numbers, got {edges_raw!r}",
                         "e.g. edges: [2048, 8192, 32768]")  # fmt: skip
        edges: list[float] = []
        for i, e in enumerate(edges_raw):
            if isinstance(e, bool) or not isinstance(e, int | float) or not e > 0:
                raise v.fail(f"{where}.edges[{i}]", f"expected a positive number, got {e!r}")
            if edges and e <= edges[-1]:
                raise v.fail(f"{where}.edges[{i}]", f"{e!r} is not above {edges[-1]!r}",
                             "list the edges in increasing order")  # fmt: skip
            edges.append(float(e))
        out: dict[str, Any] = {"by": by, "edges": tuple(edges)}
        if "tolerance" in raw:
            out["tolerance"] = v.number(raw["tolerance"], f"{where}.tolerance", 0, 1)
        out["trend"] = v.boolean(raw.get("trend", True), f"{where}.trend")
        return MappingProxyType(out)

    def _opts(self, task: TaskSpec) -> tuple[str, tuple[float, ...], float, bool]:
        s = self.settings(task)
        return (
            str(s.get("by", "context_tokens")),
            tuple(s.get("edges", DEFAULT_EDGES)),
            float(s.get("tolerance", task.tolerance)),
            bool(s.get("trend", True)),
        )

    def test_ids(self, task: TaskSpec) -> tuple[str, ...]:
        _, edges, _, trend = self._opts(task)
        ids = [f"buckets:{label}" for label in bucket_labels(edges)]
        return (*ids, "buckets:trend") if trend else tuple(ids)

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        return self.evaluate(task, run.records, ctx.seed)

    def evaluate(
        self, task: TaskSpec, records: Sequence[ItemRecord], seed: int
    ) -> list[CheckResult]:
        """The per-bucket verdicts and the trend, from a task's records."""
        by, edges, tolerance, want_trend = self._opts(task)
        labels = bucket_labels(edges)
        groups: dict[str, list[tuple[float, float, float]]] = {label: [] for label in labels}
        unbucketed = 0
        for r in records:
            a, b = r["baseline"]["score"], r["candidate"]["score"]
            if a is None or b is None:
                continue  # an infrastructure failure on either side: the pair is not scored
            length = _length(r, by)
            if length is None:
                unbucketed += 1
                continue
            groups[bucket_label(length, edges)].append((length, a, b))
        paired = [p for g in groups.values() for p in g]
        if not paired:
            why = (
                f"no paired item of task {task.name} carries a positive number in metadata.{by}"
                f" ({unbucketed} paired items without it)"
            )
            hint = "give items a metadata field with their length, or use source: long-context"
            return [self.result(i, "ERROR", [f"{why} (hint: {hint})"]) for i in self.test_ids(task)]
        note = (
            [f"{unbucketed} paired items have no numeric metadata.{by} and are in no bucket"]
            if unbucketed
            else []
        )
        out = [self._bucket(task, label, groups[label], tolerance, seed, note) for label in labels]
        if want_trend:
            out.append(self._trend(task, paired, tolerance, by, note))
        return out

    def _bucket(
        self,
        task: TaskSpec,
        label: str,
        pairs: list[tuple[float, float, float]],
        tolerance: float,
        seed: int,
        note: list[str],
    ) -> CheckResult:
        import numpy as np

        from pytest_parity import stats

        name = f"buckets:{label}"
        n = len(pairs)
        if n == 0:
            return self.result(name, "SKIP", [f"no paired item in bucket {label}", *note], n=0)
        old = np.asarray([p[1] for p in pairs])
        new = np.asarray([p[2] for p in pairs])
        rng = np.random.default_rng(stats.task_seed(seed, f"{task.name}/{name}"))
        iv = stats.paired_interval(old, new, confidence=1 - 2 * task.alpha, rng=rng)
        ni = stats.noninferiority(iv, tolerance, alpha=task.alpha)
        status: Status = ni.status  # type: ignore[assignment]
        reasons = [f"bucket {label} ({n} items): {ni.reasons[0]}", *ni.reasons[1:], *note]
        if n < task.min_items and status != "FAIL":
            reasons.append(
                f"only {n} paired items in this bucket; the contract asks for at least"
                f" {task.min_items} before a pass counts"
            )
            if status == "PASS":
                status = "INCONCLUSIVE"
        return self.result(
            name,
            status,
            reasons,
            bucket=label,
            n=n,
            delta=iv.delta,
            ci_low=iv.low,
            ci_high=iv.high,
            method=iv.method,
            tolerance=tolerance,
            baseline_score=float(old.mean()),
            candidate_score=float(new.mean()),
            mean_length=float(np.mean([p[0] for p in pairs])),
            p_fail=ni.p_fail,
            p_alarm=ni.p_fail,
            warn=ni.warn,
        )

    def _trend(
        self,
        task: TaskSpec,
        pairs: list[tuple[float, float, float]],
        tolerance: float,
        by: str,
        note: list[str],
    ) -> CheckResult:
        name = "buckets:trend"
        tr = trend_test([p[0] for p in pairs], [p[2] - p[1] for p in pairs])
        if tr is None:
            return self.result(
                name, "SKIP", [f"the items do not vary in {by}: no trend to test", *note]
            )
        line = (
            f"slope of new - old on log2({by}): {_pts(tr.slope)} pts per doubling"
            f" (HC3 SE {100 * tr.se:.2f}), one-sided p={tr.p_value:.3g} over {tr.n} items"
            f" spanning {tr.x_range:.1f} doublings; fitted change {_pts(-tr.decline)} pts"
            f" from the shortest to the longest"
        )
        significant = tr.p_value < task.alpha
        status: Status = "PASS"
        if significant and tr.decline > tolerance:
            status = "FAIL"
            line += f": a significant decline beyond the tolerance {100 * tolerance:.2f} pts"
        elif significant:
            line += f": a significant decline, within the tolerance {100 * tolerance:.2f} pts"
        return self.result(
            name, status, [line, *note], **tr.to_dict(), tolerance=tolerance, p_alarm=tr.p_value
        )
