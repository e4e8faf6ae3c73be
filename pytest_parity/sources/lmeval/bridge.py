"""Standard benchmarks through lm-evaluation-harness, paired per document.

A task with ``source: lm-eval`` names an lm-eval task (built-in, or from a user ``include_path``);
both stacks run it with identical options, and the two runs' per-document samples are paired on
(task, doc_id) after checking that each document and prompt is the same on both sides. The HTTP
models are thin subclasses of lm-eval's ``local-completions`` / ``local-chat-completions`` that
also capture each exchange (finish reason, usage, latency) and keep a failed request as one
failed item instead of aborting the whole run.

``lm_eval`` is imported only inside functions: importing it costs seconds.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_parity.contract.spec import ContractError, EndpointSpec, TaskSpec, thaw
from pytest_parity.records import ItemRecord
from pytest_parity.sources.base import SourceError
from pytest_parity.sources.lmeval.models import build_model, one_line
from pytest_parity.sources.lmeval.options import normalize_lm_eval_options, validate_lm_eval_options
from pytest_parity.sources.lmeval.pairing import Classify, pair_runs, prompt_key
from pytest_parity.sources.lmeval.tasks import output_type as find_output_type
from pytest_parity.sources.lmeval.tasks import resolve_task
from pytest_parity.sources.lmeval.tokenizer import (
    fingerprint,
    same_tokenizer,
    server_tokenizer,
    uses_llama_cpp_tokenizer,
)

__all__ = [
    "LmEvalError",
    "normalize_lm_eval_options",
    "run_lmeval_task",
    "validate_lm_eval_options",
]

GENERATE_TYPES = ("generate_until",)
LOGLIK_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling")


class LmEvalError(SourceError):
    """An lm-eval task that cannot be run or paired; ``str()`` is one line naming task and fix."""


# ----------------------------------------------------------------------------------------------
# running


def _fail(task: TaskSpec, problem: str, hint: str) -> LmEvalError:
    return LmEvalError(f"lm-eval task {task.name}: {problem} (hint: {hint})")


def _cache_path(cache_dir: Path | None, endpoint: EndpointSpec, task: TaskSpec) -> Path | None:
    """lm-eval's cache key is the request alone: one file per stack (never shared), and per task
    so that xdist workers running different tasks never write one sqlite file at once."""
    if cache_dir is None:
        return None
    ident = json.dumps(endpoint.identity(), sort_keys=True, default=str)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"lmeval-{digest}-{task.name.replace(':', '_')}"


def _run_side(
    task: TaskSpec,
    opts: Mapping[str, Any],
    endpoint: EndpointSpec,
    output_type: str,
    *,
    cache: Path | None,
    seed: int,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """One stack's run: per-task samples and the captured exchanges, keyed by prompt."""
    from lm_eval import simple_evaluate

    lm = build_model(endpoint, opts, output_type, seed=seed, cache=cache, task_params=task.params)
    # Fresh configs per side: lm-eval keeps per-run state in the task objects it builds from them.
    manager, cfgs = resolve_task(opts, lambda problem, hint: _fail(task, problem, hint))
    limit = opts.get("limit", task.limit)
    kwargs: dict[str, Any] = {
        "model": lm,
        "tasks": cfgs,
        "task_manager": manager,
        "num_fewshot": opts.get("num_fewshot"),
        "limit": None if opts.get("samples") else limit,
        "bootstrap_iters": 0,
        "log_samples": True,
        "use_cache": None if cache is None else str(cache),
        "system_instruction": opts.get("system_instruction", task.system),
        "apply_chat_template": opts.get("apply_chat_template", endpoint.api == "chat"),
        "gen_kwargs": opts.get("gen_kwargs"),
        "random_seed": seed,
        "numpy_random_seed": seed,
        "torch_random_seed": None,
        "fewshot_random_seed": seed,
    }
    for key in ("fewshot_as_multiturn", "confirm_run_unsafe_code"):
        if key in opts:
            kwargs[key] = opts[key]
    if opts.get("samples"):
        kwargs["samples"] = {cfgs[0]["task"]: list(opts["samples"])}
    try:
        results = simple_evaluate(**kwargs)
    except LmEvalError:
        raise
    except Exception as exc:
        raise _fail(
            task, f"lm-eval failed on the {endpoint.role}: {one_line(exc)}", _hint_for(exc)
        ) from exc
    finally:
        lm.save_exchanges()  # also when interrupted: a resumed run reads them back
    if not results or not results.get("samples"):
        raise _fail(task, f"lm-eval returned no samples for the {endpoint.role}", "check limit")
    if cache is not None and lm.failed_requests:
        _forget_failures(cache, results["samples"], lm.exchanges, output_type)
    return results["samples"], lm.exchanges


