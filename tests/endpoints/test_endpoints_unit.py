"""Endpoint layer against httpx.MockTransport: payloads per kind, parsing, retries, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.http import Request, Response, RetryPolicy, open_endpoint
from pytest_parity.endpoints.kinds import (
    KINDS,
    MalformedReply,
    build_payload,
    engine_facts,
    parse_reply,
    request_url,
    server_root,
)

FAST = RetryPolicy(base_s=0.001, cap_s=0.005)
CHAT_OK = {
    "model": "m",
    "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def spec(kind: str = "vllm", **kw: Any) -> EndpointSpec:
    base: dict[str, Any] = {
        "role": "candidate",
        "kind": kind,
        "base_url": "http://stack.test/v1",
        "model": "m",
        "params": MappingProxyType({"temperature": 0.0, "max_tokens": 16}),
        "max_retries": 3,
        "timeout": 5.0,
    }
    base.update(kw)
    return EndpointSpec(**base)


def ask(text: str = "q", item: str = "i1", **kw: Any) -> Request:
    return Request(item, messages=({"role": "user", "content": text},), **kw)


def run(
    s: EndpointSpec,
    handler: Callable[[httpx.Request], httpx.Response],
    *requests: Request,
    retry: RetryPolicy = FAST,
) -> list[Response]:
    async def go() -> list[Response]:
        ep = open_endpoint(s, transport=httpx.MockTransport(handler), retry=retry)
        try:
            return list(await asyncio.gather(*(ep.complete(r) for r in requests)))
        finally:
            await ep.aclose()

    return asyncio.run(go())


def scripted(*replies: httpx.Response) -> tuple[Callable[[httpx.Request], httpx.Response], list]:
    """A handler that answers with ``replies`` in order (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return replies[min(len(seen), len(replies)) - 1]

    return handler, seen


# -- payloads per kind ----------------------------------------------------------------------


def test_openai_chat_sends_max_completion_tokens_and_other_kinds_max_tokens() -> None:
    msgs = [{"role": "user", "content": "x"}]
    p = {"max_tokens": 9, "seed": 1}
    openai = build_payload(KINDS["openai"], "chat", "gpt", p, messages=msgs)
    vllm = build_payload(KINDS["vllm"], "chat", "m", {"max_completion_tokens": 9}, messages=msgs)
    assert openai["max_completion_tokens"] == 9 and "max_tokens" not in openai
    assert openai["seed"] == 1
    assert vllm["max_tokens"] == 9 and "max_completion_tokens" not in vllm


def test_logprobs_are_spelled_for_each_api() -> None:
    chat = build_payload(KINDS["vllm"], "chat", "m", {"logprobs": 3}, messages=[])
    assert chat["logprobs"] is True and chat["top_logprobs"] == 3
    comp = build_payload(
        KINDS["vllm"], "completions", "m", {"logprobs": True, "top_logprobs": 2}, prompt="p"
    )
    assert comp["logprobs"] == 2 and "top_logprobs" not in comp
    with pytest.raises(ValueError, match="completions API needs a prompt"):
        build_payload(KINDS["vllm"], "completions", "m", {}, messages=[])


def test_llama_cpp_native_params_pass_through() -> None:
    body = build_payload(
        KINDS["llama-cpp"], "completions", "m", {"repeat_penalty": 1.0, "n_probs": 2}, prompt="p"
    )
    assert body["repeat_penalty"] == 1.0 and body["n_probs"] == 2 and body["prompt"] == "p"


def test_anthropic_payload_moves_system_and_translates_stop_and_tools() -> None:
    msgs = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
    ]
    tools = [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}]
    body = build_payload(
        KINDS["anthropic"],
        "chat",
        "claude",
        {"stop": "END", "seed": 3, "tools": tools, "tool_choice": "required"},
        messages=msgs,
    )
    assert body["system"] == "be brief"
    assert body["messages"] == [{"role": "user", "content": "weather?"}]
    assert body["stop_sequences"] == ["END"] and "stop" not in body
    assert "seed" not in body and body["max_tokens"] == 1024
    assert body["tools"] == [{"name": "wx", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any"}


# -- reply parsing --------------------------------------------------------------------------


def test_parse_chat_tool_calls_logprobs_and_finish_reason() -> None:
    data = {
        "model": "m",
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {"function": {"name": "wx", "arguments": {"city": "Oslo"}}},
                    ],
                },
                "finish_reason": "function_call",
                "logprobs": {"content": [{"token": "a", "logprob": -0.5}]},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "x": "y"},
    }
    out = parse_reply(KINDS["vllm"], "chat", data)
    assert out["text"] == ""
    assert out["finish_reason"] == "tool_calls"
    assert out["tool_calls"] == [{"name": "wx", "arguments": '{"city": "Oslo"}'}]
    assert out["logprobs"] == [-0.5]
    assert out["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_parse_anthropic_maps_stop_reasons_and_tool_use() -> None:
    data = {
        "content": [
            {"type": "text", "text": "Let me check. "},
            {"type": "tool_use", "id": "t", "name": "wx", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 7},
        "model": "claude",
    }
    out = parse_reply(KINDS["anthropic"], "chat", data)
    assert out["text"] == "Let me check. "
    assert out["finish_reason"] == "tool_calls"
    assert out["tool_calls"] == [{"name": "wx", "arguments": '{"city": "Oslo"}', "id": "t"}]
    assert out["usage"]["total_tokens"] == 12
    for raw, norm in (
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ):
        assert (
            parse_reply(KINDS["anthropic"], "chat", {**data, "stop_reason": raw})["finish_reason"]
            == norm
        )


@pytest.mark.parametrize(
    "data",
    [[], {"choices": []}, {"choices": [{}]}, {"choices": [{"message": "x"}]}, {"choices": 3}],
)
def test_unusable_replies_are_malformed(data: Any) -> None:
    with pytest.raises(MalformedReply):
        parse_reply(KINDS["vllm"], "chat", data)


# -- sending, retries, errors ---------------------------------------------------------------


def test_chat_request_reaches_the_server_with_merged_params_and_bearer_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STACK_KEY", "sk-test-123")
    handler, seen = scripted(httpx.Response(200, json=CHAT_OK))
    s = spec(api_key_env="STACK_KEY")
    (r,) = run(s, handler, ask("2+2?", params={"max_tokens": 4}))
    assert r.ok and r.text == "hi" and r.finish_reason == "stop" and r.attempts == 1
    assert r.usage["total_tokens"] == 4 and r.model == "m"
    sent = json.loads(seen[0].content)
    assert seen[0].url == "http://stack.test/v1/chat/completions"
    assert sent["messages"] == [{"role": "user", "content": "2+2?"}]
    assert sent["max_tokens"] == 4 and sent["temperature"] == 0.0  # request wins over spec
    assert seen[0].headers["authorization"] == "Bearer sk-test-123"


def test_anthropic_request_uses_messages_route_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-xyz")
    reply = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}
    handler, seen = scripted(httpx.Response(200, json=reply))
    s = spec("anthropic", base_url="https://api.anthropic.test", api_key_env="ANTHROPIC_API_KEY")
    (r,) = run(s, handler, ask())
    assert r.text == "ok" and r.finish_reason == "stop"
    assert seen[0].url == "https://api.anthropic.test/v1/messages"
    assert seen[0].headers["x-api-key"] == "sk-ant-xyz"
    assert seen[0].headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    "bad",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(429, headers={"retry-after-ms": "1"}, text="slow"),
        httpx.Response(503, text="warming up"),
        httpx.Response(200, text='{"choices": ['),
        httpx.Response(200, json={"choices": []}),
    ],
    ids=["500", "429", "503", "malformed-json", "empty-choices"],
)
def test_transient_failures_are_retried_until_answered(bad: httpx.Response) -> None:
    handler, seen = scripted(bad, bad, httpx.Response(200, json=CHAT_OK))
    (r,) = run(spec(), handler, ask())
    assert r.ok and r.text == "hi" and r.attempts == 3 and len(seen) == 3


