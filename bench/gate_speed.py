"""The gate at endpoint speed: the whole gate next to a raw aiohttp pair, in one run.

    .venv/bin/python bench/gate_speed.py              # 5,000 items, 2 rounds (~10 min, 2 cores)
    .venv/bin/python bench/gate_speed.py --quick      # 1,000 items, 1 round
    .venv/bin/python bench/gate_speed.py --scale 100000   # memory of one 100,000-item task
    .venv/bin/python bench/gate_speed.py --scale 100000 --tasks 20   # 20 tasks x 5,000 items
    .venv/bin/python bench/gate_speed.py --scale 100000 --cache      # the same, cache on

Two loopback OpenAI-compatible servers (the baseline and the candidate; bench_endpoints.py's
asyncio-protocol server, a fixed completion after a timer, GETs such as /version at once, each in
its own process) answer, side by side and in alternating rounds so machine noise hits every client
alike:

  raw       a raw aiohttp pair client: per item both stacks asked together, a semaphore each
            (asyncio.run, Python's default garbage-collector settings)
  alone     the client alone: pytest-parity's endpoint layer (two Endpoints), no scoring, run
            as the gate runs it (run_sync: the collector tuned while the loop runs)
  nocache   the gate: a whole ``pytest --parity-contract`` run of a generated contract, no cache
  cache     the gate with the response cache on (a fresh cache: every answer written)
  cached    the gate again, every answer from that cache (``--parity-cache=reuse``)

Each client runs in its own process. "process CPU/item" is the whole process as `time` shows
it: the interpreter's start and every import, for the gate pytest's start-up, collection, the
statistics and the report: what a user's machine pays. "task CPU/item" leaves the gate's
start-up, statistics and report out (its lazy aiohttp import stays in, as the clients' imports
do). The raw pair and the cache case also run on twice the items: the difference is the CPU
per extra item, with every start-up cost cancelled. "eval" is the time ``verdict.evaluate``
takes on the task once every answer is in. pytest plugins the environment has only for
pytest-parity's own tests (hypothesis's, ~0.1 s a run) are left out of the gate's runs: a
user's ``pip install pytest-parity`` does not bring them.

Targets (issue 22), printed as ratios of this run:
  client CPU per item, cache on / raw pair      <= 1.3x     (latency 0, concurrency 32; whole
                                                            processes, per extra item, task)
  gate wall at c=128, 0.2 s / ideal             >= 90%      (ideal = items / (c / latency))
  client alone / raw aiohttp at c=512, 0.2 s    >= 0.9x     (throughput)
  rerun wholly from the cache, 5,000 items      < 1.5 s     (pytest start-up included)
  evaluation of a 5,000-item task               < 0.3 s

The machine is shared and noisy: compare the ratios within one run, not numbers across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_endpoints import Server, rss_kb  # noqa: E402

PROMPT = "Question {i}: what is 6 x 7?\nA:"


# ---------------------------------------------------------------------------------------------
# clients (each in its own process; one JSON line out)


async def raw_pair(urls: list[str], n: int, c: int) -> int:
    """Plain aiohttp: per item both stacks asked together, one semaphore and pool per stack."""
    import aiohttp

    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) for _ in urls]
    sems = [asyncio.Semaphore(c) for _ in urls]
    same = 0

    async def ask(k: int, i: int) -> str:
        body = {"model": "bench", "prompt": PROMPT.format(i=i), "max_tokens": 8}
        async with sems[k], sessions[k].post(urls[k] + "/completions", json=body) as resp:
            data = await resp.json()
            text: str = data["choices"][0]["text"]
            return text

    async def one(i: int) -> None:
        nonlocal same
        a, b = await asyncio.gather(ask(0, i), ask(1, i))
        same += a == b

    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        for s in sessions:
            await s.close()
    return same


async def alone_pair(urls: list[str], n: int, c: int) -> int:
    """pytest-parity's endpoint layer, both stacks per item, no scoring and no cache."""
    from pytest_parity.contract.spec import EndpointSpec
    from pytest_parity.endpoints.http import Request, open_endpoint

    eps = [
        open_endpoint(
            EndpointSpec(
                role=role,
                kind="vllm",
                base_url=url,
                model="bench",
                api="completions",
                params={"temperature": 0.0, "max_tokens": 8},
                max_concurrency=c,
                timeout=60.0,
            )
        )
        for role, url in zip(("baseline", "candidate"), urls, strict=True)
    ]
    same = 0

    async def one(i: int) -> None:
        nonlocal same
        req = Request(item_id=str(i), prompt=PROMPT.format(i=i))
        a, b = await asyncio.gather(eps[0].complete(req), eps[1].complete(req))
        same += a.error is None and a.text == b.text

    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        for ep in eps:
            await ep.aclose()
    return same


