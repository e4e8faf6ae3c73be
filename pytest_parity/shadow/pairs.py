"""One sampled request and what both stacks did with it; redaction; the row the store gets.

Nothing here touches the network: the proxy fills a :class:`Pair`'s two :class:`Side` objects and
:func:`pair_record` turns the settled pair into the store's row. Request headers are never part
of it; secrets are scrubbed (the client's own credentials, the endpoints' keys, bearer tokens,
body fields named like secrets), then the contract's ``redact`` rules apply.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pytest_parity.shadow.answers import Answer, parse_answer
from pytest_parity.shadow.config import ShadowConfig

# Never sent to the shadow stack from the client, never stored anywhere.
SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization", "set-cookie"}
)
SECRET_BODY_KEYS = frozenset(
    {"api_key", "apikey", "api-key", "authorization", "password", "secret", "access_token"}
)
BEARER_RE = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
MAX_CAPTURE = 16 * 1024 * 1024  # answers larger than this are forwarded but not parsed


def error_category(status: int | None, exc: BaseException | None) -> str | None:
    if exc is not None:
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return "timeout"
        if isinstance(exc, aiohttp.ClientConnectorError):
            return "connect"
        return "disconnect"
    if status is None:
        return "disconnect"
    if status >= 500:
        return "http_5xx"
    if status >= 400:
        return "http_4xx"
    return None


@dataclass
class Side:
    """What one stack did with one request."""

    status: int | None = None
    error: str | None = None
    latency: float | None = None
    ttft: float | None = None
    body: bytes = b""
    streamed: bool = False
    encoding: str | None = None
    answer: Answer | None = None

    def read(self, proto: str, *, text: bool = True) -> Answer | None:
        """What the answer said (parsed once; ``text=False`` may skip reassembling the text)."""
        if self.answer is None and self.error is None and self.status is not None:
            if len(self.body) >= MAX_CAPTURE:
                return None
            self.answer = parse_answer(
                proto, self.body, streamed=self.streamed, encoding=self.encoding, text=text
            )
            if not self.answer.readable and self.status < 400:
                self.error = "invalid_response"
        return self.answer


@dataclass
class Pair:
    ts: float
    path: str
    proto: str
    segment: str
    body: bytes
    headers: dict[str, str]
    pending: int = 2
    dropped: bool = False
    serving: Side | None = None
    shadow: Side | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def redactor(cfg: ShadowConfig) -> Callable[[str], str]:
    """The redaction of one string: secrets known to the proxy, bearer tokens, then the rules."""
    secrets = [
        os.environ[e]
        for e in {cfg.serving.api_key_env, cfg.shadow.api_key_env}
        if e and os.environ.get(e) and len(os.environ[e]) >= 4
    ]
    rules = cfg.redact

    def redact(s: str) -> str:
        for sec in secrets:
            if sec in s:
                s = s.replace(sec, "[SECRET]")
        s = BEARER_RE.sub(r"\1[SECRET]", s)
        for r in rules:
            s = r.pattern.sub(r.replace, s)
        return s

    return redact


def redact_json(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {
            k: redact_json(v, redact)
            for k, v in value.items()
            if str(k).lower() not in SECRET_BODY_KEYS
        }
    if isinstance(value, list):
        return [redact_json(v, redact) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def client_credentials(headers: Mapping[str, str]) -> list[str]:
    """The credential values a client sent (scrubbed from whatever of its pair is stored)."""
    out = []
    for k in ("Authorization", "X-Api-Key", "Api-Key", "Proxy-Authorization"):
        val = headers.get(k, "").strip()
        val = val.split(None, 1)[1] if " " in val else val
        if len(val) >= 4:
            out.append(val)
    return out


def pair_record(
    pair: Pair,
    *,
    instance: str,
    serving_name: str,
    shadow_name: str,
    redact_base: Callable[[str], str],
) -> dict[str, Any]:
    """The store's row for a settled pair: request and both answers redacted, no headers."""
    creds: list[str] = pair.extra.get("secrets", [])

    def redact(text: str) -> str:
        for c in creds:
            if c in text:
                text = text.replace(c, "[SECRET]")
        return redact_base(text)

    try:
        req: Any = json.loads(pair.body)
    except ValueError:
        req = {"_unreadable_body": pair.body[:2000].decode("utf-8", "replace")}
    req = redact_json(req, redact)
    req_text = json.dumps(req, ensure_ascii=False, sort_keys=True)
    model = req.get("model") if isinstance(req, dict) else None
    rec: dict[str, Any] = {
        "ts": pair.ts,
        "instance": instance,
        "segment": pair.segment,
        "path": pair.path,
        "protocol": pair.proto,
        "model": model if isinstance(model, str) else None,
        "stream": bool(isinstance(req, dict) and req.get("stream")),
        "request": req_text,
        "request_hash": hashlib.sha256(req_text.encode()).hexdigest(),
        "serving_stack": serving_name,
        "shadow_stack": shadow_name,
    }
    for name, side in (("serving", pair.serving), ("shadow", pair.shadow)):
        assert side is not None
        ans = side.read(pair.proto)
        rec[f"{name}_status"] = side.status
        rec[f"{name}_error"] = side.error
        rec[f"{name}_latency"] = side.latency
        rec[f"{name}_ttft"] = side.ttft
        if ans is not None and ans.readable:
            rec[f"{name}_text"] = redact(ans.text)
            rec[f"{name}_finish"] = ans.finish_reason
            rec[f"{name}_prompt_tokens"] = ans.prompt_tokens
            rec[f"{name}_completion_tokens"] = ans.completion_tokens
            if ans.tool_calls:
                rec[f"{name}_tool_calls"] = redact_json(ans.tool_calls, redact)
        elif side.status is not None and side.status >= 400 and side.body:
            # An error body says why; kept (redacted, bounded) as the side's text.
            rec[f"{name}_text"] = redact(side.body[:2000].decode("utf-8", "replace"))
    return rec
