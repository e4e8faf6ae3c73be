"""A small OpenAI-compatible server that streams, for the shadow proxy's tests and bench.

In a thread of the test process (``with StreamServer(name="old") as s: s.base_url``) or as its own
process (``python tests/support/shadow_servers.py --name new`` prints ``PORT <n>`` once it listens, so a
test can ``kill -9`` it). Answers: chat completions and completions, as JSON or, with
``"stream": true``, as SSE chunks (one word each, ``chunk_delay`` apart, usage in the last chunk
when ``stream_options.include_usage``); any other path answers JSON describing the request, with
the status given by ``?status=``. Every answer carries ``X-Served-By: <name>`` and echoes
``X-Trace``. ``mode``: ``ok``, ``error`` (500 on completions), ``slow`` (``slow_s`` before
answering).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from typing import Any

from aiohttp import web


def answer_text(name: str, body: dict[str, Any]) -> str:
    """``<name> says: <last user message>`` (so tests can tell both stacks apart)."""
    if "prompt" in body:
        prompt = str(body["prompt"])
    else:
        content = body["messages"][-1]["content"]
        prompt = content if isinstance(content, str) else json.dumps(content)
    return f"{name} says: {prompt}"


class StreamApp:
    def __init__(
        self, name: str, *, chunk_delay: float = 0.0, latency: float = 0.0, mode: str = "ok"
    ) -> None:
        self.name = name
        self.chunk_delay = chunk_delay
        self.latency = latency
        self.mode = mode
        self.slow_s = 2.0
        self.received: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_post("/v1/completions", self.complete)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app

    def _headers(self, request: web.Request) -> dict[str, str]:
        h = {"X-Served-By": self.name}
        if "X-Trace" in request.headers:
            h["X-Trace"] = request.headers["X-Trace"]
        return h

    async def other(self, request: web.Request) -> web.Response:
        self.headers_seen.append(dict(request.headers))
        status = int(request.query.get("status", "200"))
        data = {
            "server": self.name,
            "method": request.method,
            "path": request.path_qs,
            "body": (await request.read()).decode("utf-8", "replace"),
        }
        resp = web.json_response(data, status=status, headers=self._headers(request))
        if "cookie" in request.query:
            resp.set_cookie("session", request.query["cookie"])
        return resp

    async def complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        self.headers_seen.append(dict(request.headers))
        if self.mode == "error":
            return web.json_response({"error": {"message": "shadow broke"}}, status=500)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_s)
        if self.latency:
            await asyncio.sleep(self.latency)
        chat = request.path.endswith("/chat/completions")
        text = answer_text(self.name, body)
        words = text.split(" ")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
            text = " ".join(words)
        usage = {
            "prompt_tokens": 9,
            "completion_tokens": len(words),
            "total_tokens": 9 + len(words),
        }
        model = body.get("model", "m")
        if not body.get("stream"):
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            data = {
                "id": "cmpl-1",
                "object": "chat.completion" if chat else "text_completion",
                "created": 1700000000,
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
            return web.json_response(data, headers=self._headers(request))
        resp = web.StreamResponse(
            headers={
                **self._headers(request),
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            }
        )
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"
        for i, w in enumerate(words):
            piece = w if i == 0 else " " + w
            c: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                c["delta"] = {"content": piece} if i else {"role": "assistant", "content": piece}
            else:
                c["text"] = piece
            chunk = {"id": "cmpl-1", "object": obj, "created": 0, "model": model, "choices": [c]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        last: dict[str, Any] = {"index": 0, "finish_reason": finish}
        last["delta" if chat else "text"] = {} if chat else ""
        chunk = {"id": "cmpl-1", "object": obj, "created": 0, "model": model, "choices": [last]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if (body.get("stream_options") or {}).get("include_usage"):
            u = {
                "id": "cmpl-1",
                "object": obj,
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(u)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


class StreamServer(StreamApp):
    """The app on 127.0.0.1 in a background thread of this process."""

    def __init__(self, name: str, **kw: Any) -> None:
        super().__init__(name, **kw)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StreamServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(
                self.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
            )
            loop.run_until_complete(self._runner.setup())
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            loop.run_until_complete(web.SockSite(self._runner, sock).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "test server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> StreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="server")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--chunk-delay", type=float, default=0.0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--mode", default="ok")
    a = p.parse_args()
    app = StreamApp(a.name, chunk_delay=a.chunk_delay, latency=a.latency, mode=a.mode)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def serve() -> None:
        runner = web.AppRunner(app.app(), access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", a.port))
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()


# -- the proxy as a user runs it: its own process ---------------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def write_contract(
    path: Any, serving_url: str, shadow_url: str, shadow: dict[str, Any] | None = None, **top: Any
) -> Any:
    """A contract with baseline = serving, candidate = shadow and a shadow: block."""
    import yaml

    data: dict[str, Any] = {
        "baseline": {"kind": "openai", "base_url": serving_url, "model": "m"},
        "candidate": {"kind": "vllm", "base_url": shadow_url, "model": "m"},
        "shadow": {"listen": "127.0.0.1:0", "store": {"url": "shadow.sqlite"}, **(shadow or {})},
        **top,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class ProxyProcess:
    """``python -m pytest_parity.shadow CONTRACT`` in a subprocess; ``url`` once it listens."""

    def __init__(self, contract: Any, *args: str, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import tempfile

        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self._err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_parity.shadow", str(contract), *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            self.proc.communicate(timeout=10)
            err = self.stderr()
            self._err.close()
            raise RuntimeError(f"proxy did not start: {line!r} {err!r}")
        self.banner = line
        self.url = line.split("listening on ")[1].split()[0]
        self.metrics_url = line.split("metrics=")[1].split()[0]

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics: (name, sorted labels) -> value."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.metrics_url, timeout=5).text
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def total(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        return sum(
            v
            for (n, lab), v in self.metrics().items()
            if n == name and all(dict(lab).get(k) == x for k, x in labels.items())
        )

    def wait_for(self, name: str, at_least: float, timeout: float = 10.0, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        while True:
            got = self.total(name, **labels)
            if got >= at_least or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> tuple[int, str, str]:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, self.stderr()

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)
        self._err.close()


class ServerProcess:
    """This file's server in its own process (so a test can kill -9 it)."""

    def __init__(self, name: str, *args: str) -> None:
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--name", name, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill9()
