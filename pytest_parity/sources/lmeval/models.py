"""lm-eval HTTP models for the contract's endpoints, sending through the endpoint layer.

Thin subclasses of lm-eval's ``LocalCompletionsAPI`` / ``LocalChatCompletion`` (never
``openai-chat-completions``: it drops ``stop`` and forces temperature 1 for model names that
contain "o1" or "5"). lm-eval builds each payload; the subclass hands it to an
:class:`~pytest_parity.sources.lmeval.transport.EndpointBridge` instead of posting it, so the
project's cache, recordings, replay, A/A pass, retries and time budget apply. They add what a
paired gate needs and lm-eval does not keep:

- finish reason, usage, latency and cache provenance of each request, keyed by its prompt;
- a request that still fails after the endpoint's retries becomes one failed item (empty text,
  NaN loglikelihood) instead of aborting the whole run and losing every answer;
- the endpoint's sampling parameters (its headers and key are the endpoint's own);
- a hard error instead of lm-eval's silent left-truncation of long loglikelihood contexts;
- loglikelihood prompts sent as text are the text their ids were encoded from, not a decode of
  them (a local tokenizer's decode may clean up spaces, and lm-eval assumes it is lossless);
- for loglikelihood on llama-cpp endpoints (tokenizer ``remote`` or unset), the server's own
  tokenizer through /extras/tokenize (:mod:`pytest_parity.lmeval_tokenizer`), prompts sent as text
  (llama.cpp answers a token-list prompt with HTTP 500).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_parity.contract.spec import EndpointSpec, thaw
from pytest_parity.sources.lmeval.tokenizer import LlamaCppTokenizer, uses_llama_cpp_tokenizer
from pytest_parity.sources.lmeval.transport import EndpointBridge

if TYPE_CHECKING:
    from pytest_parity.secrets import Secret

# The benchmark defines answer length and stop strings; the endpoint's own values would change it.
BENCHMARK_OWNED = frozenset({"max_tokens", "max_completion_tokens", "stop", "n", "logprobs"})
FAIL_KEY = "__parity_failed__"
DEFAULT_MAX_LENGTH = 1 << 20  # no client-side truncation; the server rejects what does not fit

_CLASSES: dict[str, Any] = {}


# What lm-eval receives for a failed request; the item's error comes from the captured exchange.
FAILED_TEXT = ""
FAILED_LOGLIK = (float("nan"), False)


def error_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return msg if len(msg) <= 300 else msg[:297] + "..."


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


def _prompt_of(payload: Mapping[str, Any]) -> str:
    if "messages" in payload:
        return json.dumps(payload["messages"], ensure_ascii=False)
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def _bridged(base: type) -> type:
    """A subclass of an lm-eval HTTP model whose requests go through an
    :class:`~pytest_parity.sources.lmeval.transport.EndpointBridge` (see the module docstring)."""

    class Bridged(base):  # type: ignore[misc]
        parity_params: dict[str, Any]
        parity_bridge: EndpointBridge
        exchanges: dict[str, dict[str, Any]]
        token_keys: dict[tuple[int, ...], str]
        texts_of: dict[tuple[int, ...], str]
        failed_requests: int

        @property
        def header(self) -> dict[str, str]:
            return {}  # the endpoint sends its own headers and key

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
            return payload

        def _payload(self, messages: Any, generate: bool, gen_kwargs: Any, **kw: Any) -> Any:
            return self._create_payload(
                self.create_message(messages),
                generate=generate,
                gen_kwargs=copy.deepcopy(gen_kwargs),
                seed=self._seed,
                eos=self.eos_string,
                **kw,
            )

        def _outcome(self, payload: Any, messages: Any, generate: bool, response: Any) -> Any:
            """The reply lm-eval parses, or the failure marker; records the exchange."""
            error, kind = response.error, response.error_kind
            out = response.raw
            if error is None:
                try:
                    check_shape(out, generate=generate, chat="messages" in payload)
                except ValueError as exc:
                    error, kind = f"{self.parity_bridge.endpoint.spec.role}: {exc}", "malformed"
            keys = (
                [_prompt_of(payload)]
                if generate
                else [self.token_keys.get(tuple(t)) for t in (messages or [])]
            )
            choice = {}
            if error is None and isinstance(out, dict):
                choice = (out.get("choices") or [{}])[0]
            for key in keys:
                if key is None:
                    continue
                self.exchanges[key] = {
                    "error": error,
                    "error_kind": kind,
                    "finish_reason": choice.get("finish_reason") if generate else None,
                    "usage": dict(response.usage) or None,
                    "latency_s": response.latency_s,
                    "cached": response.cached,
                }
            if error is not None:
                self.failed_requests += 1
                return {FAIL_KEY: error, "kind": kind}
            return out

        def model_call(
            self, messages: Any, *, generate: bool = True, gen_kwargs: Any = None, **kwargs: Any
        ) -> Any:
            payload = self._payload(messages, generate, gen_kwargs, **kwargs)
            response = self.parity_bridge.complete(payload)
            return self._outcome(payload, messages, generate, response)

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
            payload = self._payload(messages, generate, gen_kwargs, **kwargs)
            response = await self.parity_bridge.acomplete(payload)
            out = self._outcome(payload, messages, generate, response)
            if generate:
                return self.parse_generations(outputs=out)
            return self.parse_logprobs(outputs=out, tokens=messages, ctxlens=ctxlens)

        def parse_generations(self, outputs: Any, **kwargs: Any) -> list[Any]:
            if isinstance(outputs, dict) and FAIL_KEY in outputs:
                return [FAILED_TEXT]
            texts: list[Any] = super().parse_generations(outputs=outputs, **kwargs)
            return texts

        def parse_logprobs(
            self, outputs: Any, tokens: Any = None, ctxlens: Any = None, **kwargs: Any
        ) -> list[Any]:
            if isinstance(outputs, list) and len(outputs) == 1:
                outputs = outputs[0]  # lm-eval's sync path wraps a single response in a list
            if isinstance(outputs, dict) and FAIL_KEY in outputs:
                return [FAILED_LOGLIK] * max(1, len(ctxlens or ()))
            res: list[Any] = super().parse_logprobs(
                outputs=outputs, tokens=tokens, ctxlens=ctxlens, **kwargs
            )
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

    Bridged.__name__ = Bridged.__qualname__ = f"Parity{base.__name__}"
    return Bridged


def _model_class(api: str) -> Any:
    if api not in _CLASSES:
        from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

        base = LocalChatCompletion if api == "chat" else LocalCompletionsAPI
        _CLASSES[api] = _bridged(base)
    return _CLASSES[api]


def tokenizer_headers(endpoint: EndpointSpec) -> tuple[dict[str, str], Secret | None]:
    """Headers (with the key from ``api_key_env``) for a server's tokenizer routes, and the key
    as a :class:`Secret` (masked in every repr, so a ``-l`` traceback never shows it)."""
    from pytest_parity.secrets import MaskedHeaders, read_secret

    headers = MaskedHeaders(thaw(endpoint.headers))
    secret = read_secret(endpoint.api_key_env)
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret.reveal()}"
    return headers, secret


def build_model(
    endpoint: EndpointSpec,
    opts: Mapping[str, Any],
    output_type: str,
    *,
    seed: int,
    bridge: EndpointBridge,
    task_params: Mapping[str, Any] | None = None,
    tokenizer_from: EndpointSpec | None = None,
) -> Any:
    """The lm-eval model object for one endpoint; its requests go through ``bridge``.

    Sampling comes from the endpoint, then the contract task's ``params``; the benchmark's own
    generation settings (length, stop strings, explicit gen_kwargs) win over both.
    ``tokenizer_from`` is the server whose tokenizer counts loglikelihood contexts (the endpoint
    itself, unless it is a recording: then the other stack's).
    """
    params = {**thaw(endpoint.params), **thaw(task_params or {})}
    tok_ep = tokenizer_from or endpoint
    headers, secret = tokenizer_headers(tok_ep)
    generate = output_type == "generate_until"
    tok = opts.get("tokenizer")
    kwargs: dict[str, Any] = {
        # Never contacted for completions (the bridge sends them); the remote tokenizer's host.
        "base_url": endpoint_url(tok_ep),
        "model": endpoint.model,
        "num_concurrent": max(2, endpoint.max_concurrency),  # the async path: one event loop
        "max_retries": 1,  # the endpoint retries: a request that still fails is one item
        "timeout": max(1, math.ceil(endpoint.timeout)),
        "max_length": opts.get("max_length", DEFAULT_MAX_LENGTH),
        # Answer length belongs to the benchmark (its YAML, or lm_eval.gen_kwargs.max_gen_toks),
        # not to the endpoint: lm-eval's own default keeps results comparable with published ones.
        "max_gen_toks": 256,
        "seed": int(params.get("seed", seed) if params.get("seed") is not None else seed),
        "batch_size": 1,
    }
    llama_tok = not generate and uses_llama_cpp_tokenizer(tok_ep.kind, tok)
    if generate or tok is None or llama_tok:
        kwargs.update(tokenizer_backend=None, tokenized_requests=False)
    elif tok == "remote":
        # lm-eval's remote tokenizer takes the key as a plain string: revealed only here
        kwargs.update(
            tokenizer_backend="remote", auth_token=None if secret is None else secret.reveal()
        )
    else:
        kwargs.update(tokenizer_backend="huggingface", tokenizer=tok)
    if not generate:
        # llama.cpp's server answers a token-list prompt with HTTP 500: send text there.
        kwargs["tokenized_requests"] = opts.get("tokenized_requests", tok_ep.kind != "llama-cpp")
    lm = _model_class(endpoint.api)(**kwargs)
    if llama_tok:
        # lm-eval cannot build this one itself: hand it in as its "remote" backend, whose calls
        # (encode, batch_decode, eos/bos) LlamaCppTokenizer answers. Prompts go out as text.
        lm.tokenizer = LlamaCppTokenizer(tok_ep.base_url, timeout=tok_ep.timeout, headers=headers)
        lm.tokenizer_backend = "remote"
        lm.tokenized_requests = False
    lm.parity_params = params
    lm.parity_bridge = bridge
    lm.exchanges = {}
    lm.token_keys = {}
    lm.texts_of = {}
    lm.failed_requests = 0
    return lm