def test_client_errors_are_not_retried_and_name_role_url_and_status() -> None:
    handler, seen = scripted(httpx.Response(400, json={"error": "unknown param top_q"}))
    (r,) = run(spec(), handler, ask())
    assert len(seen) == 1 and not r.ok and r.text == ""
    assert r.error_kind == "http"
    assert r.error is not None
    assert r.error.startswith("candidate endpoint http://stack.test/v1/chat/completions:")
    assert "HTTP 400" in r.error and "top_q" in r.error and "\n" not in r.error


def test_exhausted_retries_report_the_last_error() -> None:
    handler, seen = scripted(httpx.Response(502, text="bad gateway"))
    (r,) = run(spec(max_retries=2), handler, ask())
    assert len(seen) == 3 and r.attempts == 3
    assert r.error is not None and "failed after 3 attempt(s): HTTP 502: bad gateway" in r.error


def test_connection_errors_are_retried_then_reported() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("connection refused")

    (r,) = run(spec(max_retries=1), handler, ask())
    assert len(calls) == 2 and r.error_kind == "connect"
    assert r.error is not None and "ConnectError: connection refused" in r.error


def test_a_dead_endpoint_trips_the_breaker_and_fails_fast() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("refused")

    async def go() -> list[Response]:
        ep = open_endpoint(
            spec(max_retries=3, max_concurrency=1),
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(base_s=0.001, cap_s=0.001, breaker=2),
        )
        out = [await ep.complete(ask(item=f"i{i}")) for i in range(5)]
        await ep.aclose()
        return out

    out = asyncio.run(go())
    # two requests of 4 attempts each, then the breaker: one probing attempt per request
    assert len(calls) == 4 + 4 + 1 + 1 + 1
    assert out[-1].error is not None and "failed after 1 attempt(s): ConnectError" in out[-1].error


