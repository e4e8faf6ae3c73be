"""lm-eval HTTP models for the contract's endpoints, capturing every exchange.

Thin subclasses of lm-eval's ``LocalCompletionsAPI`` / ``LocalChatCompletion`` (never
``openai-chat-completions``: it drops ``stop`` and forces temperature 1 for model names that
contain "o1" or "5"). They add what a paired gate needs and lm-eval does not keep:

- finish reason, usage and latency of each request, captured through a ContextVar set in
  ``_create_payload`` and read in ``parse_generations`` (same asyncio task, so safe under
  concurrency), keyed by the request's prompt;
- a request that still fails after its retries becomes one failed item (empty text, NaN
  loglikelihood) instead of aborting the whole run and losing every answer;
- the endpoint's sampling parameters, headers and API key (from ``api_key_env`` only);
- a hard error instead of lm-eval's silent left-truncation of long loglikelihood contexts;
- loglikelihood prompts sent as text are the text their ids were encoded from, not a decode of
  them (a local tokenizer's decode may clean up spaces, and lm-eval assumes it is lossless);
- for loglikelihood on llama-cpp endpoints (tokenizer ``remote`` or unset), the server's own
  tokenizer through /extras/tokenize (:mod:`pytest_parity.lmeval_tokenizer`), prompts sent as text
  (llama.cpp answers a token-list prompt with HTTP 500).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pytest_parity.contract.spec import EndpointSpec, thaw
from pytest_parity.sources.lmeval.tokenizer import LlamaCppTokenizer, uses_llama_cpp_tokenizer

# The benchmark defines answer length and stop strings; the endpoint's own values would change it.
BENCHMARK_OWNED = frozenset({"max_tokens", "max_completion_tokens", "stop", "n", "logprobs"})
FAIL_KEY = "__parity_failed__"
DEFAULT_MAX_LENGTH = 1 << 20  # no client-side truncation; the server rejects what does not fit

_EXCHANGE: ContextVar[dict[str, Any] | None] = ContextVar("parity_lmeval_exchange", default=None)
_CLASSES: dict[str, Any] = {}


# What lm-eval receives for a failed request; the item's error comes from the captured exchange.
FAILED_TEXT = ""
FAILED_LOGLIK = (float("nan"), False)


def one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return msg if len(msg) <= 300 else msg[:297] + "..."


def error_kind(exc: BaseException | None) -> str:
    response = getattr(exc, "response", None)
    status = getattr(exc, "status", None) or getattr(response, "status_code", None)
    if isinstance(status, int):
        return "http"
    name = type(exc).__name__.lower()
    if "timeout" in name or isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, ValueError | KeyError | TypeError | IndexError) and "connect" not in name:
        return "malformed"  # a body that is not the JSON the API promises
    return "connect"


def endpoint_url(endpoint: EndpointSpec) -> str:
    """lm-eval wants the full endpoint URL; the contract's base_url ends with /v1."""
    suffix = "/chat/completions" if endpoint.api == "chat" else "/completions"
    return endpoint.base_url.rstrip("/") + suffix


