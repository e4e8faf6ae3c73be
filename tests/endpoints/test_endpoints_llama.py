"""The endpoint layer against a real llama.cpp server (SmolLM2 Q4_1) that nobody here wrote.

Needs `bash example_suite/live/setup_testbed.sh` first; skips (with the command to run) otherwise.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.http import Request, Response, open_endpoint

pytestmark = pytest.mark.live_model

LIVE_DIR = Path(__file__).resolve().parents[2] / "example_suite" / "live"
SETUP_HINT = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    spec = importlib.util.spec_from_file_location("parity_live_servers", LIVE_DIR / "servers.py")
    assert spec is not None and spec.loader is not None
    servers = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, servers)
    spec.loader.exec_module(servers)
    model = servers.model_file("Q4_1")
    if not model.is_file():
        pytest.skip(f"model file missing: {model}; {SETUP_HINT}")
    with servers.serve(model) as url:
        yield url


def llama(url: str, api: str = "chat", **params: Any) -> EndpointSpec:
    p = {"temperature": 0.0, "seed": 0, "max_tokens": 8, "repeat_penalty": 1.0, **params}
    return EndpointSpec(
        role="candidate",
        kind="llama-cpp",
        base_url=url,
        model="Q4_1",
        api=api,
        params=MappingProxyType(p),
        max_concurrency=1,
        timeout=60.0,
    )


def run(s: EndpointSpec, *requests: Request) -> tuple[list[Response], dict[str, Any]]:
    async def go() -> tuple[list[Response], dict[str, Any]]:
        ep = open_endpoint(s)
        try:
            out = list(await asyncio.gather(*(ep.complete(r) for r in requests)))
            return out, await ep.describe()
        finally:
            await ep.aclose()

    return asyncio.run(go())


def test_greedy_chat_is_answered_and_deterministic(base_url: str) -> None:
    q = ({"role": "user", "content": "What is the capital of France? Answer in one word."},)
    (a, b), described = run(llama(base_url), Request("a", messages=q), Request("b", messages=q))
    assert a.ok and a.text.strip() and a.text == b.text
    assert a.finish_reason in ("stop", "length")
    assert 0 < a.usage["completion_tokens"] <= 8
    assert described["engine"]["served_models"] and "/v1/models" in described["engine"]["probed"]


def test_completions_with_logprobs(base_url: str) -> None:
    (r,), _ = run(
        llama(base_url, "completions", logprobs=1, max_tokens=4), Request("p", prompt="1 + 1 =")
    )
    assert r.ok and r.logprobs is not None and 0 < len(r.logprobs) <= 4
    assert all(lp <= 0.0 for lp in r.logprobs)
