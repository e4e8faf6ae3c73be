"""Pairing two lm-eval runs per document into the gate's item records.

lm-eval logs one sample per (document, filter) with ``doc_hash`` and ``prompt_hash``; the two
stacks' samples pair on (task, doc_id, filter) only when the document and every request's
arguments (prompt, continuation, generation settings) are identical on both sides: otherwise the
comparison would not be paired at all, so a difference is an error naming the documents.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_parity.records import Direction, ItemRecord, SideRecord

Samples = Mapping[str, list[dict[str, Any]]]
Run = tuple[Samples, Mapping[str, Any]]
ErrorFactory = Callable[[str, str], Exception]
Classify = Callable[[Mapping[str, Any]], tuple[str, str]]
DIRECTIONS = ("C", "A", "W", "X")
INVALID = ("[invalid]", "")


def prompt_key(args: Any) -> str:
    """The key an exchange is captured under: the request's context (and continuation)."""
    ctx = args[0]
    text = getattr(ctx, "prompt", ctx)
    if len(args) > 1 and isinstance(args[1], str):  # loglikelihood: (context, continuation)
        return json.dumps([text, args[1]], ensure_ascii=False)
    return str(text)


def readable_prompt(ctx: Any) -> str:
    """The prompt as a person reads it: chat messages flattened to ``role: content`` lines."""
    text = getattr(ctx, "prompt", ctx)
    if isinstance(text, str) and text.startswith("[{"):
        try:
            msgs = json.loads(text)
            return "\n".join(f"{m['role']}: {m['content']}" for m in msgs)
        except (ValueError, KeyError, TypeError):
            return text
    return str(text)


def classify_by_score(view: Mapping[str, Any]) -> tuple[str, str]:
    if view.get("error"):
        return "request_error", "X"
    score = view.get("score")
    return ("correct", "C") if score is not None and score >= 0.5 else ("wrong_answer", "W")


