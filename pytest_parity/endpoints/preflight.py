"""The preflight: before the first task, is each stack reachable, serving the model, taking the key?

A wrong URL, a key that is not exported or is refused, or a server that is down would otherwise
show only after the items were read, as one ERROR per task. The preflight asks each HTTP
endpoint once (both at the same time) for its model listing, the cheapest authenticated route
the OpenAI-compatible servers share (``GET <base_url>/models``; ``/v1/models`` for the Anthropic
kind), and stops the run with one line when:

- the variable named by ``api_key_env`` is not set (or holds a key no HTTP header can carry);
- the server cannot be reached (connection refused, DNS, TLS, no answer within the timeout);
- the key is refused (401/403);
- the listing is not there (404): usually a ``base_url`` that does not end in ``/v1``;
- a ``kind: vllm`` server lists models and not the contract's (vLLM answers 404 to any other
  name; llama.cpp, SGLang and proxies answer whatever name they are sent, so for them an
  unlisted model is only noted).

Any other answer (a 5xx while the server loads, a listing that is not JSON) is noted, not fatal:
the per-request retries deal with it. ``kind: replay`` endpoints need no preflight. The result,
per endpoint (reachable, HTTP status, models listed, whether the contract's model is among them,
latency), goes into the report's provenance; it never holds a key, a header or a query string.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pytest_parity.secrets import MaskedHeaders, Secret

if TYPE_CHECKING:
    import httpx

    from pytest_parity.contract.spec import Contract, EndpointSpec

__all__ = ["PreflightError", "models_url", "run_preflight"]

PREFLIGHT_TIMEOUT_S = 10.0
MAX_MODELS_SHOWN = 20
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")
SKIP_HINT = "or pass --parity-no-preflight to run offline from the cache"


class PreflightError(Exception):
    """A stack the run cannot use; ``str()`` is one line naming the contract, the field, the fix."""


def models_url(spec: EndpointSpec) -> str | None:
    """Where the kind lists its models (None: nothing to ask, e.g. a replay)."""
    from pytest_parity.endpoints.kinds import KINDS, server_root

    info = KINDS[spec.kind]
    if not info.needs_base_url or not spec.base_url:
        return None
    if info.protocol == "anthropic":
        return server_root(spec.base_url) + "/v1/models"
    return spec.base_url.rstrip("/") + "/models"


def run_preflight(
    contract: Contract,
    *,
    timeout: float = PREFLIGHT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Check both stacks; returns {role: facts} or raises :class:`PreflightError` (the baseline's
    problem first when both have one)."""

    async def both() -> list[tuple[dict[str, Any], str | None]]:
        return await asyncio.gather(  # type: ignore[return-value]
            _check(contract.baseline, timeout, transport),
            _check(contract.candidate, timeout, transport),
        )

    results = asyncio.run(both())
    for _, problem in results:
        if problem is not None:
            raise PreflightError(f"{contract.path}: {problem}")
    return {"baseline": results[0][0], "candidate": results[1][0]}


