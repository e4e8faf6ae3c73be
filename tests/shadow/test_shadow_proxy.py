"""parity-shadow end to end: the proxy in its own process in front of two real local servers.

Clients are real (httpx, the openai SDK); the serving answer must come back exactly as the
serving stack gives it, streamed or not; the shadow stack failing, slow or killed never touches
the production answer; pairs land in the store with what both sides said.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from shadow_servers import ROOT, ProxyProcess, ServerProcess, StreamServer, write_contract

from pytest_parity.store import open_store

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def stacks() -> Iterator[tuple[StreamServer, StreamServer]]:
    with StreamServer("old") as old, StreamServer("new") as new:
        yield old, new


def _pairs(path: Path) -> list[Any]:
    with open_store(str(path)) as st:
        return list(st.pairs())


def test_answer_unchanged_pair_stored_secrets_kept_out(
    stacks: tuple[StreamServer, StreamServer], tmp_path: Path
) -> None:
    old, new = stacks
    c = write_contract(
        tmp_path / "c.yaml",
        old.base_url,
        new.base_url,
        {"store": {"url": "pairs.sqlite", "flush_seconds": 0.05}},
        candidate={"kind": "vllm", "base_url": new.base_url, "model": "m-fp8"},
    )
    body = {**CHAT, "messages": [{"role": "user", "content": "hi, key sk-abcdefgh12345678"}]}
    headers = {"Authorization": "Bearer sk-abcdefgh12345678", "X-Trace": "t-1"}
    with ProxyProcess(c) as px:
        via = httpx.post(px.url + "/v1/chat/completions", json=body, headers=headers)
        direct = httpx.post(old.base_url + "/chat/completions", json=body, headers=headers)
        assert via.status_code == direct.status_code == 200
        assert via.content == direct.content  # byte for byte
        for h in ("content-type", "content-length", "x-served-by", "x-trace"):
            assert via.headers[h] == direct.headers[h], h
        assert px.wait_for("parity_shadow_pairs_stored_total", 1) == 1
        code, _, err = px.stop()
    assert code == 0, err
    # The shadow got the request with its own model name and without the client's key.
    assert new.received[-1]["model"] == "m-fp8"
    assert "Authorization" not in new.headers_seen[-1]
    assert old.headers_seen[-1]["Authorization"] == headers["Authorization"]
    (p,) = _pairs(tmp_path / "pairs.sqlite")
    assert p.serving_text == "old says: hi, key [SECRET]"  # the client's key, wherever it is
    assert p.request["messages"][0]["content"] == "hi, key [SECRET]"
    assert p.shadow_text.startswith("new says: ")
    assert (p.serving_status, p.shadow_status, p.serving_error, p.shadow_error) == (
        200,
        200,
        None,
        None,
    )
    assert p.serving_finish == p.shadow_finish == "stop"
    assert p.serving_completion_tokens == 5 and p.serving_prompt_tokens == 9
    assert p.serving_latency > 0 and p.shadow_latency > 0 and p.serving_ttft is None
    assert p.segment == "m" and p.path == "/v1/chat/completions" and p.protocol == "chat"
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("pairs.sqlite*"))
    assert b"sk-abcdefgh" not in raw and b"Authorization" not in raw


def test_streaming_through_the_openai_sdk(
    stacks: tuple[StreamServer, StreamServer], tmp_path: Path
) -> None:
    openai = pytest.importorskip("openai")
    old, new = stacks
    old.chunk_delay = 0.03
    c = write_contract(
        tmp_path / "c.yaml",
        old.base_url,
        new.base_url,
        {"store": {"url": "pairs.sqlite", "flush_seconds": 0.05}, "segments": {"from": ["header"]}},
    )
    with ProxyProcess(c) as px:
        client = openai.OpenAI(base_url=px.url + "/v1", api_key="sk-client-key-0001")
        t0 = time.perf_counter()
        arrivals: list[float] = []
        pieces: list[str] = []
        stream = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "one two three four five"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-parity-segment": "support"},
        )
        for chunk in stream:
            arrivals.append(time.perf_counter() - t0)
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        assert "".join(pieces) == "old says: one two three four five"
        # Chunks arrived as the server sent them, not all at the end (7 words, 30 ms apart).
        assert arrivals[-1] - arrivals[0] > 0.12
        plain = client.completions.create(model="m", prompt="count to three", max_tokens=3)
        assert plain.choices[0].text == "old says: count"
        assert plain.choices[0].finish_reason == "length"
        assert px.wait_for("parity_shadow_pairs_stored_total", 2) == 2
        assert px.total("parity_shadow_ttft_seconds_count", role="serving", segment="support") == 1
        assert px.total("parity_shadow_finish_reasons_total", reason="length", role="shadow") == 1
        assert px.total("parity_shadow_tokens_total", kind="completion", role="serving") == 10
        px.stop()
    s, cpl = _pairs(tmp_path / "pairs.sqlite")
    assert s.stream and s.segment == "support" and s.protocol == "chat"
    assert s.shadow_text == "new says: one two three four five"
    assert s.serving_ttft is not None and 0 < s.serving_ttft < s.serving_latency
    assert s.serving_completion_tokens == 7  # from the usage chunk
    assert cpl.protocol == "completions" and cpl.serving_finish == "length"
    assert cpl.segment == "default"  # no header: the segment default


def test_other_paths_and_statuses_pass_through_without_shadow(
    stacks: tuple[StreamServer, StreamServer], tmp_path: Path
) -> None:
    old, new = stacks
    # A host name, not an IP: cookie jars keep cookies of named hosts.
    c = write_contract(
        tmp_path / "c.yaml", old.base_url.replace("127.0.0.1", "localhost"), new.base_url
    )
    with ProxyProcess(c) as px, httpx.Client() as h:
        for method, path in [("GET", "/v1/models?x=1"), ("POST", "/tokenize?status=418")]:
            via = h.request(method, px.url + path, content=b"raw body")
            direct = h.request(method, old.base_url.removesuffix("/v1") + path, content=b"raw body")
            assert (via.status_code, via.content) == (direct.status_code, direct.content)
            assert via.headers["x-served-by"] == "old"
        assert h.get(px.url + "/v1/models?status=418").status_code == 418
        # Set-Cookie reaches the client that got it, and the proxy never replays it to others.
        set_c = httpx.get(px.url + "/login?cookie=alice-secret")
        assert set_c.headers["set-cookie"].startswith("session=alice-secret")
        httpx.get(px.url + "/v1/models")
        assert "Cookie" not in old.headers_seen[-1]
        # A chat completion the serving stack rejects comes back with its own status and body.
        old.mode = "error"
        bad = h.post(px.url + "/v1/chat/completions", json=CHAT)
        assert bad.status_code == 500 and bad.json() == {"error": {"message": "shadow broke"}}
        assert px.wait_for("parity_shadow_errors_total", 1, category="http_5xx", role="serving")
        assert px.total("parity_shadow_passthrough_requests_total") == 5
        px.stop()
    assert len(new.received) == 1  # only the chat completion was mirrored


async def _load(url: str, n: int, conc: int, on_half: Any = None) -> list[httpx.Response]:
    sem = asyncio.Semaphore(conc)
    done = 0

    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> httpx.Response:
            nonlocal done
            async with sem:
                body = {**CHAT, "messages": [{"role": "user", "content": f"item {i}"}]}
                if i % 2:
                    body["stream"] = True
                r = await client.post(url + "/v1/chat/completions", json=body)
                done += 1
                if done == n // 2 and on_half is not None:
                    on_half()
                return r

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_shadow_killed_mid_run_production_unaffected(tmp_path: Path) -> None:
    N = 120
    with StreamServer("old") as old, ServerProcess("new") as new:
        c = write_contract(
            tmp_path / "c.yaml",
            old.base_url,
            new.base_url,
            {"store": {"url": "pairs.sqlite", "flush_seconds": 0.05}},
        )
        with ProxyProcess(c) as px:
            rs = asyncio.run(_load(px.url, N, 8, on_half=new.kill9))
            for i, r in enumerate(rs):
                assert r.status_code == 200
                text = (
                    r.json()["choices"][0]["message"]["content"]
                    if i % 2 == 0
                    else "".join(
                        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                        for line in r.text.splitlines()
                        if line.startswith("data: {")
                    )
                )
                assert text == f"old says: item {i}"
            assert px.wait_for("parity_shadow_pairs_total", N) == N
            ok = px.total("parity_shadow_requests_total", role="shadow")
            errors = px.total("parity_shadow_errors_total", role="shadow", category="connect")
            assert errors > N // 4 and ok == N  # every sampled request was tried, many failed
            assert px.total("parity_shadow_errors_total", role="serving") == 0
            px.stop()
    pairs = _pairs(tmp_path / "pairs.sqlite")
    assert len(pairs) == N
    assert all(p.serving_error is None for p in pairs)
    failed = [p for p in pairs if p.shadow_error is not None]
    assert {p.shadow_error for p in failed} <= {"connect", "disconnect"}
    # Pairs are in time order; the failures start after the kill and do not stop again.
    assert [p.ts for p in pairs] == sorted(p.ts for p in pairs)
    first_fail = min(pairs.index(p) for p in failed)
    assert first_fail > N // 4


def test_slow_shadow_drops_are_counted_never_delay_production(tmp_path: Path) -> None:
    with StreamServer("old") as old, StreamServer("new", mode="slow") as new:
        new.slow_s = 1.0
        c = write_contract(
            tmp_path / "c.yaml",
            old.base_url,
            new.base_url,
            {"queue": {"size": 2, "concurrency": 1, "timeout": 5}, "drain_seconds": 0.5},
        )
        with ProxyProcess(c) as px, httpx.Client() as h:
            lat = []
            for i in range(20):
                t = time.perf_counter()
                r = h.post(px.url + "/v1/chat/completions", json={**CHAT, "n": i})
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200
            assert max(lat) < 0.5  # the shadow takes 1 s per request
            dropped = px.total("parity_shadow_dropped_total", reason="queue_full")
            assert dropped >= 15 and px.total("parity_shadow_sampled_total") == 20
            assert 1 <= px.total("parity_shadow_queue_depth") <= 2  # bounded
            t = time.perf_counter()
            code, out, _ = px.stop()
            # Graceful shutdown is bounded by drain_seconds (+ process exit), not by the queue.
            assert code == 0 and time.perf_counter() - t < 2.5
            # What was still queued when the drain bound ran out is dropped and said.
            dropped_at_stop = int(out.split("dropped at shutdown: ")[1].split()[0])
            assert dropped_at_stop >= 1, out


def test_kill_9_loses_at_most_the_unflushed_batch(
    stacks: tuple[StreamServer, StreamServer], tmp_path: Path
) -> None:
    old, new = stacks
    db = tmp_path / "pairs.sqlite"
    c = write_contract(
        tmp_path / "c.yaml",
        old.base_url,
        new.base_url,
        {"store": {"url": "pairs.sqlite", "batch": 10, "flush_seconds": 3600}},
    )
    with ProxyProcess(c) as px, httpx.Client() as h:
        for i in range(25):
            h.post(px.url + "/v1/chat/completions", json={**CHAT, "n": i})
        assert px.wait_for("parity_shadow_pairs_total", 25) == 25
        assert px.wait_for("parity_shadow_pairs_stored_total", 20) == 20
        px.kill9()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT COUNT(*) FROM shadow_pairs").fetchone() == (20,)
    con.close()
    # The same store takes the next proxy, and a graceful stop flushes a partial batch.
    with ProxyProcess(c) as px, httpx.Client() as h:
        for i in range(3):
            h.post(px.url + "/v1/chat/completions", json={**CHAT, "n": 100 + i})
        px.wait_for("parity_shadow_pairs_total", 3)
        assert px.stop()[0] == 0
    pairs = _pairs(db)
    assert len(pairs) == 23 and len({p.instance for p in pairs}) == 2


def test_segments_bounded_redaction_and_retention(
    stacks: tuple[StreamServer, StreamServer], tmp_path: Path
) -> None:
    old, new = stacks
    (tmp_path / "seg.py").write_text(
        "def segment(path, headers, body):\n"
        "    return 'tenant-' + headers['X-Tenant'] if 'X-Tenant' in headers else None\n"
    )
    c = write_contract(
        tmp_path / "c.yaml",
        old.base_url,
        new.base_url,
        {
            "store": {"url": "pairs.sqlite", "flush_seconds": 0.05},
            "segments": {"from": ["hook", "header", "path"], "hook": "seg.py:segment", "max": 3},
            "redact": [{"pattern": r"[\w.+-]+@[\w-]+\.\w+", "replace": "[EMAIL]"}, r"\b\d{16}\b"],
            "retention": {"rows": 4, "check_seconds": 0},
        },
    )
    with ProxyProcess(c) as px, httpx.Client() as h:
        msg = "mail ann@example.com card 4111111111111111"
        for hdr in ({"X-Tenant": "a"}, {"X-Tenant": "b"}, {"x-parity-segment": "vip"}):
            h.post(px.url + "/v1/chat/completions", json={**CHAT, "user": msg}, headers=hdr)
        for i in range(3):  # more segments than max: counted as "other"
            h.post(px.url + "/v1/completions", json={"model": "m", "prompt": msg, "n": i})
        assert px.wait_for("parity_shadow_pairs_stored_total", 6) == 6
        seg = {
            dict(lab)["segment"] for (n, lab) in px.metrics() if n == "parity_shadow_sampled_total"
        }
        assert seg == {"tenant-a", "tenant-b", "vip", "other"}
        time.sleep(0.3)
        px.stop()
    pairs = _pairs(tmp_path / "pairs.sqlite")
    assert len(pairs) == 4  # retention: the newest 4 rows
    assert [p.segment for p in pairs] == ["vip", "other", "other", "other"]
    for p in pairs:
        blob = json.dumps(p.request) + p.serving_text + p.shadow_text
        assert "ann@example.com" not in blob and "4111111111111111" not in blob
        assert "[EMAIL]" in blob and "[REDACTED]" in blob


@pytest.mark.parametrize(
    ("shadow", "expect"),
    [
        ({"sample_rate": "10%"}, "shadow.sample_rate: expected a number in [0, 1], got '10%'"),
        ({"segments": {"from": ["heder"]}}, "shadow.segments.from[0]: expected one of"),
        ({"store": {"url": "mysql://x/y"}}, "shadow.store.url: unknown store 'mysql'"),
        ({"queue": {"sise": 3}}, "shadow.queue.sise: unknown key (hint: did you mean 'size'?)"),
        ({"redact": ["(unclosed"]}, "shadow.redact[0]: not a valid regular expression"),
        ({"target": "baseline"}, "shadow.target: the shadow stack is the serving stack itself"),
        ({"segments": {"from": ["hook"]}}, "shadow.segments.hook: segments.from names hook"),
        ({"store": "postgresql://u:pw@db/x"}, "shadow.store.url: a password written in the"),
        ({"listen": "localhost"}, "shadow.listen: expected host:port, got 'localhost'"),
    ],
)
def test_bad_shadow_block_one_line(tmp_path: Path, shadow: dict[str, Any], expect: str) -> None:
    from pytest_parity.contract.spec import ContractError
    from pytest_parity.shadow.config import load_shadow_config

    c = write_contract(
        tmp_path / "c.yaml", "http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1", shadow
    )
    with pytest.raises(ContractError) as info:
        load_shadow_config(c)
    msg = str(info.value)
    assert msg.startswith(f"{c}: ") and "\n" not in msg and expect in msg, msg


def test_bad_contract_exits_4_with_one_line(tmp_path: Path) -> None:
    c = write_contract(
        tmp_path / "c.yaml",
        "http://127.0.0.1:1/v1",
        "http://127.0.0.1:2/v1",
        {"sample_rate": "10%"},
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest_parity.shadow", str(c)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 4
    assert r.stderr.strip().splitlines() == [
        f"ERROR: {c}: shadow.sample_rate: expected a number in [0, 1], got '10%' (hint: write 0.1)"
    ]
    # The plugin reads the same file: its shadow block is no error there.
    from pytest_parity.contract.rules import TOP_KEYS

    assert "shadow" in TOP_KEYS


def test_store_that_cannot_be_opened_exits_4(tmp_path: Path) -> None:
    c = write_contract(
        tmp_path / "c.yaml",
        "http://127.0.0.1:1/v1",
        "http://127.0.0.1:2/v1",
        {"store": {"url": "missing-dir/pairs.sqlite"}},
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest_parity.shadow", str(c)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 4, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"ERROR: {c.resolve()}: shadow.store: cannot open the store: ")
