"""Captured-traffic fixtures in the shapes real systems write, made by the tests themselves.

- ``gateway_lines``: OpenAI-format gateway logs, ``{"request": <chat body>, "response":
  <chat.completion>}`` plus the log's own fields (time, route, tenant, user feedback). Every
  tenth conversation has two turns with a tool call in between (assistant ``tool_calls``, a
  ``tool`` message answering it, the tools offered in the request).
- ``batch_files``: an OpenAI Batch API input file and its output file (one failed request).
- ``otlp_export``: an OTLP JSON trace export as the collector's file exporter writes it (one
  ``ExportTraceServiceRequest`` per line): GenAI chat spans of semantic conventions 1.37+
  (``gen_ai.input.messages`` with tool_call / tool_call_response parts), a span of the older
  event-based conventions, an OpenLLMetry-style span with indexed attributes, a span without
  captured content and an HTTP span that is not a model call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

T0 = 1_790_000_000  # 2026-09-21T... UTC, seconds
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ROUTES = ("support", "search", "billing")


def question(i: int) -> str:
    return f"What is {i} + {i * 7 % 13}?"


def completion(
    text: str, *, finish: str = "stop", calls: list[dict[str, Any]] | None = None, created: int = T0
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
        message["content"] = None
    return {
        "id": f"chatcmpl-{created}",
        "object": "chat.completion",
        "created": created,
        "model": "prod-model-2026-09",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
    }


def gateway_lines(n: int, *, email: bool = False) -> list[str]:
    """``n`` log lines (conversations of one or two turns); production answers right."""
    lines = []
    for i in range(n):
        route = ROUTES[i % 3]
        user = f"{question(i)}" + (f" Reply to jane.doe{i}@example.com" if email else "")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"You are the {route} assistant."},
            {"role": "user", "content": user},
        ]
        tools = None
        if i % 10 == 0:
            tools = [WEATHER_TOOL]
            call = {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
            }
            messages += [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": f"call_{i}", "content": "18C, clear"},
                {"role": "user", "content": f"Thanks. And {question(i)}"},
            ]
        a, b = i, i * 7 % 13
        body: dict[str, Any] = {
            "model": "prod-model",
            "messages": messages,
            "temperature": 0.7,
            "top_p": 0.9,
            "max_tokens": 64,
            "stream": False,
            "user": f"user-{i % 17}",
        }
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        line = {
            "id": f"req-{i}",
            "timestamp": f"2026-11-{1 + i % 28:02d}T10:00:00Z",
            "metadata": {
                "route": route,
                "tenant": f"t{i % 4}",
                "conversation_id": f"conv-{i // 2}",
            },
            "feedback": {"thumbs": "up" if i % 5 else "down", "clicked": bool(i % 3)},
            "request": body,
            "response": completion(f"The answer is {a + b}.", created=T0 + i),
        }
        lines.append(json.dumps(line))
    return lines


def write_gateway(path: Path, n: int, **kw: Any) -> Path:
    path.write_text("\n".join(gateway_lines(n, **kw)) + "\n")
    return path


def batch_files(folder: Path, n: int) -> tuple[Path, Path]:
    inp, out = folder / "batch_input.jsonl", folder / "batch_output.jsonl"
    in_lines, out_lines = [], []
    for i in range(n):
        in_lines.append(
            json.dumps(
                {
                    "custom_id": f"task-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": question(i)}],
                        "max_tokens": 32,
                    },
                }
            )
        )
        ok = i != 3
        out_lines.append(
            json.dumps(
                {
                    "id": f"batch_req_{i}",
                    "custom_id": f"task-{i}",
                    "response": {
                        "status_code": 200 if ok else 500,
                        "request_id": f"r{i}",
                        "body": completion(f"The answer is {i + i * 7 % 13}.")
                        if ok
                        else {"error": {"message": "server error"}},
                    },
                    "error": None,
                }
            )
        )
    # the output file comes back in another order than the input
    inp.write_text("\n".join(in_lines) + "\n")
    out.write_text("\n".join(reversed(out_lines)) + "\n")
    return inp, out


# ----------------------------------------------------------------------------------------------
# OTLP JSON


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}  # OTLP JSON writes 64-bit integers as strings
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [_kv("x", x)["value"] for x in value]}}
    else:
        v = {"stringValue": str(value)}
    return {"key": key, "value": v}


def _span(
    i: int,
    attrs: dict[str, Any],
    events: list[dict[str, Any]] | None = None,
    name: str = "chat prod-model",
) -> dict[str, Any]:
    start = (T0 + i) * 10**9
    return {
        "traceId": f"{i:032x}",
        "spanId": f"{i + 1:016x}",
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 850_000_000),
        "attributes": [_kv(k, v) for k, v in attrs.items()],
        "events": events or [],
        "status": {},
    }


def semconv_span(i: int, *, tool_turn: bool = False) -> dict[str, Any]:
    """A chat span of semantic conventions 1.37+ (content in gen_ai.*.messages attributes)."""
    inputs: list[dict[str, Any]] = [
        {"role": "user", "parts": [{"type": "text", "content": question(i)}]}
    ]
    if tool_turn:
        inputs += [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": f"call_{i}",
                        "name": "get_weather",
                        "arguments": {"city": "Paris"},
                    }
                ],
            },
            {
                "role": "tool",
                "parts": [
                    {"type": "tool_call_response", "id": f"call_{i}", "response": "18C, clear"}
                ],
            },
        ]
    outputs = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": f"The answer is {i + i * 7 % 13}."}],
            "finish_reason": "stop",
        }
    ]
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "prod-model",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 128,
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 1,
        "gen_ai.response.model": "prod-model-2026-09",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 31,
        "gen_ai.usage.output_tokens": 9,
        "gen_ai.conversation.id": f"conv-{i // 2}",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.input.messages": json.dumps(inputs),
        "gen_ai.output.messages": json.dumps(outputs),
        "app.route": ROUTES[i % 3],
    }
    if tool_turn:
        attrs["gen_ai.tool.definitions"] = json.dumps(
            [
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "weather",
                    "parameters": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        )
    return _span(i, attrs)


def event_span(i: int) -> dict[str, Any]:
    """A chat span of the event-based conventions (1.36 and before)."""

    def ev(name: str, **attrs: Any) -> dict[str, Any]:
        return {
            "timeUnixNano": str((T0 + i) * 10**9),
            "name": name,
            "attributes": [_kv(k, v) for k, v in attrs.items()],
        }

    events = [
        ev("gen_ai.system.message", **{"gen_ai.system": "openai", "content": "Be brief."}),
        ev("gen_ai.user.message", **{"gen_ai.system": "openai", "content": question(i)}),
        ev(
            "gen_ai.choice",
            **{
                "gen_ai.system": "openai",
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": f"Event answer {i}"}),
            },
        ),
    ]
    return _span(
        i,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "prod-model",
            "app.route": "search",
        },
        events,
    )


def indexed_span(i: int) -> dict[str, Any]:
    """OpenLLMetry-style indexed prompt / completion attributes."""
    return _span(
        i,
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "prod-model",
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "Be brief.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": question(i),
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": f"Indexed answer {i}",
            "gen_ai.completion.0.finish_reason": "length",
        },
    )


def otlp_export(path: Path, n: int) -> Path:
    """``n`` semconv chat spans (every fourth a tool turn) over ``n // 4`` export lines, then
    one line with an event span, an indexed span, a span without content and an HTTP span."""
    lines = []
    spans = [semconv_span(i, tool_turn=i % 4 == 0) for i in range(n)]
    for start in range(0, n, 4):
        lines.append(_export(spans[start : start + 4]))
    http = _span(n + 3, {"http.request.method": "POST", "url.full": "https://x"}, name="POST")
    no_content = _span(n + 2, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
    lines.append(_export([event_span(n), indexed_span(n + 1), no_content, http]))
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _export(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        _kv("service.name", "chat-api"),
                        _kv("deployment.environment", "prod"),
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {
                            "name": "opentelemetry.instrumentation.openai_v2",
                            "version": "2.1b0",
                        },
                        "spans": spans,
                    }
                ],
            }
        ]
    }
