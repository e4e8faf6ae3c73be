"""The slice: which captured requests become items, chosen reproducibly in bounded memory.

Filters, in order: malformed records (counted, first line numbers kept), the time window
(``since`` / ``until``; a record without a time is outside any window), records without a
production answer (``require_response``), another segment (``only_segment``, per-segment tasks).

Sampling is by hash, never by position: every request gets a priority, a 64-bit hash of the seed
and the request (its messages, tools and parameters), uniform in [0, 1). ``rate`` keeps the
requests whose priority is below it (the same request is in or out for a seed, however the file
is ordered or cut); ``count`` keeps the ``count`` distinct requests of lowest priority (a uniform
sample without replacement, held in a heap of ``count`` entries: a million records stream through
in the memory of the slice); ``per_segment`` does the same within each segment (stratified, equal
allocation). Duplicates share a priority, so de-duplication by request hash costs no memory
beyond the slice: the first occurrence in the file is kept.

Lines that are not JSON or hold no request are counted as malformed as they are read; the finer
checks of a request (every message's role and content) run only on the requests the slice would
keep, so with ``count`` the malformed count covers the examined records (all of a small file,
about ``count * ln(records / count)`` of a large one) and the threshold is a share of those.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_parity.sources.traffic.records import (
    Captured,
    Malformed,
    field_path,
    request_digest,
)

__all__ = ["MISSING_SEGMENT", "SliceSpec", "SliceStats", "select"]

MISSING_SEGMENT = "(none)"
SHOWN_LINES = 5


@dataclass(frozen=True)
class SliceSpec:
    seed: int = 0
    since: float | None = None
    until: float | None = None
    rate: float | None = None
    count: int | None = None
    per_segment: int | None = None
    segment: str | None = None  # field path of the segment value
    only_segment: str | None = None
    dedup: bool = True
    require_response: bool = False
    max_segments: int = 10_000


@dataclass
class SliceStats:
    read: int = 0
    malformed: int = 0
    malformed_lines: list[tuple[int, str]] = field(default_factory=list)
    outside_window: int = 0
    no_response: int = 0
    other_segment: int = 0
    sampled_out: int = 0
    duplicates: int = 0
    eligible: dict[str, int] = field(default_factory=dict)  # per segment, before sampling
    selected: int = 0


def segment_of(rec: Captured, path: str | None) -> str:
    if path is None:
        return MISSING_SEGMENT
    value = field_path(rec.source, path)
    if value is None or isinstance(value, (dict, list)):
        return MISSING_SEGMENT
    return str(value)


def select(
    records: Iterable[Captured | Malformed], spec: SliceSpec, stats: SliceStats
) -> list[tuple[Captured, str]]:
    """The chosen records with their segment, in file order (see the module docstring)."""
    seed_bytes = spec.seed.to_bytes(8, "big", signed=True)
    threshold = None if spec.rate is None else int(spec.rate * 2.0**64)
    k = spec.per_segment if spec.per_segment is not None else spec.count
    # bottom-k heaps (max-heaps by negated priority), one per segment under per_segment
    heaps: dict[str, list[tuple[int, int, Captured]]] = {}
    in_heap: dict[str, dict[bytes, int]] = {}
    kept: list[tuple[int, Captured, str]] = []  # rate-only (or everything) mode
    kept_keys: set[bytes] = set()
    seq = 0
    for rec in records:
        stats.read += 1
        if isinstance(rec, Malformed):
            _malformed(stats, rec.line, rec.reason)
            continue
        if spec.since is not None or spec.until is not None:
            ts = rec.timestamp
            if (
                ts is None
                or (spec.since is not None and ts < spec.since)
                or (spec.until is not None and ts >= spec.until)
            ):
                stats.outside_window += 1
                continue
        if spec.require_response and not rec.has_response:
            stats.no_response += 1
            continue
        seg = segment_of(rec, spec.segment)
        if spec.only_segment is not None and seg != spec.only_segment:
            stats.other_segment += 1
            continue
        # one keyed hash: the first 8 bytes are the priority, all 16 the de-duplication key
        key = rec.key = request_digest(rec.messages, rec.tools, rec.params, seed_bytes)
        prio = int.from_bytes(key[:8], "big")
        if threshold is not None and prio >= threshold:
            stats.sampled_out += 1
            continue
        if seg not in stats.eligible and len(stats.eligible) >= spec.max_segments:
            raise ValueError(
                f"more than {spec.max_segments} segments in {spec.segment!r}"
                " (hint: segment by a field with a few values: route, tenant, use case)"
            )
        stats.eligible[seg] = stats.eligible.get(seg, 0) + 1
        seq += 1
        if k is None:
            if spec.dedup and key in kept_keys:
                stats.duplicates += 1
                continue
            problem = rec.problem()
            if problem is not None:
                _malformed(stats, rec.line, problem)
                continue
            if spec.dedup:
                kept_keys.add(key)
            kept.append((seq, rec, seg))
            continue
        slot = seg if spec.per_segment is not None else ""
        heap = heaps.setdefault(slot, [])
        keys = in_heap.setdefault(slot, {})
        if spec.dedup and key in keys:
            stats.duplicates += 1
            continue
        # ties (duplicates when dedup is off) keep the earlier record: -seq orders them
        entry = (-prio, -seq, rec)
        if len(heap) >= k and entry <= heap[0]:
            continue
        problem = rec.problem()  # only the requests that would be kept pay for the full check
        if problem is not None:
            _malformed(stats, rec.line, problem)
            continue
        if len(heap) < k:
            heapq.heappush(heap, entry)
            keys[key] = seq
        else:
            dropped = heapq.heappushpop(heap, entry)
            keys.pop(dropped[2].key or b"", None)
            keys[key] = seq
    if k is not None:
        for heap in heaps.values():
            for _, neg_seq, rec in heap:
                kept.append((-neg_seq, rec, segment_of(rec, spec.segment)))
    kept.sort(key=lambda t: t[0])
    stats.selected = len(kept)
    return [(rec, seg) for _, rec, seg in kept]


def _malformed(stats: SliceStats, line: int, reason: str) -> None:
    stats.malformed += 1
    if len(stats.malformed_lines) < SHOWN_LINES:
        stats.malformed_lines.append((line, reason))
    elif line < stats.malformed_lines[-1][0]:  # the heap sees lines out of order: keep the first
        stats.malformed_lines[-1] = (line, reason)
    stats.malformed_lines.sort()


def describe_stats(stats: SliceStats, spec: SliceSpec) -> str:
    """One line: what was read, skipped and chosen."""
    parts = [f"{stats.read:,} records read"]
    if stats.malformed:
        shown = ", ".join(str(n) for n, _ in stats.malformed_lines)
        first = stats.malformed_lines[0][1] if stats.malformed_lines else ""
        parts.append(f"{stats.malformed:,} malformed skipped (lines {shown}; first: {first})")
    for count, what in (
        (stats.outside_window, "outside the time window"),
        (stats.no_response, "without a production answer"),
        (stats.other_segment, "in other segments"),
        (stats.sampled_out, f"not sampled (rate {spec.rate:g})" if spec.rate else "not sampled"),
        (stats.duplicates, "duplicate requests dropped"),
    ):
        if count:
            parts.append(f"{count:,} {what}")
    how = []
    if spec.count is not None:
        how.append(f"count {spec.count:,}")
    if spec.per_segment is not None:
        how.append(f"{spec.per_segment:,} per segment")
    how.append(f"seed {spec.seed}")
    parts.append(f"{stats.selected:,} selected ({', '.join(how)})")
    return "; ".join(parts)
