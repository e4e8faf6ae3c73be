"""The vendor's key variable is a default only for the vendor's own host, compared exactly."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from servers import FakeServer

from pytest_parity.contract.spec import load_contract
from pytest_parity.endpoints.http import Request, open_endpoint
from pytest_parity.endpoints.kinds import KINDS

LOOKALIKES = [
    "https://api.openai.com.evil.example/v1",
    "http://api.openai.com@evil.example/v1",
    "https://api.openai.com@evil.example/v1",
    "https://user:pw@api.openai.com/v1",
    "https://evil.example/api.openai.com/v1",
    "https://evilapi.openai.com/v1",
    "http://api.openai.com/v1",  # the vendor over plain http: the key would cross in clear
    "http://127.0.0.1:9/relay/https://api.openai.com/v1",
]


@pytest.mark.parametrize("url", LOOKALIKES)
def test_lookalike_hosts_get_no_default_key(url: str) -> None:
    assert KINDS["openai"].default_key_env(url) is None
    assert KINDS["anthropic"].default_key_env(url.replace("openai", "anthropic")) is None


@pytest.mark.parametrize(
    "host", ["api.{v}.com", "API.{V}.com:443", "api.{v}.com."], ids=["plain", "case-port", "dot"]
)
def test_the_vendors_own_host_gets_its_default(host: str) -> None:
    for vendor, env in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")):
        url = "https://" + host.format(v=vendor, V=vendor.capitalize()) + "/v1"
        assert KINDS[vendor].default_key_env(url) == env
        assert KINDS["vllm"].default_key_env(url) is None  # other kinds have no vendor default


def test_a_relay_naming_the_vendor_in_its_path_never_receives_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-PLANTED-vendor-2718"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    (tmp_path / "golden.jsonl").write_text('{"id": "q", "prompt": "hi", "reference": "hi"}\n')
    with FakeServer() as srv:
        relay = f"{srv.root}/relay/https://api.openai.com/v1"
        path = tmp_path / "contract.yaml"
        path.write_text(
            f'baseline:  {{kind: openai, base_url: "{relay}", model: m}}\n'
            f'candidate: {{kind: anthropic, base_url: "{srv.root}/relay/https://api.anthropic.com",'
            " model: m}\n"
            "tasks:\n  - {name: t, path: golden.jsonl}\n"
        )
        contract = load_contract(path)
        assert contract.baseline.api_key_env is None
        assert contract.candidate.api_key_env is None

        async def go() -> None:
            # The headers these specs send, seen by a real server: the relay path is no route
            # of the test server, so the same specs are pointed at its own routes.
            for spec in (contract.baseline, contract.candidate):
                local = replace(spec, base_url=srv.base_url if spec.kind == "openai" else srv.root)
                ep = open_endpoint(local)
                try:
                    r = await ep.complete(
                        Request("q", messages=({"role": "user", "content": "x"},))
                    )
                    assert r.ok, r.error
                finally:
                    await ep.aclose()

        asyncio.run(go())
    assert len(srv.headers_seen) == 2
    for headers in srv.headers_seen:
        assert key not in str(headers)
        assert "authorization" not in {k.lower() for k in headers}
        assert "x-api-key" not in {k.lower() for k in headers}
