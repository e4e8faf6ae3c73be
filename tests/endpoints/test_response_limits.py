"""Response size caps: a 50 MB body and a gzip bomb from a real local server end as transport
errors at ``max_response_bytes`` (after decompression), are never cached, and never fill memory."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from aiohttp import web

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.http import Request, Response, RetryPolicy, open_endpoint
from pytest_parity.scoring.categories import classify

MIB = 1 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RawServer:
    """aiohttp on 127.0.0.1 in a thread, answering chat completions with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.hits = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        await request.read()
        return await self.handler(request)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._loop.run_until_complete(web.SockSite(self._runner, sock).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> RawServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def reply(text: str) -> bytes:
    body = {"choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}]}
    return json.dumps(body).encode()


async def fifty_mb(request: web.Request) -> web.StreamResponse:
    """A valid JSON answer of 50 MB, streamed (chunked, no length) so the server holds 64 KiB."""
    resp = web.StreamResponse(headers={"content-type": "application/json"})
    await resp.prepare(request)
    head, tail = reply("").split(b'""', 1)
    await resp.write(head + b'"')
    chunk = b"a" * (1 << 16)
    try:
        for _ in range(50 * MIB // len(chunk)):
            await resp.write(chunk)
        await resp.write(b'"' + tail)
    except (ConnectionResetError, RuntimeError):
        pass  # the client stopped reading at its cap
    return resp


def bomb_bytes() -> bytes:
    """100 MiB of JSON text that gzips to about 100 KB."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    head, tail = reply("").split(b'""', 1)
    parts = [comp.compress(head + b'"')]
    zeros = b"0" * MIB
    parts += [comp.compress(zeros) for _ in range(100)]
    parts += [comp.compress(b'"' + tail), comp.flush()]
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return bomb_bytes()


def spec(base_url: str, cap: int) -> EndpointSpec:
    return EndpointSpec(
        role="candidate",
        kind="vllm",
        base_url=base_url,
        model="m",
        params=MappingProxyType({"temperature": 0.0}),
        max_retries=3,
        timeout=20.0,
        max_response_bytes=cap,
    )


def ask_once(
    s: EndpointSpec, cache: ResponseCache | None = None, **kw: Any
) -> tuple[Response, int]:
    """One request; returns the response and the peak of traced allocations meanwhile."""

    async def go() -> Response:
        ep = open_endpoint(s, cache=cache, retry=RetryPolicy(base_s=0.01, cap_s=0.02), **kw)
        try:
            return await ep.complete(Request("q", messages=({"role": "user", "content": "hi"},)))
        finally:
            await ep.aclose()

    tracemalloc.start()
    try:
        response = asyncio.run(go())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return response, peak


def assert_too_large(r: Response) -> None:
    assert not r.ok and r.error_kind == "too_large", r.error
    assert r.error is not None and "max_response_bytes" in r.error
    assert r.attempts == 1  # the same question would get the same answer: not asked again
    category = classify(
        text=r.text,
        finish_reason=r.finish_reason,
        error=r.error,
        error_kind=r.error_kind,
        tool_calls=(),
        score=None,
        parsed=False,
    )
    assert category == "transport_error"


def test_a_fifty_megabyte_body_is_cut_at_the_cap(tmp_path: Path) -> None:
    with RawServer(fifty_mb) as srv, ResponseCache(tmp_path) as cache:
        r, peak = ask_once(spec(srv.base_url, 2 * MIB), cache)
        assert_too_large(r)
        assert srv.hits == 1 and cache.count() == 0  # never cached: a rerun asks again
    assert peak < 12 * MIB, peak  # the body was 50 MiB


def test_a_gzip_bomb_is_cut_at_the_cap_after_decompression(bomb: bytes) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"}
        )

    assert len(bomb) < 2 * MIB
    with RawServer(handler) as srv:
        r, peak = ask_once(spec(srv.base_url, 2 * MIB))
        assert_too_large(r)
    assert peak < 16 * MIB, peak  # it inflates to 100 MiB


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=reply("x" * 4096), content_type="application/json")

    with RawServer(handler) as srv:
        r, _ = ask_once(spec(srv.base_url, 1024))
        assert_too_large(r)
        ok, _ = ask_once(spec(srv.base_url, 16 * MIB))
        assert ok.ok and ok.text == "x" * 4096


def test_compressed_answers_under_the_cap_still_read() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=gzip.compress(reply("forty-two")),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

    with RawServer(handler) as srv:
        r, _ = ask_once(spec(srv.base_url, 1024))
        assert r.ok and r.text == "forty-two"


def test_the_cap_holds_on_any_httpx_transport() -> None:
    big = reply("y" * (3 * MIB))
    transport = httpx.MockTransport(lambda req: httpx.Response(200, content=big))
    r, _ = ask_once(spec("http://stack.test/v1", MIB), transport=transport)
    assert_too_large(r)
    small = httpx.MockTransport(lambda req: httpx.Response(200, content=reply("z")))
    ok, _ = ask_once(spec("http://stack.test/v1", MIB), transport=small)
    assert ok.ok and ok.text == "z"


def test_the_contract_sets_the_cap_per_endpoint(tmp_path: Path) -> None:
    from pytest_parity.contract.spec import ContractError, load_contract

    (tmp_path / "g.jsonl").write_text('{"id": "q", "prompt": "p", "reference": "r"}\n')
    path = tmp_path / "c.yaml"
    base = (
        'baseline:  {kind: vllm, base_url: "http://127.0.0.1:1/v1", model: m}\n'
        'candidate: {kind: vllm, base_url: "http://127.0.0.1:2/v1", model: m, %s}\n'
        "tasks:\n  - {name: t, path: g.jsonl}\n"
    )
    path.write_text(base % "max_response_bytes: 65536")
    c = load_contract(path)
    assert c.candidate.max_response_bytes == 65536
    assert c.baseline.max_response_bytes == 16 * MIB  # the documented default
    path.write_text(base % "max_response_bytes: 10")
    with pytest.raises(ContractError, match=r"candidate\.max_response_bytes: expected a whole"):
        load_contract(path)
