"""The endpoint layer: requests in, normalised responses out, whatever the server does.

An :class:`Endpoint` sends requests with bounded concurrency (``spec.max_concurrency``), a
per-attempt timeout (``spec.timeout``) and retries (``spec.max_retries``) with exponential backoff
and full jitter on connection errors, timeouts, 408/429/5xx (honouring Retry-After), malformed
JSON and empty choices. A request that still fails returns a :class:`Response` with ``error`` set:
``complete`` never raises for a failed request, and a failure never looks like an empty answer.

Transport: an httpx transport, injected (``httpx.MockTransport`` in unit tests). The default is
``httpx-aiohttp``'s ``AiohttpTransport`` (aiohttp's connection pool, limits raised to the
concurrency), because plain httpx's pool costs grow with concurrency (see PERFORMANCE.md).
Requests go straight to the transport, not through ``httpx.AsyncClient``: an LLM API needs none
of its redirects, cookies or auth flows. The default transport also offers ``exchange``, which
skips building httpx Request/Response objects; any other transport gets standard httpx requests.

Secrets: the API key is read from the environment variable named by ``spec.api_key_env`` when
the endpoint opens, into a :class:`~pytest_parity.secrets.Secret` (masked in every repr, so
tracebacks shown with ``-l`` hold no key), and lives only in the request headers. Every
configured secret is scrubbed (:mod:`pytest_parity.secrets`) from what a server sends back, where
the Response and the engine facts are built, and from every error text.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import email.utils
import functools
import json
import random
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from pytest_parity import secrets
from pytest_parity.contract.spec import EndpointSpec, thaw
from pytest_parity.endpoints.cache import ResponseCache, canonical_hash
from pytest_parity.endpoints.kinds import (
    ANTHROPIC_VERSION,
    KINDS,
    KindInfo,
    MalformedReply,
    build_payload,
    engine_facts,
    parse_reply,
    request_url,
    server_root,
)

if TYPE_CHECKING:
    from pytest_parity.endpoints.recording import Recorder

# "environment": a tool of a multi-step task raised (the test's environment, not the model)
ERROR_KINDS = ("connect", "timeout", "http", "malformed", "replay", "too_large", "environment")
# Spec fields that change how a request is sent, never what is asked or who answers it.
NOT_IN_CACHE_KEY = frozenset(
    {"timeout", "max_concurrency", "max_retries", "max_response_bytes", "recording", "api_key_env"}
)
# Built once: json.dumps with an option builds an encoder per call (~0.8 us a request).
_encode_body = json.JSONEncoder(ensure_ascii=False).encode
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


@dataclass(frozen=True)
class Request:
    """One question to one endpoint. Exactly one of ``messages`` (chat), ``prompt``, or
    ``body``: a request already in the OpenAI wire format (lm-eval builds its own), sent as it
    is with the endpoint's model; its answer keeps the reply's JSON in ``Response.raw``."""

    item_id: str
    messages: tuple[Mapping[str, Any], ...] | None = None
    prompt: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # merged over spec.params
    repeat: int = 0  # repeat index for sampled requests
    template: str | None = None  # the task's prompt template (part of the cache key)
    body: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.messages, self.prompt, self.body))
        if given != 1:
            raise ValueError(
                f"request {self.item_id!r}: give exactly one of messages, prompt or body"
            )

    def request_hash(self) -> str:
        """sha256 of what is asked (messages/prompt and per-request params), not of who asks:
        the same question hashes the same for baseline, candidate and a replayed recording."""
        memo: str | None = self.__dict__.get("_hash")
        if memo is None:
            asked: dict[str, Any] = {
                "messages": thaw(self.messages),
                "prompt": self.prompt,
                "params": thaw(self.params),
            }
            if self.body is not None:
                # Who is asked (the model name) is the endpoint's identity, not the question.
                asked["body"] = {k: v for k, v in thaw(self.body).items() if k != "model"}
            memo = canonical_hash(asked)
            object.__setattr__(self, "_hash", memo)
        return memo


@dataclass(frozen=True)
class Response:
    text: str  # "" on error
    finish_reason: str | None  # "stop" | "length" | "tool_calls" | "content_filter" | None
    # ({"name": str, "arguments": str, "id": str when the server gave one}, ...)
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    usage: Mapping[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    error: str | None = None  # one line: endpoint role + URL + last error; no secrets
    error_kind: str | None = None  # one of ERROR_KINDS
    cached: bool = False
    logprobs: tuple[float, ...] | None = None
    model: str | None = None
    attempts: int = 1
    raw: Mapping[str, Any] | None = None  # the reply's JSON, for requests sent as a ``body``
    # With ``logprobs``: each token's text, and its ``top_logprobs`` alternatives (token ->
    # logprob) when the request asked for them; what confidence from logprobs is computed from.
    tokens: tuple[str, ...] | None = None
    top_logprobs: tuple[Mapping[str, float], ...] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "tool_calls": [dict(t) for t in self.tool_calls],
            "usage": dict(self.usage),
            "latency_s": self.latency_s,
            "error": self.error,
            "error_kind": self.error_kind,
            "cached": self.cached,
            "logprobs": None if self.logprobs is None else list(self.logprobs),
            "model": self.model,
            "attempts": self.attempts,
            **({} if self.raw is None else {"raw": self.raw}),
            **({} if self.tokens is None else {"tokens": list(self.tokens)}),
            **(
                {}
                if self.top_logprobs is None
                else {"top_logprobs": [dict(t) for t in self.top_logprobs]}
            ),
        }

    def to_stored(self) -> dict[str, Any]:
        """:meth:`to_dict` without what :meth:`from_dict` gives by default (no error, not
        cached, one attempt, no tool calls or logprobs): what the response cache keeps of a
        successful answer. Half the keys of a typical answer: its JSON and its row cost half."""
        d: dict[str, Any] = {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "latency_s": self.latency_s,
        }
        if self.model is not None:
            d["model"] = self.model
        if self.attempts != 1:
            d["attempts"] = self.attempts
        if self.tool_calls:
            d["tool_calls"] = [dict(t) for t in self.tool_calls]
        if self.logprobs is not None:
            d["logprobs"] = list(self.logprobs)
        if self.raw is not None:
            d["raw"] = self.raw
        if self.tokens is not None:
            d["tokens"] = list(self.tokens)
        if self.top_logprobs is not None:
            d["top_logprobs"] = [dict(t) for t in self.top_logprobs]
        if self.error is not None:  # never stored (the cache refuses it); kept for that check
            d["error"], d["error_kind"] = self.error, self.error_kind
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], **override: Any) -> Response:
        values: dict[str, Any] = {
            "text": d.get("text", ""),
            "finish_reason": d.get("finish_reason"),
            "tool_calls": tuple(d.get("tool_calls") or ()),
            "usage": dict(d.get("usage") or {}),
            "latency_s": float(d.get("latency_s", 0.0)),
            "error": d.get("error"),
            "error_kind": d.get("error_kind"),
            "cached": bool(d.get("cached", False)),
            "logprobs": None if d.get("logprobs") is None else tuple(d["logprobs"]),
            "model": d.get("model"),
            "attempts": int(d.get("attempts", 1)),
            "raw": d.get("raw"),
            "tokens": None if d.get("tokens") is None else tuple(d["tokens"]),
            "top_logprobs": (None if d.get("top_logprobs") is None else tuple(d["top_logprobs"])),
        }
        values.update(override)
        return cls(**values)


def failure(error: str, kind: str, latency_s: float = 0.0, attempts: int = 1) -> Response:
    return Response("", None, error=error, error_kind=kind, latency_s=latency_s, attempts=attempts)


@dataclass
class RequestCounters:
    """Counters the plugin reads to show rate and ETA (one event loop updates them)."""

    total: int = 0  # requests submitted
    done: int = 0  # finished, whatever the outcome (includes failed and cached)
    failed: int = 0
    cached: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)  # for rates
    started_at: float = field(default_factory=time.time)  # wall clock, for display

    def rate(self) -> float:
        """Finished requests per second since the endpoint opened."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "cached": self.cached,
            "retries": self.retries,
            "started_at": self.started_at,
            "elapsed_s": time.monotonic() - self.started,
            "rate": self.rate(),
            "eta_s": self.eta_s(),
        }