def _index(samples: Samples, filters: list[str]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {
        (name, int(s["doc_id"]), s["filter"]): s
        for name, rows in samples.items()
        for s in rows
        if s["filter"] in filters
    }


def _choose(
    samples: Samples, opts: Mapping[str, Any], error: ErrorFactory
) -> tuple[list[str], list[str]]:
    rows = [s for r in samples.values() for s in r]
    if not rows:
        raise error("the task has no documents", "check limit, samples and the data files")
    available = list(dict.fromkeys(s["filter"] for s in rows))
    filters = list(opts.get("filter") or available[:1])
    for f in filters:
        if f not in available:
            raise error(f"no filter named {f!r}", f"this task's filters: {', '.join(available)}")
    reported = list(rows[0]["metrics"])
    metrics = list(opts.get("metrics") or reported)
    for m in metrics:
        if m not in reported:
            raise error(f"no metric named {m!r}", f"this task reports: {', '.join(reported)}")
    return filters, metrics


def _check_same(
    b: dict[tuple[str, int, str], dict[str, Any]],
    c: dict[tuple[str, int, str], dict[str, Any]],
    error: ErrorFactory,
) -> None:
    def show(keys: list[tuple[str, int, str]]) -> str:
        ids = sorted({f"{k[0]}/{k[1]}" for k in keys})
        return ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")

    only_b = sorted(set(b) - set(c))
    only_c = sorted(set(c) - set(b))
    if only_b or only_c:
        side = "baseline" if only_b else "candidate"
        raise error(
            f"documents {show(only_b or only_c)} ran only on the {side}",
            "both stacks must run the same documents: same data, limit and samples",
        )
    for field, what in (("doc_hash", "documents"), ("prompt_hash", "prompts"), (None, "requests")):
        bad = [
            k
            for k in b
            if (
                b[k][field] != c[k][field]
                if field
                else json.dumps(b[k]["arguments"], default=str)
                != json.dumps(c[k]["arguments"], default=str)
            )
        ]
        if bad:
            raise error(
                f"{what} differ between baseline and candidate for documents {show(bad)}",
                "a paired comparison needs identical prompts: same task version, data, "
                "num_fewshot, chat template and system instruction on both sides",
            )


def _side(
    s: dict[str, Any],
    metric: str,
    exchanges: Mapping[str, Any],
    output_type: str,
    view_extra: dict[str, Any],
    classify: Classify,
    error: ErrorFactory,
) -> SideRecord:
    args = s["arguments"]
    facts: dict[str, Any] | None = None
    exs = [exchanges.get(prompt_key(a)) for a in args]
    errs = [e for e in exs if e and e.get("error")]
    finish_reason = None
    if output_type == "generate_until":
        text = str(s["resps"][0][0]) if s["resps"] and s["resps"][0] else ""
        filtered = s["filtered_resps"][0]
        parsed = not (s["filter"] != "none" and str(filtered) in INVALID)
        finish_reason = exs[0].get("finish_reason") if exs[0] else None
    else:
        lls = [r[0][0] if isinstance(r[0], tuple | list) else r[0] for r in s["resps"]]
        failed = any(isinstance(x, float) and math.isnan(x) for x in lls)
        if failed and not errs:
            errs = [{"error": "a loglikelihood request failed", "error_kind": "other"}]
        best = max(range(len(lls)), key=lambda i: lls[i]) if lls and not failed else None
        text = str(args[best][1]).strip() if best is not None and len(args[best]) > 1 else ""
        parsed = not failed
        if best is not None and len(lls) > 1:
            facts = option_confidence([float(x) for x in lls], best)
    err = errs[0] if errs else None
    score: float | None = None
    if err is None:
        raw = s.get(metric)
        try:
            value = float(raw) if not isinstance(raw, str | bytes) else math.nan  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = math.nan
        if not (0.0 <= value <= 1.0):
            raise error(
                f"metric {metric!r} is {raw!r} for document {s['doc_id']}, not a score in [0, 1]",
                "gate on a per-document metric such as exact_match or acc",
            )
        score = value
    view = {
        "text": text,
        "finish_reason": finish_reason,
        "error": err["error"] if err else None,
        "error_kind": err.get("error_kind") if err else None,
        "score": score,
        "parsed": parsed,
        **view_extra,
    }
    category, direction = classify(view)
    if direction not in DIRECTIONS:
        raise error(f"classify returned direction {direction!r}", "return one of C, A, W, X")
    dir_: Direction = direction  # type: ignore[assignment]
    fresh = [e for e in exs if e]
    return {
        "text": text,
        "finish_reason": finish_reason,
        "score": score,
        "parsed": parsed,
        "category": category,
        "direction": dir_,
        "error": view["error"],
        "latency_s": float(sum(e.get("latency_s", 0.0) for e in fresh)),
        "facts": facts,
        "trajectory": None,
        "cached": not fresh or any(e.get("cached", False) for e in fresh),
    }


def option_confidence(lls: Sequence[float], chosen: int) -> dict[str, Any]:
    """The calibration check's confidence of a multiple-choice answer, given directly by the
    options' loglikelihoods: P(chosen | options) = exp(ll_chosen) / sum(exp(ll_i)), the softmax
    of the raw (unnormalised) loglikelihoods, the chosen option being their argmax (the
    answer ``acc`` scores)."""
    top = max(lls)
    total = sum(math.exp(x - top) for x in lls)
    return {
        "confidence": math.exp(lls[chosen] - top) / total,
        "confidence_method": "loglikelihood",
    }


def _reference(s: dict[str, Any], output_type: str) -> str | None:
    target = s.get("target")
    if target is None:
        return None
    if output_type == "multiple_choice" and isinstance(target, int):
        args = s["arguments"]
        if 0 <= target < len(args) and len(args[target]) > 1:
            return str(args[target][1]).strip()
    return str(target)


def pair_runs(
    task_name: str,
    opts: Mapping[str, Any],
    output_type: str,
    baseline: Run,
    candidate: Run,
    *,
    classify: Classify | None,
    error: ErrorFactory,
    custom: Mapping[str, str] | None = None,
) -> dict[str, list[ItemRecord]]:
    """Metric -> paired items; with several filters the keys are ``"metric,filter"``.

    ``classify`` sees the same view of a side as the golden runner gives it (``custom`` is the
    task's own category patterns); lm-eval tasks have no tool calls.
    """
    classify = classify or classify_by_score
    b_samples, b_ex = baseline
    c_samples, c_ex = candidate
    filters, metrics = _choose(b_samples, opts, error)
    b, c = _index(b_samples, filters), _index(c_samples, filters)
    _check_same(b, c, error)
    several_tasks = len({k[0] for k in b}) > 1
    out: dict[str, list[ItemRecord]] = {}
    for metric in metrics:
        for f in filters:
            items: list[ItemRecord] = []
            for key in sorted(k for k in b if k[2] == f):
                sb, sc = b[key], c[key]
                reference = _reference(sb, output_type)
                prompt = readable_prompt(sb["arguments"][0][0])
                if output_type == "multiple_choice":  # a reviewer needs the options too
                    prompt += "".join(
                        f"\n  ({i}) {str(a[1]).strip()}" for i, a in enumerate(sb["arguments"])
                    )
                item_id = f"{key[0]}/{key[1]}" if several_tasks else str(key[1])
                extra = {
                    "reference": reference,
                    "prompt": prompt,
                    "task": task_name,
                    "item_id": item_id,
                    "tool_calls": (),
                    "custom": custom or {},
                    "tools": None,
                }
                items.append(
                    {
                        "id": item_id,
                        "prompt": prompt,
                        "reference": reference,
                        "cluster": key[0] if several_tasks else None,
                        # a group's member task (mmlu_physics): what slice_by: subtask reads
                        "metadata": {"subtask": key[0]} if several_tasks else None,
                        "baseline": _side(
                            sb,
                            metric,
                            b_ex,
                            output_type,
                            {**extra, "side": "baseline"},
                            classify,
                            error,
                        ),
                        "candidate": _side(
                            sc,
                            metric,
                            c_ex,
                            output_type,
                            {**extra, "side": "candidate"},
                            classify,
                            error,
                        ),
                    }
                )
            out[metric if len(filters) == 1 else f"{metric},{f}"] = items
    return out
