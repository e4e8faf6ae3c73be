"""The exploratory slices of a task: its paired delta within each value of a metadata field.

A task's ``slice_by`` names categorical metadata fields (``subject``, ``level``); ``auto``, the
default, takes every field with 2 to :data:`AUTO_MAX_VALUES` values of which each holds at least
:data:`AUTO_MIN_ITEMS` paired items. Each slice gets the task's own paired interval and
non-inferiority rule (stats/slices.py): its items, both scores, the delta and its interval, the
flips b/c and a status against the task's tolerance.

Slices are not a check: they add no test and never change a task's verdict or the run's. With K
slices, one looks worse than the tolerance by chance far more often than alpha, so a slice is a
question for a person, not an answer; the reports say so next to every breakdown and give the
worst slice's p Holm-adjusted over the K slices. A slice that must hold is declared as a task
of its own (its items in their own file), where the gate tests it.

The result is plain builtins (it crosses xdist with the task's result): ``TaskResult["slices"]``.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_parity.records import ItemRecord

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec

__all__ = ["AUTO_MAX_VALUES", "AUTO_MIN_ITEMS", "MAX_SLICES", "auto_fields", "slice_breakdown"]

AUTO_MAX_VALUES = 12  # auto: a field with more values is an identifier or a number, not a slice
AUTO_MIN_ITEMS = 10  # auto: every slice of the field holds at least this many paired items
AUTO_MAX_FIELDS = 4  # auto: at most this many fields (in the order the items name them)
MAX_SLICES = 64  # a named field with more values gets a note instead (mmlu has 57 subtasks)
# Metadata the sources and the judge figures write about an item, never a slice of it.
NOT_SLICES = frozenset(
    {"context_tokens", "token_count", "human_score", "human_preference", "ttft", "ts"}
)


def label(value: Any) -> str | None:
    """A metadata value as a slice label; None for a missing value or one that is not a single
    scalar (a list, a mapping, NaN)."""
    if value is None or isinstance(value, list | dict | tuple):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else None
    return str(value)


def _paired(records: Sequence[ItemRecord]) -> list[ItemRecord]:
    return [
        r
        for r in records
        if r["baseline"]["score"] is not None and r["candidate"]["score"] is not None
    ]


def auto_fields(task: TaskSpec, paired: Sequence[ItemRecord]) -> tuple[list[str], list[str]]:
    """The fields ``slice_by: auto`` takes, and those left over past AUTO_MAX_FIELDS."""
    seen: dict[str, Counter[str]] = {}
    bad: set[str] = set()
    for r in paired:
        for key, value in (r.get("metadata") or {}).items():
            if key in bad:
                continue
            # categorical values only: text, booleans, integers (a float is a measurement)
            if value is not None and not isinstance(value, str | bool | int):
                bad.add(key)
                continue
            name = label(value)
            if name is not None:
                seen.setdefault(key, Counter())[name] += 1
    fields = [
        key
        for key, counts in seen.items()
        if key not in bad
        and key not in NOT_SLICES
        and key != task.cluster_key  # slicing by the cluster key is a choice to name
        and 2 <= len(counts) <= AUTO_MAX_VALUES
        and min(counts.values()) >= AUTO_MIN_ITEMS
    ]
    return fields[:AUTO_MAX_FIELDS], fields[AUTO_MAX_FIELDS:]


def slice_breakdown(
    task: TaskSpec, records: Sequence[ItemRecord], seed: int
) -> dict[str, Any] | None:
    """The task's slices per field (see the module docstring); None when there is nothing to
    show (no field qualifies for auto, or ``slice_by: false``)."""
    if task.slice_by == ():
        return None
    paired = _paired(records)
    notes: list[str] = []
    if task.slice_by == "auto":
        fields, more = auto_fields(task, paired)
        if more:
            notes.append(
                f"{len(more)} more metadata fields have few values ({', '.join(more)}); name"
                " the ones to read with slice_by"
            )
        if not fields:
            return None
    else:
        fields = list(task.slice_by)
    known = sorted({k for r in paired for k in (r.get("metadata") or {})})
    out: list[dict[str, Any]] = []
    for field in fields:
        got = _field(task, paired, field, seed, known)
        if isinstance(got, str):
            notes.append(got)
        else:
            out.append(got)
    _adjust(out)
    k = sum(len(f["slices"]) for f in out)
    return {
        "by": "auto" if task.slice_by == "auto" else list(task.slice_by),
        "fields": out,
        "notes": notes,
        "k": k,
        "tolerance": task.tolerance,
        "min_items": task.min_items,
    }


def _field(
    task: TaskSpec, paired: Sequence[ItemRecord], field: str, seed: int, known: list[str]
) -> dict[str, Any] | str:
    """One field's slices, or the sentence saying why it has none."""
    import numpy as np

    from pytest_parity import stats

    labels: list[str] = []
    old: list[float] = []
    new: list[float] = []
    clusters: list[str] = []
    unsliced = 0
    for r in paired:
        name = label((r.get("metadata") or {}).get(field))
        if name is None:
            unsliced += 1
            continue
        labels.append(name)
        old.append(float(r["baseline"]["score"] or 0.0))
        new.append(float(r["candidate"]["score"] or 0.0))
        clusters.append(str((r.get("metadata") or {}).get(task.cluster_key or "", "")))
    if not labels:
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        fields = f" (fields seen: {', '.join(known[:12])})" if known and not close else ""
        return (
            f"slice_by: no paired item of task {task.name} has a single value in"
            f" metadata.{field}{hint}{fields}"
        )
    distinct = len(set(labels))
    if distinct > MAX_SLICES:
        return (
            f"slice_by: metadata.{field} has {distinct} values in task {task.name}, more than"
            f" {MAX_SLICES}: not a category to slice by (an identifier or a number?)"
        )
    rng = np.random.default_rng(stats.task_seed(seed, f"{task.name}/slices/{field}"))
    estimates = stats.slice_estimates(
        labels,
        old,
        new,
        tolerance=task.tolerance,
        alpha=task.alpha,
        rng=rng,
        clusters=clusters if task.cluster_key and task.cluster_key != field else None,
    )
    rows = []
    for e in estimates:
        row = e.to_dict()
        if e.n < task.min_items and row["status"] == "PASS":
            row["status"] = "INCONCLUSIVE"  # as a task's own delta: too few items to pass
            row["few_items"] = True
        rows.append(row)
    return {"field": field, "slices": rows, "unsliced": unsliced}


def _adjust(fields: list[dict[str, Any]]) -> None:
    """Holm over every slice of the task: each slice's ``p_holm``; per field its worst slice
    (the smallest p of being worse than the tolerance) and how many look worse than it."""
    from pytest_parity import stats

    rows = [s for f in fields for s in f["slices"]]
    if not rows:
        return
    for row, q in zip(rows, stats.holm([float(s["p_fail"]) for s in rows]), strict=True):
        row["p_holm"] = q
    for f in fields:
        worst = min(f["slices"], key=lambda s: (s["p_fail"], s["delta"]))
        f["worst"] = worst["value"]
        f["worse"] = sum(1 for s in f["slices"] if s["status"] == "FAIL")