class ResponseTooLarge(Exception):
    """An answer longer than the endpoint's ``max_response_bytes`` (after decompression): the
    reading stopped there, so neither a 50 MB body nor a gzip bomb is ever held in memory."""

    def __init__(self, limit: int, seen: int) -> None:
        super().__init__(f"answer larger than max_response_bytes ({limit} bytes; {seen}+ read)")
        self.limit = limit


async def read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body from ``chunks`` (decompressed pieces), or ResponseTooLarge past ``limit``."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise ResponseTooLarge(limit, len(buf))
    return bytes(buf)


def check_declared_length(headers: Mapping[str, str], limit: int) -> None:
    """Refuse before reading when an uncompressed body declares more than ``limit`` bytes."""
    declared = headers.get("content-length")
    encoded = headers.get("content-encoding")
    if declared and declared.isdigit() and not encoded and int(declared) > limit:
        raise ResponseTooLarge(limit, int(declared))


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts: full jitter, ``uniform(0, min(cap, base * 2**n))`` seconds,
    never less than what the server asked for with Retry-After (up to ``max_retry_after_s``).
    After ``breaker`` requests in a row failed to connect or timed out on every attempt, the
    endpoint is considered down (a circuit breaker): one request at a time probes it with a single
    attempt and the others fail at once, so a dead server fails a run in seconds, not hours."""

    base_s: float = 0.5
    cap_s: float = 20.0
    max_retry_after_s: float = 120.0
    breaker: int = 3

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        d = rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_retry_after_s))
        return d


def default_transport(
    max_connections: int, *, tls: bool = True, proxy: str | None = None
) -> httpx.AsyncBaseTransport:
    """httpx-aiohttp's transport with aiohttp's pool sized to the concurrency (its default of
    100 connections would cap a 128-512 concurrency run). ``tls=False`` (a plain-http server)
    skips loading the CA bundle; ``proxy`` is an http(s) proxy URL (see :func:`env_proxy`)."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    verify: ssl.SSLContext | bool = _ssl_context() if tls else False
    transport: httpx.AsyncBaseTransport = _pooled_transport_class()(
        verify=verify, limits=limits, proxy=None if proxy is None else httpx.Proxy(proxy)
    )
    return transport


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY / HTTP_PROXY, minus NO_PROXY),
    as httpx would use it; loopback servers never go through a proxy."""
    import urllib.request

    host = httpx.URL(url).host
    if host in ("127.0.0.1", "localhost", "::1") or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get("https" if url.startswith("https:") else "http")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~0.1 s; endpoints open per task, so build it once per process.
    return httpx.create_ssl_context()


@functools.cache
def _pooled_transport_class() -> Any:
    """httpx-aiohttp's ``AiohttpTransport`` plus a direct exchange for the endpoint's hot path.

    The top-level ``httpx_aiohttp`` module is the one built on httpx 0.28 (its ``httpx2``
    submodule targets the httpx fork): httpx is what this project depends on and tests against.
    As an httpx transport it serves any ``httpx.AsyncClient``; ``exchange`` skips building httpx
    Request/Response objects and streaming the body through httpx's decoders, which was half of
    the client's CPU per request at zero latency.
    """
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    class PooledTransport(AiohttpTransport):
        async def exchange(
            self,
            method: str,
            url: str,
            headers: Mapping[str, str],
            content: bytes | None,
            timeout: float,
            max_bytes: int = 16 << 20,
        ) -> tuple[int, Mapping[str, str], bytes]:
            if not isinstance(self.client, aiohttp.ClientSession):
                self.client = self.get_client()
            session: aiohttp.ClientSession = self.client
            options = self._options(timeout)
            async with session.request(
                method, url, data=content, headers=headers, **options
            ) as resp:
                rh = resp.headers
                declared = rh.get("content-length")
                if (
                    declared is not None
                    and declared.isdigit()
                    and int(declared) <= max_bytes
                    and "content-encoding" not in rh
                ):
                    # A plain body of a declared length under the cap (the usual answer):
                    # aiohttp reads exactly that many bytes, in one await.
                    return resp.status, rh, await resp.read()
                # Streamed with a cap: aiohttp decompresses chunk by chunk (bounded per chunk),
                # so memory stays near max_bytes whatever the server sends or compresses.
                check_declared_length(rh, max_bytes)
                body = await read_capped(resp.content.iter_chunked(1 << 16), max_bytes)
                return resp.status, rh, body

        def _options(self, timeout: float) -> dict[str, Any]:
            """The per-request options but the body, made once per timeout value: a new
            ClientTimeout, proxy URL and auth per request were ~5% of the CPU per request."""
            memo: dict[float, dict[str, Any]] = self.__dict__.setdefault("_option_memo", {})
            options = memo.get(timeout)
            if options is None:
                proxy = self.proxy
                options = memo[timeout] = {
                    "allow_redirects": False,
                    "timeout": aiohttp.ClientTimeout(total=timeout),
                    "proxy": None if proxy is None else str(proxy.url),
                    "proxy_auth": None
                    if proxy is None or not proxy.auth
                    else aiohttp.BasicAuth(*proxy.auth),
                }
            return options

    return PooledTransport


class Endpoint(abc.ABC):
    """One serving stack; see the module docstring. Create with :func:`open_endpoint`."""

    def __init__(
        self,
        spec: EndpointSpec,
        *,
        cache: ResponseCache | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.spec = spec
        self.info: KindInfo = KINDS[spec.kind]
        self.progress = RequestCounters()
        self.cache = cache
        self.recorder = recorder
        self._engine: dict[str, Any] | None = None
        self._engine_lock = asyncio.Lock()
        self.closed = False
        self._cache_ekey: str | None = None
        self._cache_run = ""  # the cache's run tag for this endpoint (ResponseCache.begin)
        # Set when the endpoint stalled (it accepts requests and never answers): the task
        # stops at once, as an ERROR, instead of one timeout per item (runner/pipeline.py).
        self.stalled: str | None = None

    @property
    def url(self) -> str:
        return request_url(self.info, self.spec.base_url, self.spec.api)

    def identity(self, engine: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The spec's identity plus what the server says it runs: a new engine version or other
        weights behind the same URL make a new identity (and so new cache entries)."""
        engine = engine or {}
        ident = self.spec.identity()
        ident["engine_version"] = engine.get("version")
        ident["engine_model"] = (
            engine.get("model_root") or engine.get("model_path") or engine.get("served_models")
        )
        return ident

    async def engine(self) -> dict[str, Any]:
        """What the server says about itself (probed once; {} when it says nothing)."""
        if self._engine is not None:
            return self._engine
        async with self._engine_lock:
            if self._engine is None:
                self._engine = await self._probe()
            return self._engine

    async def _probe(self) -> dict[str, Any]:
        return {}

    def cache_identity(self, engine: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the cache key hashes: :meth:`identity`, the URL asked, the headers sent (secret
        values hashed, never in clear) and every other spec field that shapes a request or
        picks a backend. Fields are taken by default: one added to EndpointSpec later (extra
        body, query parameters...) joins the key unless :data:`NOT_IN_CACHE_KEY` names it."""
        ident = self.identity(engine)
        for f in dataclasses.fields(self.spec):
            if f.name not in ident and f.name not in NOT_IN_CACHE_KEY:
                ident[f.name] = thaw(getattr(self.spec, f.name))
        ident["url"] = self.url
        ident["headers"] = {
            k.lower(): _hashed(v) if secrets.is_secret_header(k) else v
            for k, v in sorted(self._sent_headers().items())
        }
        return ident

    def _sent_headers(self) -> Mapping[str, str]:
        return dict(self.spec.headers)

    async def describe(self) -> dict[str, Any]:
        """Identity and engine facts for reports and recordings; never secrets."""
        engine = await self.engine()
        return {**self.identity(engine), "engine": engine, "url": self.url}

    async def complete(self, request: Request) -> Response:
        """Answer one request: from the cache, else from the server. Never raises for failures."""
        progress = self.progress
        progress.total += 1
        key = ekey = None
        if self.cache is not None:
            ekey = self._cache_ekey
            if ekey is None:
                engine = await self.engine()
                # Every request of a burst waits for the probe: only the first computes this.
                ekey = self._cache_ekey
                if ekey is None:
                    ekey = ResponseCache.endpoint_key(self.cache_identity(engine))
                    self._cache_run = self.cache.begin(ekey)
                    self._cache_ekey = ekey
            key = ResponseCache.key(ekey, request.request_hash(), request.repeat, request.template)
            hit = await self.cache.aget(key, self._cache_run)
            if hit is not None:
                progress.cached += 1
                progress.done += 1
                response = Response.from_dict(hit, cached=True)
                await self._record(request, response)
                return response
        if self.cache is None:
            response = await self._answer(request)
        else:
            self.cache.asked()
            try:
                response = await self._answer(request)
            finally:
                self.cache.answered()
        progress.done += 1
        if response.error is not None:
            progress.failed += 1
            return response
        if self.cache is not None and key is not None and ekey is not None:
            await self.cache.aput(
                key,
                response.to_stored(),
                endpoint_key=ekey,
                item_id=request.item_id,
                repeat=request.repeat,
                run=self._cache_run,
            )
        await self._record(request, response)
        return response

    async def _record(self, request: Request, response: Response) -> None:
        if self.recorder is None or response.error is not None:
            return
        self.recorder.header(self.spec.role, await self.describe())
        self.recorder.write(
            item_id=request.item_id,
            request_hash=request.request_hash(),
            repeat=request.repeat,
            response=response.to_dict(),
        )

    @abc.abstractmethod
    async def _answer(self, request: Request) -> Response:
        """Answer from the source of truth (server or recording), bypassing cache."""

    async def aclose(self) -> None:
        """Release connections (call inside the event loop that used the endpoint)."""
        self.closed = True

    async def __aenter__(self) -> Endpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.role}, {self.spec.kind}, {self.url!r})"


def open_endpoint(
    spec: EndpointSpec,
    *,
    cache: ResponseCache | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    recorder: Recorder | None = None,
    retry: RetryPolicy | None = None,
) -> Endpoint:
    """The endpoint for ``spec`` (call inside the event loop that will use it)."""
    if spec.kind == "replay":
        from pytest_parity.endpoints.recording import ReplayEndpoint

        # A recording is already local: caching it again would only duplicate it.
        return ReplayEndpoint(spec, recorder=recorder)
    if spec.kind == "captured":
        from pytest_parity.endpoints.recording import CapturedEndpoint

        return CapturedEndpoint(spec, recorder=recorder)
    return HttpEndpoint(
        spec, cache=cache, recorder=recorder, transport=transport, retry=retry or RetryPolicy()
    )


def read_api_key(spec: EndpointSpec) -> secrets.Secret | None:
    """The key from the environment variable the contract names (None when unset or empty),
    masked and registered with the scrubber."""
    return secrets.read_secret(spec.api_key_env)


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def anthropic_headers(key: secrets.Secret | None) -> dict[str, str]:
    headers = secrets.MaskedHeaders({"anthropic-version": ANTHROPIC_VERSION})
    if key:
        headers["x-api-key"] = key.reveal()
    return headers


class HttpEndpoint(Endpoint):
    """A server speaking the OpenAI or Anthropic protocol over HTTP."""

    def __init__(
        self,
        spec: EndpointSpec,
        *,
        cache: ResponseCache | None,
        recorder: Recorder | None,
        transport: httpx.AsyncBaseTransport | None,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(spec, cache=cache, recorder=recorder)
        # Registered with the scrubber: no answer, error or engine fact keeps these values.
        secrets.register_spec(spec)
        key = read_api_key(spec)  # a Secret: a traceback's locals show it masked
        self._owns_transport = transport is None
        # The pooled (aiohttp) transport is built on the first request sent, not here: a run
        # answered wholly from the cache never imports aiohttp (~0.12 s of its start).
        self._transport: httpx.AsyncBaseTransport | None = transport
        if transport is None and not spec.base_url.startswith("http://"):
            _ssl_context()  # a CA bundle that cannot be loaded fails here, not per request
        self._retry = retry
        self._rng = random.Random()
        self._sem = asyncio.Semaphore(spec.max_concurrency)
        self._exchange: Callable[..., Awaitable[tuple[int, Mapping[str, str], bytes]]] | None
        self._exchange = getattr(transport, "exchange", None)
        self._post_url = self.url
        self._params = thaw(spec.params)
        headers = secrets.MaskedHeaders(
            {
                "content-type": "application/json",
                "accept": "application/json",
                "user-agent": "pytest-parity",
            }
        )
        headers.update(spec.headers)
        if self.info.protocol == "anthropic":
            headers.update(anthropic_headers(key))
        elif key:
            headers["authorization"] = f"Bearer {key.reveal()}"
        self._plain_headers = headers
        self._headers = httpx.Headers(headers)
        t = spec.timeout
        self._timeouts = {"connect": t, "read": t, "write": t, "pool": t}
        self._down_streak = 0  # requests in a row that failed to connect or timed out
        self._probing = False
        # Time with an attempt in flight since the server last replied (any status), and the
        # attempts that timed out since: a server that answers nothing for (1 + max_retries) x
        # timeout of asking is stalled, however the attempts queue behind the endpoint's
        # concurrency (at max_concurrency 1 behind a window of 16 items, counting whole
        # requests took 16 x (1 + max_retries) x timeout). Idle time never counts: a batch
        # that starts after a pause is not "quiet" for the pause.
        self._quiet_s = 0.0
        self._in_flight = 0
        self._busy_since = 0.0
        self._quiet_timeouts = 0
        self._last_down, self._last_kind = "", "connect"

    def __repr__(self) -> str:
        return f"HttpEndpoint({self.spec.role}, {self.spec.kind}, {self.url!r})"

    def _sent_headers(self) -> Mapping[str, str]:
        return self._plain_headers

    def _pool(self) -> httpx.AsyncBaseTransport:
        """The transport requests go through: the one given, else the pooled one, built now."""
        if self._transport is None:
            self._transport = default_transport(
                self.spec.max_concurrency,
                tls=not self.spec.base_url.startswith("http://"),
                proxy=env_proxy(self.spec.base_url),
            )
            self._exchange = getattr(self._transport, "exchange", None)
        return self._transport

    async def _send(
        self,
        method: str,
        url: str,
        content: bytes | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One exchange through ``transport``, by default the endpoint's pool."""
        cap = self.spec.max_response_bytes
        if transport is None:
            transport = self._pool()
            if self._exchange is not None:
                return await self._exchange(method, url, self._plain_headers, content, timeout, cap)
        ext = (
            self._timeouts
            if timeout == self.spec.timeout
            else dict.fromkeys(self._timeouts, timeout)
        )
        req = httpx.Request(
            method, url, headers=self._headers, content=content, extensions={"timeout": ext}
        )

        async def go() -> tuple[int, Mapping[str, str], bytes]:
            resp = await transport.handle_async_request(req)
            try:
                check_declared_length(resp.headers, cap)
                raw = await read_capped(resp.aiter_bytes(), cap)
            finally:
                await resp.aclose()
            return resp.status_code, resp.headers, raw

        # aiohttp's timeouts are per read; this one bounds the whole exchange (a server that
        # trickles bytes forever still times out).
        return await _deadline(go(), timeout)

    async def _probe(self) -> dict[str, Any]:
        root = server_root(self.spec.base_url)
        paths = self.info.identity_paths
        probe: httpx.AsyncBaseTransport | None = None
        if self._transport is None:
            # Before the first request: httpx's own transport (already imported) asks, so a
            # run answered wholly from the cache never builds the pool.
            proxy = env_proxy(self.spec.base_url)
            probe = httpx.AsyncHTTPTransport(
                verify=False if self.spec.base_url.startswith("http://") else _ssl_context(),
                proxy=None if proxy is None else httpx.Proxy(proxy),
            )
        try:
            # Asked together: a hung server costs one probe timeout, not one per route.
            replies = await asyncio.gather(*(self._probe_one(root + p, p, probe) for p in paths))
        finally:
            if probe is not None:
                await probe.aclose()
        facts: dict[str, Any] = {}
        for got in replies:
            facts.update(got or {})
        answered = [p for p, got in zip(paths, replies, strict=True) if got is not None]
        if answered:
            facts["probed"] = answered
        return facts

    async def _probe_one(
        self, url: str, path: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> dict[str, Any] | None:
        try:
            timeout = min(self.spec.timeout, 10.0)
            status, _, raw = await self._send("GET", url, None, timeout, transport)
            if status != 200:
                return None
            data = json.loads(raw)
            # What a server says about itself goes into reports and recordings: no echoed key.
            return engine_facts(
                path, secrets.scrub_value(data) if secrets.may_hold_secret(raw) else data
            )
        except Exception:
            return None  # identity is best effort: a server that hides it still serves

    async def _answer(self, request: Request) -> Response:
        if request.body is not None:
            body = {**thaw(request.body), "model": self.spec.model}
        else:
            params = {**self._params, **thaw(request.params)} if request.params else self._params
            body = build_payload(
                self.info,
                self.spec.api,
                self.spec.model,
                params,
                messages=None if request.messages is None else [dict(m) for m in request.messages],
                prompt=request.prompt,
            )
        content = _encode_body(body).encode("utf-8")
        keep_raw = request.body is not None
        if self.stalled:
            return failure(
                self._scrub(f"{self.spec.role} endpoint {self.url}: not sent: {self.stalled}"),
                "timeout",
            )
        if self._down_streak < self._retry.breaker:
            return await self._attempts(content, 1 + self.spec.max_retries, keep_raw)
        # The endpoint is down: one request at a time probes it with a single attempt, the
        # others fail at once, so a dead server ends a run in seconds (a success closes this).
        if self._probing:
            error = (
                f"{self.spec.role} endpoint {self.url}: not sent: the endpoint is down "
                f"({self._down_streak} requests in a row failed); last error: {self._last_down}"
            )
            return failure(self._scrub(error), self._last_kind)
        self._probing = True
        try:
            return await self._attempts(content, 1, keep_raw)
        finally:
            self._probing = False

    async def _attempts(self, content: bytes, attempts: int, keep_raw: bool = False) -> Response:
        self._pool()  # a transport that cannot be built is a set-up error, not a failed attempt
        kind, last, retry_after = "connect", "", None
        started = time.perf_counter()
        n = 0
        for n in range(1, attempts + 1):
            if n > 1:
                self.progress.retries += 1
                await asyncio.sleep(self._retry.delay(n - 2, retry_after, self._rng))
            retry_after = None
            async with self._sem:
                if self.stalled:  # found while this attempt waited: not worth its timeout
                    kind, last = "timeout", self.stalled
                    break
                t0 = time.perf_counter()
                if self._in_flight == 0:
                    self._busy_since = t0
                self._in_flight += 1
                try:
                    status, headers, raw = await self._send(
                        "POST", self._post_url, content, self.spec.timeout
                    )
                except ResponseTooLarge as exc:
                    # The same question gets the same answer: asking again would not help.
                    self._heard()
                    kind, last = "too_large", f"{exc} (hint: raise max_response_bytes)"
                    break
                except Exception as exc:
                    kind, last = self._classify(exc)
                    if kind == "timeout":
                        self._timed_out()
                    continue
                finally:
                    self._in_flight -= 1
                    if self._in_flight == 0:
                        self._quiet_s += time.perf_counter() - self._busy_since
            self._heard()
            latency = time.perf_counter() - t0
            if status == 200:
                try:
                    data = json.loads(raw)
                    if secrets.may_hold_secret(raw):
                        # The write boundary: every copy of this answer (cache, recording,
                        # records, reports) is made from the scrubbed one.
                        data = secrets.scrub_value(data)
                    parsed = parse_reply(self.info, self.spec.api, data)
                except (ValueError, MalformedReply) as exc:
                    kind, last = "malformed", f"malformed reply: {one_line(str(exc), 120)}"
                    continue
                self._down_streak = 0
                return Response(
                    text=parsed["text"],
                    finish_reason=parsed["finish_reason"],
                    tool_calls=tuple(parsed["tool_calls"]),
                    usage=parsed["usage"],
                    latency_s=latency,
                    logprobs=None if parsed["logprobs"] is None else tuple(parsed["logprobs"]),
                    tokens=None if parsed.get("tokens") is None else tuple(parsed["tokens"]),
                    top_logprobs=(
                        None
                        if parsed.get("top_logprobs") is None
                        else tuple(parsed["top_logprobs"])
                    ),
                    model=parsed["model"],
                    attempts=n,
                    raw=data if keep_raw else None,
                )
            kind = "http"
            last = f"HTTP {status}: {one_line(raw.decode('utf-8', 'replace'), 200) or '(empty)'}"
            if status in (401, 403):
                env = self.spec.api_key_env
                last += f" (hint: check the key in ${env})" if env else " (hint: set api_key_env)"
            if status not in _RETRY_STATUS:
                break
            retry_after = _retry_after(headers)
        if kind in ("connect", "timeout"):
            self._down_streak += 1
            self._last_down, self._last_kind = last, kind
            if kind == "timeout" and self._down_streak >= self._retry.breaker:
                self.stalled = (
                    f"stalled: {self._down_streak} requests in a row got no answer within"
                    f" {self.spec.timeout:g}s on any of their {n} attempt(s)"
                )
        error = f"{self.spec.role} endpoint {self.url}: failed after {n} attempt(s): {last}"
        return failure(self._scrub(error), kind, time.perf_counter() - started, n)

    def _heard(self) -> None:
        """The server answered (any status, even a malformed body): it is not stalled."""
        self._quiet_s = 0.0
        self._busy_since = time.perf_counter()
        self._quiet_timeouts = 0

    def _timed_out(self) -> None:
        """One more attempt timed out: stalled once nothing was heard for the bound of asking."""
        self._quiet_timeouts += 1
        attempts = 1 + self.spec.max_retries
        bound = attempts * self.spec.timeout
        quiet = self._quiet_s + (time.perf_counter() - self._busy_since if self._in_flight else 0)
        if self.stalled is None and self._quiet_timeouts >= attempts and quiet >= bound * 0.99:
            self.stalled = (
                f"stalled: no answer for {quiet:.0f}s ((1 + max_retries) x timeout ="
                f" {bound:g}s) while {self._quiet_timeouts} attempts in a row timed out"
            )

    def _classify(self, exc: BaseException) -> tuple[str, str]:
        cause = exc.__cause__
        if isinstance(exc, TimeoutError | asyncio.TimeoutError) or (
            isinstance(exc, httpx.TimeoutException)
            and (cause is None or isinstance(cause, TimeoutError | asyncio.TimeoutError))
        ):
            return "timeout", f"no answer within {self.spec.timeout:g}s (timeout)"
        # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout: name the cause.
        real = cause if cause is not None else exc
        return "connect", f"{type(real).__name__}: {one_line(str(real), 160) or 'no detail'}"

    def _scrub(self, text: str) -> str:
        return secrets.scrub(text)

    async def aclose(self) -> None:
        if self._owns_transport and not self.closed and self._transport is not None:
            await self._transport.aclose()
        await super().aclose()


_T = TypeVar("_T")


def _hashed(value: str) -> str:
    """A secret header value as it may enter a cache key: its sha256, never the value."""
    import hashlib

    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


async def _deadline(aw: Awaitable[_T], seconds: float) -> _T:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await aw
    return await asyncio.wait_for(aw, seconds)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked to wait: retry-after-ms (OpenAI), Retry-After seconds or date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


__all__ = [
    "ERROR_KINDS",
    "Endpoint",
    "HttpEndpoint",
    "Request",
    "RequestCounters",
    "Response",
    "RetryPolicy",
    "default_transport",
    "env_proxy",
    "failure",
    "open_endpoint",
    "read_api_key",
]
