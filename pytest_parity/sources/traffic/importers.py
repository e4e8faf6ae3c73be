"""Importers: captured traffic files in, :class:`Captured` requests out, one at a time.

Every importer streams its file line by line (a file of any size is read in bounded memory) and
yields a :class:`Malformed` for a line it cannot use instead of stopping. Three formats:

``openai``
    JSON Lines of OpenAI-format traffic, each line one of
    - a gateway log: ``{"request": <chat-completions body>, "response": <chat.completion>}``
      (``request_body`` / ``response_body`` too; a ``response`` of ``{status_code, body}`` is
      unwrapped, a status other than 200 means production did not answer);
    - an OpenAI Batch API input line ``{"custom_id", "method", "url", "body"}``, its output
      (``{"custom_id", "response": {"status_code", "body"}, "error"}``) either merged into the
      same line or given as a second file (option ``responses``), joined by ``custom_id``;
    - a bare chat-completions request body ``{"model", "messages", ...}``, with the answer under
      ``response`` or ``completion`` when it was logged;
    - a stored-completions export: a ``chat.completion`` object with its ``messages`` (or
      ``input_messages``) and request parameters beside ``choices``.
``otel``
    OpenTelemetry traces as OTLP JSON (``{"resourceSpans": [...]}``), one export per line as the
    collector's file exporter writes them, or one pretty-printed document. GenAI inference spans
    (``gen_ai.operation.name`` chat / text_completion / generate_content) become requests:
    ``gen_ai.input.messages``, ``gen_ai.system_instructions``, ``gen_ai.output.messages`` and
    ``gen_ai.tool.definitions`` (semantic conventions 1.37+), or the earlier span events
    ``gen_ai.system.message``, ``gen_ai.user.message``, ``gen_ai.assistant.message``,
    ``gen_ai.tool.message``, ``gen_ai.choice``, or the indexed ``gen_ai.prompt.N.*`` /
    ``gen_ai.completion.N.*`` attributes; ``gen_ai.request.*`` sampling, ``gen_ai.conversation.id``
    and the span's start time. Other spans (HTTP, databases, tools) are passed over.
``jsonl``
    Any JSON Lines, with the contract naming where each field is (``fields``, dotted paths).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_parity.sources.traffic.records import Captured, Malformed, field_path, split_params

__all__ = ["FORMATS", "batch_outputs", "parse_time", "read_records"]

FORMATS = ("openai", "otel", "jsonl")
ROLES = ("system", "user", "assistant", "tool", "developer", "function")
_ROLE_SET = frozenset(ROLES)
_TIME_KEYS = ("timestamp", "created_at", "start_time", "startTime", "time", "created")

Record = Captured | Malformed


def read_records(path: Path, fmt: str, options: Mapping[str, Any]) -> Iterator[Record]:
    """The records of one file in the given format (see the module docstring)."""
    if fmt == "openai":
        yield from _read_openai(path, options)
    elif fmt == "otel":
        yield from _read_otel(path, options)
    else:
        yield from _read_generic(path, options)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.isspace():  # stops at the first character of a normal line
                yield n, line


def _json_line(n: int, line: str) -> dict[str, Any] | Malformed:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return Malformed(n, f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return Malformed(n, f"expected a JSON object, got {type(obj).__name__}")
    return obj


# ----------------------------------------------------------------------------------------------
# shared pieces


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch from a number (s, ms, us or ns, told apart by size) or an ISO
    8601 string (no zone: UTC); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        s = value.strip()
        if s.lstrip("-").isdigit():
            value = int(s)
        else:
            try:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                return None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            return dt.timestamp()
    if isinstance(value, int | float):
        x = float(value)
        for bound, per_second in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):  # ns, us, ms
            if abs(x) >= bound:
                return x / per_second
        return x
    return None


def _check_messages(messages: Any) -> str | None:
    """None for usable chat messages, else the problem (a fast pass; the slow one names it)."""
    if type(messages) is not list or not messages:
        return "no chat messages (expected a non-empty list)"
    for m in messages:
        if type(m) is not dict:
            return _message_problem(messages)
        content = m.get("content")
        if m.get("role") not in _ROLE_SET:
            return _message_problem(messages)
        if content is None:
            if m.get("role") != "assistant" and not m.get("tool_calls"):
                return _message_problem(messages)
        elif type(content) is not str and type(content) is not list:
            return _message_problem(messages)
    return None


def _message_problem(messages: list[Any]) -> str | None:
    for j, m in enumerate(messages):
        if type(m) is not dict or m.get("role") not in _ROLE_SET:
            return f"messages[{j}]: expected an object with a role ({', '.join(ROLES[:5])})"
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return f"messages[{j}].content: expected text or a list of parts"
        if content is None and not m.get("tool_calls") and m.get("role") != "assistant":
            return f"messages[{j}]: no content"
    return None


def _response_from_completion(body: Any) -> dict[str, Any] | None:
    """A chat.completion object (or a text) as a Response dict; None when unusable."""
    from pytest_parity.endpoints.kinds import KINDS, MalformedReply, parse_reply

    if isinstance(body, str):
        return {"text": body, "finish_reason": "stop", "tool_calls": []}
    if not isinstance(body, dict):
        return None
    if "choices" not in body and isinstance(body.get("text"), str):
        return {
            "text": body["text"],
            "finish_reason": body.get("finish_reason"),
            "tool_calls": list(body.get("tool_calls") or []),
        }
    try:
        reply = parse_reply(KINDS["openai"], "chat", body)
    except MalformedReply:
        return None
    return {
        "text": reply["text"],
        "finish_reason": reply["finish_reason"],
        "tool_calls": reply["tool_calls"],
        "usage": reply["usage"],
        "model": reply["model"],
    }


def _first_time(obj: Mapping[str, Any], path: str | None) -> Any:
    """The logged time value (parsed only when the slice needs it)."""
    if path:
        return field_path(obj, path)
    for key in _TIME_KEYS:
        if obj.get(key) is not None:
            return obj[key]
    return None


def _str_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    s = str(value)
    return s or None


# ----------------------------------------------------------------------------------------------
# OpenAI-format logs


def _read_openai(path: Path, options: Mapping[str, Any]) -> Iterator[Record]:
    for n, line in _lines(path):
        obj = _json_line(n, line)
        yield obj if isinstance(obj, Malformed) else openai_record(n, obj, options)


def openai_record(n: int, obj: dict[str, Any], options: Mapping[str, Any]) -> Record:
    """One OpenAI-format log line (any of the shapes in the module docstring)."""
    rid: Any = None
    resp_raw: Any = None
    if "request" in obj or "request_body" in obj:
        req = obj.get("request") if "request" in obj else obj.get("request_body")
        if isinstance(req, dict) and isinstance(req.get("body"), dict):
            req = req["body"]
        resp_raw = obj.get("response", obj.get("response_body"))
        rid = obj.get("id") or obj.get("request_id")
    elif "custom_id" in obj and "body" in obj:
        req = obj["body"]
        resp_raw = obj.get("response")
        rid = obj["custom_id"]
    elif obj.get("object") == "chat.completion" and ("messages" in obj or "input_messages" in obj):
        req = dict(obj)
        req["messages"] = obj.get("messages", obj.get("input_messages"))
        for k in (
            "id",
            "object",
            "choices",
            "usage",
            "created",
            "system_fingerprint",
            "service_tier",
            "request_id",
            "input_messages",
        ):
            req.pop(k, None)
        resp_raw = obj
        rid = obj.get("id")
    elif "messages" in obj:
        req = {k: v for k, v in obj.items() if k not in ("response", "completion")}
        resp_raw = obj.get("response", obj.get("completion"))
        rid = obj.get("id")
    elif "custom_id" in obj and "response" in obj:
        return Malformed(
            n,
            "a Batch API output line without its request (hint: give the batch input file as"
            " path and this file as traffic.responses)",
        )
    else:
        return Malformed(
            n,
            "not an OpenAI-format request (expected request/response, a batch line with"
            " custom_id and body, or a chat-completions body with messages)",
        )
    if type(req) is not dict:
        return Malformed(n, "the request is not a JSON object")
    if "prompt" in req and "messages" not in req:
        return Malformed(n, "a completions-API request (prompt); only chat requests are replayed")
    messages = req.get("messages")
    if type(messages) is not list or not messages:
        return Malformed(n, "no chat messages (expected a non-empty list)")
    tools = req.get("tools")
    if tools is None and isinstance(req.get("functions"), list):
        tools = [{"type": "function", "function": f} for f in req["functions"]]
    params, dropped = split_params(req)
    if type(resp_raw) is dict and "status_code" in resp_raw and "body" in resp_raw:
        resp_raw = resp_raw["body"] if resp_raw.get("status_code") == 200 else None
    if rid is None and type(resp_raw) is dict:
        rid = resp_raw.get("id")
    created = resp_raw.get("created") if type(resp_raw) is dict else None
    ts = _first_time(obj, options.get("timestamp"))
    if ts is None:
        ts = created
    assert isinstance(messages, list)
    return Captured(
        line=n,
        messages=messages,
        tools=tools,
        params=params,
        response_raw=resp_raw,  # read only if the slice keeps this request
        parse=_response_from_completion,
        id=_str_or_none(rid),
        timestamp_raw=ts,
        conversation=None,  # read from ``source`` by the slice's chosen requests only
        source=obj,
        dropped=dropped,
        model=_str_or_none(req.get("model")),
        check=_check_openai,  # the full check, run on the requests the slice would keep
    )


def _check_openai(rec: Captured) -> str | None:
    tools: Any = rec.tools
    if tools is not None and not isinstance(tools, list):
        return "tools: expected a list of tool definitions"
    return _check_messages(rec.messages)


def batch_outputs(path: Path, wanted: set[str]) -> dict[str, Any]:
    """The answers of a Batch API output file for the selected ``custom_id``s only."""
    out: dict[str, Any] = {}
    for n, line in _lines(path):
        obj = _json_line(n, line)
        if isinstance(obj, Malformed) or obj.get("custom_id") not in wanted:
            continue
        resp = obj.get("response")
        if isinstance(resp, dict) and resp.get("status_code") == 200:
            parsed = _response_from_completion(resp.get("body"))
            if parsed is not None:
                out[str(obj["custom_id"])] = parsed
    return out


# ----------------------------------------------------------------------------------------------
# OpenTelemetry GenAI spans (OTLP JSON)

_INFERENCE_OPS = ("chat", "text_completion", "generate_content")
_OTEL_PARAMS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
}


def any_value(v: Any) -> Any:
    """An OTLP JSON AnyValue as plain Python (intValue arrives as a string in OTLP JSON)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs or ():
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = any_value(kv.get("value"))
    return out


