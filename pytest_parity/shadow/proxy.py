"""The tee proxy: clients call it instead of the serving stack.

Every request goes to the serving stack and its answer comes back byte for byte: status, headers
(hop-by-hop ones excepted, as HTTP requires), body, SSE streams chunk by chunk as they arrive. A
sampled share of the requests on paths the proxy understands (chat completions, completions,
Messages) is also put on a bounded queue once the serving answer has been delivered (so the copy
never competes with the request it copies: on a shared host, a shadow request sent alongside
took CPU from the production answer while it was in flight); a fixed number of workers send them
to the shadow stack with their own connection pool and timeout, read the answer and drop it, and
the pair goes to the store. A full queue drops the shadow request (counted); the production path
never waits for the shadow, the store or the metrics.

What a pair is and how it is redacted lives in :mod:`.pairs`, segments in :mod:`.segments`, the
batched writes in :mod:`.writer`; this module is the HTTP part.

Server stack: aiohttp's low-level server (``web.Server``: no router, no middleware) and aiohttp's
client, both on llhttp's C parser, on uvloop when it is installed. aiohttp is already a dependency
of the package (through lm-eval's API models and httpx-aiohttp).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from pytest_parity.secrets import MaskedHeaders, read_secret
from pytest_parity.shadow.answers import Answer, finish_label, protocol_of
from pytest_parity.shadow.config import ShadowConfig
from pytest_parity.shadow.metrics import CONTENT_TYPE, Metrics
from pytest_parity.shadow.pairs import (
    MAX_CAPTURE,
    SECRET_HEADERS,
    Pair,
    Side,
    client_credentials,
    error_category,
    pair_record,
    redactor,
)
from pytest_parity.shadow.segments import Segmenter
from pytest_parity.shadow.writer import StoreWriter

log = logging.getLogger("pytest_parity.shadow")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


def _origin(base_url: str) -> tuple[str, str]:
    """``http://h:p/v1`` -> (``http://h:p``, ``/v1``)."""
    u = urlsplit(base_url)
    return f"{u.scheme}://{u.netloc}", u.path.rstrip("/")