def client(which: str, urls: list[str], n: int, c: int) -> None:
    sys.path.insert(0, str(ROOT))
    before = rss_kb()
    # Measured from before the client's imports: the gate's task imports aiohttp (on its first
    # request sent) inside its measurement too.
    cpu0, t0 = time.process_time(), time.perf_counter()
    import aiohttp  # noqa: F401

    if which != "raw":
        import httpx_aiohttp  # noqa: F401

        import pytest_parity.endpoints.http  # noqa: F401
    fn = raw_pair if which == "raw" else alone_pair
    if which == "raw":
        ok = asyncio.run(fn(urls, n, c))
    else:
        # as the gate runs the endpoint layer: run_sync (the collector tuned while it runs)
        from pytest_parity.endpoints.loop import run_sync

        ok = run_sync(lambda: fn(urls, n, c))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ok": ok, "wall_s": wall, "cpu_s": cpu, "rss_kb": peak, "base_kb": before}))


def gate(workdir: str, args: list[str]) -> None:
    """One pytest run of the generated contract, in this process, measured from its start."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    sys.path.insert(0, str(ROOT))
    os.chdir(workdir)
    import pytest

    from pytest_parity import verdict

    timings: dict[str, float] = {"eval_s": 0.0}
    evaluate = verdict.evaluate

    def timed(*a: Any, **kw: Any) -> Any:
        s = time.perf_counter()
        timings["answered_rss_kb"] = rss_kb()  # every answer in, before the statistics
        try:
            return evaluate(*a, **kw)
        finally:
            timings["eval_s"] += time.perf_counter() - s
            timings["evaluated_rss_kb"] = rss_kb()

    verdict.evaluate = timed  # type: ignore[assignment]
    from pytest_parity.runner import run as runner_run

    timings["task_s"] = timings["task_cpu_s"] = 0.0
    run_task = runner_run.Runner.run

    def timed_run(self: Any, *a: Any, **kw: Any) -> Any:
        s, c = time.perf_counter(), time.process_time()
        try:
            return run_task(self, *a, **kw)
        finally:
            timings["task_s"] += time.perf_counter() - s
            timings["task_cpu_s"] += time.process_time() - c

    runner_run.Runner.run = timed_run  # type: ignore[method-assign]
    # --progress: pytest's normal verbosity, under which the gate prints its progress lines
    quiet = [] if "--progress" in args else ["-q"]
    args = [a for a in args if a != "--progress"]
    rc = pytest.main(
        [*quiet, *NOT_A_USERS, "-p", "no:cacheprovider", "--parity-contract=contract.yaml", *args]
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    heavy = sorted(m for m in ("scipy.stats", "scipy.optimize", "scipy") if m in sys.modules)
    print(
        json.dumps(
            {"rc": int(rc), "wall_s": wall, "cpu_s": cpu, "rss_kb": peak, "heavy": heavy, **timings}
        )
    )


def _test_only_plugins() -> list[str]:
    """pytest plugins this environment has only for pytest-parity's own test suite (``pip
    install -e ".[dev]"``), which a user's ``pip install pytest-parity`` does not bring:
    hypothesis's loads in every pytest run (~0.1 s). Left out of the gate's runs."""
    import importlib.util

    return ["-p", "no:hypothesispytest"] if importlib.util.find_spec("hypothesis") else []


NOT_A_USERS = _test_only_plugins()


# ---------------------------------------------------------------------------------------------
# the driver


def write_task(workdir: Path, urls: list[str], n: int, c: int, tasks: int = 1) -> None:
    """A contract of ``tasks`` golden tasks (``speed``, ``speed2``...), n items in all."""
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for t in range(tasks):
        name = "speed" if t == 0 else f"speed{t + 1}"
        with (workdir / f"{name}.jsonl").open("w") as f:
            for i in range(t * n // tasks, (t + 1) * n // tasks):
                row = {"id": f"q{i}", "prompt": PROMPT.format(i=i), "reference": "42"}
                f.write(json.dumps(row) + "\n")
        lines.append(f"  - {{name: {name}, source: golden, path: {name}.jsonl, scorer: numeric}}\n")
    stack = '{{kind: vllm, base_url: "{}", model: bench, api: completions, max_concurrency: {}}}'
    (workdir / "contract.yaml").write_text(
        f"baseline: {stack.format(urls[0], c)}\n"
        f"candidate: {stack.format(urls[1], c)}\n"
        "tasks:\n" + "".join(lines)
    )


class RssSampler:
    """Peak RSS of a child process, sampled from /proc every 0.2 s while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                return

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak_kb