def _hint_for(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, ModuleNotFoundError):
        return f"install what the task needs: pip install {exc.name} (or lm-eval's extra for it)"
    if "hub" in text or "huggingface" in text or "couldn't reach" in text:
        return (
            "offline, give the task a local copy of its data (lm_eval.data_files), or pre-fill "
            "HF_HOME and set HF_DATASETS_OFFLINE=1"
        )
    if "unsafe" in text:
        return "the task runs generated code: set lm_eval.confirm_run_unsafe_code: true to allow it"
    if "connect" in type(exc).__name__.lower() or "connect" in text:
        return "is the server up at the base_url?"
    if "split" in text or "data" in text:
        return "check the task's dataset (offline: data_files or a local dataset_path)"
    return "run lm-eval on this task by hand to see the full error"


def _forget_failures(
    cache: Path,
    samples: Mapping[str, list[dict[str, Any]]],
    exchanges: Mapping[str, Any],
    output_type: str,
) -> None:
    """A failed request must be asked again on the next run, not read back from lm-eval's cache."""
    from lm_eval.api.model import hash_args
    from sqlitedict import SqliteDict  # type: ignore[import-untyped]

    reqtype = "generate_until" if output_type in GENERATE_TYPES else "loglikelihood"
    db = SqliteDict(str(cache) + "_rank0.db", autocommit=False)
    try:
        for rows in samples.values():
            for s in rows:
                for args in s["arguments"]:
                    if (exchanges.get(prompt_key(args)) or {}).get("error"):
                        db.pop(hash_args(reqtype, list(args)), None)
        db.commit()
    finally:
        db.close()


def _run_both(
    task: TaskSpec,
    opts: Mapping[str, Any],
    output_type: str,
    baseline: EndpointSpec,
    candidate: EndpointSpec,
    *,
    cache_dir: Path | None,
    seed: int,
) -> tuple[Any, Any]:
    """Both stacks at once, each in its own thread.

    Threads also keep lm-eval's ``asyncio.run()`` (num_concurrent > 1) out of any event loop the
    caller runs. simple_evaluate reseeds the global ``random`` and numpy RNGs: their states are
    restored once both runs are done, so the rest of the pytest process never notices (lm-eval
    draws from its own seeded generators, so the two runs cannot disturb each other).
    """
    import numpy as np
    from tqdm.std import tqdm  # type: ignore[import-untyped]

    # tqdm's thread_map (used by datasets) deletes a class lock it created itself on exit: with two
    # runs at once one thread can delete the other's. A lock that already exists is never deleted.
    tqdm.get_lock()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="parity-lmeval") as pool:
            futures = [
                pool.submit(
                    _run_side,
                    task,
                    opts,
                    ep,
                    output_type,
                    cache=_cache_path(cache_dir, ep, task),
                    seed=seed,
                )
                for ep in (baseline, candidate)
            ]
            return futures[0].result(), futures[1].result()
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def run_lmeval_task(
    task: TaskSpec,
    baseline: EndpointSpec,
    candidate: EndpointSpec,
    *,
    cache_dir: Path | None,
    seed: int,
    classify: Classify | None = None,
    refresh: bool = False,
) -> dict[str, list[ItemRecord]]:
    """Run an lm-eval task on both stacks; metric name -> paired items (first metric is primary).

    With several filters gated, keys are ``"metric,filter"`` (lm-eval's own naming). lm-eval's
    response cache lives in ``cache_dir`` as ``lmeval-<endpoint identity hash>-<task>_rank0.db``,
    one per stack and task; ``refresh`` empties this task's two first.
    """
    # A task's `path` is where its YAML lives: an include_path relative paths resolve against.
    base = None if task.path is None else task.path if task.path.is_dir() else task.path.parent
    try:
        opts = normalize_lm_eval_options(task.lm_eval, "lm_eval", f"task {task.name}", base)
    except ContractError as exc:
        raise LmEvalError(str(exc)) from None
    if base is not None and str(base) not in opts.get("include_path", []):
        opts["include_path"] = [*opts.get("include_path", []), str(base)]
    if task.template is not None:
        raise _fail(
            task,
            "template applies to golden tasks only",
            "an lm-eval task's prompt comes from its YAML (doc_to_text): remove template",
        )
    for ep in (baseline, candidate):
        if ep.kind in ("anthropic", "replay"):
            raise _fail(
                task,
                f"the {ep.role} is a {ep.kind} endpoint",
                "lm-eval tasks run against OpenAI-compatible endpoints only",
            )
        templated = opts.get("apply_chat_template", ep.api == "chat")
        if ep.api == "chat" and not templated:
            raise _fail(
                task,
                f"the {ep.role} uses the chat API, which needs chat messages",
                "remove lm_eval.apply_chat_template: false, or use api: completions",
            )
        if ep.api == "completions" and templated:
            raise _fail(
                task,
                f"apply_chat_template on the {ep.role}'s completions API",
                f"set {ep.role}.api: chat so the server applies its own chat template",
            )
    _, cfgs = resolve_task(opts, lambda problem, hint: _fail(task, problem, hint))
    output_type = find_output_type(cfgs, lambda problem, hint: _fail(task, problem, hint))
    if output_type in LOGLIK_TYPES:
        _check_loglik_setup(task, opts, baseline, candidate)

    if refresh:
        for ep in (baseline, candidate):
            cache = _cache_path(cache_dir, ep, task)
            if cache is not None:
                for suffix in ("_rank0.db", ".exchanges.jsonl"):
                    cache.with_name(cache.name + suffix).unlink(missing_ok=True)
    (b_samples, b_ex), (c_samples, c_ex) = _run_both(
        task, opts, output_type, baseline, candidate, cache_dir=cache_dir, seed=seed
    )
    return pair_runs(
        task.name,
        opts,
        output_type,
        (b_samples, b_ex),
        (c_samples, c_ex),
        classify=classify,
        error=lambda problem, hint: _fail(task, problem, hint),
        custom=dict(task.categories),
    )


