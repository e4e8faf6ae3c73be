"""Standard benchmarks through lm-evaluation-harness, paired per document.

A task with ``source: lm-eval`` names an lm-eval task (built-in, or from a user ``include_path``);
both stacks run it with identical options, and the two runs' per-document samples are paired on
(task, doc_id) after checking that each document and prompt is the same on both sides. The HTTP
models are thin subclasses of lm-eval's ``local-completions`` / ``local-chat-completions`` whose
requests go through the project's endpoint layer (:mod:`.transport`): cache, recordings, replay,
the A/A pass and the time budget apply as for any task; a failed request is one failed item,
never the end of the whole run.

``lm_eval`` is imported only inside functions: importing it costs seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib.util
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_parity.contract.spec import ContractError, EndpointSpec, TaskSpec
from pytest_parity.endpoints.progress import answer_counts
from pytest_parity.records import ItemRecord
from pytest_parity.sources.base import RunContext, SourceError
from pytest_parity.sources.lmeval.models import build_model, error_line
from pytest_parity.sources.lmeval.options import normalize_lm_eval_options, validate_lm_eval_options
from pytest_parity.sources.lmeval.pairing import Classify, classify_by_score, pair_runs
from pytest_parity.sources.lmeval.tasks import output_type as find_output_type
from pytest_parity.sources.lmeval.tasks import resolve_task
from pytest_parity.sources.lmeval.tokenizer import (
    fingerprint,
    same_tokenizer,
    server_tokenizer,
    uses_llama_cpp_tokenizer,
)
from pytest_parity.sources.lmeval.transport import EndpointBridge

__all__ = [
    "LmEvalError",
    "LmEvalRun",
    "arun_lmeval_task",
    "normalize_lm_eval_options",
    "run_lmeval_task",
    "validate_lm_eval_options",
]

GENERATE_TYPES = ("generate_until",)
SIDES = ("baseline", "candidate")
LOGLIK_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling")


class LmEvalError(SourceError):
    """An lm-eval task that cannot be run or paired; ``str()`` is one line naming task and fix."""


# ----------------------------------------------------------------------------------------------
# running


def _fail(task: TaskSpec, problem: str, hint: str) -> LmEvalError:
    return LmEvalError(f"lm-eval task {task.name}: {problem} (hint: {hint})")


def _run_side(
    task: TaskSpec,
    opts: Mapping[str, Any],
    endpoint: EndpointSpec,
    output_type: str,
    *,
    seed: int,
    bridge: EndpointBridge,
    tokenizer_from: EndpointSpec,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """One stack's run (in a worker thread): per-task samples and the exchanges, by prompt."""
    from lm_eval import simple_evaluate

    lm = build_model(
        endpoint,
        opts,
        output_type,
        seed=seed,
        bridge=bridge,
        task_params=task.params,
        tokenizer_from=tokenizer_from,
    )
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
        "use_cache": None,  # the endpoint layer's response cache keeps every answer
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
            task, f"lm-eval failed on the {endpoint.role}: {error_line(exc)}", _hint_for(exc)
        ) from exc
    if not results or not results.get("samples"):
        raise _fail(task, f"lm-eval returned no samples for the {endpoint.role}", "check limit")
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


@dataclass
class LmEvalRun:
    """Both stacks' paired documents per metric, and what the run saw of its endpoints."""

    by_metric: dict[str, list[ItemRecord]]
    aa_scores: dict[str, tuple[float | None, float | None]] | None
    endpoints: dict[str, Any]
    failed: dict[str, int]
    last_error: dict[str, str | None]
    aborted: str | None
    answers: dict[str, dict[str, int]] | None = None  # per stack: answers, from_cache


def _tokenizer_sources(specs: Mapping[str, EndpointSpec]) -> dict[str, EndpointSpec]:
    """Whose server counts each side's tokens: its own, or for a recording the live stack's
    (a recording has no tokenizer routes; both stacks must share the tokenizer anyway)."""
    live = [s for s in specs.values() if s.kind != "replay"]
    return {
        role: spec if spec.kind != "replay" or not live else live[0] for role, spec in specs.items()
    }


