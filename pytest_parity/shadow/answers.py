"""What an answer said, read from the raw bytes the proxy forwarded (JSON or SSE).

Understood paths: OpenAI chat completions and completions (every OpenAI-compatible kind the
project speaks: openai, vllm, sglang, tensorrt-llm, llama-cpp) and Anthropic's Messages API.
A body that cannot be read gives an :class:`Answer` with ``readable=False``: metrics count it as
an ``invalid_response`` error, it never raises.
"""

from __future__ import annotations

import json
import json.decoder
import zlib
from dataclasses import dataclass, field
from typing import Any

# request path suffix -> protocol
PATHS = {
    "/chat/completions": "chat",
    "/completions": "completions",
    "/messages": "anthropic",
}
FINISH_REASONS = frozenset(
    {
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "function_call",
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "abort",
        "error",
        "none",
    }
)


def protocol_of(path: str) -> str | None:
    """The answer dialect of a request path, or None for a path passed through untouched."""
    for suffix, proto in PATHS.items():
        if path.endswith(suffix):
            return proto
    return None


@dataclass
class Answer:
    readable: bool = True
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None


def decode(body: bytes, encoding: str | None) -> bytes | None:
    """Undo a gzip/deflate Content-Encoding (the proxy forwards the raw bytes)."""
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return zlib.decompress(body)
    except zlib.error:
        return None
    return None


_SCAN: Any = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner


def _event(payload: str) -> Any:
    """One SSE event's JSON, exactly as strict as ``json.loads`` of the stripped payload (no
    encoding detection, no wrapper: a stream has dozens of small events and the wrapping cost
    as much as the decoding)."""
    try:
        obj, end = _SCAN(payload, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(payload):
        raise ValueError("extra data")
    return obj


def _data_lines(body: bytes) -> list[str]:
    """The payloads of a stream's ``data:`` lines, stripped, in order (UnicodeDecodeError when
    the stream is not UTF-8, as SSE requires)."""
    out = []
    for raw in body.decode("utf-8").split("\n"):
        line = raw.strip()
        if line.startswith("data:"):
            out.append(line[5:].strip())
    return out


def _usage(ans: Answer, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    p = usage.get("prompt_tokens", usage.get("input_tokens"))
    c = usage.get("completion_tokens", usage.get("output_tokens"))
    if isinstance(p, int):
        ans.prompt_tokens = p
    if isinstance(c, int):
        ans.completion_tokens = c


def parse_json(proto: str, body: bytes) -> Answer:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Answer(readable=False)
    if not isinstance(data, dict):
        return Answer(readable=False)
    ans = Answer(model=data.get("model") if isinstance(data.get("model"), str) else None)
    _usage(ans, data.get("usage"))
    if proto == "anthropic":
        parts = data.get("content")
        if not isinstance(parts, list):
            return Answer(readable=False)
        for p in parts:
            if isinstance(p, dict) and p.get("type") == "text":
                ans.text += str(p.get("text", ""))
            elif isinstance(p, dict) and p.get("type") == "tool_use":
                ans.tool_calls.append({"name": p.get("name"), "arguments": p.get("input")})
        ans.finish_reason = data.get("stop_reason")
        return ans
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Answer(readable=False, model=ans.model)
    c0 = choices[0]
    ans.finish_reason = c0.get("finish_reason")
    if proto == "chat":
        msg = c0.get("message") or {}
        ans.text = str(msg.get("content") or "")
        for tc in msg.get("tool_calls") or []:
            fn = tc.get("function") or {}
            ans.tool_calls.append({"name": fn.get("name"), "arguments": fn.get("arguments")})
    else:
        ans.text = str(c0.get("text") or "")
    return ans


def _sse_tail(body: bytes) -> Answer | None:
    """Finish reason and usage of an OpenAI stream from its last events only (metrics of an
    answer nobody stores: no need to reassemble the text). None when the tail does not say."""
    ans = Answer()
    looked = 0
    for raw in reversed(body.split(b"\n")):
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            continue
        looked += 1
        if looked > 4:
            return None
        try:
            ev = _event(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return Answer(readable=False)
        if not isinstance(ev, dict):
            continue
        if ans.prompt_tokens is None:
            _usage(ans, ev.get("usage"))
        for c in ev.get("choices") or []:
            if isinstance(c, dict) and c.get("index", 0) == 0 and c.get("finish_reason"):
                ans.finish_reason = c["finish_reason"]
                return ans
    return None


def parse_sse(proto: str, body: bytes, *, text: bool = True) -> Answer:
    """Reassemble a streamed answer from its ``data:`` events (``text=False``: only what the
    metrics need, read from the stream's end when it can be)."""
    if not text and proto != "anthropic":
        tail = _sse_tail(body)
        if tail is not None:
            return tail
    ans = Answer()
    tools: dict[int, dict[str, Any]] = {}
    parts: list[str] = []
    seen = False
    try:
        payloads = _data_lines(body)
    except UnicodeDecodeError:
        return Answer(readable=False)
    for payload in payloads:
        if not payload or payload == "[DONE]":
            continue
        try:
            ev = _event(payload)
        except ValueError:
            return Answer(readable=False)
        if not isinstance(ev, dict):
            continue
        seen = True
        if isinstance(ev.get("model"), str):
            ans.model = ev["model"]
        if proto == "anthropic":
            t = ev.get("type")
            if t == "message_start":
                _usage(ans, (ev.get("message") or {}).get("usage"))
            elif t == "content_block_delta":
                d = ev.get("delta") or {}
                if d.get("type") == "text_delta":
                    parts.append(str(d.get("text", "")))
            elif t == "message_delta":
                ans.finish_reason = (ev.get("delta") or {}).get("stop_reason")
                u = ev.get("usage") or {}
                if isinstance(u.get("output_tokens"), int):
                    ans.completion_tokens = u["output_tokens"]
            continue
        _usage(ans, ev.get("usage"))
        for c in ev.get("choices") or []:
            if not isinstance(c, dict) or c.get("index", 0) != 0:
                continue
            if c.get("finish_reason"):
                ans.finish_reason = c["finish_reason"]
            if proto == "chat":
                d = c.get("delta") or {}
                if d.get("content"):
                    parts.append(str(d["content"]))
                for tc in d.get("tool_calls") or []:
                    slot = tools.setdefault(
                        int(tc.get("index", 0)), {"name": None, "arguments": ""}
                    )
                    fn = tc.get("function") or {}
                    if fn.get("name"):
                        slot["name"] = fn["name"]
                    if fn.get("arguments"):
                        slot["arguments"] += str(fn["arguments"])
            elif c.get("text"):
                parts.append(str(c["text"]))
    if not seen:
        return Answer(readable=False)
    ans.text = "".join(parts)
    ans.tool_calls = [tools[i] for i in sorted(tools)]
    return ans


def parse_answer(
    proto: str, body: bytes, *, streamed: bool, encoding: str | None, text: bool = True
) -> Answer:
    data = decode(body, encoding)
    if data is None:
        return Answer(readable=False)
    return parse_sse(proto, data, text=text) if streamed else parse_json(proto, data)


def finish_label(reason: str | None) -> str:
    """A bounded label for a finish reason (metrics never take arbitrary server strings)."""
    if reason is None:
        return "none"
    return reason if reason in FINISH_REASONS else "other"
