"""Cache identity (headers, URL, every spec field; secrets hashed) and the cache modes: resume
(the default: only an unfinished run's answers), reuse, refresh, off; the counts every run shows.

Real HTTP throughout: gate runs (pytester) against local servers counting what they receive.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from servers import FakeServer

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.http import Request, Response, RetryPolicy, open_endpoint

FAST = RetryPolicy(base_s=0.01, cap_s=0.05)


def spec(base_url: str, **kw: Any) -> EndpointSpec:
    base: dict[str, Any] = {
        "role": "baseline",
        "kind": "vllm",
        "base_url": base_url,
        "model": "test-model",
        "params": MappingProxyType({"temperature": 0.0, "max_tokens": 16}),
        "max_retries": 0,
        "timeout": 5.0,
    }
    base.update(kw)
    return EndpointSpec(**base)


def run(s: EndpointSpec, cache: ResponseCache, n: int = 2) -> list[Response]:
    async def go() -> list[Response]:
        ep = open_endpoint(s, cache=cache, retry=FAST)
        try:
            return list(
                await asyncio.gather(
                    *(
                        ep.complete(
                            Request(str(i), messages=({"role": "user", "content": f"q{i}"},))
                        )
                        for i in range(n)
                    )
                )
            )
        finally:
            await ep.aclose()

    return asyncio.run(go())


WHOLLY_CACHED = """
import asyncio, json, sys
from types import MappingProxyType
from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.http import Request, open_endpoint

async def go():
    spec = EndpointSpec(role="baseline", kind="vllm", base_url=sys.argv[1], model="test-model",
                        params=MappingProxyType({"max_tokens": 16}), max_retries=0, timeout=5.0)
    with ResponseCache(sys.argv[2], mode="reuse") as cache:
        ep = open_endpoint(spec, cache=cache)
        try:
            got = [await ep.complete(Request(str(i), prompt=f"q{i}")) for i in range(3)]
            engine = await ep.engine()
        finally:
            await ep.aclose()
    print(json.dumps({"cached": [r.cached for r in got], "text": [r.text for r in got],
                      "version": engine.get("version"), "aiohttp": "aiohttp" in sys.modules}))

asyncio.run(go())
"""


def test_a_run_answered_wholly_from_the_cache_never_builds_the_connection_pool(
    tmp_path: Path,
) -> None:
    """The pooled aiohttp transport is built on the first request sent: a rerun from the cache
    only probes the server (through httpx's own transport) and imports no aiohttp."""
    script = tmp_path / "cached.py"
    script.write_text(WHOLLY_CACHED)
    root = str(Path(__file__).resolve().parents[2])

    def once() -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, str(script), srv.base_url, str(tmp_path / "cache")],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PYTHONPATH": root},
            check=True,
        )
        got: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
        return got

    with FakeServer() as srv:
        first = once()
        assert first["cached"] == [False] * 3 and first["aiohttp"] is True
        second = once()
        assert second["cached"] == [True] * 3 and second["text"] == first["text"]
        assert second["aiohttp"] is False  # no request sent: no pool, no aiohttp import
        assert second["version"] == srv.engine_version  # the probe still asked the server
        assert len(srv.received) == 3  # the rerun sent no completion


# ----------------------------------------------------------------------------------------------
# identity


def test_headers_and_the_key_are_part_of_the_identity_hashed_never_in_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, key_a, key_b = "tok-PLANTED-ident-1111", "sk-PLANTED-ident-2222", "sk-PLANTED-ident-3333"
    monkeypatch.setenv("IDENT_KEY", key_a)
    with FakeServer() as srv, ResponseCache(tmp_path, mode="reuse") as cache:
        base = spec(srv.base_url, api_key_env="IDENT_KEY")
        run(base, cache)
        run(base, cache)
        assert len(srv.received) == 2  # the same endpoint: answered from the cache
        run(replace(base, headers=MappingProxyType({"X-Route": "pool-b"})), cache)
        assert len(srv.received) == 4  # a header that picks another backend: a new identity
        tokened = replace(base, headers=MappingProxyType({"X-Stack-Token": token}))
        run(tokened, cache)
        run(replace(tokened, headers=MappingProxyType({"X-Stack-Token": token + "x"})), cache)
        assert len(srv.received) == 8
        monkeypatch.setenv("IDENT_KEY", key_b)  # another key may be another account or model
        run(base, cache)
        assert len(srv.received) == 10
        # What only changes how requests are sent keeps the entries.
        run(replace(base, timeout=9.0, max_concurrency=3, max_retries=2), cache)
        assert len(srv.received) == 10
        ep = open_endpoint(tokened)
        ident = ep.cache_identity({})
        asyncio.run(ep.aclose())
    assert ident["headers"]["x-stack-token"].startswith("sha256:")
    assert ident["headers"]["authorization"].startswith("sha256:")
    assert ident["url"].endswith("/v1/chat/completions")
    assert "timeout" not in ident and "max_concurrency" not in ident
    for f in tmp_path.iterdir():
        data = f.read_bytes()
        for secret in (token, key_a, key_b):
            assert secret.encode() not in data, f