def child(argv: list[str], progress: bool = False) -> tuple[dict[str, Any], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    # A user's Python keeps its bytecode (and pytest's rewritten plugin modules) cached: without
    # that every run would compile the whole package again (~2 s here).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen(
        [sys.executable, __file__, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    sampler = RssSampler(proc.pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.communicate()[0]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the client's, reaped just now
    sampled = sampler.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{argv[:2]} failed:\n{out[-3000:]}")
    got: dict[str, Any] = json.loads(lines[-1])
    got["sampled_kb"] = max(sampled, got.get("rss_kb", 0))
    # The whole process, as `time` shows it: the interpreter's start and every import included.
    got["proc_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if progress:
        for ln in out.splitlines():
            if ln.startswith("[parity]"):
                print("    " + ln, flush=True)
    return got, out


def run_case(which: str, urls: list[str], n: int, c: int, tmp: Path, tag: str) -> dict[str, Any]:
    if which.endswith(DOUBLE):  # the same case on twice the items: CPU per extra item
        which, n, tag = which[: -len(DOUBLE)], 2 * n, f"{tag}-2x"
    if which in ("raw", "alone"):
        got, _ = child(["--client", which, ",".join(urls), str(n), str(c)])
        if got["ok"] != n:
            raise RuntimeError(f"{which}: {got['ok']} of {n} pairs answered alike")
        return got
    # the cached rerun runs in the cache case's folder, from the cache that case wrote
    work = tmp / f"{tag}-{'cache' if which == 'cached' else which}"
    cache = tmp / f"{tag}-store"
    if which != "cached":
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
        write_task(work, urls, n, c)
    args = {
        "nocache": ["--parity-no-cache"],
        "cache": [f"--parity-cache-dir={cache}"],
        "cached": [f"--parity-cache-dir={cache}", "--parity-cache=reuse"],
    }[which]
    got, out = child(["--gate", str(work), *args])
    if got["rc"] != 0:
        raise RuntimeError(f"gate {which}: pytest exit code {got['rc']}:\n{out[-3000:]}")
    return got


CASES = ("raw", "alone", "nocache", "cache", "cached")
DOUBLE = "@2x"


def scenario(latency: float, c: int, n: int, rounds: int, tmp: Path, cases: tuple[str, ...]) -> Any:
    servers = [Server(latency), Server(latency)]
    urls = [s.url for s in servers]
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in cases}
    try:
        for r in range(rounds):
            for which in cases:
                if which == "cached" and "cache" not in cases:
                    continue
                tag = f"l{latency}-c{c}-r{r}"
                rows[which].append(run_case(which, urls, n, c, tmp, tag))
    finally:
        for s in servers:
            s.close()
    return {
        k: {f: statistics.median(x[f] for x in v) for f in v[0] if isinstance(v[0][f], float | int)}
        for k, v in rows.items()
        if v
    }


def show(label: str, latency: float, c: int, n: int, res: dict[str, Any]) -> None:
    ideal = n / (c / latency) if latency else None
    print(f"\n{label}: latency {latency:g} s, concurrency {c}, {n} items (both stacks)")
    # process CPU/item: the whole process as `time` shows it (the interpreter's start and every
    # import; for the gate pytest's start-up, collection, statistics and report). task CPU/item:
    # the gate only while the task's items were asked, answered and scored (its lazy aiohttp
    # import included); a client's whole run after the interpreter started, imports included.
    print("  case      wall      task      process CPU/item  task CPU/item  peak RSS   eval")
    for k, v in res.items():
        if k.endswith(DOUBLE):
            continue  # shown as the CPU per extra item, with the targets
        # the task: both stacks' answers, from the first request to the last answer
        task = v.get("task_s", v["wall_s"])
        task_cpu = v.get("task_cpu_s", v["cpu_s"])
        share = f"  ({ideal / task:.0%} of ideal {ideal:.2f} s)" if ideal else ""
        ev = f"  {v['eval_s']:.3f} s" if "eval_s" in v else "        "
        print(
            f"  {k:8s} {v['wall_s']:6.2f} s  {task:6.2f} s  {v['proc_cpu_s'] / n * 1e3:6.2f} ms"
            f"         {task_cpu / n * 1e3:6.2f} ms  {v['sampled_kb'] / 1024:6.0f} MB{ev}{share}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1,000 items, one round")
    ap.add_argument("--scale", type=int, metavar="N", help="only the memory run of N items")
    ap.add_argument("--tasks", type=int, default=1, help="--scale: N items over this many tasks")
    ap.add_argument("--cache", action="store_true", help="--scale: with the response cache on")
    ap.add_argument("--items", type=int, help="items per task (default 5,000; quick 1,000)")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--gate", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        from bench_endpoints import serve

        serve(int(args.serve[0]), float(args.serve[1]))
        return
    if args.client:
        which, urls, n, c = args.client
        client(which, urls.split(","), int(n), int(c))
        return
    if args.gate:
        gate(args.gate[0], args.gate[1:])
        return

    n = args.items or (1000 if args.quick else 5000)
    rounds = args.rounds or (1 if args.quick else 2)
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load:.1f} at "
        f"start, {rounds} round(s), medians; gate = a whole pytest run (start-up included)"
    )
    with tempfile.TemporaryDirectory(prefix="gate-speed-") as d:
        tmp = Path(d)
        if args.scale:
            scale(args.scale, tmp, args.tasks, args.cache)
            return
        r0 = scenario(0.0, 32, n, rounds, tmp, (*CASES, "raw" + DOUBLE, "cache" + DOUBLE))
        show("[A]", 0.0, 32, n, r0)
        r1 = scenario(0.2, 128, n, rounds, tmp, ("raw", "alone", "nocache", "cache"))
        show("[B]", 0.2, 128, n, r1)
        r2 = scenario(0.2, 512, n, rounds, tmp, ("raw", "alone", "nocache"))
        show("[C]", 0.2, 512, n, r2)

    ideal = n / (128 / 0.2)
    cpu = {k: v["proc_cpu_s"] / n for k, v in r0.items()}
    task_cpu = {k: v.get("task_cpu_s", v["cpu_s"]) / n for k, v in r0.items()}
    # per extra item: (the 2n-item run - the n-item run) / n, whole processes: start-up cancels
    extra = {k: (r0[k + DOUBLE]["proc_cpu_s"] - r0[k]["proc_cpu_s"]) / n for k in ("raw", "cache")}
    print("\ntargets (issue 22), ratios within this run:")
    verdicts = [
        (
            "client CPU per item, cache on / raw pair (c=32, latency 0), whole processes",
            f"{cpu['cache'] / cpu['raw']:.2f}x"
            f" ({cpu['cache'] * 1e3:.2f} / {cpu['raw'] * 1e3:.2f} ms)",
            cpu["cache"] / cpu["raw"] <= 1.3,
            "<= 1.3x",
        ),
        (
            f"  the same per extra item ({2 * n} items minus {n}: start-up left out)",
            f"{extra['cache'] / extra['raw']:.2f}x"
            f" ({extra['cache'] * 1e3:.2f} / {extra['raw'] * 1e3:.2f} ms)",
            extra["cache"] / extra["raw"] <= 1.3,
            "<= 1.3x",
        ),
        (
            "  the same, the gate's task only (start-up, statistics and report left out)",
            f"{task_cpu['cache'] / task_cpu['raw']:.2f}x",
            task_cpu["cache"] / task_cpu["raw"] <= 1.3,
            "<= 1.3x",
        ),
        (
            "gate at c=128, 0.2 s: the task's share of ideal, no cache / cache on"
            " (whole pytest run's)",
            f"{ideal / r1['nocache']['task_s']:.0%} / {ideal / r1['cache']['task_s']:.0%}"
            f" ({ideal / r1['nocache']['wall_s']:.0%} / {ideal / r1['cache']['wall_s']:.0%})",
            ideal / r1["cache"]["task_s"] >= 0.9,
            ">= 90%",
        ),
        (
            "client alone / raw aiohttp throughput at c=512, 0.2 s",
            f"{r2['raw']['wall_s'] / r2['alone']['wall_s']:.2f}x",
            r2["raw"]["wall_s"] / r2["alone"]["wall_s"] >= 0.9,
            ">= 0.9x",
        ),
        (
            f"rerun wholly from the cache, {n} items, pytest start-up included",
            f"{r0['cached']['wall_s']:.2f} s",
            r0["cached"]["wall_s"] < 1.5,
            "< 1.5 s",
        ),
        (
            f"evaluation of a {n}-item task",
            f"{r0['nocache']['eval_s']:.3f} s",
            r0["nocache"]["eval_s"] < 0.3,
            "< 0.3 s",
        ),
    ]
    for what, got, ok, target in verdicts:
        print(f"  {'met ' if ok else 'MISS'}  {what}: {got} (target {target})")
    if n != 5000:
        print("  (targets are stated for 5,000 items; this run had", n, ")")


def scale(n: int, tmp: Path, tasks: int = 1, cache: bool = False) -> None:
    """Peak RSS of the gate (latency 0, c=32; no cache unless ``cache``) on n items (over
    ``tasks`` tasks), above a 1,000-item run of one task."""
    servers = [Server(0.0), Server(0.0)]
    urls = [s.url for s in servers]
    try:
        small = 1000
        out = {}
        for size in (small, n):
            work = tmp / f"scale-{size}"
            write_task(work, urls, size, 32, tasks if size == n else 1)
            store = f"--parity-cache-dir={tmp / f'scale-cache-{size}'}"
            argv = ["--gate", str(work), store if cache else "--parity-no-cache", "--progress"]
            got, text = child(argv, progress=size == n)
            tail = [ln for ln in text.splitlines() if "passed" in ln or "failed" in ln]
            overall = [ln.strip() for ln in text.splitlines() if ln.startswith("OVERALL")]
            out[size] = got
            print(
                f"  {size} items: wall {got['wall_s']:.1f} s, CPU {got['cpu_s'] / size * 1e3:.2f}"
                f" ms/item, peak RSS {got['sampled_kb'] / 1024:.0f} MB (at the last answer"
                f" {got['answered_rss_kb'] / 1024:.0f} MB), eval {got['eval_s']:.2f} s,"
                f" {overall[-1] if overall else '?'}, pytest: {tail[-1] if tail else '?'}"
            )
        per = (out[n]["sampled_kb"] - out[small]["sampled_kb"]) / (n - small) * 1024
        at = (out[n]["answered_rss_kb"] - out[small]["answered_rss_kb"]) / (n - small) * 1024
        print(
            f"[scale] RSS above the {small}-item run: {per:.0f} bytes per item at the peak,"
            f" {at:.0f} at the last answer (target < 1 KB)"
        )
    finally:
        for s in servers:
            s.close()


if __name__ == "__main__":
    main()