def _read_otel(path: Path, options: Mapping[str, Any]) -> Iterator[Record]:
    first = next(_lines(path), None)
    if first is not None:
        try:
            json.loads(first[1])
        except json.JSONDecodeError:
            # Not one export per line: a single (pretty-printed) document, read whole.
            try:
                with path.open(encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (json.JSONDecodeError, UnicodeDecodeError):
                doc = None
            if isinstance(doc, dict):
                yield from _otel_export(1, doc, options)
                return
    for n, line in _lines(path):
        obj = _json_line(n, line)
        if isinstance(obj, Malformed):
            yield obj
            continue
        yield from _otel_export(n, obj, options)


def _otel_export(n: int, obj: dict[str, Any], options: Mapping[str, Any]) -> Iterator[Record]:
    batches = obj.get("resourceSpans")
    if not isinstance(batches, list):
        yield Malformed(n, "not an OTLP JSON trace export (no resourceSpans)")
        return
    for rs in batches:
        if not isinstance(rs, dict):
            continue
        resource = attributes((rs.get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ():
            if not isinstance(ss, dict):
                continue
            for span in ss.get("spans") or ():
                if isinstance(span, dict):
                    rec = otel_span(n, span, resource, options)
                    if rec is not None:
                        yield rec


def _is_inference(attrs: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> bool:
    op = attrs.get("gen_ai.operation.name")
    if op is not None:
        return op in _INFERENCE_OPS
    if "gen_ai.input.messages" in attrs or "gen_ai.prompt.0.role" in attrs:
        return True
    return "gen_ai.request.model" in attrs or any(
        str(e.get("name", "")).startswith("gen_ai.") for e in events
    )


def otel_span(
    n: int, span: Mapping[str, Any], resource: Mapping[str, Any], options: Mapping[str, Any]
) -> Record | None:
    """One span as a captured request; None for a span that is not a model call."""
    attrs = attributes(span.get("attributes"))
    events = [e for e in span.get("events") or () if isinstance(e, dict)]
    if not _is_inference(attrs, events):
        return None
    sid = _str_or_none(span.get("spanId"))
    where = f"span {sid}" if sid else "a span"
    try:
        messages, response = _otel_content(attrs, events)
    except (ValueError, TypeError, KeyError) as exc:
        return Malformed(n, f"{where}: unreadable gen_ai content ({exc})")
    if not messages:
        return Malformed(
            n,
            f"{where}: no captured messages (content capture is opt-in in GenAI"
            " instrumentations, e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)",
        )
    problem = _check_messages(messages)
    if problem:
        return Malformed(n, f"{where}: {problem}")
    params: dict[str, Any] = {}
    for key, name in _OTEL_PARAMS.items():
        if attrs.get(key) is not None:
            params[name] = attrs[key]
    dropped = tuple(
        k
        for k in attrs
        if k.startswith("gen_ai.request.") and k not in _OTEL_PARAMS and k != "gen_ai.request.model"
    )
    tools = _otel_tools(attrs.get("gen_ai.tool.definitions"))
    start = parse_time(span.get("startTimeUnixNano"))
    end = parse_time(span.get("endTimeUnixNano"))
    if response is not None:
        if response.get("finish_reason") is None:
            reasons = attrs.get("gen_ai.response.finish_reasons")
            if isinstance(reasons, list) and reasons:
                response["finish_reason"] = reasons[0]
        from pytest_parity.endpoints.kinds import normalise_finish_reason

        raw_finish = response.get("finish_reason")
        response["finish_reason"] = normalise_finish_reason(
            "tool_calls" if raw_finish == "tool_call" else raw_finish
        )
        if start is not None and end is not None and end >= start:
            response["latency_s"] = end - start
        usage = {}
        if isinstance(attrs.get("gen_ai.usage.input_tokens"), int):
            usage["prompt_tokens"] = attrs["gen_ai.usage.input_tokens"]
        if isinstance(attrs.get("gen_ai.usage.output_tokens"), int):
            usage["completion_tokens"] = attrs["gen_ai.usage.output_tokens"]
        if usage:
            response["usage"] = usage
        if isinstance(attrs.get("gen_ai.response.model"), str):
            response["model"] = attrs["gen_ai.response.model"]
    fields = {**resource, **attrs, "span.name": span.get("name"), "trace_id": span.get("traceId")}
    conv = attrs.get("gen_ai.conversation.id")
    if options.get("conversation"):
        conv = field_path(fields, options["conversation"])
    ts = parse_time(field_path(fields, options["timestamp"])) if options.get("timestamp") else start
    return Captured(
        line=n,
        messages=messages,
        tools=tools,
        params=params,
        response=response,
        id=sid,
        timestamp=ts,
        conversation=_str_or_none(conv),
        source=fields,
        dropped=dropped,
        model=_str_or_none(attrs.get("gen_ai.request.model")),
    )


def _jsonish(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _otel_content(
    attrs: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    messages: list[dict[str, Any]] = []
    response: dict[str, Any] | None = None
    if "gen_ai.input.messages" in attrs:  # semantic conventions 1.37+
        system = _jsonish(attrs.get("gen_ai.system_instructions"))
        if system:
            text = _parts_text(system if isinstance(system, list) else [system])
            messages.append({"role": "system", "content": text})
        for m in _jsonish(attrs["gen_ai.input.messages"]) or ():
            messages.extend(_parts_message(m))
        out = _jsonish(attrs.get("gen_ai.output.messages"))
        if isinstance(out, list) and out:
            response = _parts_response(out[0])
        return messages, response
    if "gen_ai.prompt.0.role" in attrs or "gen_ai.prompt.0.content" in attrs:
        return _indexed_content(attrs)
    for e in events:  # semantic conventions up to 1.36: one event per message
        name = str(e.get("name", ""))
        body = _event_body(e)
        if name in (
            "gen_ai.system.message",
            "gen_ai.user.message",
            "gen_ai.tool.message",
            "gen_ai.assistant.message",
        ):
            role = body.get("role") or name.split(".")[1]
            msg: dict[str, Any] = {"role": role, "content": body.get("content")}
            if role == "tool":
                msg["tool_call_id"] = str(body.get("id") or body.get("tool_call_id") or "")
            if body.get("tool_calls"):
                msg["tool_calls"] = _openai_calls(body["tool_calls"])
            if msg["content"] is None and role != "assistant":
                msg["content"] = ""
            messages.append(msg)
        elif name == "gen_ai.choice" and response is None:
            inner = body.get("message")
            message: Mapping[str, Any] = inner if isinstance(inner, dict) else body
            calls = _openai_calls(message.get("tool_calls") or [])
            response = {
                "text": str(message.get("content") or ""),
                "finish_reason": body.get("finish_reason"),
                "tool_calls": [
                    {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                    for c in calls
                ],
            }
    return messages, response


def _event_body(e: Mapping[str, Any]) -> dict[str, Any]:
    attrs = attributes(e.get("attributes"))
    for key in ("gen_ai.event.content", "event.body", "body"):
        if key in attrs:
            body = _jsonish(attrs[key])
            if isinstance(body, dict):
                return body
    out = {k.removeprefix("gen_ai."): v for k, v in attrs.items()}
    if isinstance(out.get("tool_calls"), str):
        out["tool_calls"] = _jsonish(out["tool_calls"])
    if isinstance(out.get("message"), str):
        out["message"] = _jsonish(out["message"])
    return out


def _indexed_content(
    attrs: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The ``gen_ai.prompt.N.role`` / ``gen_ai.completion.N.content`` attributes that many
    instrumentations (OpenLLMetry) write."""
    messages: list[dict[str, Any]] = []
    i = 0
    while f"gen_ai.prompt.{i}.role" in attrs or f"gen_ai.prompt.{i}.content" in attrs:
        p = f"gen_ai.prompt.{i}."
        msg: dict[str, Any] = {
            "role": attrs.get(p + "role", "user"),
            "content": attrs.get(p + "content"),
        }
        calls = []
        j = 0
        while f"{p}tool_calls.{j}.name" in attrs:
            calls.append(
                {
                    "id": str(attrs.get(f"{p}tool_calls.{j}.id", "")),
                    "type": "function",
                    "function": {
                        "name": attrs[f"{p}tool_calls.{j}.name"],
                        "arguments": attrs.get(f"{p}tool_calls.{j}.arguments", "{}"),
                    },
                }
            )
            j += 1
        if calls:
            msg["tool_calls"] = calls
        if attrs.get(p + "tool_call_id"):
            msg["tool_call_id"] = attrs[p + "tool_call_id"]
        messages.append(msg)
        i += 1
    response = None
    c = "gen_ai.completion.0."
    if c + "content" in attrs or c + "tool_calls.0.name" in attrs:
        calls_out = []
        j = 0
        while f"{c}tool_calls.{j}.name" in attrs:
            calls_out.append(
                {
                    "name": str(attrs[f"{c}tool_calls.{j}.name"]),
                    "arguments": str(attrs.get(f"{c}tool_calls.{j}.arguments", "{}")),
                }
            )
            j += 1
        response = {
            "text": str(attrs.get(c + "content") or ""),
            "finish_reason": attrs.get(c + "finish_reason"),
            "tool_calls": calls_out,
        }
    return messages, response


def _parts_text(parts: list[Any]) -> str:
    texts = []
    for p in parts:
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, dict) and p.get("type") == "text":
            texts.append(str(p.get("content", "")))
    return "".join(texts)


def _args_text(args: Any) -> str:
    if isinstance(args, str):
        return args
    return json.dumps(args if args is not None else {}, ensure_ascii=False)


def _parts_message(m: Any) -> list[dict[str, Any]]:
    """A semconv ChatMessage ``{role, parts}`` as OpenAI chat messages (a tool message per
    tool_call_response part)."""
    if not isinstance(m, dict):
        raise ValueError("an input message is not an object")
    role = m.get("role")
    parts = m.get("parts")
    if not isinstance(parts, list):
        # some instrumentations keep OpenAI's own shape
        return [dict(m)]
    responses = [p for p in parts if isinstance(p, dict) and p.get("type") == "tool_call_response"]
    calls = [p for p in parts if isinstance(p, dict) and p.get("type") == "tool_call"]
    out: list[dict[str, Any]] = []
    if responses:
        for p in responses:
            res = p.get("response", p.get("result"))
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": str(p.get("id") or ""),
                    "content": res if isinstance(res, str) else json.dumps(res),
                }
            )
        return out
    msg: dict[str, Any] = {"role": role, "content": _parts_text(parts)}
    if calls:
        msg["tool_calls"] = [
            {
                "id": str(p.get("id") or ""),
                "type": "function",
                "function": {
                    "name": str(p.get("name", "")),
                    "arguments": _args_text(p.get("arguments")),
                },
            }
            for p in calls
        ]
        if not msg["content"]:
            msg["content"] = None
    if m.get("name"):
        msg["name"] = m["name"]
    return [msg]


def _parts_response(m: Any) -> dict[str, Any] | None:
    if not isinstance(m, dict) or not isinstance(m.get("parts"), list):
        return None
    parts = m["parts"]
    return {
        "text": _parts_text(parts),
        "finish_reason": m.get("finish_reason"),
        "tool_calls": [
            {"name": str(p.get("name", "")), "arguments": _args_text(p.get("arguments"))}
            for p in parts
            if isinstance(p, dict) and p.get("type") == "tool_call"
        ],
    }


def _openai_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for c in calls if isinstance(calls, list) else ():
        if not isinstance(c, dict):
            continue
        inner = c.get("function")
        fn: Mapping[str, Any] = inner if isinstance(inner, dict) else c
        out.append(
            {
                "id": str(c.get("id") or ""),
                "type": "function",
                "function": {
                    "name": str(fn.get("name", "")),
                    "arguments": _args_text(fn.get("arguments")),
                },
            }
        )
    return out


def _otel_tools(value: Any) -> list[dict[str, Any]] | None:
    tools = _jsonish(value) if value is not None else None
    if not isinstance(tools, list) or not tools:
        return None
    out = []
    for t in tools:
        if not isinstance(t, dict):
            continue
        if "function" in t:
            out.append(dict(t))
        else:
            fn = {k: t[k] for k in ("name", "description", "parameters") if k in t}
            out.append({"type": "function", "function": fn})
    return out


# ----------------------------------------------------------------------------------------------
# generic JSONL with field paths


def _read_generic(path: Path, options: Mapping[str, Any]) -> Iterator[Record]:
    fields = options.get("fields") or {}
    for n, line in _lines(path):
        obj = _json_line(n, line)
        if isinstance(obj, Malformed):
            yield obj
            continue
        yield generic_record(n, obj, fields, options)


def _generic_response(raw: tuple[Any, Any]) -> dict[str, Any] | None:
    from pytest_parity.endpoints.kinds import normalise_finish_reason

    response = _response_from_completion(raw[0])
    if response is not None and raw[1] is not None:
        response["finish_reason"] = normalise_finish_reason(raw[1])
    return response


def generic_record(
    n: int, obj: dict[str, Any], fields: Mapping[str, str], options: Mapping[str, Any]
) -> Record:
    def get(name: str) -> Any:
        p = fields.get(name)
        return None if p is None else field_path(obj, p)

    messages = get("messages")
    if messages is None:
        prompt = get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            where = fields.get("messages") or fields.get("prompt")
            return Malformed(n, f"{where}: no prompt text and no messages at this path")
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(messages, list):
        messages = [dict(m) if isinstance(m, dict) else m for m in messages]
    problem = _check_messages(messages)
    if problem:
        return Malformed(n, f"{fields.get('messages')}: {problem}")
    system = get("system")
    if isinstance(system, str) and system and messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": system})
    params_raw = get("params")
    params, dropped = split_params(params_raw) if isinstance(params_raw, dict) else ({}, ())
    tools = get("tools")
    if tools is not None and not isinstance(tools, list):
        return Malformed(n, f"{fields.get('tools')}: expected a list of tool definitions")
    raw_resp = get("response")
    ts_raw = get("timestamp")
    return Captured(
        line=n,
        messages=messages,
        tools=tools,
        params=params,
        response_raw=None if raw_resp is None else (raw_resp, get("finish_reason")),
        parse=_generic_response,
        id=_str_or_none(get("id")),
        timestamp_raw=ts_raw,
        conversation=None,  # read from ``source`` for the chosen requests only
        source=obj,
        dropped=dropped,
        model=_str_or_none(get("model")),
    )
