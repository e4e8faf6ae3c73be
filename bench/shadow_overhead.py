"""Latency the shadow proxy adds, against the serving stack called directly, in one run.

    .venv/bin/python bench/shadow_overhead.py            # ~1 min on 2 cores
    .venv/bin/python bench/shadow_overhead.py --quick    # shorter rounds

For each rate (50 and 500 requests/s, open loop: requests start on a fixed schedule whatever the
answers do) and each answer shape (JSON, SSE with 16 chunks), the load generator alternates rounds
between the serving stack directly and the same stack through ``parity-shadow`` (sample rate 1.0
by default: every request is also mirrored to a shadow stack, the proxy's worst case), so machine
noise hits both alike. Latency is request start to the answer's last byte. Prints per case p50 and
p99 both ways, the overhead (proxy - direct, ms), the ratio proxy / direct, and the proxy's CPU
time per request ("proxy us": what it costs, whatever else runs on the machine; at 500 req/s a
proxy using N us per request keeps N/20 % of one core busy). The load average is printed first:
on a machine busy with other work the latency overhead measures the scheduler, not the proxy.

Goal (shadow issue): overhead < 1 ms p50 and < 5 ms p99 at 500 req/s on this machine. The serving
and shadow stacks are tests/support/shadow_servers.py (aiohttp) in processes of their own, the
proxy and the load generator (raw aiohttp client) in theirs: four processes share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "support" / "shadow_servers.py"
WORDS = " ".join(f"w{i}" for i in range(14))  # 16 chunks with the server's "name says:" prefix


def _server(name: str) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        [sys.executable, str(SERVER), "--name", name], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("PORT "), line
    return p, f"http://127.0.0.1:{int(line.split()[1])}"


def _proxy(serving: str, shadow: str, rate: float, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    contract = tmp / "shadow.yaml"
    contract.write_text(
        json.dumps(
            {
                "baseline": {"kind": "openai", "base_url": serving + "/v1", "model": "m"},
                "candidate": {"kind": "vllm", "base_url": shadow + "/v1", "model": "m"},
                "shadow": {
                    "listen": "127.0.0.1:0",
                    "sample_rate": rate,
                    "store": {"url": str(tmp / "bench.sqlite")},
                },
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(
        [sys.executable, "-m", "pytest_parity.shadow", str(contract)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert "listening on " in line, line
    return p, line.split("listening on ")[1].split()[0]


async def _round(url: str, rate: float, seconds: float, stream: bool) -> list[float]:
    """Open-loop load: request i starts at i / rate; returns latencies (s) of the answers."""
    import aiohttp

    body = json.dumps(
        {"model": "m", "stream": stream, "messages": [{"role": "user", "content": WORDS}]}
    ).encode()
    headers = {"Content-Type": "application/json"}
    n = int(rate * seconds)
    out: list[float] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        # Warm the connection pool (not measured).
        for _ in range(5):
            async with s.post(url + "/v1/chat/completions", data=body, headers=headers) as r:
                await r.read()

        async def one(start: float) -> None:
            delay = start - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.perf_counter()
            async with s.post(url + "/v1/chat/completions", data=body, headers=headers) as r:
                async for _ in r.content.iter_any():
                    pass
                assert r.status == 200
            out.append(time.perf_counter() - t)

        t0 = time.perf_counter() + 0.05
        await asyncio.gather(*(one(t0 + i / rate) for i in range(n)))
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every process (Linux /proc/stat)."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tck = os.sysconf("SC_CLK_TCK")
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f) - idle) / tck, sum(f) / tck


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _load_main(args: argparse.Namespace) -> None:
    """Child process: one round, latencies as JSON on stdout."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    c0 = time.process_time()
    lat = asyncio.run(_round(args.url, args.rate, args.seconds, args.stream))
    print(json.dumps({"latencies": lat, "cpu_s": time.process_time() - c0}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sample-rate", type=float, default=1.0)
    ap.add_argument("--rates", default="50,500")
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        _load_main(args)
        return
    rounds = 2 if args.quick else 3
    procs: list[subprocess.Popen[str]] = []
    try:
        serving_p, serving = _server("old")
        shadow_p, shadow = _server("new")
        procs += [serving_p, shadow_p]
        with tempfile.TemporaryDirectory() as d:
            proxy_p, proxy = _proxy(serving, shadow, args.sample_rate, Path(d))
            procs.append(proxy_p)
            print(
                f"serving stack {serving}, shadow {shadow}, proxy {proxy} "
                f"(sample rate {args.sample_rate:g}), {os.cpu_count()} cores, "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            hdr = (
                f"{'case':<18}{'direct p50':>11}{'proxy p50':>10}{'+p50 ms':>9}{'x':>6}"
                f"{'direct p99':>12}{'proxy p99':>10}{'+p99 ms':>9}{'x':>6}{'proxy us':>10}  goal"
            )
            print(hdr)
            pids = {"client": 0, "serving": serving_p.pid, "shadow": shadow_p.pid}
            pids["proxy"] = proxy_p.pid
            cpu_rows: list[str] = []
            for rate in (float(r) for r in args.rates.split(",")):
                seconds = (
                    (4.0 if args.quick else 8.0) if rate <= 100 else (2.0 if args.quick else 4.0)
                )
                for stream in (False, True):
                    got: dict[str, list[float]] = {"direct": [], "proxy": []}
                    # CPU seconds per process (and the whole machine's) during each side's rounds
                    cpu = {side: dict.fromkeys([*pids, "machine", "wall"], 0.0) for side in got}
                    for _ in range(rounds):
                        for name, url in (("direct", serving), ("proxy", proxy)):
                            before = {k: _cpu_s(pid) for k, pid in pids.items() if pid}
                            busy0, _ = _machine_busy()
                            w0 = time.perf_counter()
                            cmd = [
                                sys.executable,
                                __file__,
                                "--load",
                                "--url",
                                url,
                                "--rate",
                                str(rate),
                                "--seconds",
                                str(seconds),
                            ]
                            if stream:
                                cmd.append("--stream")
                            res = subprocess.run(
                                cmd, capture_output=True, text=True, check=True, timeout=600
                            )
                            out = json.loads(res.stdout)
                            got[name] += out["latencies"]
                            c = cpu[name]
                            c["wall"] += time.perf_counter() - w0
                            c["machine"] += _machine_busy()[0] - busy0
                            c["client"] += out["cpu_s"]
                            for k, v in before.items():
                                c[k] += _cpu_s(pids[k]) - v
                    d50, p50 = _pct(got["direct"], 0.5) * 1e3, _pct(got["proxy"], 0.5) * 1e3
                    d99, p99 = _pct(got["direct"], 0.99) * 1e3, _pct(got["proxy"], 0.99) * 1e3
                    ok = "met" if (p50 - d50 < 1.0 and p99 - d99 < 5.0) else "MISSED"
                    goal = ok if rate >= 500 else "-"
                    case = f"{rate:g}/s {'SSE' if stream else 'JSON'}"
                    cpu_us = cpu["proxy"]["proxy"] / max(1, len(got["proxy"])) * 1e6
                    print(
                        f"{case:<18}{d50:>11.2f}{p50:>10.2f}{p50 - d50:>9.2f}{p50 / d50:>6.2f}"
                        f"{d99:>12.2f}{p99:>10.2f}{p99 - d99:>9.2f}{p99 / d99:>6.2f}"
                        f"{cpu_us:>10.0f}  {goal}",
                        flush=True,
                    )
                    for side in got:
                        c, n = cpu[side], max(1, len(got[side]))
                        ours = sum(c[k] for k in pids)
                        cpu_rows.append(
                            f"{case + ' ' + side:<24}"
                            + "".join(f"{c[k] / n * 1e6:>9.0f}" for k in pids)
                            + f"{ours / c['wall']:>9.2f}{(c['machine'] - ours) / c['wall']:>9.2f}"
                        )
            print(
                "\nCPU per request (us) of each process, and cores busy during the rounds: ours"
                " (these four processes) and others (the rest of the machine)"
            )
            print(f"{'case':<24}" + "".join(f"{k:>9}" for k in pids) + f"{'ours':>9}{'others':>9}")
            print("\n".join(cpu_rows))
            stats = _metrics(proxy)
            print(
                f"shadow: sampled {stats.get('parity_shadow_sampled_total', 0):.0f}, "
                f"dropped {stats.get('parity_shadow_dropped_total', 0):.0f}, "
                f"pairs {stats.get('parity_shadow_pairs_total', 0):.0f}"
            )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def _metrics(proxy: str) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(proxy + "/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split()[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


if __name__ == "__main__":
    main()
