"""Token counts and context windows, from the serving stack itself where it says them.

A long-context item is built to a length in tokens, and an item beyond an endpoint's window must
be an error before anything is sent (never a prompt cut by the server). Both need the server:

- token counts: llama.cpp's ``POST /tokenize`` ``{"content": text}`` -> ``{"tokens": [...]}``
  (llama-cpp-python: ``POST /extras/tokenize`` ``{"input": text}``), vLLM's ``POST /tokenize``
  ``{"model", "prompt"}`` -> ``{"count": n}``. Elsewhere (OpenAI, Anthropic, SGLang, a replayed
  recording) the count is an ESTIMATE: one token per 3 bytes of UTF-8 text, rounded up. On the
  cautious side on purpose, so an estimated item is not longer than its length in the server's
  own tokens: SmolLM2's tokenizer measured 3.27 bytes a token on the bundled text and 3.34 on
  the README, larger vocabularies (Llama 3, GPT-4's) about 4;
- windows: llama.cpp's ``GET /props`` (``default_generation_settings.n_ctx``, or ``n_ctx``),
  vLLM's ``GET /v1/models`` (``max_model_len``); else only what the contract says.

Synchronous (urllib): the source asks before the task's requests start.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_parity.contract.spec import EndpointSpec

__all__ = [
    "BYTES_PER_TOKEN",
    "EstimateCounter",
    "ServerCounter",
    "TokenCounter",
    "TokenError",
    "Window",
    "counter_for",
    "window_of",
]

BYTES_PER_TOKEN = 3.0
TOKENIZING_KINDS = ("llama-cpp", "vllm")


class TokenError(RuntimeError):
    """A tokenizer endpoint that cannot be used; ``str()`` is one line."""


class TokenCounter(Protocol):
    source: str  # "server <url>" or "estimate"

    def count(self, text: str) -> int: ...


class EstimateCounter:
    """One token per :data:`BYTES_PER_TOKEN` bytes of UTF-8, rounded up (see the module doc)."""

    source = "estimate"

    def count(self, text: str) -> int:
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _headers(spec: EndpointSpec) -> dict[str, str]:
    from pytest_parity.secrets import MaskedHeaders, read_secret

    # masked repr, the key a Secret: a -l traceback through the tokenizer calls shows ***
    headers = MaskedHeaders({"Content-Type": "application/json", **dict(spec.headers)})
    key = read_secret(spec.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key.reveal()}"
    return headers


def _call(url: str, headers: Mapping[str, str], body: Any, timeout: float) -> Any:
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, headers=dict(headers))
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class ServerCounter:
    """The server's own tokenizer (llama.cpp or vLLM); counts are cached per text."""

    def __init__(self, spec: EndpointSpec, timeout: float = 60.0) -> None:
        self.spec = spec
        self.root = _root(spec.base_url)
        self.timeout = timeout
        self._headers = _headers(spec)
        self._route: tuple[str, str] | None = None  # (path, request field)
        self._memo: dict[str, int] = {}
        self.source = f"server {self.root}"

    def _routes(self) -> list[tuple[str, str]]:
        if self.spec.kind == "vllm":
            return [("/tokenize", "prompt")]
        return [("/tokenize", "content"), ("/extras/tokenize", "input")]

    def _ask(self, path: str, field: str, text: str) -> int:
        body: dict[str, Any] = {field: text}
        if field == "prompt":
            body["model"] = self.spec.model
            body["add_special_tokens"] = False
        if field == "content":
            body["add_special"] = False
        got = _call(self.root + path, self._headers, body, self.timeout)
        if isinstance(got, Mapping):
            if isinstance(got.get("count"), int):
                return int(got["count"])
            tokens = got.get("tokens")
            if isinstance(tokens, list):
                return len(tokens)
        raise TokenError(f"POST {self.root}{path}: no token list in the answer")

    def count(self, text: str) -> int:
        hit = self._memo.get(text)
        if hit is not None:
            return hit
        routes = [self._route] if self._route is not None else self._routes()
        last = "no answer"
        for path, field in routes:
            try:
                n = self._ask(path, field, text)
            except urllib.error.HTTPError as exc:
                exc.close()
                last = f"POST {self.root}{path}: HTTP {exc.code}"
                continue
            except (OSError, ValueError) as exc:
                last = f"POST {self.root}{path}: {type(exc).__name__}: {exc}".splitlines()[0]
                continue
            self._route = (path, field)
            self._memo[text] = n
            return n
        raise TokenError(last)


def counter_for(specs: Mapping[str, EndpointSpec], mode: str) -> tuple[TokenCounter, str | None]:
    """The counter items are built with, and a note when the estimate stands in for a server.

    ``mode`` ``estimate`` always estimates; ``auto`` asks the first endpoint (baseline, then
    candidate) whose kind can tokenize, and estimates when none can or none answers."""
    if mode == "estimate":
        return EstimateCounter(), None
    notes = []
    for role in ("baseline", "candidate"):
        spec = specs.get(role)
        if spec is None or spec.kind not in TOKENIZING_KINDS or not spec.base_url:
            continue
        counter = ServerCounter(spec)
        try:
            counter.count("Hello, world.")
        except TokenError as exc:
            notes.append(f"{role}: {exc}")
            continue
        return counter, None
    why = "; ".join(notes) or "no endpoint of a kind that tokenizes (llama-cpp, vllm)"
    return EstimateCounter(), f"token counts are estimated (1 token per 3 bytes): {why}"


@dataclass(frozen=True)
class Window:
    tokens: int
    source: str  # where the number comes from, for the error message


def window_of(spec: EndpointSpec, timeout: float = 10.0) -> Window | None:
    """The endpoint's context window as its server reports it, or None."""
    if not spec.base_url or spec.kind == "replay":
        return None
    root = _root(spec.base_url)
    headers = _headers(spec)
    if spec.kind == "llama-cpp":
        props = _get(root + "/props", headers, timeout)
        if isinstance(props, Mapping):
            gen = props.get("default_generation_settings")
            for where, value in (
                ("/props default_generation_settings.n_ctx", (gen or {}).get("n_ctx")
                 if isinstance(gen, Mapping) else None),
                ("/props n_ctx", props.get("n_ctx")),
            ):  # fmt: skip
                if isinstance(value, int) and value > 0:
                    return Window(value, where)
    models = _get(root + "/v1/models", headers, timeout)
    if isinstance(models, Mapping) and isinstance(models.get("data"), list):
        for m in models["data"]:
            if (
                isinstance(m, Mapping)
                and isinstance(m.get("max_model_len"), int)
                and (m.get("id") in (spec.model, None) or len(models["data"]) == 1)
            ):
                return Window(int(m["max_model_len"]), "/v1/models max_model_len")
    return None


def _get(url: str, headers: Mapping[str, str], timeout: float) -> Any:
    try:
        return _call(url, headers, None, timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        return None
    except (OSError, ValueError):
        return None