def run_lmeval_task(
    task: TaskSpec,
    baseline: EndpointSpec,
    candidate: EndpointSpec,
    *,
    cache_dir: Path | None = None,
    seed: int = 0,
    classify: Classify | None = None,
    refresh: bool = False,
) -> dict[str, list[ItemRecord]]:
    """Run an lm-eval task on two endpoints outside a gate: metric -> paired documents.

    The same path the gate takes (every request through the endpoint layer); ``cache_dir``
    keeps the answers in a response cache there (``refresh`` asks every request again).
    """
    from pytest_parity.endpoints.cache import ResponseCache
    from pytest_parity.endpoints.http import open_endpoint
    from pytest_parity.endpoints.loop import run_sync

    cache = None if cache_dir is None else ResponseCache(cache_dir, refresh=refresh)
    specs = {"baseline": baseline, "candidate": candidate}
    ctx = RunContext(
        baseline=baseline,
        candidate=candidate,
        seed=seed,
        classify=classify or classify_by_score,
        cache_dir=cache_dir,
        refresh=refresh,
        open_endpoint=lambda role: open_endpoint(specs[role], cache=cache),
    )
    try:
        return run_sync(lambda: arun_lmeval_task(task, ctx)).by_metric
    finally:
        if cache is not None:
            cache.close()


async def arun_lmeval_task(task: TaskSpec, ctx: RunContext) -> LmEvalRun:
    """Run an lm-eval task on both stacks (and the A/A pass); metric -> paired documents.

    With several filters gated, metric keys are ``"metric,filter"`` (lm-eval's own naming); the
    first is the primary one. Every request goes through the endpoints ``ctx.open_endpoint``
    opens, in this event loop; lm-eval itself runs in worker threads.
    """
    opts, output_type = _prepare(task, ctx)
    specs = {"baseline": ctx.baseline, "candidate": ctx.candidate}
    if ctx.aa is not None:
        specs["aa"] = ctx.aa
    assert ctx.open_endpoint is not None
    loop = asyncio.get_running_loop()
    endpoints = {role: ctx.open_endpoint(role) for role in specs}
    bridges = {
        role: EndpointBridge(ep, loop, task=task.name, deadline=ctx.deadline)
        for role, ep in endpoints.items()
    }
    tokenizers = _tokenizer_sources(specs)
    try:
        runs = await _run_sides(task, opts, output_type, specs, bridges, tokenizers, ctx.seed)
        described = {}
        for role, ep in endpoints.items():
            try:
                described[role] = await ep.describe()
            except Exception:  # engine info is best-effort provenance
                described[role] = specs[role].identity()
    finally:
        for ep in endpoints.values():
            await ep.aclose()

    def pair(other: str) -> dict[str, list[ItemRecord]]:
        return pair_runs(
            task.name,
            opts,
            output_type,
            runs["baseline"],
            runs[other],
            classify=ctx.classify,
            error=lambda problem, hint: _fail(task, problem, hint),
            custom=dict(task.categories),
        )

    by_metric = pair("candidate")
    aa_scores = None
    if "aa" in runs:
        primary = next(iter(pair("aa").values()))
        aa_scores = {r["id"]: (r["baseline"]["score"], r["candidate"]["score"]) for r in primary}
    records = next(iter(by_metric.values()))
    late = [b for b in bridges.values() if b.out_of_time]
    aborted = None
    if late:
        sent = sum(b.sent - b.failed for b in bridges.values())
        aborted = (
            "the run's time budget (--parity-max-time) ran out with"
            f" {sent} lm-eval requests answered"
        )
    return LmEvalRun(
        by_metric=by_metric,
        aa_scores=aa_scores,
        endpoints=described,
        failed={
            "baseline": sum(1 for r in records if r["baseline"]["error"]),
            "candidate": sum(1 for r in records if r["candidate"]["error"]),
        },
        last_error={role: bridges[role].last_error for role in SIDES},
        aborted=aborted,
        answers=answer_counts(endpoints),
    )


