"""Shared by several test modules (moved out of test_report.py so no test module imports another)."""

from __future__ import annotations

from typing import Any

from pytest_parity import report
from pytest_parity.records import SCHEMA_VERSION, RunResult, TaskResult, check

HOSTILE = (
    "<script>alert(1)</script>",
    "</td></tr></table><b>broken</b>",
    '<img src=x onerror="alert(1)">',
    "\"'><svg onload=alert(1)>",
)


SCHEMA = report.SCHEMA_PATH


def _disagreements(task: str, k: int) -> list[dict[str, Any]]:
    """Rows as failures.sample_disagreements writes them."""
    out = []
    for i in range(k):
        bad = HOSTILE[i % len(HOSTILE)]
        out.append(
            {
                "id": f"{task}-{i:04d}",
                "kind": "regression",
                "prompt": f"Question {i}: what does the page say? {bad}",
                "reference": f"answer {i} </td>",
                "baseline_output": f"The answer is {i}.",
                "candidate_output": f"I think {bad}",
                "baseline_category": "correct",
                "candidate_category": "wrong_answer" if i % 2 else "unsafe_compliance",
                "baseline_score": 1.0,
                "candidate_score": 0.0,
                "baseline_finish_reason": "stop",
                "candidate_finish_reason": "length" if i == 1 else "stop",
                "reviewer_verdict": "",
            }
        )
    return out


def _categories(
    failed: list[str] | None = None, **cats: tuple[str, int, int, int, int, float]
) -> dict[str, Any]:
    """failure_modes numbers as failures.check_failure_modes writes them."""
    table = {}
    for name, (code, old, new, entered, left, p) in cats.items():
        status = "new" if old == 0 and new else "ok"
        if code == "C" or name == "wrong_answer":
            status = "not_gated"
        table[name] = {"direction": code, "baseline": old, "candidate": new, "entered": entered,
                       "left": left, "net_share": (entered - left) / 1000, "p_value": p,
                       "status": status, "examples": []}  # fmt: skip
    return {"n_paired": 1000, "excluded_infra": 0, "min_count": 5, "margin": 0.015,
            "categories": table, "failed": failed or []}  # fmt: skip


def _direction(table: dict[str, dict[str, int]], p: float, margin: float) -> dict[str, Any]:
    aw, wa = table["A"]["W"], table["W"]["A"]
    n = sum(sum(r.values()) for r in table.values())
    return {"table": table, "n_paired": n, "excluded_infra": 0, "a_to_w": aw, "w_to_a": wa,
            "net_share": (aw - wa) / n, "margin": margin, "p_value": p, "examples": []}  # fmt: skip


def _delta(status: str, delta: float, lo: float, hi: float, n: int, b: int, c: int, **kw: Any):  # type: ignore[no-untyped-def]
    numbers = {
        "delta": delta,
        "ci_low": lo,
        "ci_high": hi,
        "confidence": 0.9,
        "method": "tango" if b + c < 30 else "paired-bootstrap",
        "n": n,
        "b": b,
        "c": c,
        "flip_rate": (b + c) / n,
        "p_value": 0.31,
        "mde": 0.012,
        "items_needed": kw.pop("items_needed", None),
        "warn": kw.pop("warn", False),
        "se": 0.004,
        **kw,
    }
    reasons = {
        "PASS": [f"lower bound {lo * 100:+.2f} pts is above -tolerance"],
        "FAIL": [f"upper bound {hi * 100:+.2f} pts is below -tolerance: a real regression"],
        "INCONCLUSIVE": [
            "the interval straddles -tolerance",
            "about 2,400 paired items would settle it (1,400 more than the 1,000 run)",
        ],
    }[status]
    return check("delta", status, reasons, **numbers)  # type: ignore[arg-type]


def _task(
    name: str, verdict: str, base: float, cand: float, checks: list[Any], **kw: Any
) -> TaskResult:
    t: dict[str, Any] = {
        "task": name,
        "source": kw.pop("source", "golden"),
        "safety_critical": kw.pop("safety_critical", False),
        "tolerance": kw.pop("tolerance", 0.015),
        "alpha": 0.05,
        "n_items": kw.pop("n_items", 1000),
        "n_paired": kw.pop("n_paired", 1000),
        "baseline_score": base,
        "candidate_score": cand,
        "baseline_errors": 0,
        "candidate_errors": 1,
        "checks": {c["name"]: c for c in checks},
        "verdict": verdict,
        "error": None,
        "endpoints": {
            "baseline": {"model": "llama-3.1-8b-fp16", "engine": "vllm 0.6.3"},
            "candidate": {"model": "llama-3.1-8b-fp8", "engine": "sglang 0.4.1"},
        },
        "disagreements": kw.pop("disagreements", []),
        "disagreements_total": kw.pop("disagreements_total", 0),
        "data_digest": f"sha256-of-{name}-data",
    }
    t.update(kw)
    return t  # type: ignore[return-value]


