"""``--parity-plan``: gather what each task looks like, print the plan, gate nothing.

Three ways to see a task before the migration (report/plan.py turns them into the plan):

* a pilot (the default, ``--parity-plan-pilot=N``, 100 items): the first N items of the seeded
  random order early stopping uses, asked of both stacks (the cache keeps the answers, so a
  later early-stopping run asks them only once);
* an A/A recording (``--parity-plan-from=RECORDING``, a file ``--parity-record`` wrote): the
  recorded baseline answers against the baseline asked again on the pilot's items: the flip
  rate when nothing changed, the figure the items needed are planned from;
* a previous run (``--parity-plan-from=RUN.json``, a file ``--parity-json`` wrote): its observed
  flip rates (no latency: the wall time is then unknown); nothing is sent.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from pytest_parity.contract.spec import Contract
    from pytest_parity.records import ItemRecord, TaskRun
    from pytest_parity.report.plan import Observed

DEFAULT_PILOT = 100

__all__ = ["observe_records", "observe_result", "run_plan"]


def observe_records(
    records: list[ItemRecord], available: int | None, source: str, run: TaskRun | None = None
) -> Observed:
    """A task's observation from its paired records (a pilot or an A/A pass)."""
    from pytest_parity.report.plan import Observed

    pairs = [
        (r["baseline"]["score"], r["candidate"]["score"])
        for r in records
        if r["baseline"]["score"] is not None and r["candidate"]["score"] is not None
    ]
    n = len(pairs)
    d = [float(b) - float(a) for a, b in pairs]
    binary = all(a in (0.0, 1.0) and b in (0.0, 1.0) for a, b in pairs)
    flips = sum(1 for x in d if x != 0.0)
    spread = (flips / n if binary else sum(x * x for x in d) / n) if n else 0.0
    latency: dict[str, float] = {}
    for role in ("baseline", "candidate"):
        seen = [
            r[role]["latency_s"]
            for r in records
            if not r[role]["cached"] and r[role]["error"] is None
        ]
        if seen:
            latency[role] = sum(seen) / len(seen)
    return Observed(
        n=n,
        binary=binary,
        flips=flips,
        spread=spread,
        delta=sum(d) / n if n else 0.0,
        latency_s=latency,
        available=available,
        source=source,
    )


def observe_result(task: dict[str, Any]) -> Observed | None:
    """A task's observation from a previous run's --parity-json task entry."""
    from pytest_parity.report.plan import Observed

    numbers = (task.get("checks") or {}).get("delta", {}).get("numbers") or {}
    n = numbers.get("n")
    if not isinstance(n, int) or n <= 0:
        return None
    binary = numbers.get("b") is not None
    delta = float(numbers.get("delta") or 0.0)
    if binary:
        flips = int(numbers["b"]) + int(numbers["c"])
        spread = flips / n
    else:
        se = float(numbers.get("se") or 0.0)
        spread = n * se * se + delta * delta
        flips = round(float(numbers.get("flip_rate") or 0.0) * n)
    es = task.get("early_stop") or {}
    available = int(es.get("available") or task.get("n_items") or n)
    return Observed(n, binary, flips, spread, delta, {}, available, "previous run")


def _pilot(config: pytest.Config, contract: Contract, aa_from: Path | None) -> dict[str, Observed]:
    from pytest_parity.runner import Runner, TaskRunError
    from pytest_parity.session.options import option

    size = int(option(config, "plan-pilot") or DEFAULT_PILOT)
    if aa_from is not None:
        # A/A: the recorded baseline answers against the baseline asked again.
        base = replace(contract.baseline, kind="replay", recording=aa_from)
        again = replace(contract.baseline, role="baseline-aa")
        contract = replace(contract, baseline=base, candidate=again)
    runner = Runner(contract, cache=_cache(config, contract))
    out: dict[str, Observed] = {}
    for task in contract.tasks:
        try:
            run = runner.run(task, pilot=size)
        except TaskRunError as exc:
            print(f"{task.name}: no pilot: {exc}")
            continue
        what = "A/A recording" if aa_from is not None else "pilot"
        out[task.name] = observe_records(run.records, run.n_items, what, run)
    if runner.cache is not None:
        runner.cache.close()
    return out


def _cache(config: pytest.Config, contract: Contract) -> Any:
    from pytest_parity.session.options import cache_mode, cache_session, path_option

    mode = cache_mode(config)
    if mode == "off":
        return None
    from pytest_parity.endpoints.cache import ResponseCache

    directory = path_option(config, "cache-dir") or config.rootpath / ".parity-cache"
    return ResponseCache(
        directory, mode=mode, contract=contract.digest, session=cache_session(config)
    )


def run_plan(config: pytest.Config, contract: Contract, target: Path | None) -> list[str]:
    """Observe every task, print nothing; returns the plan's lines (and writes the JSON)."""
    import pytest

    from pytest_parity.report.plan import plan_lines, plan_task, write_plan
    from pytest_parity.session.options import path_option

    source = path_option(config, "plan-from")
    observed: dict[str, Observed] = {}
    if source is not None:
        if not source.is_file():
            raise pytest.UsageError(
                f"--parity-plan-from={source}: file not found (hint: a --parity-json file of an"
                " earlier run, or a recording written by --parity-record)"
            )
        data = _json_run(source)
        if data is not None:
            by_name = {t.get("task"): t for t in data.get("tasks", []) if isinstance(t, dict)}
            for task in contract.tasks:
                seen = observe_result(by_name.get(task.name) or {})
                if seen is not None:
                    observed[task.name] = seen
        else:
            observed = _pilot(config, contract, source)
    else:
        observed = _pilot(config, contract, None)
    plans = []
    lines: list[str] = []
    for task in contract.tasks:
        seen = observed.get(task.name)
        if seen is None or seen.n == 0:
            lines.append(f"{task.name}: nothing observed, no plan")
            continue
        concurrency = {
            "baseline": contract.baseline.max_concurrency,
            "candidate": contract.candidate.max_concurrency,
        }
        plans.append(plan_task(task, seen, concurrency, task.repeats))
    lines = plan_lines(contract, plans)[:1] + lines + plan_lines(contract, plans)[1:]
    if target is not None:
        write_plan(contract, plans, target)
        lines.append(f"wrote plan: {target}")
    return lines


def _json_run(path: Path) -> dict[str, Any] | None:
    """The file as a --parity-json run, or None when it is something else (a recording)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and "schema_version" in data and "tasks" in data:
        return data
    return None
