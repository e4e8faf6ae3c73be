"""What a traffic task's records say per segment and against production's own signals.

Pure functions on the run's records (plain dicts), for the task's notes in every report:

- per segment (``metadata["segment"]``): items, both stacks' mean scores and the delta;
- per production signal (``metadata["signals"]``: thumbs, click-through, an outcome), read as a
  polarity (up / down): how the scorer (the pairwise judge) rated the production answer where
  users rated it up and where they rated it down, and how often its preference between the two
  stacks agrees with the signal (it should prefer the other answer where production was rated
  down, and production's answer where it was rated up), overall and per segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Agreement", "agreements", "polarity", "segment_lines", "signal_lines"]

_UP = frozenset(
    {
        "up",
        "thumbs_up",
        "thumbsup",
        "+1",
        "positive",
        "good",
        "like",
        "liked",
        "yes",
        "true",
        "accepted",
        "clicked",
        "success",
        "resolved",
        "1",
    }
)
_DOWN = frozenset(
    {
        "down",
        "thumbs_down",
        "thumbsdown",
        "-1",
        "negative",
        "bad",
        "dislike",
        "disliked",
        "no",
        "false",
        "rejected",
        "failure",
        "failed",
        "unresolved",
        "0",
    }
)


def polarity(value: Any) -> int | None:
    """+1 (the production answer was received well), -1 (badly), None (no reading)."""
    if isinstance(value, bool):
        return 1 if value else -1
    if isinstance(value, int | float):
        return 1 if value == 1 else -1 if value in (0, -1) else None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _UP:
            return 1
        if s in _DOWN:
            return -1
    return None


def _scored(records: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], float, float]]:
    out = []
    for r in records:
        b, c = r["baseline"]["score"], r["candidate"]["score"]
        if b is not None and c is not None:
            out.append((r, float(b), float(c)))
    return out


def segment_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    by: dict[str, list[tuple[float, float]]] = {}
    for r, b, c in _scored(records):
        seg = str((r.get("metadata") or {}).get("segment", "(none)"))
        by.setdefault(seg, []).append((b, c))
    if len(by) < 2:
        return []
    lines = []
    for seg in sorted(by, key=lambda s: (-len(by[s]), s)):
        pairs = by[seg]
        n = len(pairs)
        old = sum(b for b, _ in pairs) / n
        new = sum(c for _, c in pairs) / n
        lines.append(
            f"segment {seg}: {n} items, old {old:.1%}, new {new:.1%}, delta"
            f" {100 * (new - old):+.2f} pts"
        )
    return lines


@dataclass(frozen=True)
class Agreement:
    """The scorer against one production signal, over some items (one segment, or all).

    ``decided`` items are those where the scorer preferred one stack (scores differ); the
    preference agrees with the signal where it prefers the other stack's answer to the
    baseline's on an item rated down, and the baseline's on an item rated up."""

    n: int  # items with a reading of the signal (and both answers scored)
    up: int
    down: int
    old_up: float | None  # the baseline answer's mean score where rated up
    old_down: float | None  # ... where rated down
    decided: int
    agree: int

    @property
    def rate(self) -> float | None:
        """The share of ``decided`` items where the preference agrees with the signal."""
        return self.agree / self.decided if self.decided else None


def agreements(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str | None, Agreement]]:
    """signal name -> segment (``None``: all items) -> :class:`Agreement`; the segments only
    where the items hold more than one."""
    rows: dict[str, list[tuple[str, int, float, float]]] = {}
    for r, b, c in _scored(records):
        meta = r.get("metadata") or {}
        for name, value in (meta.get("signals") or {}).items():
            pol = polarity(value)
            if pol is not None:
                rows.setdefault(name, []).append((str(meta.get("segment", "(none)")), pol, b, c))
    out: dict[str, dict[str | None, Agreement]] = {}
    for name, data in rows.items():
        per: dict[str | None, Agreement] = {None: _agreement(data)}
        segments = sorted({s for s, *_ in data})
        if len(segments) > 1:
            for seg in segments:
                per[seg] = _agreement([d for d in data if d[0] == seg])
        out[name] = per
    return out


def signal_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for name, per in agreements(records).items():
        for seg, agreement in per.items():
            head = f"signal {name}: " if seg is None else f"signal {name}, segment {seg}: "
            lines.append(head + _line(agreement))
    return lines


def _agreement(data: Sequence[tuple[str, int, float, float]]) -> Agreement:
    up = [b for _, p, b, _ in data if p > 0]
    down = [b for _, p, b, _ in data if p < 0]
    decided = [(p, c - b) for _, p, b, c in data if c != b]
    agree = sum(1 for p, d in decided if (p > 0 and d < 0) or (p < 0 and d > 0))
    return Agreement(
        n=len(data),
        up=len(up),
        down=len(down),
        old_up=sum(up) / len(up) if up else None,
        old_down=sum(down) / len(down) if down else None,
        decided=len(decided),
        agree=agree,
    )


def _line(a: Agreement) -> str:
    parts = [f"{a.n} items rated ({a.up} up, {a.down} down)"]
    if a.old_up is not None:
        parts.append(f"old answer scored {a.old_up:.2f} where rated up")
    if a.old_down is not None:
        parts.append(f"{a.old_down:.2f} where rated down")
    if a.rate is not None:
        parts.append(
            f"the scorer's preference agrees with the signal on {a.rate:.0%}"
            f" of {a.decided} items with a preference"
        )
    else:
        parts.append("no item with a preference between the stacks")
    return "; ".join(parts)
