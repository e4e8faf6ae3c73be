"""A real OpenAI-compatible (and Anthropic Messages) HTTP server on 127.0.0.1 for tests.

It runs aiohttp in a background thread, so tests talk to it over real sockets. What it answers is
decided per request by ``answer(request_json) -> str | Reply``; faults are injected at a chosen
rate, each request body faulted at most ``max_per_request`` times so a client with retries always
gets through (tests stay deterministic in outcome while the fault order varies)::

    with FakeServer(answer=lambda body: "42", faults=Faults(rate=0.2)) as srv:
        spec = make_spec(srv.base_url)

Routes: POST /v1/chat/completions, /v1/completions, /v1/messages, /tokenize; GET /v1/models, /version,
/get_model_info, /get_server_info, /props, /health. ``base_url`` ends in /v1 (OpenAI kinds);
``root`` has no /v1 (the anthropic kind). Faults (``FAULTS``): 500, 429 (Retry-After from
``Faults.retry_after``, else retry-after-ms: 20), reset (connection aborted), timeout (stalls
``hang_s``), malformed (truncated JSON), empty (no choices).

What tests can read afterwards: ``received`` (request bodies), ``headers_seen``, ``answered``
(successes per path), ``fault_log`` (faults per kind), ``max_in_flight``. Settable at any time:
``answer``, ``require_key`` (401 otherwise, body ``error_body``), ``engine_version``, ``model``.
A server that stays down: ``closed_port()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULTS = ("500", "429", "reset", "timeout", "malformed", "empty")


@dataclass
class Reply:
    """A full answer when a plain string is not enough."""

    text: str = ""
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"name":, "arguments":}]
    # Token logprobs, in the chat API's shape: [{"token", "logprob", "top_logprobs": [{"token",
    # "logprob"}]}]; sent (converted for /v1/completions) when the request asks for logprobs.
    logprobs: list[dict[str, Any]] | None = None


@dataclass
class Faults:
    rate: float = 0.0  # share of completion requests that get a fault
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    max_per_request: int = 2  # a given request body is faulted at most this often
    retry_after: str | None = None  # Retry-After header on 429s (None: retry-after-ms: 20)
    hang_s: float = 3.0  # how long a "timeout" fault stalls before answering


def echo(body: dict[str, Any]) -> str:
    """The default answer: the last user message (or the prompt) echoed back."""
    if "prompt" in body:
        return str(body["prompt"])
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else json.dumps(content)


def closed_port() -> int:
    """A local port with nothing listening (a server that stays down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class FakeServer:
    def __init__(
        self,
        answer: Callable[[dict[str, Any]], str | Reply] = echo,
        *,
        faults: Faults | None = None,
        latency_s: float = 0.0,
        model: str = "test-model",
        engine_version: str = "0.0.1-test",
        require_key: str | None = None,
        error_body: str | None = None,
        n_ctx: int | None = None,
        logprobs: bool = True,
    ) -> None:
        self.answer = answer
        self.logprobs = logprobs  # False: a server that ignores the logprobs parameter
        self.faults = faults or Faults()
        self.latency_s = latency_s
        self.model = model
        self.engine_version = engine_version
        self.require_key = require_key
        self.error_body = error_body  # echoed in 401 bodies (tests that secrets get scrubbed)
        # The context window /props (n_ctx) and /v1/models (max_model_len) report; None: silent.
        self.n_ctx = n_ctx
        self.tokenized = 0  # POST /tokenize calls (one token per whitespace-separated word)
        self.received: list[dict[str, Any]] = []  # every completion request body, in order
        self.answered: Counter[str] = Counter()  # successful answers per path
        self.fault_log: Counter[str] = Counter()
        self.headers_seen: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most completion requests handled at once
        self._faulted: Counter[str] = Counter()
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def start(self) -> FakeServer:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10) or self._error is not None:
            raise RuntimeError(f"test server did not start: {self._error!r}")
        return self

    def _serve(self, ready: threading.Event) -> None:
        try:
            self._run(ready)
        except BaseException as exc:  # surface start-up failures to start() instead of hanging
            self._error = exc
            ready.set()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        for path in ("/v1/chat/completions", "/v1/completions", "/v1/messages"):
            app.router.add_post(path, self._complete)
        for path in ("/v1/models", "/version", "/get_model_info", "/get_server_info", "/props"):
            app.router.add_get(path, self._info)
        app.router.add_get("/health", self._info)
        app.router.add_post("/tokenize", self._tokenize)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        loop.run_until_complete(self._runner.setup())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        loop.run_until_complete(site.start())
        ready.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        # Handlers still stalling on "timeout" faults: cancel them so the loop closes cleanly.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- handlers ---------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        path = request.path
        if path == "/v1/models":
            data: dict[str, Any] = {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "owned_by": "test",
                        "root": f"/models/{self.model}",
                        **({} if self.n_ctx is None else {"max_model_len": self.n_ctx}),
                    }
                ],
            }
        elif path == "/get_model_info":
            data = {"model_path": f"/models/{self.model}", "is_generation": True}
        elif path == "/props":
            data = {"build_info": f"b{self.engine_version}", "model_path": f"{self.model}.gguf"}
            if self.n_ctx is not None:
                data["default_generation_settings"] = {"n_ctx": self.n_ctx}
        elif path == "/health":
            data = {"status": "ok"}
        else:
            data = {"version": self.engine_version}
        return web.json_response(data)

    async def _tokenize(self, request: web.Request) -> web.Response:
        """llama.cpp's /tokenize ({"content"}) and vLLM's ({"prompt"}): a token per word."""
        body = json.loads(await request.read())
        text = body.get("content", body.get("prompt", ""))
        with self._lock:
            self.tokenized += 1
        words = text.split()
        return web.json_response({"tokens": list(range(len(words))), "count": len(words)})

    def _pick_fault(self, raw: bytes) -> str | None:
        f = self.faults
        if f.rate <= 0:
            return None
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            if self._faulted[digest] >= f.max_per_request or self._rng.random() >= f.rate:
                return None
            self._faulted[digest] += 1
            kind = self._rng.choice(f.kinds)
            self.fault_log[kind] += 1
            return kind

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        with self._lock:
            self.received.append(body)
            self.headers_seen.append(dict(request.headers))
        if self.latency_s:  # a slow stack is slow to refuse, too
            await asyncio.sleep(self.latency_s)
        if self.require_key is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            given = given or request.headers.get("x-api-key", "")
            if given != self.require_key:
                msg = self.error_body if self.error_body is not None else "bad key"
                return web.json_response({"error": {"message": msg}}, status=401)
        fault = self._pick_fault(raw)
        if fault == "500":
            return web.json_response({"error": "boom"}, status=500)
        if fault == "429":
            headers = (
                {"Retry-After": self.faults.retry_after}
                if self.faults.retry_after is not None
                else {"retry-after-ms": "20"}
            )
            return web.json_response({"error": "slow down"}, status=429, headers=headers)
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if fault == "timeout":
            await asyncio.sleep(self.faults.hang_s)
        if fault == "malformed":
            return web.Response(text='{"choices": [', content_type="application/json")
        if fault == "empty":
            return web.json_response({"id": "x", "choices": [], "model": self.model})
        reply = self.answer(body)
        if isinstance(reply, str):
            reply = Reply(reply)
        with self._lock:
            self.answered[request.path] += 1
        return web.json_response(self._render(request.path, body, reply))

    def _render(self, path: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        n_out = len(reply.text.split())
        usage = {"prompt_tokens": 7, "completion_tokens": n_out, "total_tokens": 7 + n_out}
        want_lp = bool(body.get("logprobs")) and self.logprobs
        if path == "/v1/messages":
            blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}]
            for tc in reply.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": "tu_1",
                        "name": tc["name"],
                        "input": json.loads(tc["arguments"]),
                    }
                )
            stop = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
            return {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": blocks,
                "stop_reason": stop.get(reply.finish_reason, reply.finish_reason),
                "usage": {"input_tokens": 7, "output_tokens": n_out},
            }
        choice: dict[str, Any] = {"index": 0, "finish_reason": reply.finish_reason}
        words = reply.text.split()
        if path == "/v1/chat/completions":
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if reply.tool_calls:
                message["tool_calls"] = [
                    {"id": f"c{i}", "type": "function", "function": dict(tc)}
                    for i, tc in enumerate(reply.tool_calls)
                ]
            choice["message"] = message
            if want_lp and reply.logprobs is not None:
                choice["logprobs"] = {"content": reply.logprobs}
            elif want_lp:
                choice["logprobs"] = {
                    "content": [{"token": w, "logprob": -0.5, "top_logprobs": []} for w in words]
                }
        else:
            choice["text"] = reply.text
            if want_lp and reply.logprobs is not None:
                choice["logprobs"] = {
                    "tokens": [t["token"] for t in reply.logprobs],
                    "token_logprobs": [t["logprob"] for t in reply.logprobs],
                    "top_logprobs": [
                        {a["token"]: a["logprob"] for a in t.get("top_logprobs") or ()}
                        for t in reply.logprobs
                    ],
                }
            elif want_lp:
                choice["logprobs"] = {"tokens": words, "token_logprobs": [-0.25 for _ in words]}
        return {
            "id": "cmpl-1",
            "object": "x",
            "model": self.model,
            "choices": [choice],
            "usage": usage,
        }


# aiohttp logs the aborted connections of "reset" faults; tests do not need that noise.
logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