def test_while_down_only_one_request_probes_and_the_rest_fail_at_once() -> None:
    calls = []
    up = False

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        await asyncio.sleep(0.01)
        if not up:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=CHAT_OK)

    async def go() -> tuple[list[Response], Response]:
        nonlocal up
        ep = open_endpoint(
            spec(max_retries=0, max_concurrency=4),
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(breaker=1),
        )
        await ep.complete(ask(item="first"))  # opens the breaker
        out = list(await asyncio.gather(*(ep.complete(ask(item=str(i))) for i in range(10))))
        up = True
        probe = await ep.complete(ask(item="probe"))  # the server is back: a probe closes it
        after = await ep.complete(ask(item="after"))
        await ep.aclose()
        assert after.ok
        return out, probe

    out, probe = asyncio.run(go())
    assert len(calls) == 1 + 1 + 1 + 1
    fast = [r for r in out if r.error is not None and "not sent: the endpoint is down" in r.error]
    assert len(fast) == 9
    assert fast[0].error is not None and "last error: ConnectError: refused" in fast[0].error
    assert fast[0].error.startswith("candidate endpoint http://stack.test/v1/chat/completions")
    assert probe.ok


def test_429_waits_at_least_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(d: float) -> None:
        slept.append(d)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    handler, _ = scripted(
        httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=CHAT_OK)
    )
    (r,) = run(spec(), handler, ask())
    assert r.ok and slept and slept[0] >= 7.0


def test_backoff_is_exponential_with_full_jitter() -> None:
    import random

    policy = RetryPolicy(base_s=1.0, cap_s=8.0)
    rng = random.Random(0)
    for attempt, bound in ((0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)):
        draws = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert min(draws) >= 0.0 and max(draws) <= bound
        assert max(draws) > bound * 0.8  # it spreads over the whole window
    assert policy.delay(0, 30.0, rng) == 30.0
    assert policy.delay(0, 1e6, rng) == policy.max_retry_after_s


def test_secret_never_appears_in_errors_describe_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-PLANTED-secret-0451"
    monkeypatch.setenv("STACK_KEY", key)
    handler, _ = scripted(httpx.Response(401, text=f"invalid api key {key}"))

    async def go() -> tuple[Response, dict[str, Any], str]:
        ep = open_endpoint(spec(api_key_env="STACK_KEY"), transport=httpx.MockTransport(handler))
        r = await ep.complete(ask())
        d = await ep.describe()
        text = repr(ep) + repr(ep.spec) + str(ep)
        await ep.aclose()
        return r, d, text

    r, described, reprs = asyncio.run(go())
    assert key not in reprs
    assert r.error is not None and "HTTP 401" in r.error and "$STACK_KEY" in r.error
    assert key not in r.error and "***" in r.error
    assert key not in json.dumps(described) and key not in repr(r)
    assert key not in json.dumps(r.to_dict())