def _check_loglik_setup(
    task: TaskSpec, opts: Mapping[str, Any], baseline: EndpointSpec, candidate: EndpointSpec
) -> None:
    for ep in (baseline, candidate):
        if ep.api == "chat":
            raise _fail(
                task,
                f"a loglikelihood task needs prompt logprobs, which the {ep.role}'s chat API lacks",
                f"set {ep.role}.api: completions",
            )
    tok = opts.get("tokenizer")
    server_side = [uses_llama_cpp_tokenizer(ep.kind, tok) for ep in (baseline, candidate)]
    if tok is None and not all(server_side):
        raise _fail(
            task,
            "a loglikelihood task needs the servers' tokenizer",
            "set lm_eval.tokenizer: remote (server has /tokenize) or a local tokenizer directory",
        )
    if tok in (None, "remote"):
        seen = [_server_tokenization(task, ep) for ep in (baseline, candidate)]
        if not same_tokenizer(seen[0], seen[1]):
            raise _fail(
                task,
                "baseline and candidate tokenize differently",
                "loglikelihood scores compare only under one tokenizer: use a generation task",
            )
    elif not Path(tok).is_dir():
        raise _fail(task, f"tokenizer directory not found: {tok}", "a local HF tokenizer folder")
    elif importlib.util.find_spec("transformers") is None:
        raise _fail(
            task, "a local tokenizer needs the transformers package", "pip install transformers"
        )


def _server_tokenization(task: TaskSpec, ep: EndpointSpec) -> dict[str, Any]:
    headers = dict(thaw(ep.headers))
    key = os.environ.get(ep.api_key_env, "") if ep.api_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        tok = server_tokenizer(
            ep.kind, ep.base_url, timeout=ep.timeout, headers=headers, auth_token=key or None
        )
        return fingerprint(tok)
    except Exception as exc:
        hint = (
            "is the llama-cpp-python server up (it serves POST /extras/tokenize)?"
            if ep.kind == "llama-cpp"
            else "start vLLM with --enable-tokenizer-info-endpoint, or give a local tokenizer "
            "directory"
        )
        what = "/extras/tokenize" if ep.kind == "llama-cpp" else "/tokenize"
        raise _fail(
            task, f"the {ep.role} has no usable {what} endpoint: {one_line(exc)}", hint
        ) from exc
