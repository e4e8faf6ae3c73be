"""Endpoint-layer throughput and memory, measured side by side in one run.

    .venv/bin/python bench/bench_endpoints.py            # full run (~1-2 min on 2 cores)
    .venv/bin/python bench/bench_endpoints.py --quick    # fewer requests and rounds

Prints these ratios (targets from the endpoints issue):
  1. latency 200 ms, concurrency 32: achieved request rate / ideal 160 req/s      (>= 95%)
     (and at concurrency 128, next to raw aiohttp, where plain httpx collapses)
  2. latency 0, concurrency 32: our req/s / lm-eval local-completions req/s        (>= 1.0x)
  3. client memory growth for 20,000 requests, ours next to lm-eval's

The server is a minimal asyncio-protocol HTTP server in its own process (fixed reply), so it is
never the bottleneck; each client runs in its own process and the clients alternate rounds so
machine noise hits both alike. Medians of the rounds are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPLY = json.dumps(
    {
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "bench",
        "choices": [{"index": 0, "text": " 42", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
).encode()


# ---------------------------------------------------------------------------------------------
# server


def serve(port: int, latency: float) -> None:
    """A minimal HTTP/1.1 keep-alive server on asyncio's protocol layer: it answers every POST
    with the same completion after ``latency`` seconds (a timer, not a coroutine), at ~20-30 us
    of CPU per request, so the client under test is what gets measured. A GET (the identity
    routes a client probes: /version, /v1/models) is answered at once, as a serving stack's
    metadata routes are whatever its generation latency."""
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(REPLY)}\r\n\r\n".encode()
        + REPLY
    )
    info = b'{"version": "bench"}'
    info_response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(info)}\r\n\r\n".encode()
        + info
    )

    class Handler(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = 0
                for line in self.buf[:end].split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(self.buf) < end + 4 + length:
                    return
                get = self.buf.startswith(b"GET ")
                self.buf = self.buf[end + 4 + length :]
                if get:
                    self.transport.write(info_response)
                elif latency:
                    loop.call_later(latency, self.respond)
                else:
                    self.respond()

        def respond(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(response)

    loop = asyncio.new_event_loop()
    srv = loop.run_until_complete(loop.create_server(Handler, "127.0.0.1", port, backlog=4096))
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        srv.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Server:
    def __init__(self, latency: float) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.port), str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("bench server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------------------------------------
# clients (each runs in its own process; prints one JSON line)


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def run_ours(url: str, n: int, c: int, cache_dir: str | None = None) -> tuple[float, int]:
    from pytest_parity.contract.spec import EndpointSpec
    from pytest_parity.endpoints.cache import ResponseCache
    from pytest_parity.endpoints.http import Request, open_endpoint

    spec = EndpointSpec(
        role="candidate",
        kind="vllm",
        base_url=url,
        model="bench",
        api="completions",
        params={"temperature": 0.0, "max_tokens": 8, "stop": ["\n"]},
        max_concurrency=c,
        timeout=60.0,
    )
    cache = None if cache_dir is None else ResponseCache(cache_dir)
    ep = open_endpoint(spec, cache=cache)
    reqs = [Request(item_id=str(i), prompt=f"Question {i}: what is 6 x 7?\nA:") for i in range(n)]
    t0 = time.perf_counter()
    out = await asyncio.gather(*(ep.complete(r) for r in reqs))
    wall = time.perf_counter() - t0
    await ep.aclose()
    if cache is not None:
        cache.close()
    return wall, sum(1 for r in out if r.error is None)


async def run_raw(url: str, n: int, c: int) -> tuple[float, int]:
    """Plain aiohttp with a semaphore: the ceiling any Python client on this loop can reach."""
    import aiohttp

    sem = asyncio.Semaphore(c)
    ok = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def one(i: int) -> None:
            nonlocal ok
            body = {"model": "bench", "prompt": f"Question {i}: what is 6 x 7?\nA:"}
            async with sem, session.post(url + "/completions", json=body) as resp:
                data = await resp.json()
                ok += bool(data["choices"][0]["text"])

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0, ok


def run_lmeval(url: str, n: int, c: int) -> tuple[float, int]:
    import logging

    logging.disable(logging.WARNING)
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    lm = LocalCompletionsAPI(
        base_url=url + "/completions",
        model="bench",
        tokenizer_backend=None,
        tokenized_requests=False,
        num_concurrent=c,
        max_retries=3,
    )
    prompts = [f"Question {i}: what is 6 x 7?\nA:" for i in range(n)]
    gen = {"until": ["\n"], "max_gen_toks": 8, "temperature": 0.0}
    t0 = time.perf_counter()
    out = asyncio.run(
        lm.get_batched_requests(
            prompts, cache_keys=[(p, gen) for p in prompts], generate=True, gen_kwargs=gen
        )
    )
    wall = time.perf_counter() - t0
    return wall, sum(1 for r in out if r)


def client(which: str, url: str, n: int, c: int) -> None:
    sys.path.insert(0, str(ROOT))
    # Imports happen before the measurement, for both clients.
    if which.startswith("ours"):
        import httpx_aiohttp  # noqa: F401

        import pytest_parity.endpoints.http  # noqa: F401
    elif which == "raw":
        import aiohttp  # noqa: F401
    else:
        import lm_eval.models.openai_completions  # noqa: F401

    before = rss_kb()
    cpu0 = time.process_time()
    if which == "ours":
        wall, ok = asyncio.run(run_ours(url, n, c))
    elif which == "ours-cache":
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            wall, ok = asyncio.run(run_ours(url, n, c, d))
    elif which == "raw":
        wall, ok = asyncio.run(run_raw(url, n, c))
    else:
        wall, ok = run_lmeval(url, n, c)
    cpu = time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "client": which,
                "n": n,
                "ok": ok,
                "wall_s": wall,
                "req_s": n / wall,
                "cpu_us_per_req": cpu / n * 1e6,
                "rss_growth_kb": max(0, peak - before),
            }
        ),
        flush=True,
    )


def measure(which: str, url: str, n: int, c: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    out = subprocess.run(
        [sys.executable, __file__, "--client", which, url, str(n), str(c)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{which} client failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(lines[-1])
    if result["ok"] != n:
        raise RuntimeError(f"{which}: only {result['ok']} of {n} requests answered")
    return result


def med(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--serve", nargs=2)
    ap.add_argument("--client", nargs=4)
    args = ap.parse_args()
    if args.serve:
        serve(int(args.serve[0]), float(args.serve[1]))
        return
    if args.client:
        which, url, n, c = args.client
        client(which, url, int(n), int(c))
        return

    rounds = 2 if args.quick else 3
    conc = 32
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load:.1f} at "
        f"start, {rounds} rounds, medians"
    )
    if load > (os.cpu_count() or 1):
        print("warning: the machine is busy; latency-bound shares will read low for every client")

    # 1. latency-bound: share of the ideal rate concurrency / latency, next to raw aiohttp (the
    # ceiling on this machine) and lm-eval, alternating rounds
    srv = Server(0.2)
    try:
        n = 640 if args.quick else 1280
        rows: dict[str, list[dict[str, float]]] = {"ours": [], "raw": [], "lmeval": []}
        for _ in range(rounds):
            for which, got in rows.items():
                got.append(measure(which, srv.url, n, conc))
        ideal = conc / 0.2
        share = {k: med(v, "req_s") / ideal for k, v in rows.items()}
        print(
            f"[1] latency 200 ms, c={conc}, {n} requests: ours {med(rows['ours'], 'req_s'):.1f} "
            f"req/s = {share['ours']:.1%} of ideal {ideal:.0f}/s (target >= 95%); same server, "
            f"same run: raw aiohttp {share['raw']:.1%}, lm-eval {share['lmeval']:.1%}; "
            f"ours / raw aiohttp = {share['ours'] / share['raw']:.3f}"
        )
    finally:
        srv.close()

    # 1b. the concurrency production servers run at: CPU per request must stay flat
    srv = Server(0.2)
    try:
        hi = 128
        n = 1280 if args.quick else 2560
        rows = {"ours": [], "raw": []}
        for _ in range(rounds):
            for which, got in rows.items():
                got.append(measure(which, srv.url, n, hi))
        ideal = hi / 0.2
        share = {k: med(v, "req_s") / ideal for k, v in rows.items()}
        print(
            f"[1b] latency 200 ms, c={hi}, {n} requests: ours {share['ours']:.1%} of ideal "
            f"{ideal:.0f}/s, raw aiohttp {share['raw']:.1%}; ours / raw aiohttp = "
            f"{share['ours'] / share['raw']:.3f}"
        )
    finally:
        srv.close()

    # 2. client-bound: zero latency, ours vs lm-eval local-completions, alternating rounds
    srv = Server(0.0)
    try:
        n = 3000 if args.quick else 6000
        ours, lme, cached = [], [], []
        for _ in range(rounds + 2):  # the noisiest case: more rounds
            ours.append(measure("ours", srv.url, n, conc))
            lme.append(measure("lmeval", srv.url, n, conc))
            cached.append(measure("ours-cache", srv.url, n, conc))
        ratio = med(ours, "req_s") / med(lme, "req_s")
        print(
            f"[2] latency 0, c={conc}, {n} requests: ours {med(ours, 'req_s'):.0f} req/s "
            f"({med(ours, 'cpu_us_per_req'):.0f} us CPU/req), lm-eval local-completions "
            f"{med(lme, 'req_s'):.0f} req/s ({med(lme, 'cpu_us_per_req'):.0f} us CPU/req): "
            f"{ratio:.2f}x (target >= 1.0x); CPU per request ours / lm-eval = "
            f"{med(ours, 'cpu_us_per_req') / med(lme, 'cpu_us_per_req'):.2f}"
        )
        rc = med(cached, "req_s")
        print(
            f"[2b] same, every answer written to the response cache: {rc:.0f} req/s = "
            f"{rc / med(lme, 'req_s'):.2f}x lm-eval (which caches nothing here), "
            f"{rc / med(ours, 'req_s'):.2f}x ours without the cache"
        )

        # 3. memory for 20,000 requests
        n = 20000
        mo = measure("ours", srv.url, n, conc)
        ml = measure("lmeval", srv.url, n, conc)
        print(
            f"[3] client memory growth for {n} requests: ours {mo['rss_growth_kb'] / 1024:.1f} MB "
            f"({mo['rss_growth_kb'] / n:.2f} KB/request), lm-eval "
            f"{ml['rss_growth_kb'] / 1024:.1f} MB ({ml['rss_growth_kb'] / n:.2f} KB/request): "
            f"{mo['rss_growth_kb'] / max(ml['rss_growth_kb'], 1):.2f}x of lm-eval's"
        )
    finally:
        srv.close()


if __name__ == "__main__":
    main()
