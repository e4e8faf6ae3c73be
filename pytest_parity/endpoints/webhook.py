"""Delivering one JSON document to a webhook (the drift monitor's alerts), with bounded retries.

An alert nobody receives is worse than none: every attempt's outcome is kept and the caller
reports a failed delivery (the run's exit code and terminal say so). Retried: connection errors,
timeouts, 408/425/429 and 5xx answers, ``retries`` times with an exponential back-off (0.5 s,
1 s, 2 s ... capped at 8 s); a 4xx answer is the receiver refusing the document and is not retried.
Headers come from environment variables named in the contract (``headers_env``): their values
never appear in a message, and neither does the URL's query string (it may hold a token).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delivery", "WebhookError", "post_json", "shown_url"]

RETRY_STATUS = frozenset({408, 425, 429})
MAX_BACKOFF_S = 8.0


class WebhookError(ValueError):
    """The webhook cannot be tried at all (a variable it needs is not set); one line."""


@dataclass
class Delivery:
    ok: bool
    url: str  # as shown: no query string
    attempts: int = 0
    status: int | None = None
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.ok:
            return f"webhook {self.url}: delivered (HTTP {self.status}, attempt {self.attempts})"
        last = self.errors[-1] if self.errors else "no attempt"
        return f"webhook {self.url}: NOT delivered after {self.attempts} attempt(s): {last}"


def shown_url(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def headers_from_env(headers_env: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, env in headers_env.items():
        value = os.environ.get(env)
        if not value:
            raise WebhookError(
                f"monitor.webhook.headers_env.{name}: environment variable {env} is not set"
                f" (hint: export {env}=<the header's value>)"
            )
        out[name] = value
    return out


def post_json(
    url: str,
    payload: Any,
    *,
    headers: Mapping[str, str] | None = None,
    retries: int = 3,
    timeout: float = 10.0,
    backoff: float = 0.5,
    transport: Any = None,
) -> Delivery:
    """POST ``payload`` as JSON; never raises for a failed delivery (see :class:`Delivery`)."""
    import httpx

    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    sent = {"content-type": "application/json", "user-agent": "pytest-parity", **(headers or {})}
    secrets = [v for v in (headers or {}).values() if len(v) >= 4]
    out = Delivery(ok=False, url=shown_url(url))
    with httpx.Client(timeout=timeout, transport=transport, trust_env=False) as client:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(backoff * 2 ** (attempt - 1), MAX_BACKOFF_S))
            out.attempts = attempt + 1
            try:
                resp = client.post(url, content=body, headers=sent)
            except httpx.HTTPError as exc:
                detail = " ".join(str(exc).split())[:200] or type(exc).__name__
                for s in secrets:
                    detail = detail.replace(s, "***")
                out.errors.append(f"{type(exc).__name__}: {detail.replace(url, out.url)}")
                continue
            out.status = resp.status_code
            if resp.status_code < 300:
                out.ok = True
                return out
            out.errors.append(f"HTTP {resp.status_code}")
            if resp.status_code < 500 and resp.status_code not in RETRY_STATUS:
                return out  # the receiver refused the document: sending it again will not help
    return out
