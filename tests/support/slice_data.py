"""Records with categorical metadata for the slices tests (checks, stats, reports)."""

from __future__ import annotations

from typing import Any

from task_specs import task_spec

from pytest_parity.records import ItemRecord

T = task_spec("lc")


def side(score: float | None) -> dict[str, Any]:
    return {"text": "", "finish_reason": "stop", "score": score, "parsed": True,
            "category": "correct" if score else "wrong_answer", "direction": "C" if score else "W",
            "error": None if score is not None else "down", "latency_s": 0.0, "cached": False,
            "facts": None, "trajectory": None}  # fmt: skip


def rec(i: int, meta: dict[str, Any] | None, old: float | None, new: float | None) -> ItemRecord:
    return {"id": f"i{i}", "prompt": "p", "reference": "r", "cluster": None, "metadata": meta,
            "baseline": side(old), "candidate": side(new)}  # type: ignore[typeddict-item]  # fmt: skip


def records() -> list[ItemRecord]:
    """math: 40 items, the candidate wrong on 4 the baseline got right (b=4, c=0, -10 pts);
    history: 20 items, the candidate right on 2 the baseline got wrong (b=0, c=2, +10 pts);
    one art item the candidate never answered (not paired: in no slice)."""
    out: list[ItemRecord] = []
    for i in range(40):
        out.append(rec(len(out), {"subject": "math", "level": i % 2, "score_x": 0.5 * i},
                       1.0, 0.0 if i < 4 else 1.0))  # fmt: skip
    for i in range(20):
        out.append(rec(len(out), {"subject": "history", "level": i % 2, "id_": f"h{i}"},
                       0.0 if i < 2 else 1.0, 1.0))  # fmt: skip
    out.append(rec(len(out), {"subject": "art"}, 1.0, None))
    return out