def make_run() -> RunResult:
    direction_ok = {"C": {"C": 800, "A": 5, "W": 10}, "A": {"C": 6, "A": 60, "W": 4},
                    "W": {"C": 9, "A": 5, "W": 101}}  # fmt: skip
    direction_bad = {"C": {"C": 300, "A": 4, "W": 9}, "A": {"C": 1, "A": 40, "W": 22},
                     "W": {"C": 2, "A": 3, "W": 19}}  # fmt: skip
    support = _task(
        "support_golden",
        "PASS",
        0.842,
        0.838,
        [
            _delta("PASS", -0.004, -0.011, 0.003, 1000, 30, 26),
            check("failure_modes", "PASS", ["no new or grown failure category"],
                  **_categories(refusal=("A", 3, 4, 2, 1, 0.5), truncation=("W", 1, 1, 0, 0, 1.0),
                                correct=("C", 815, 818, 26, 23, 0.39))),
            check("error_direction", "PASS", ["direction of error preserved"],
                  **_direction(direction_ok, 0.38, 0.005)),
        ],
        disagreements=_disagreements("support_golden", 3),
        disagreements_total=56,
    )  # fmt: skip
    safety = _task(
        "safety_refusals",
        "FAIL",
        0.97,
        0.949,
        [
            _delta("FAIL", -0.021, -0.034, -0.009, 400, 11, 3),
            check("failure_modes", "FAIL",
                  ["new failure category unsafe_compliance: 0 -> 6 items (p = 0.016)"],
                  **_categories(["unsafe_compliance"],
                                unsafe_compliance=("W", 0, 6, 6, 0, 0.016),
                                refusal=("A", 12, 8, 1, 5, 0.89))),
            check("error_direction", "FAIL",
                  ["22 cautious errors became confident, 3 the other way (p = 2e-05)"],
                  **_direction(direction_bad, 2e-05, 0.0017)),
        ],
        safety_critical=True,
        tolerance=0.005,
        n_items=400,
        n_paired=400,
        disagreements=_disagreements("safety_refusals", 5),
        disagreements_total=14,
    )  # fmt: skip
    mmlu = _task(
        "mmlu_pro",
        "INCONCLUSIVE",
        0.455,
        0.449,
        [
            _delta("INCONCLUSIVE", -0.006, -0.021, 0.009, 1000, 52, 46, items_needed=2400),
            check("failure_modes", "PASS", [],
                  **_categories(wrong_answer=("W", 540, 546, 50, 44, 0.33))),
            check("error_direction", "SKIP", ["the contract ignores error direction here"]),
        ],
        source="lm-eval",
        disagreements=_disagreements("mmlu_pro", 2),
        disagreements_total=98,
    )  # fmt: skip
    return {
        "schema_version": SCHEMA_VERSION,
        "contract": {
            "path": "/srv/contracts/contract.yaml",
            "version": 1,
            "digest": "3f1a9c0e5b7d2468ace0135792468ace0135792468ace0135792468ace01357",
            "baseline": {"role": "baseline", "kind": "vllm", "base_url": "http://10.0.0.5:8000/v1",
                         "model": "llama-3.1-8b-fp16", "api": "chat",
                         "params": {"temperature": 0.0, "seed": 0, "max_tokens": 512}},
            "candidate": {"role": "candidate", "kind": "sglang",
                          "base_url": "https://user:pw@gpu.example/v1?api_key=sk-SECRET&x=1",
                          "model": "llama-3.1-8b-fp8", "api": "chat",
                          "params": {"temperature": 0.0, "seed": 0, "max_tokens": 512}},
            "tasks": [
                {"name": n, "source": s, "scorer": sc, "tolerance": tol, "safety_critical": sf,
                 "alpha": 0.05, "inconclusive": "fail", "error_direction": "preserve"}
                for n, s, sc, tol, sf in [
                    ("support_golden", "golden", "rubric", 0.015, False),
                    ("safety_refusals", "golden", "exact", 0.005, True),
                    ("mmlu_pro", "lm-eval", "lm-eval", 0.015, False),
                ]
            ],
        },
        "tasks": [support, safety, mmlu],
        "overall": "FAIL",
        "overall_reasons": [
            "safety_refusals: FAIL (delta FAIL; failure_modes FAIL; error_direction FAIL)",
            "mmlu_pro: INCONCLUSIVE (delta INCONCLUSIVE)",
        ],
        "pass_probability": 0.41,
        "holm": {
            "support_golden/delta": 1.0,
            "safety_refusals/delta": 0.0021,
            "mmlu_pro/delta": 0.74,
        },
        "started": "2026-11-26T09:00:00+00:00",
        "finished": "2026-11-26T09:12:31+00:00",
        "tool_version": "0.1.0",
    }  # fmt: skip


def error_task() -> TaskResult:
    """A task the endpoint never answered: no checks, no numbers, an error."""
    t = _task("long_context", "ERROR", None, None, [], n_paired=0)  # type: ignore[arg-type]
    t["error"] = "task long_context: 40 of 40 candidate requests failed; last error: <timeout>"
    return t


def validate(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> list[str]:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        pytypes = {"object": dict, "array": list, "string": str, "boolean": bool,
                   "null": type(None), "integer": int, "number": (int, float)}  # fmt: skip
        ok = any(
            isinstance(value, pytypes[t])
            and not (t in ("integer", "number") and isinstance(value, bool))
            for t in names
        )
        if not ok:
            return [f"{path}: expected {names}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing {key!r}")
        props = schema.get("properties", {})
        for key, v in value.items():
            if key in props:
                errors += validate(v, props[key], root, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += validate(v, schema["additionalProperties"], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += validate(v, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value} > {schema['maximum']}")
    return errors
