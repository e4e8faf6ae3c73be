"""Latency preserved: paired p50 / p99 of the answer time and of the time to first token.

Over the items both stacks answered, each gated quantile's relative change ``q(new) / q(old) - 1``
gets a paired bootstrap interval (:mod:`pytest_parity.stats.quantiles`); against its own
tolerance (a share of the baseline's quantile, e.g. 0.25 = 25% slower) the rule is the
non-inferiority one turned round, since slower is worse: PASS when the interval's upper end is
below the tolerance, FAIL when its lower end is above it and the quantile grew by more than
``floor_s`` seconds (a 2 ms answer becoming 3 ms is +50% and nobody's problem), INCONCLUSIVE
otherwise. The test's status is the worst of its quantiles'.

Latencies come from each side's record (``latency_s``: request to last byte) and the time to
first token from ``metadata["ttft"][role]`` (the shadow source stores both per pair; a streamed
answer only). The check belongs where both stacks answered the same requests under the same
load: shadow pairs (``source: shadow`` turns it on by default); on a gate run it measures the
harness's own load and cached answers carry no fresh timing, so elsewhere it runs only when a task
names it. A quantile with fewer than ``min_pairs`` paired timings is not gated (SKIP when none is).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.checks.base import Check, CheckContext
from pytest_parity.checks.pairs import paired
from pytest_parity.contract.spec import TaskSpec
from pytest_parity.records import CheckResult, ItemRecord, Status, check

if TYPE_CHECKING:
    from pytest_parity.records import TaskRun

# gated quantile -> (what is timed, q, default tolerance as a share of the baseline's value)
QUANTILES: dict[str, tuple[str, float, float]] = {
    "p50": ("latency", 0.50, 0.10),
    "p99": ("latency", 0.99, 0.25),
    "ttft_p50": ("ttft", 0.50, 0.10),
    "ttft_p99": ("ttft", 0.99, 0.25),
}
OPTION_KEYS = (*QUANTILES, "floor_s", "min_pairs")
FLOOR_S = 0.005
MIN_PAIRS = 30
_ORDER = {"PASS": 0, "INCONCLUSIVE": 1, "FAIL": 2}


def _timings(records: list[ItemRecord], what: str) -> tuple[list[float], list[float]]:
    old: list[float] = []
    new: list[float] = []
    for r in records:
        a: Any
        b: Any
        if what == "latency":
            a, b = r["baseline"]["latency_s"], r["candidate"]["latency_s"]
            if r["baseline"]["cached"] or r["candidate"]["cached"] or not (a > 0 and b > 0):
                continue  # no fresh timing for this pair
        else:
            ttft = (r["metadata"] or {}).get("ttft") or {}
            a, b = ttft.get("baseline"), ttft.get("candidate")
            if a is None or b is None:
                continue
        old.append(float(a))
        new.append(float(b))
    return old, new


class LatencyCheck(Check):
    name = "latency"
    title = "Latency preserved (paired quantiles)"
    column = "latency"
    default = False

    def options(
        self, raw: Mapping[str, Any], where: str, v: Any, task: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """``checks: {latency: {p50: 0.1, p99: 0.25, ttft_p50: 0.1, ttft_p99: off, floor_s,
        min_pairs}}``: each tolerance a share of the baseline's quantile; ``off`` (or false)
        reports the quantile without gating it."""
        v.keys(raw, where, OPTION_KEYS)
        out: dict[str, Any] = {}
        for key, (_, _, default) in QUANTILES.items():
            value = raw.get(key, default)
            if value is False or value == "off":
                out[key] = None
                continue
            out[key] = v.number(
                value, f"{where}.{key}", 0, 100, hint="a share of the baseline's value: 0.25 = 25%"
            )
        out["floor_s"] = v.number(
            raw.get("floor_s", FLOOR_S), f"{where}.floor_s", 0, 3600, lo_open=False
        )
        out["min_pairs"] = v.integer(raw.get("min_pairs", MIN_PAIRS), f"{where}.min_pairs", 2)
        return MappingProxyType(out)

    def run(self, task: TaskSpec, run: TaskRun, ctx: CheckContext) -> list[CheckResult]:
        import numpy as np

        from pytest_parity.stats.intervals import task_seed
        from pytest_parity.stats.quantiles import paired_quantile_change

        opts = {**{k: d for k, (_, _, d) in QUANTILES.items()}, **self.settings(task)}
        floor = float(opts.get("floor_s", FLOOR_S))
        min_pairs = int(opts.get("min_pairs", MIN_PAIRS))
        records = paired(run.records)
        numbers: dict[str, Any] = {"floor_s": floor, "quantiles": {}}
        reasons: list[str] = []
        status: Status = "SKIP"
        series = {what: _timings(records, what) for what in ("latency", "ttft")}
        for key, (what, q, _) in QUANTILES.items():
            tol = opts.get(key)
            old, new = series[what]
            label = f"{'TTFT ' if what == 'ttft' else ''}p{round(q * 100)}"
            if len(old) < min_pairs:
                if tol is not None and old:
                    reasons.append(
                        f"{label}: only {len(old)} paired timings (min_pairs {min_pairs})"
                    )
                continue
            rng = np.random.default_rng(task_seed(ctx.seed, f"{task.name}/latency/{key}"))
            ch = paired_quantile_change(np.asarray(old), np.asarray(new), q, rng, alpha=task.alpha)
            entry: dict[str, Any] = {**ch.to_dict(), "tolerance": tol}
            shown = (
                f"{label} {1000 * ch.old:.1f} -> {1000 * ch.new:.1f} ms"
                f" ({100 * ch.change:+.1f}%, interval"
                f" {100 * ch.lower:+.1f}%..{100 * ch.upper:+.1f}%"
                f" over {ch.n} pairs"
            )
            if tol is None:
                entry["status"] = "SKIP"
                reasons.append(f"{shown}; not gated)")
            elif ch.upper < tol:
                entry["status"] = "PASS"
                reasons.append(f"{shown}; within +{100 * tol:g}%)")
            elif ch.lower > tol and ch.new - ch.old > floor:
                entry["status"] = "FAIL"
                reasons.append(f"{shown}; slower than the +{100 * tol:g}% tolerance)")
            else:
                entry["status"] = "INCONCLUSIVE"
                reasons.append(f"{shown}; cannot tell against +{100 * tol:g}%)")
            numbers["quantiles"][key] = entry
        gated = [e["status"] for e in numbers["quantiles"].values() if e["status"] != "SKIP"]
        if gated:
            status = max(gated, key=lambda s: _ORDER[s])
        if not numbers["quantiles"] and not reasons:
            reasons.append("no paired timings to compare (cached answers carry none)")
        return [check(self.name, status, reasons, **numbers)]