async def _run_sides(
    task: TaskSpec,
    opts: Mapping[str, Any],
    output_type: str,
    specs: Mapping[str, EndpointSpec],
    bridges: Mapping[str, EndpointBridge],
    tokenizers: Mapping[str, EndpointSpec],
    seed: int,
) -> dict[str, tuple[Any, Any]]:
    """Every side at once, each in its own thread (lm-eval runs its own event loops there).

    simple_evaluate reseeds the global ``random`` and numpy RNGs: their states are restored once
    the runs are done, so the rest of the pytest process never notices (lm-eval draws from its
    own seeded generators, so the runs cannot disturb each other).
    """
    import numpy as np
    from tqdm.std import tqdm  # type: ignore[import-untyped]

    # tqdm's thread_map (used by datasets) deletes a class lock it created itself on exit: with
    # two runs at once one thread can delete the other's. A lock that already exists is kept.
    tqdm.get_lock()
    py_state, np_state = random.getstate(), np.random.get_state()
    loop = asyncio.get_running_loop()
    try:
        with concurrent.futures.ThreadPoolExecutor(
            len(specs), thread_name_prefix="parity-lmeval"
        ) as pool:
            futures = {
                role: loop.run_in_executor(
                    pool,
                    functools.partial(
                        _run_side,
                        task,
                        opts,
                        spec,
                        output_type,
                        seed=seed,
                        bridge=bridges[role],
                        tokenizer_from=tokenizers[role],
                    ),
                )
                for role, spec in specs.items()
            }
            done = await asyncio.gather(*futures.values())
            return dict(zip(futures, done, strict=True))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _prepare(task: TaskSpec, ctx: RunContext) -> tuple[dict[str, Any], str]:
    """The task's lm-eval options and output type, after every check that needs no request."""
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
    specs = [ctx.baseline, ctx.candidate]
    for ep in specs:
        if ep.kind == "anthropic":
            raise _fail(
                task,
                f"the {ep.role} is an anthropic endpoint",
                "lm-eval tasks run against OpenAI-compatible endpoints (or their recordings)",
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
        live = [ep for ep in specs if ep.kind != "replay"]
        if not live:
            raise _fail(
                task,
                "a loglikelihood task needs a live server's tokenizer; both stacks are recordings",
                "keep one stack live, or gate a generation task",
            )
        _check_loglik_setup(task, opts, specs, live)
    return opts, output_type


def _check_loglik_setup(
    task: TaskSpec, opts: Mapping[str, Any], specs: list[EndpointSpec], live: list[EndpointSpec]
) -> None:
    """Loglikelihood needs prompt logprobs and one tokenizer, the servers' own (a recording's
    side counts with the live stack's: the recording holds the answers it gave)."""
    for ep in specs:
        if ep.api == "chat":
            raise _fail(
                task,
                f"a loglikelihood task needs prompt logprobs, which the {ep.role}'s chat API lacks",
                f"set {ep.role}.api: completions",
            )
    tok = opts.get("tokenizer")
    server_side = [uses_llama_cpp_tokenizer(ep.kind, tok) for ep in live]
    if tok is None and not all(server_side):
        raise _fail(
            task,
            "a loglikelihood task needs the servers' tokenizer",
            "set lm_eval.tokenizer: remote (server has /tokenize) or a local tokenizer directory",
        )
    if tok in (None, "remote"):
        seen = [_server_tokenization(task, ep) for ep in live]
        if len(seen) == 2 and not same_tokenizer(seen[0], seen[1]):
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
    from pytest_parity.sources.lmeval.models import tokenizer_headers

    headers, secret = tokenizer_headers(ep)
    try:
        tok = server_tokenizer(
            ep.kind,
            ep.base_url,
            timeout=ep.timeout,
            headers=headers,
            auth_token=None if secret is None else secret.reveal(),
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
            task, f"the {ep.role} has no usable {what} endpoint: {error_line(exc)}", hint
        ) from exc