def test_progress_counts_requests() -> None:
    handler, _ = scripted(httpx.Response(200, json=CHAT_OK))
    bad, _ = scripted(httpx.Response(404, text="no"))

    async def go() -> dict[str, Any]:
        ep = open_endpoint(spec(), transport=httpx.MockTransport(handler))
        await asyncio.gather(*(ep.complete(ask(item=str(i))) for i in range(3)))
        snap = ep.progress.snapshot()
        await ep.aclose()
        ep2 = open_endpoint(spec(), transport=httpx.MockTransport(bad))
        await ep2.complete(ask())
        assert ep2.progress.failed == 1 and ep2.progress.done == 1
        await ep2.aclose()
        return snap

    snap = asyncio.run(go())
    assert snap["total"] == 3 and snap["done"] == 3 and snap["failed"] == 0
    assert snap["rate"] > 0 and snap["eta_s"] == 0


def test_request_hash_depends_on_question_not_on_who_asks() -> None:
    a = ask("x", item="a", params={"top_p": 0.5})
    b = ask("x", item="b", params={"top_p": 0.5}, repeat=3)
    assert a.request_hash() == b.request_hash()
    assert a.request_hash() != ask("y", params={"top_p": 0.5}).request_hash()
    assert a.request_hash() != ask("x", params={"top_p": 0.6}).request_hash()
    with pytest.raises(ValueError, match="exactly one of messages, prompt or body"):
        Request("z")


def test_response_round_trips_through_dict() -> None:
    r = Response(
        "t", "stop", ({"name": "f", "arguments": "{}"},), {"total_tokens": 2}, logprobs=(-0.1,)
    )
    assert Response.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_an_error_object_sent_with_status_200_is_retried_and_reported() -> None:
    handler, seen = scripted(httpx.Response(200, json={"error": {"message": "KV cache full"}}))
    (r,) = run(spec(max_retries=1), handler, ask())
    assert len(seen) == 2 and r.error_kind == "malformed"
    assert r.error is not None and "the reply is an error: KV cache full" in r.error


def test_urls_per_kind() -> None:
    assert request_url(KINDS["vllm"], "http://h:8000/v1/", "completions") == (
        "http://h:8000/v1/completions"
    )
    for base in ("https://api.anthropic.com", "https://api.anthropic.com/v1"):
        assert (
            request_url(KINDS["anthropic"], base, "chat") == "https://api.anthropic.com/v1/messages"
        )
    assert server_root("http://h:8000/v1") == "http://h:8000"


def test_openai_tools_and_completions_tokens_pass_as_openai_spells_them() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    chat = build_payload(
        KINDS["openai"], "chat", "gpt", {"tools": tools, "tool_choice": "auto"}, messages=[]
    )
    assert chat["tools"] == tools and chat["tool_choice"] == "auto"
    comp = build_payload(
        KINDS["openai"], "completions", "gpt", {"max_completion_tokens": 5}, prompt="p"
    )
    assert comp["max_tokens"] == 5 and "max_completion_tokens" not in comp


def test_engine_facts_per_identity_route() -> None:
    models = {"data": [{"id": "llama", "owned_by": "vllm", "root": "/w", "max_model_len": 4096}]}
    assert engine_facts("/v1/models", models) == {
        "served_models": ["llama"],
        "owned_by": "vllm",
        "model_root": "/w",
        "max_model_len": 4096,
    }
    assert engine_facts("/version", {"version": "0.6.3"}) == {"version": "0.6.3"}
    assert engine_facts("/get_server_info", {"version": "0.4.1", "tp_size": 2}) == {
        "version": "0.4.1"
    }
    props = engine_facts("/props", {"build_info": "b4500-abc", "model_path": "m.gguf"})
    assert props["version"] == "b4500-abc" and props["model_path"] == "m.gguf"
    assert engine_facts("/version", "not json object") == {}
