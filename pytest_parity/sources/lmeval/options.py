"""The ``lm_eval`` mapping of a contract task: its keys, their checks, and path resolution.

Errors are :class:`~pytest_parity.contract.ContractError` with the contract's one-line format, so
the contract loader can call :func:`normalize_lm_eval_options` while validating a task::

    contract.yaml: tasks[1].lm_eval.num_fewshots: unknown key (hint: did you mean 'num_fewshot'?)
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_parity.contract.spec import ContractError, thaw

OPTION_KEYS = (
    "task",
    "include_path",
    "num_fewshot",
    "limit",
    "samples",
    "metrics",
    "filter",
    "apply_chat_template",
    "fewshot_as_multiturn",
    "system_instruction",
    "gen_kwargs",
    "tokenizer",
    "tokenized_requests",
    "max_length",
    "data_files",
    "confirm_run_unsafe_code",
)


def validate_lm_eval_options(options: Mapping[str, Any], where: str, file: str) -> None:
    """Check a task's ``lm_eval`` mapping; raises :class:`ContractError` with a one-line message."""
    normalize_lm_eval_options(options, where, file, None)


def normalize_lm_eval_options(
    options: Mapping[str, Any], where: str, file: str, base: Path | None
) -> dict[str, Any]:
    """Validate the ``lm_eval`` mapping and, with ``base``, make its paths absolute against it.

    ``include_path``, ``data_files`` and a ``tokenizer`` directory are relative to the contract.
    """

    def fail(key: str, problem: str, hint: str | None = None) -> ContractError:
        return ContractError(file, f"{where}.{key}" if key else where, problem, hint)

    if not isinstance(options, Mapping):
        raise fail("", "expected a mapping", "write lm_eval: {task: gsm8k}")
    out = dict(thaw(options))
    for k in out:
        if k not in OPTION_KEYS:
            close = difflib.get_close_matches(str(k), OPTION_KEYS, n=1, cutoff=0.6)
            hint = (
                f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(OPTION_KEYS)
            )
            raise fail(str(k), "unknown key", hint)
    if not isinstance(out.get("task"), str) or not out["task"].strip():
        raise fail("task", "expected an lm-eval task name", "write task: gsm8k")
    for key, lo in (("num_fewshot", 0), ("limit", 1), ("max_length", 16)):
        value = out.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < lo
        ):
            raise fail(key, f"expected a whole number >= {lo}, got {value!r}")
    for key in (
        "apply_chat_template",
        "fewshot_as_multiturn",
        "tokenized_requests",
        "confirm_run_unsafe_code",
    ):
        if key in out and not isinstance(out[key], bool):
            raise fail(key, f"expected true or false, got {out[key]!r}", "write true or false")
    for key in ("system_instruction", "tokenizer"):
        if key in out and (not isinstance(out[key], str) or not out[key].strip()):
            raise fail(key, f"expected a non-empty string, got {out[key]!r}")
    samples = out.get("samples")
    if samples is not None:
        if (
            not isinstance(samples, list)
            or not samples
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in samples)
        ):
            raise fail("samples", "expected a list of document ids (whole numbers >= 0)")
        if out.get("limit") is not None:
            raise fail("samples", "samples and limit exclude each other", "keep one of them")
    metrics = out.get("metrics")
    if metrics is not None:
        if isinstance(metrics, str):
            metrics = out["metrics"] = [metrics]
        if (
            not isinstance(metrics, list)
            or not metrics
            or not all(isinstance(m, str) and m for m in metrics)
        ):
            raise fail("metrics", "expected a list of metric names", "write metrics: [exact_match]")
        if len(set(metrics)) != len(metrics):
            raise fail("metrics", "a metric is listed twice")
    filt = out.get("filter")
    if filt is not None:
        filters = [filt] if isinstance(filt, str) else filt
        if (
            not isinstance(filters, list)
            or not filters
            or not all(isinstance(f, str) and f for f in filters)
        ):
            raise fail("filter", "expected a filter name or a list of them", "e.g. strict-match")
        out["filter"] = filters
    gen = out.get("gen_kwargs")
    if gen is not None and not isinstance(gen, dict):
        raise fail("gen_kwargs", "expected a mapping", "e.g. gen_kwargs: {max_gen_toks: 256}")
    include = out.get("include_path")
    if include is not None:
        paths = [include] if isinstance(include, str) else include
        if (
            not isinstance(paths, list)
            or not paths
            or not all(isinstance(p, str) and p for p in paths)
        ):
            raise fail("include_path", "expected a directory or a list of them")
        if base is not None:
            paths = [str((base / p).resolve()) for p in paths]
            for p in paths:
                if not Path(p).is_dir():
                    raise fail(
                        "include_path", f"directory not found: {p}", "relative to the contract"
                    )
        out["include_path"] = paths
    data_files = out.get("data_files")
    if data_files is not None:
        if (
            not isinstance(data_files, dict)
            or not data_files
            or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in data_files.items()
            )
        ):
            raise fail(
                "data_files",
                "expected a mapping of split name to a local file",
                "e.g. data_files: {test: data/gsm8k_test.jsonl}",
            )
        if base is not None:
            resolved = {k: (base / v).resolve() for k, v in data_files.items()}
            for split, p in resolved.items():
                if not p.is_file():
                    raise fail(
                        f"data_files.{split}", f"file not found: {p}", "relative to the contract"
                    )
            out["data_files"] = {k: str(p) for k, p in resolved.items()}
    tok = out.get("tokenizer")
    if tok is not None and tok != "remote" and base is not None:
        if not (base / tok).is_dir():
            raise fail(
                "tokenizer",
                f"no tokenizer directory at {(base / tok).resolve()}",
                "write remote (the servers' /tokenize) or a local tokenizer folder; "
                "a hub name would need the network",
            )
        out["tokenizer"] = str((base / tok).resolve())
    return out