def test_a_field_added_to_the_spec_joins_the_key_by_default() -> None:
    from pytest_parity.endpoints.http import NOT_IN_CACHE_KEY, Endpoint

    class Probe(Endpoint):
        async def _answer(self, request: Request) -> Response:  # pragma: no cover
            raise AssertionError

    ident = Probe(spec("http://127.0.0.1:1/v1")).cache_identity({})
    from dataclasses import fields

    names = {f.name for f in fields(EndpointSpec)}
    assert names - NOT_IN_CACHE_KEY <= set(ident)  # every field but the named few


# ----------------------------------------------------------------------------------------------
# modes, through the gate


def contract(root: Path, old: str, new: str, n: int) -> Path:
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?", "reference": str(i + 1)})
        for i in range(n)
    ]
    (root / "golden.jsonl").write_text("\n".join(lines) + "\n")
    path = root / "contract.yaml"
    path.write_text(
        f'baseline:  {{kind: openai, base_url: "{old}", model: m}}\n'
        f'candidate: {{kind: openai, base_url: "{new}", model: m}}\n'
        "tasks:\n  - {name: sums, path: golden.jsonl, scorer: numeric, tolerance: 0.1}\n"
    )
    return path


def gate(pytester: pytest.Pytester, path: Path, *args: str) -> tuple[pytest.RunResult, Any]:
    out = pytester.path / "parity.json"
    out.unlink(missing_ok=True)
    result = pytester.runpytest(
        f"--parity-contract={path}",
        f"--parity-cache-dir={pytester.path / 'cache'}",
        f"--parity-json={out}",
        *args,
    )
    doc = json.loads(out.read_text()) if out.exists() else None
    return result, doc


def stored_rows(cache_dir: Path) -> int:
    import sqlite3

    db = sqlite3.connect(cache_dir / "responses.sqlite3")
    try:
        return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    finally:
        db.close()


def cache_line(result: pytest.RunResult) -> str:
    return next(line for line in result.outlines if line.startswith("parity cache"))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_resume_reuses_only_an_unfinished_run_and_reuse_is_explicit(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    n = 40
    # The candidate is slow: the baseline has answered a window of items before the
    # candidate's first refusal stops the task.
    with FakeServer() as old, FakeServer(latency_s=1.0) as new:
        path = contract(pytester.path, old.base_url, new.base_url, n)
        new.require_key = "nobody-has-it"  # the candidate refuses every request: task ERROR
        first, doc = gate(pytester, path, *workers)
        assert first.parseoutcomes().get("errors") == 3
        asked_first = len(old.received)
        stored = stored_rows(pytester.path / "cache")  # the baseline's answers it kept
        assert 0 < stored <= asked_first
        new.latency_s = 0.0

        new.require_key = None  # the rerun resumes the run that did not finish
        second, doc = gate(pytester, path, *workers)
        assert second.ret == 0, second.stdout.str()
        resent = len(old.received) - asked_first
        counts = doc["tasks"][0]["cache"]["baseline"]
        assert counts["answers"] == n and counts["from_cache"] + resent == n
        assert counts["from_cache"] == stored  # every answer kept was reused, none resent
        assert doc["cache"]["baseline"] == counts
        assert doc["cache"]["candidate"] == {"answers": n, "from_cache": 0}
        assert doc["cache"]["mode"] == "resume"
        assert cache_line(second) == (
            "parity cache (resume): answers from the cache:"
            f" baseline {counts['from_cache']}/{n}, candidate 0/{n}"
        )
        sent = (len(old.received), len(new.received))

        third, doc = gate(pytester, path, *workers)  # that run finished: a new one starts afresh
        assert (len(old.received), len(new.received)) == (sent[0] + n, sent[1] + n)
        assert cache_line(third).endswith(f"baseline 0/{n}, candidate 0/{n}")

        reused, doc = gate(pytester, path, "--parity-cache=reuse", *workers)
        assert (len(old.received), len(new.received)) == (sent[0] + n, sent[1] + n)  # none sent
        assert cache_line(reused) == (
            f"parity cache (reuse): answers from the cache: baseline {n}/{n}, candidate {n}/{n}"
        )


def test_refresh_off_and_the_old_flags(pytester: pytest.Pytester) -> None:
    n = 10
    with FakeServer() as old, FakeServer() as new:
        path = contract(pytester.path, old.base_url, new.base_url, n)
        gate(pytester, path)
        refreshed, _ = gate(pytester, path, "--parity-cache=refresh")
        assert len(old.received) == 2 * n
        assert cache_line(refreshed).startswith("parity cache (refresh)")
        off, doc = gate(pytester, path, "--parity-no-cache")
        assert cache_line(off) == "parity cache: off (every answer was asked for)"
        assert doc["cache"]["mode"] == "off" and len(old.received) == 3 * n
        gate(pytester, path, "--parity-cache=off")
        assert len(old.received) == 4 * n
        gate(pytester, path, "--parity-cache=reuse")
        assert len(old.received) == 4 * n  # refresh stored its answers
        bad = pytester.runpytest(f"--parity-contract={path}", "--parity-cache=sometimes")
        assert bad.ret == pytest.ExitCode.USAGE_ERROR
        assert "--parity-cache=sometimes: expected resume, reuse, refresh or off" in (
            bad.stderr.str()
        )