def check_shape(out: Any, *, generate: bool, chat: bool) -> None:
    """Raise ValueError unless ``out`` is the OpenAI response lm-eval is about to parse."""
    if isinstance(out, list) and len(out) == 1:
        out = out[0]
    choices = out.get("choices") if isinstance(out, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("malformed response: no choices")
    first = choices[0]
    if generate and chat and not isinstance(first.get("message"), dict):
        raise ValueError("malformed response: a chat choice without a message")
    if generate and not chat and "text" not in first:
        raise ValueError("malformed response: a completion choice without text")
    if not generate and not isinstance((first.get("logprobs") or {}).get("token_logprobs"), list):
        raise ValueError("malformed response: no prompt logprobs (does the server support echo?)")


class _TimedSemaphore:
    """Restarts the latency clock once the request really may go out (after the queue)."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self._sem = sem

    async def acquire(self) -> bool:
        got = await self._sem.acquire()
        ex = _EXCHANGE.get()
        if ex is not None:
            ex["start"] = time.perf_counter()
        return got

    def release(self) -> None:
        self._sem.release()


def _prompt_of(payload: dict[str, Any]) -> str:
    if "messages" in payload:
        return json.dumps(payload["messages"], ensure_ascii=False)
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def _capturing(base: type) -> type:
    """A subclass of an lm-eval HTTP model that captures exchanges (see the module docstring)."""

    class Capturing(base):  # type: ignore[misc]
        parity_params: dict[str, Any]
        parity_headers: dict[str, str]
        parity_attempts: int
        exchanges: dict[str, dict[str, Any]]
        token_keys: dict[tuple[int, ...], str]
        texts_of: dict[tuple[int, ...], str]
        failed_requests: int
        sidecar: Path | None
        fresh: set[str]

        @property
        def header(self) -> dict[str, str]:
            return dict(self.parity_headers)

        def _create_payload(
            self,
            messages: Any,
            generate: bool = False,
            gen_kwargs: Any = None,
            seed: int = 1234,
            eos: Any = None,
            **kwargs: Any,
        ) -> dict[str, Any]:
            explicit = set(gen_kwargs or ())
            payload: dict[str, Any] = super()._create_payload(
                messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos, **kwargs
            )
            if generate:
                for k, v in self.parity_params.items():
                    if k not in BENCHMARK_OWNED and k not in explicit:
                        payload[k] = v
            _EXCHANGE.set(
                {"prompt": _prompt_of(payload), "payload": payload, "start": time.perf_counter()}
            )
            return payload

        def model_call(
            self, messages: Any, *, generate: bool = True, gen_kwargs: Any = None, **kwargs: Any
        ) -> Any:
            last: BaseException | None = None
            for attempt in range(self.parity_attempts):
                if attempt:
                    time.sleep(min(0.5 * 2**attempt, 8.0))
                try:
                    out = super().model_call(
                        messages, generate=generate, gen_kwargs=gen_kwargs, **kwargs
                    )
                    # lm-eval parses a sync response outside its retries: check the shape here.
                    check_shape(out, generate=generate, chat="messages" in self._last_payload())
                    return out
                except Exception as exc:
                    last = exc
            return {FAIL_KEY: one_line(last), "kind": error_kind(last)}

        async def amodel_call(
            self,
            session: Any,
            sem: Any,
            messages: Any,
            *,
            generate: bool = True,
            cache_keys: Any = None,
            ctxlens: Any = None,
            gen_kwargs: Any = None,
            **kwargs: Any,
        ) -> Any:
            last: BaseException | None = None
            for attempt in range(self.parity_attempts):
                if attempt:
                    await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
                try:
                    return await super().amodel_call(
                        session,
                        _TimedSemaphore(sem),
                        messages,
                        generate=generate,
                        cache_keys=cache_keys,
                        ctxlens=ctxlens,
                        gen_kwargs=gen_kwargs,
                        **kwargs,
                    )
                except Exception as exc:
                    last = exc
            failed = {FAIL_KEY: one_line(last), "kind": error_kind(last)}
            if generate:
                return self.parse_generations(outputs=failed)
            return self.parse_logprobs(outputs=failed, tokens=messages, ctxlens=ctxlens)

        def _last_payload(self) -> dict[str, Any]:
            return (_EXCHANGE.get() or {}).get("payload") or {}

        def _record(self, key: str | None, **fields: Any) -> None:
            if key is None:
                return
            ex = _EXCHANGE.get() or {}
            start = ex.get("start")
            fields["latency_s"] = 0.0 if start is None else time.perf_counter() - start
            if fields.get("error"):
                self.failed_requests += 1
            self.exchanges[key] = fields
            self.fresh.add(key)

        def parse_generations(self, outputs: Any, **kwargs: Any) -> list[Any]:
            ex = _EXCHANGE.get() or {}
            key = ex.get("prompt")
            if isinstance(outputs, dict) and FAIL_KEY in outputs:
                self._record(
                    key,
                    error=outputs[FAIL_KEY],
                    error_kind=outputs["kind"],
                    finish_reason=None,
                    usage=None,
                )
                return [FAILED_TEXT]
            check_shape(outputs, generate=True, chat="messages" in self._last_payload())
            texts: list[Any] = super().parse_generations(outputs=outputs, **kwargs)
            out = outputs[0] if isinstance(outputs, list) and outputs else outputs
            choice = (out.get("choices") or [{}])[0] if isinstance(out, dict) else {}
            self._record(
                key,
                error=None,
                error_kind=None,
                finish_reason=choice.get("finish_reason"),
                usage=out.get("usage") if isinstance(out, dict) else None,
            )
            return texts

        def parse_logprobs(
            self, outputs: Any, tokens: Any = None, ctxlens: Any = None, **kwargs: Any
        ) -> list[Any]:
            keys = [self.token_keys.get(tuple(t)) for t in (tokens or [])]
            if isinstance(outputs, list) and len(outputs) == 1:
                outputs = outputs[0]  # lm-eval's sync path wraps a single response in a list
            if isinstance(outputs, dict) and FAIL_KEY in outputs:
                for key in keys:
                    self._record(
                        key,
                        error=outputs[FAIL_KEY],
                        error_kind=outputs["kind"],
                        finish_reason=None,
                        usage=None,
                    )
                return [FAILED_LOGLIK] * max(1, len(ctxlens or ()))
            check_shape(outputs, generate=False, chat=False)
            res: list[Any] = super().parse_logprobs(
                outputs=outputs, tokens=tokens, ctxlens=ctxlens, **kwargs
            )
            for key in keys:
                self._record(key, error=None, error_kind=None, finish_reason=None, usage=None)
            return res

        def tok_encode(
            self, string: Any, left_truncate_len: int | None = None, **kwargs: Any
        ) -> Any:
            enc = super().tok_encode(string, left_truncate_len=left_truncate_len, **kwargs)
            if (
                not self.tokenized_requests
                and not left_truncate_len
                and isinstance(string, str)
                and isinstance(enc, list)
                and all(isinstance(t, int) for t in enc)
            ):
                self.texts_of[tuple(enc)] = string
            return enc

        def decode_batch(self, tokens: list[list[int]]) -> list[str]:
            # lm-eval sends a text prompt by decoding the ids it counted the context length in,
            # "assuming decoding is lossless"; a tokenizer that cleans up spaces on decode (" ?"
            # -> "?") would send a text the server splits into other tokens. Send the text the
            # ids were encoded from.
            known = [self.texts_of.get(tuple(t)) for t in tokens]
            if all(k is not None for k in known):
                return [k for k in known if k is not None]
            decoded: list[str] = super().decode_batch(tokens)
            return [d if k is None else k for k, d in zip(known, decoded, strict=True)]

        def batch_loglikelihood_requests(self, chunks: Any) -> Any:
            chunks = [list(c) for c in chunks]
            for chunk in chunks:
                for cache_key, ctx, cont in chunk:
                    if None in ctx:
                        # An empty context is scored after lm-eval's prefix token (BOS or EOS):
                        # a server that names neither would be sent a prompt of "None".
                        raise ValueError(
                            "an empty context needs a BOS/EOS token id the server does not "
                            "report (use a task whose documents have a context)"
                        )
                    if len(ctx) + len(cont) > self.max_length:
                        raise ValueError(
                            f"a context of {len(ctx) + len(cont)} tokens exceeds max_length "
                            f"{self.max_length + 1}; lm-eval would cut it silently "
                            "(raise lm_eval.max_length, or shorten num_fewshot)"
                        )
                    if cache_key is not None:
                        self.token_keys[tuple(ctx + cont)] = json.dumps(
                            list(cache_key), ensure_ascii=False
                        )
            return super().batch_loglikelihood_requests(chunks)

        def save_exchanges(self) -> None:
            """Keep finish reasons and usage beside lm-eval's cache, for a resumed run."""
            if self.sidecar is None:
                return
            self.sidecar.parent.mkdir(parents=True, exist_ok=True)
            with self.sidecar.open("a", encoding="utf-8") as fh:
                for key in sorted(self.fresh):
                    ex = self.exchanges[key]
                    if not ex.get("error"):
                        fh.write(json.dumps({"key": key, **ex}, ensure_ascii=False) + "\n")
            self.fresh.clear()

    Capturing.__name__ = Capturing.__qualname__ = f"Parity{base.__name__}"
    return Capturing


def _model_class(api: str) -> Any:
    if api not in _CLASSES:
        from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

        base = LocalChatCompletion if api == "chat" else LocalCompletionsAPI
        _CLASSES[api] = _capturing(base)
    return _CLASSES[api]


def build_model(
    endpoint: EndpointSpec,
    opts: Mapping[str, Any],
    output_type: str,
    *,
    seed: int,
    cache: Path | None,
    task_params: Mapping[str, Any] | None = None,
) -> Any:
    """The lm-eval model object for one endpoint, with its exchanges reloaded from ``cache``.

    Sampling comes from the endpoint, then the contract task's ``params``; the benchmark's own
    generation settings (length, stop strings, explicit gen_kwargs) win over both.
    """
    params = {**thaw(endpoint.params), **thaw(task_params or {})}
    headers = dict(thaw(endpoint.headers))
    key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    generate = output_type == "generate_until"
    tok = opts.get("tokenizer")
    kwargs: dict[str, Any] = {
        "base_url": endpoint_url(endpoint),
        "model": endpoint.model,
        "num_concurrent": endpoint.max_concurrency,
        "max_retries": 1,  # retries happen inside model_call, so a failure stays one item
        "timeout": max(1, math.ceil(endpoint.timeout)),
        "max_length": opts.get("max_length", DEFAULT_MAX_LENGTH),
        # Answer length belongs to the benchmark (its YAML, or lm_eval.gen_kwargs.max_gen_toks),
        # not to the endpoint: lm-eval's own default keeps results comparable with published ones.
        "max_gen_toks": 256,
        "seed": int(params.get("seed", seed) if params.get("seed") is not None else seed),
        "batch_size": 1,
        "header": headers,
    }
    llama_tok = not generate and uses_llama_cpp_tokenizer(endpoint.kind, tok)
    if generate or tok is None or llama_tok:
        kwargs.update(tokenizer_backend=None, tokenized_requests=False)
    elif tok == "remote":
        kwargs.update(tokenizer_backend="remote", auth_token=key or None)
    else:
        kwargs.update(tokenizer_backend="huggingface", tokenizer=tok)
    if not generate:
        # llama.cpp's server answers a token-list prompt with HTTP 500: send text there.
        kwargs["tokenized_requests"] = opts.get("tokenized_requests", endpoint.kind != "llama-cpp")
    lm = _model_class(endpoint.api)(**kwargs)
    if llama_tok:
        # lm-eval cannot build this one itself: hand it in as its "remote" backend, whose calls
        # (encode, batch_decode, eos/bos) LlamaCppTokenizer answers. Prompts go out as text.
        lm.tokenizer = LlamaCppTokenizer(
            endpoint.base_url, timeout=endpoint.timeout, headers=headers
        )
        lm.tokenizer_backend = "remote"
        lm.tokenized_requests = False
    lm.parity_params = params
    lm.parity_headers = headers
    lm.parity_attempts = 1 + endpoint.max_retries
    lm.exchanges = {}
    lm.token_keys = {}
    lm.texts_of = {}
    lm.failed_requests = 0
    lm.fresh = set()
    lm.sidecar = None if cache is None else cache.with_name(cache.name + ".exchanges.jsonl")
    if lm.sidecar is not None and lm.sidecar.is_file():
        for line in lm.sidecar.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            lm.exchanges[row.pop("key")] = {**row, "cached": True}
    return lm