async def _check(
    spec: EndpointSpec, timeout: float, transport: httpx.AsyncBaseTransport | None
) -> tuple[dict[str, Any], str | None]:
    """(facts, the problem that stops the run or None) for one endpoint."""
    role = spec.role
    url = models_url(spec)
    facts: dict[str, Any] = {"kind": spec.kind, "checked": url is not None}
    if url is None:
        return facts, None
    facts.update({"path": urlsplit(url).path, "reachable": False, "status": None})
    facts["latency_s"] = None
    env = spec.api_key_env
    # A Secret from the start: a -l traceback through these frames shows Secret('***')
    key = Secret(os.environ.get(env) or "") if env else None
    if env and not key:
        return facts, (
            f"{role}.api_key_env: environment variable {env} is not set"
            f" (hint: export {env}=<the key>, {SKIP_HINT})"
        )
    if key is not None and not _HEADER_SAFE.match(key.reveal()):
        return facts, (
            f"{role}.api_key_env: the key in {env} has a space, newline or non-ASCII character"
            " that no HTTP header can carry (hint: strip the trailing newline of the file it"
            " was read from)"
        )
    shown = _public_url(url)
    try:
        status, body, latency = await _get(spec, url, key, min(timeout, spec.timeout), transport)
    except Exception as exc:  # connection refused, DNS, TLS, timeout: the stack is not there
        detail = _describe(exc)
        if key:
            detail = detail.replace(key.reveal(), "***")
        return facts, (
            f"{role} endpoint {_public_url(spec.base_url)} is not reachable: GET {shown}: {detail}"
            f" (hint: is the server running and base_url right? {SKIP_HINT})"
        )
    facts.update({"reachable": True, "status": status, "latency_s": round(latency, 4)})
    if status in (401, 403):
        fix = (
            f"check the key in ${env}"
            if env
            else "the server wants a key: name its variable in api_key_env"
        )
        return facts, (
            f"{role} endpoint {_public_url(spec.base_url)}: the key was refused"
            f" (HTTP {status} on GET {shown}) (hint: {fix})"
        )
    if status == 404 and spec.kind != "anthropic":
        fix = (
            "does base_url end in /v1?"
            if not spec.base_url.rstrip("/").endswith("/v1")
            else f"is this an OpenAI-compatible server? {SKIP_HINT}"
        )
        return facts, (
            f"{role}.base_url: {_public_url(spec.base_url)} has no model listing"
            f" (HTTP 404 on GET {shown}) (hint: {fix})"
        )
    if status != 200:
        facts["note"] = f"the model listing answered HTTP {status}"
        return facts, None
    served = _served_models(body)
    if served is None:
        facts["note"] = "the model listing is not the OpenAI shape"
        return facts, None
    facts["models"] = served[:MAX_MODELS_SHOWN]
    facts["model_listed"] = spec.model in served
    if not facts["model_listed"] and served:
        listed = ", ".join(served[:5]) + (", ..." if len(served) > 5 else "")
        if spec.kind == "vllm":
            return facts, (
                f"{role}.model: {spec.model!r} is not served by {_public_url(spec.base_url)}"
                f" (it serves: {listed}) (hint: write model: {served[0]})"
            )
        facts["note"] = f"{spec.model!r} is not among the models listed ({listed})"
    return facts, None


async def _get(
    spec: EndpointSpec,
    url: str,
    key: Secret | None,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None,
) -> tuple[int, bytes, float]:
    import httpx

    from pytest_parity.endpoints.http import _ssl_context, anthropic_headers, env_proxy
    from pytest_parity.endpoints.kinds import KINDS

    headers = MaskedHeaders(
        {"accept": "application/json", "user-agent": "pytest-parity", **spec.headers}
    )
    if KINDS[spec.kind].protocol == "anthropic":
        headers.update(anthropic_headers(key))
    elif key:
        headers["authorization"] = f"Bearer {key.reveal()}"
    async with httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        trust_env=False,  # the proxy as the endpoint layer picks it (never for loopback)
        verify=_ssl_context() if url.startswith("https:") else False,  # its CA bundle too
        proxy=None if transport is not None else env_proxy(url),
        follow_redirects=False,
    ) as client:
        t0 = time.perf_counter()
        resp = await client.get(url, headers=headers)
        return resp.status_code, resp.content[: 1 << 20], time.perf_counter() - t0


def _served_models(body: bytes) -> list[str] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return None
    return [str(m["id"]) for m in data["data"] if isinstance(m, dict) and "id" in m]


def _public_url(url: str) -> str:
    """A URL as reports show it: no query string (it may carry a key), no user:password."""
    base = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = base.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "no answer (timeout)"
    cause = exc.__cause__ or exc.__context__
    detail = " ".join(str(exc).split()) or " ".join(str(cause or "").split())
    return f"{type(exc).__name__}: {detail[:160] or 'no detail'}"
