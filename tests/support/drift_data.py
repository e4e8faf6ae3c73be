"""Shadow pairs for the drift tests, written through the store API (the proxy's row format).

Each pair's prompt names it (``Question p<i>``) and each answer carries its quality
(``quality=N``), so the scripted judge (tests/judge_script.py) prefers the better answer: a
stream's paired judged score is known by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pytest_parity.store import open_store, record_values

T0 = 1_780_000_000.0  # 2026-05-28T...Z: the simulated stream's first pair


def pair(
    i: int,
    ts: float,
    *,
    old_q: int = 3,
    new_q: int = 3,
    segment: str = "default",
    serving: str = "baseline",
    new_latency: float = 0.2,
    old_latency: float = 0.2,
    new_error: str | None = None,
    content: str | None = None,
) -> dict[str, Any]:
    shadow = "candidate" if serving == "baseline" else "baseline"
    q = {"baseline": old_q, "candidate": new_q}
    lat = {"baseline": old_latency, "candidate": new_latency}
    rec: dict[str, Any] = {
        "ts": ts,
        "instance": "test",
        "segment": segment,
        "path": "/v1/chat/completions",
        "protocol": "chat",
        "model": "m",
        "stream": True,
        "request": {
            "model": "m",
            "messages": [{"role": "user", "content": content or f"Question p{i}: say something."}],
        },
        "request_hash": f"h{i}",
        "serving_stack": serving,
        "shadow_stack": shadow,
    }
    for side, stack in (("serving", serving), ("shadow", shadow)):
        rec[f"{side}_status"] = 200
        rec[f"{side}_text"] = f"Answer {i}: quality={q[stack]}."
        rec[f"{side}_finish"] = "stop"
        rec[f"{side}_latency"] = lat[stack]
        rec[f"{side}_ttft"] = lat[stack] / 4
        rec[f"{side}_completion_tokens"] = 5
    if new_error is not None:
        side = "shadow" if shadow == "candidate" else "serving"
        rec[f"{side}_status"] = 503
        rec[f"{side}_error"] = new_error
        rec[f"{side}_text"] = None
    return rec


def write_pairs(url: str, recs: Iterable[dict[str, Any]]) -> int:
    rows = [record_values(r) for r in recs]
    with open_store(url) as st:
        st.write(rows)
    return len(rows)


def stream(
    n: int,
    *,
    start: int = 0,
    t0: float = T0,
    every: float = 60.0,
    new_q: Callable[[int], int] = lambda i: 3,
    old_q: Callable[[int], int] = lambda i: 3,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Pairs ``start .. start + n - 1``, one every ``every`` seconds from ``t0``."""
    return [
        pair(i, t0 + i * every, old_q=old_q(i), new_q=new_q(i), **kw)
        for i in range(start, start + n)
    ]
