"""Captured-traffic selection at scale, measured side by side in one run.

    .venv/bin/python bench/traffic_select.py               # 1,000,000 records (~1-2 min)
    .venv/bin/python bench/traffic_select.py --records 200000

Writes N OpenAI-format gateway log lines (system prompt, user turn, every tenth a tool-call
conversation, sampling parameters, the production answer, route / tenant / feedback fields;
1% exact duplicates) to a temporary file, then, each in its own process so peak memory is its
own:

  1. floor: read every line and ``json.loads`` it, nothing else;
  2. ``source: traffic`` end to end (contract validation, the openai importer, the seeded slice of
     ``--count`` items with de-duplication by request hash, redaction of the chosen items, items
     built): seconds, records/s, peak RSS;
  3. the same slice stratified, ``per_segment`` over three routes.

Targets (issue 17): peak RSS < 500 MB with 1,000,000 records; a 10,000-item slice in under a
minute. The ratio selection / floor says what the slice costs beyond reading the JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("support", "search", "billing")


def write_records(path: Path, n: int) -> int:
    """N log lines, written streaming (this process never holds them)."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            j = i - 1 if i % 100 == 99 else i  # 1% exact duplicates of the previous request
            messages: list[dict[str, object]] = [
                {"role": "system", "content": f"You are the {ROUTES[j % 3]} assistant."},
                {"role": "user", "content": f"Order {j}: where is my parcel? Mail me at u{j}@x.io"},
            ]
            body: dict[str, object] = {
                "model": "prod",
                "messages": messages,
                "temperature": 0.7,
                "max_tokens": 256,
                "stream": False,
            }
            if j % 10 == 0:
                call = {
                    "id": f"c{j}",
                    "type": "function",
                    "function": {"name": "track", "arguments": json.dumps({"order": j})},
                }
                messages += [
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": f"c{j}", "content": "in transit"},
                ]
                body["tools"] = [
                    {
                        "type": "function",
                        "function": {
                            "name": "track",
                            "parameters": {
                                "type": "object",
                                "properties": {"order": {"type": "integer"}},
                            },
                        },
                    }
                ]
            line = {
                "id": f"req-{i}",
                "timestamp": 1_790_000_000 + i,
                "metadata": {
                    "route": ROUTES[j % 3],
                    "tenant": f"t{j % 50}",
                    "conversation_id": f"conv-{j // 3}",
                },
                "feedback": {"thumbs": "up" if i % 7 else "down"},
                "request": body,
                "response": {
                    "id": f"chatcmpl-{i}",
                    "object": "chat.completion",
                    "created": 1_790_000_000,
                    "model": "prod-2026",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {
                                "role": "assistant",
                                "content": f"Your parcel {j} is in transit.",
                            },
                        }
                    ],
                    "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
                },
            }
            fh.write(json.dumps(line) + "\n")
    return path.stat().st_size


def child(mode: str, path: str, count: int) -> None:
    """Runs in its own process; prints one JSON line with its numbers."""
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    selected = 0
    if mode == "floor":
        n = 0
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                json.loads(line)
                n += 1
        selected = n
    else:
        from pytest_parity import registry
        from pytest_parity.contract.spec import contract_from_data

        traffic: dict[str, object] = {
            "format": "openai",
            "segment": "metadata.route",
            "conversation": "metadata.conversation_id",
            "signals": {"thumbs": "feedback.thumbs"},
            "redact": ["email"],
            "seed": 7,
        }
        traffic["per_segment" if mode == "stratified" else "count"] = (
            count // 3 if mode == "stratified" else count
        )
        raw = {
            "baseline": {"kind": "captured"},
            "candidate": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            "tasks": [
                {
                    "name": "bench",
                    "source": "traffic",
                    "path": path,
                    "scorer": "exact",
                    "traffic": traffic,
                }
            ],
        }
        contract = contract_from_data(raw, Path(path).parent / "contract.yaml")
        source = registry.sources.get("traffic")
        task = contract.tasks[0]
        source.prepare(task)
        items = list(source.items(task))
        selected = len(items)
        assert "@x.io" not in json.dumps([i.messages for i in items])
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"mode": mode, "seconds": seconds, "rss_mb": rss_mb, "selected": selected}))


def run_child(mode: str, path: Path, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(count)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "COUNT"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.jsonl"
        t0 = time.perf_counter()
        size = write_records(path, args.records)
        print(
            f"wrote {args.records:,} records ({size / 1e6:,.0f} MB) in"
            f" {time.perf_counter() - t0:.1f} s"
        )
        floor = run_child("floor", path, args.count)
        sel = run_child("count", path, args.count)
        strat = run_child("stratified", path, args.count)
    n = args.records
    print(f"{'':34}{'seconds':>9}{'records/s':>12}{'peak RSS MB':>13}{'selected':>10}")
    for label, r in (
        ("read + json.loads (floor)", floor),
        (f"source: traffic, count {args.count:,}", sel),
        (f"source: traffic, per_segment {args.count // 3:,}", strat),
    ):
        print(
            f"{label:34}{r['seconds']:9.1f}{n / r['seconds']:12,.0f}{r['rss_mb']:13.0f}"
            f"{int(r['selected']):10,}"
        )
    print(
        f"selection / floor time: {sel['seconds'] / floor['seconds']:.2f}x;"
        f" stratified / floor: {strat['seconds'] / floor['seconds']:.2f}x"
    )
    ok_mem = max(sel["rss_mb"], strat["rss_mb"]) < 500
    ok_time = sel["seconds"] < 60
    print(
        f"target peak RSS < 500 MB: {'met' if ok_mem else 'MISSED'}"
        f" ({max(sel['rss_mb'], strat['rss_mb']):.0f} MB);"
        f" target {args.count:,}-item slice < 60 s: {'met' if ok_time else 'MISSED'}"
        f" ({sel['seconds']:.1f} s)"
    )
    return 0 if ok_mem and ok_time else 1


if __name__ == "__main__":
    raise SystemExit(main())