class ShadowProxy:
    def __init__(self, cfg: ShadowConfig, *, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or Metrics(cfg.segment_max)
        self.redact = redactor(cfg)
        self.instance = cfg.instance or f"{cfg.host}:{cfg.port}:{os.getpid()}"
        self._serving_origin, self._serving_prefix = _origin(cfg.serving.base_url)
        self._shadow_origin, self._shadow_prefix = _origin(cfg.shadow.base_url)
        self._segment = Segmenter(cfg, self.metrics.segment)
        self._rng = random.Random()
        self._queue: asyncio.Queue[Pair] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._shadow_session: aiohttp.ClientSession | None = None
        self._runners: list[web.BaseRunner] = []
        self._accepting_shadow = True
        self.writer = StoreWriter(
            cfg.store_url,
            batch=cfg.batch,
            flush_seconds=cfg.flush_seconds,
            retention_days=cfg.retention_days,
            retention_rows=cfg.retention_rows,
            retention_check_seconds=cfg.retention_check_seconds,
            # Bounded memory when the store falls behind (or PostgreSQL is away): then dropped.
            max_pending=max(5_000, 20 * cfg.batch),
            on_written=lambda n: self.metrics.stored.inc(n),
            on_error=lambda n: self.metrics.store_errors.inc(n),
            on_drop=lambda: self.metrics.store_dropped.inc(),
        )
        self.port = cfg.port
        self.metrics_port: int | None = None
        self._shadow_headers = self._own_headers(cfg.shadow)

    @staticmethod
    def _own_headers(ep: Any) -> dict[str, str]:
        # masked repr and the key a Secret, as the plugin's endpoints hold them
        h = MaskedHeaders(ep.headers)
        key = read_secret(ep.api_key_env)
        if key:
            if ep.kind == "anthropic":
                h["x-api-key"] = key.reveal()
            else:
                h["Authorization"] = f"Bearer {key.reveal()}"
        return h

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        self.writer.start()  # raises when the store cannot be opened: before we listen
        self._queue = asyncio.Queue(cfg.queue_size)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            # A proxy keeps no cookies: one client's Set-Cookie must never reach another.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._shadow_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=cfg.shadow_concurrency, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=cfg.shadow_timeout),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._workers = [asyncio.create_task(self._worker()) for _ in range(cfg.shadow_concurrency)]
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=cfg.drain_seconds)
        await runner.setup()
        site = web.TCPSite(runner, cfg.host, cfg.port, backlog=1024, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        self.port = _bound_port(runner, cfg.port)
        self.instance = cfg.instance or f"{cfg.host}:{self.port}:{os.getpid()}"
        if cfg.metrics_port is not None:
            mserver = web.Server(self._metrics_only, access_log=None)
            mrunner = web.ServerRunner(mserver, handle_signals=False, shutdown_timeout=1)
            await mrunner.setup()
            await web.TCPSite(mrunner, cfg.metrics_host, cfg.metrics_port).start()
            self._runners.append(mrunner)
            self.metrics_port = _bound_port(mrunner, cfg.metrics_port)

    async def stop(self) -> None:
        """Graceful shutdown: stop listening, finish answers in flight, drain the shadow queue
        within ``drain_seconds`` (what is left is dropped and counted), flush the store."""
        deadline = time.monotonic() + self.cfg.drain_seconds
        for r in self._runners:
            await r.cleanup()  # waits (bounded by drain_seconds) for production answers
        self._accepting_shadow = False
        q = self._queue
        if q is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(q.join(), max(0.0, deadline - time.monotonic()))
            while not q.empty():
                pair = q.get_nowait()
                q.task_done()
                self._drop(pair, "shutdown")
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for s in (self._session, self._shadow_session):
            if s is not None:
                await s.close()
        await asyncio.get_running_loop().run_in_executor(None, self.writer.close, 30.0)

    # -- the production path --------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        t0 = time.perf_counter()
        if request.path == self.cfg.metrics_path and self.cfg.metrics_port is None:
            return await self._metrics(request)
        body = await request.content.read() if request.body_exists else b""
        proto = protocol_of(request.path) if request.method == "POST" else None
        # A multidict: a header the client sent twice goes on twice.
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        )
        headers.popall("Host", None)
        if "Authorization" not in request.headers and self.cfg.serving.api_key_env:
            headers.update(self._own_headers(self.cfg.serving))
        pair: Pair | None = None
        segment = ""
        if proto is not None:
            segment = self._segment(request, body)
            if self._accepting_shadow and self._rng.random() < self.cfg.sample_rate:
                pair = self._sample(request, body, proto, segment)
        side = Side()
        try:
            resp = await self._forward(request, body, headers, side, t0, capture=proto is not None)
        except BaseException:
            if proto is not None:
                # A client that went away after its whole answer (side.error is None) still
                # counts that answer, tokens and all.
                done = side.error is None and side.latency is not None
                ans = side.read(proto, text=pair is not None) if done else None
                self._observe("serving", self.cfg.serving_name, segment, side, ans)
                if pair is not None:
                    pair.serving = side
                    self._settle(pair)
                    self._offer(pair)
            raise
        if proto is None:
            self.metrics.count(self.metrics.passthrough, self.cfg.serving_name)
            return resp
        # The client has its answer; the rest is bookkeeping.
        ans = side.read(proto, text=pair is not None)
        self._observe("serving", self.cfg.serving_name, segment, side, ans)
        if pair is not None:
            pair.serving = side
            self._settle(pair)
            self._offer(pair)
        return resp

    async def _forward(
        self,
        request: web.BaseRequest,
        body: bytes,
        headers: CIMultiDict[str],
        side: Side,
        t0: float,
        *,
        capture: bool,
    ) -> web.StreamResponse:
        assert self._session is not None
        url = self._serving_origin + request.raw_path
        try:
            up = await self._session.request(
                request.method,
                url,
                data=body if body else None,
                headers=headers,
                allow_redirects=False,
            )
        except Exception as exc:
            side.error = error_category(None, exc)
            side.latency = time.perf_counter() - t0
            status = 504 if side.error == "timeout" else 502
            msg = {
                "error": {
                    "message": f"parity-shadow: the serving stack did not answer ({side.error})",
                    "type": "bad_gateway",
                    "code": status,
                }
            }
            return web.json_response(msg, status=status)
        complete = False  # the whole answer reached the client (then a late disconnect is no error)
        try:
            side.status = up.status
            out_headers: CIMultiDict[str] = CIMultiDict()
            for k, v in up.headers.items():
                lk = k.lower()
                if lk not in HOP_BY_HOP and lk != "content-length":
                    out_headers.add(k, v)
            ctype = up.headers.get("Content-Type", "")
            side.streamed = ctype.startswith("text/event-stream")
            side.encoding = up.headers.get("Content-Encoding")
            n = up.content_length
            if (
                n is not None
                and n <= MAX_CAPTURE
                and not side.streamed
                and request.method != "HEAD"
            ):
                # A sized answer: read it whole and send headers and body in one write.
                data = await up.content.readexactly(n) if n else b""
                whole = web.Response(
                    body=data, status=up.status, reason=up.reason, headers=out_headers
                )
                await whole.prepare(request)
                await whole.write_eof()
                side.latency = time.perf_counter() - t0
                side.body = data if capture else b""
                side.error = error_category(up.status, None)
                return whole
            resp = web.StreamResponse(status=up.status, reason=up.reason, headers=out_headers)
            if n is not None and request.method != "HEAD":
                resp.content_length = n
            await resp.prepare(request)
            chunks: list[bytes] = []
            size = 0
            first = True
            async for chunk in up.content.iter_any():
                if first:
                    side.ttft = time.perf_counter() - t0
                    first = False
                await resp.write(chunk)
                if capture and size < MAX_CAPTURE:
                    chunks.append(chunk)
                    size += len(chunk)
            # The whole answer was read from the stack and written to the client: record it
            # before the end of the response, which a client that has read its last event
            # (the openai SDK after [DONE]) may no longer wait for.
            side.latency = time.perf_counter() - t0
            if not side.streamed:
                side.ttft = None
            side.body = b"".join(chunks)
            side.error = error_category(up.status, None)
            complete = True
            await resp.write_eof()
            return resp
        except BaseException as exc:  # the client went away (or cancelled), or the stack broke off
            if not complete:
                side.error = "disconnect"
                side.latency = time.perf_counter() - t0
            log.debug("parity-shadow: answer broken off: %r", exc)
            raise
        finally:
            up.release()

    def _observe(self, role: str, stack: str, segment: str, side: Side, ans: Answer | None) -> None:
        self.metrics.observe(
            role,
            stack,
            segment,
            error=side.error,
            latency=side.latency if side.error is None else None,
            ttft=side.ttft if side.error is None else None,
            prompt_tokens=ans.prompt_tokens if ans else None,
            completion_tokens=ans.completion_tokens if ans else None,
            finish=finish_label(ans.finish_reason) if ans and side.error is None else None,
        )

    # -- the shadow path ------------------------------------------------------------------

    def _sample(self, request: web.BaseRequest, body: bytes, proto: str, segment: str) -> Pair:
        """A sampled request's pair (counted); :meth:`_offer` queues it after the serving answer."""
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP
            and k.lower() not in SECRET_HEADERS
            and k.lower() not in ("host", "content-length")
        }
        pair = Pair(time.time(), request.path, proto, segment, body, headers)
        # The client's own credentials are scrubbed from whatever of this pair gets stored.
        pair.extra["secrets"] = client_credentials(request.headers)
        self.metrics.count(self.metrics.sampled, segment)
        return pair

    def _offer(self, pair: Pair) -> None:
        """The pair to the shadow workers' bounded queue, or dropped (counted) when it is full."""
        assert self._queue is not None
        try:
            self._queue.put_nowait(pair)
        except asyncio.QueueFull:
            self._drop(pair, "queue_full")
        self.metrics.queue_depth.set(self._queue.qsize())

    def _drop(self, pair: Pair, reason: str) -> None:
        pair.dropped = True
        self.metrics.count(self.metrics.dropped, pair.segment, reason)

    async def _worker(self) -> None:
        assert self._queue is not None
        q = self._queue
        while True:
            pair = await q.get()
            self.metrics.queue_depth.set(q.qsize())
            self.metrics.in_flight.inc()
            try:
                pair.shadow = await self._send_shadow(pair)
                self._settle(pair)
            except asyncio.CancelledError:
                self._drop(pair, "shutdown")
                raise
            except Exception as exc:  # never let a worker die
                log.warning("parity-shadow: shadow request failed oddly: %r", exc)
            finally:
                self.metrics.in_flight.dec()
                q.task_done()

    def _shadow_request(self, pair: Pair) -> tuple[str, bytes, dict[str, str]]:
        path = pair.path
        if self._serving_prefix and path.startswith(self._serving_prefix):
            path = path[len(self._serving_prefix) :]
        url = self._shadow_origin + self._shadow_prefix + path
        body = pair.body
        if self.cfg.shadow.model != self.cfg.serving.model:
            try:
                data = json.loads(body)
                if isinstance(data, dict):
                    data["model"] = self.cfg.shadow.model
                    body = json.dumps(data).encode()
            except ValueError:
                pass
        headers = dict(pair.headers)
        headers.update(self._shadow_headers)
        return url, body, headers

    async def _send_shadow(self, pair: Pair) -> Side:
        assert self._shadow_session is not None
        side = Side()
        t0 = time.perf_counter()
        url, body, headers = self._shadow_request(pair)
        try:
            async with self._shadow_session.post(url, data=body, headers=headers) as up:
                side.status = up.status
                side.streamed = up.headers.get("Content-Type", "").startswith("text/event-stream")
                side.encoding = up.headers.get("Content-Encoding")
                chunks: list[bytes] = []
                size = 0
                async for chunk in up.content.iter_any():
                    if side.ttft is None:
                        side.ttft = time.perf_counter() - t0
                    if size < MAX_CAPTURE:
                        chunks.append(chunk)
                        size += len(chunk)
                side.body = b"".join(chunks)
                side.latency = time.perf_counter() - t0
                if not side.streamed:
                    side.ttft = None
                side.error = error_category(up.status, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            side.error = error_category(None, exc)
            side.latency = time.perf_counter() - t0
        ans = side.read(pair.proto)
        self._observe("shadow", self.cfg.shadow_name, pair.segment, side, ans)
        return side

    def _settle(self, pair: Pair) -> None:
        pair.pending -= 1
        if pair.pending > 0 or pair.dropped:
            return
        try:
            rec = pair_record(
                pair,
                instance=self.instance,
                serving_name=self.cfg.serving_name,
                shadow_name=self.cfg.shadow_name,
                redact_base=self.redact,
            )
        except Exception as exc:
            log.warning("parity-shadow: pair not stored: %r", exc)
            return
        self.metrics.count(self.metrics.pairs, pair.segment)
        self.writer.submit(rec)

    # -- metrics --------------------------------------------------------------------------

    async def _metrics(self, request: web.BaseRequest) -> web.Response:
        if self._queue is not None:
            self.metrics.queue_depth.set(self._queue.qsize())
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def _metrics_only(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == self.cfg.metrics_path:
            return await self._metrics(request)
        return web.Response(status=404, text="not found")


def _bound_port(runner: web.BaseRunner, asked: int) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    return asked
