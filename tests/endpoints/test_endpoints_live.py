"""Endpoint layer against a real HTTP server on 127.0.0.1 (tests/support/servers.py), default transport."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from servers import FAULTS, FakeServer, Faults, Reply, closed_port

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.http import Request, Response, RetryPolicy, env_proxy, open_endpoint
from pytest_parity.endpoints.recording import Recorder

FAST = RetryPolicy(base_s=0.01, cap_s=0.05)


def spec(base_url: str, kind: str = "vllm", **kw: Any) -> EndpointSpec:
    base: dict[str, Any] = {
        "role": "baseline",
        "kind": kind,
        "base_url": base_url,
        "model": "test-model",
        "params": MappingProxyType({"temperature": 0.0, "max_tokens": 16}),
        "max_retries": 4,
        "timeout": 5.0,
        "max_concurrency": 8,
    }
    base.update(kw)
    return EndpointSpec(**base)


def ask(i: int | str, **kw: Any) -> Request:
    return Request(str(i), messages=({"role": "user", "content": f"question {i}"},), **kw)


def complete_all(
    s: EndpointSpec, requests: list[Request], retry: RetryPolicy = FAST
) -> tuple[list[Response], dict[str, Any]]:
    async def go() -> tuple[list[Response], dict[str, Any]]:
        ep = open_endpoint(s, retry=retry)
        try:
            out = await asyncio.gather(*(ep.complete(r) for r in requests))
            return list(out), await ep.describe()
        finally:
            await ep.aclose()

    return asyncio.run(go())


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def test_chat_round_trip_over_real_http(server: FakeServer) -> None:
    (r,), _ = complete_all(spec(server.base_url), [ask(1)])
    assert r.ok and r.text == "question 1" and r.finish_reason == "stop"
    assert r.usage["completion_tokens"] == 2 and r.latency_s > 0
    assert server.received[0]["model"] == "test-model"
    assert server.received[0]["max_tokens"] == 16


def test_completions_with_logprobs_on_llama_cpp(server: FakeServer) -> None:
    s = spec(
        server.base_url,
        "llama-cpp",
        api="completions",
        params=MappingProxyType({"repeat_penalty": 1.0, "logprobs": 1}),
    )
    (r,), described = complete_all(s, [Request("p", prompt="two words")])
    assert r.text == "two words" and r.logprobs == (-0.25, -0.25)
    assert server.received[0]["repeat_penalty"] == 1.0
    assert described["engine"]["build_info"] == "b0.0.1-test"


def test_anthropic_messages_with_tool_calls(server: FakeServer) -> None:
    server.answer = lambda body: Reply(
        "", "tool_calls", [{"name": "wx", "arguments": json.dumps({"city": "Oslo"})}]
    )
    msgs = ({"role": "system", "content": "sys"}, {"role": "user", "content": "weather"})
    s = spec(server.root, "anthropic")
    (r,), _ = complete_all(s, [Request("t", messages=msgs)])
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == ({"name": "wx", "arguments": '{"city": "Oslo"}', "id": "tu_1"},)
    assert server.received[0]["system"] == "sys"
    assert server.headers_seen[0]["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize(
    ("kind", "fact", "value"),
    [
        ("vllm", "version", "0.0.1-test"),
        ("tensorrt-llm", "version", "0.0.1-test"),
        ("sglang", "model_path", "/models/test-model"),
        ("llama-cpp", "version", "b0.0.1-test"),
        ("openai", "served_models", ["test-model"]),
    ],
)
def test_describe_reads_engine_identity(
    server: FakeServer, kind: str, fact: str, value: Any
) -> None:
    _, described = complete_all(spec(server.base_url, kind), [])
    assert described["engine"][fact] == value
    assert described["kind"] == kind and described["model"] == "test-model"


def test_every_item_answered_with_a_fifth_of_requests_faulted() -> None:
    faults = Faults(rate=0.2, hang_s=1.0, seed=7)
    with FakeServer(faults=faults) as srv:
        s = spec(srv.base_url, timeout=0.4, max_concurrency=16)
        out, _ = complete_all(s, [ask(i) for i in range(150)])
        log = srv.fault_log
    assert [r.error for r in out if not r.ok] == []
    assert [r.text for r in out] == [f"question {i}" for i in range(150)]
    assert set(log) == set(FAULTS)  # every kind of fault really happened
    assert sum(log.values()) >= 20
    assert max(r.attempts for r in out) >= 2


def test_a_server_that_stays_down_gives_errors_naming_endpoint_and_cause() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    t0 = time.perf_counter()
    out, described = complete_all(spec(url, max_retries=2), [ask(i) for i in range(6)])
    assert time.perf_counter() - t0 < 5
    for r in out:
        assert not r.ok and r.text == "" and r.error_kind == "connect"
        assert r.error is not None
        assert r.error.startswith(f"baseline endpoint {url}/chat/completions: ")
        assert "Connect" in r.error and "\n" not in r.error
    assert described["engine"] == {}


def test_timeouts_are_retried_and_reported_as_timeouts() -> None:
    faults = Faults(rate=1.0, kinds=("timeout",), hang_s=1.0, max_per_request=1)
    with FakeServer(faults=faults) as srv:
        (r,), _ = complete_all(spec(srv.base_url, timeout=0.3), [ask(1)])
        assert r.ok and r.attempts == 2
    faults = Faults(rate=1.0, kinds=("timeout",), hang_s=1.0, max_per_request=99)
    with FakeServer(faults=faults) as srv:
        (r,), _ = complete_all(spec(srv.base_url, timeout=0.3, max_retries=1), [ask(1)])
    assert r.error_kind == "timeout"
    assert r.error is not None and "no answer within 0.3s" in r.error


def test_retry_after_from_a_real_server_is_honoured() -> None:
    faults = Faults(rate=1.0, kinds=("429",), retry_after="1", max_per_request=1)
    with FakeServer(faults=faults) as srv:
        t0 = time.perf_counter()
        (r,), _ = complete_all(spec(srv.base_url), [ask(1)])
        waited = time.perf_counter() - t0
    assert r.ok and r.attempts == 2 and waited >= 1.0


def test_concurrency_is_bounded_by_the_spec() -> None:
    with FakeServer(latency_s=0.05) as srv:
        out, _ = complete_all(spec(srv.base_url, max_concurrency=4), [ask(i) for i in range(24)])
        assert all(r.ok for r in out)
        assert srv.max_in_flight == 4


def test_a_wrong_key_is_an_http_error_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-PLANTED-live-9931"
    monkeypatch.setenv("LIVE_KEY", key)
    with FakeServer(require_key="other", error_body=f"Incorrect API key provided: {key}") as srv:
        (r,), described = complete_all(spec(srv.base_url, api_key_env="LIVE_KEY"), [ask(1)])
        assert srv.headers_seen[0]["Authorization"] == f"Bearer {key}"
    assert r.error_kind == "http" and r.error is not None and "HTTP 401" in r.error
    assert key not in r.error and key not in json.dumps(described)


def test_a_planted_key_appears_in_no_file_error_or_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = "sk-PLANTED-everywhere-3141"
    monkeypatch.setenv("PLANTED_KEY", key)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with FakeServer(faults=Faults(rate=0.3, hang_s=0.5), require_key=key) as srv:
        s = spec(srv.base_url, api_key_env="PLANTED_KEY", timeout=0.3)

        async def go() -> None:
            with (
                ResponseCache(tmp_path / "cache") as cache,
                Recorder(tmp_path / "rec.jsonl", contract_digest="d") as rec,
            ):
                ep = open_endpoint(s, cache=cache, recorder=rec, retry=FAST)
                out = await asyncio.gather(*(ep.complete(ask(i)) for i in range(30)))
                assert all(r.ok for r in out) and rec.written == 30 and cache.count() == 30
                texts.extend(json.dumps(r.to_dict()) + repr(r) for r in out)
                texts.append(json.dumps(await ep.describe()) + repr(ep))
                await ep.aclose()
                # the same key sent to a server that rejects it and echoes it back
                srv.require_key, srv.error_body = "other", f"bad key {key}"
                ep = open_endpoint(s, cache=cache, retry=FAST)
                bad = await ep.complete(ask("x"))
                assert bad.error is not None and "HTTP 401" in bad.error
                texts.append(bad.error)
                await ep.aclose()

        asyncio.run(go())
    down = spec(f"http://127.0.0.1:{closed_port()}/v1", api_key_env="PLANTED_KEY", max_retries=0)
    out, described = complete_all(down, [ask(1)])
    texts += [str(out[0].error), json.dumps(described)]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"rec.jsonl", "responses.sqlite3"}
    for f in files:
        assert key.encode() not in f.read_bytes(), f
    for text in [*texts, caplog.text]:
        assert key not in text


def test_requests_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    with FakeServer() as proxy:  # answers whatever the proxied request asks
        monkeypatch.setenv("HTTP_PROXY", proxy.root)
        target = "http://stack.invalid:8000/v1"  # not resolvable: only the proxy can answer
        assert env_proxy(target) == proxy.root
        assert env_proxy(f"http://127.0.0.1:{proxy.port}/v1") is None  # loopback: direct
        (r,), _ = complete_all(spec(target), [ask(1)])
        assert r.ok and r.text == "question 1" and len(proxy.received) == 1
        monkeypatch.setenv("NO_PROXY", "stack.invalid")
        assert env_proxy(target) is None
