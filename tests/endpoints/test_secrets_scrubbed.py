"""Secrets a server echoes back never reach a file, and tracebacks never show a key.

Real HTTP throughout: a server that echoes the API key inside 200 answers (and in what it says
about itself), a whole gate run writing every output there is, then every byte written searched.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer

from pytest_parity import secrets

KEY_OLD = "sk-PLANTED-echo-old-4242"
KEY_NEW = "sk-PLANTED-echo-new-5353"
TOKEN = "tok-PLANTED-header-6464"
PLANTED = (KEY_OLD, KEY_NEW, TOKEN)


def golden(root: Path, n: int) -> None:
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?", "reference": str(i + 1)})
        for i in range(n)
    ]
    (root / "golden.jsonl").write_text("\n".join(lines) + "\n")


def leaky(keys: tuple[str, ...], wrong_share: int) -> Any:
    """Right answers that quote the keys (a debug echo of the request), wrong on a share."""

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        a, b = (int(x) for x in re.findall(r"\d+", prompt))
        value = a + b if zlib.crc32(prompt.encode()) % 100 >= wrong_share else 0
        return f"You sent {' and '.join(keys)}. The answer is {value}."

    return answer


def test_an_echoed_key_is_scrubbed_from_everything_written(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLD_KEY", KEY_OLD)
    monkeypatch.setenv("NEW_KEY", KEY_NEW)
    monkeypatch.setenv("STACK_TOKEN", TOKEN)
    golden(pytester.path, 60)
    old = FakeServer(answer=leaky(PLANTED, 0), engine_version=f"1.0 {KEY_OLD}")
    new = FakeServer(answer=leaky(PLANTED, 30), engine_version=f"1.0 {KEY_NEW}")
    with old, new:
        old.require_key, new.require_key = KEY_OLD, KEY_NEW
        path = pytester.makefile(
            ".yaml",
            contract=f"""
            baseline:  {{kind: vllm, base_url: "{old.base_url}", model: m, api_key_env: OLD_KEY}}
            candidate:
              kind: vllm
              base_url: "{new.base_url}"
              model: m
              api_key_env: NEW_KEY
              headers: {{X-Stack-Token: "${{STACK_TOKEN}}"}}
            tasks:
              - {{name: sums, path: golden.jsonl, scorer: numeric}}
            """,
        )
        result = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-preflight",  # FakeServer serves any model name
            f"--parity-cache-dir={pytester.path / 'cache'}",
            f"--parity-record={pytester.path / 'old.jsonl'}",
            f"--parity-record-candidate={pytester.path / 'new.jsonl'}",
            f"--parity-json={pytester.path / 'parity.json'}",
            f"--parity-report={pytester.path / 'parity.html'}",
            f"--parity-markdown={pytester.path / 'summary.md'}",
            f"--parity-out={pytester.path / 'out'}",
            f"--debug={pytester.path / 'pytestdebug.log'}",
            "-rA",
            "-l",
        )
        assert len(old.received) == 60 and len(new.received) == 60
        assert all(h.get("X-Stack-Token") == TOKEN for h in new.headers_seen)  # still sent
    out = result.stdout.str()
    assert "OVERALL: FAIL" in out  # the wrong answers of the candidate were gated as usual
    written = [p for p in pytester.path.rglob("*") if p.is_file() and p.suffix != ".py"]
    names = {p.name for p in written}
    assert {"old.jsonl", "new.jsonl", "parity.json", "parity.html", "summary.md"} <= names
    assert "disagreements-sums.jsonl" in names and "pytestdebug.log" in names
    assert any(n.startswith("responses.sqlite3") for n in names)
    for p in written:
        data = p.read_bytes()
        for planted in PLANTED:
            assert planted.encode() not in data, (p.name, planted)
    for planted in PLANTED:
        assert planted not in out
    # The answers were kept, masked where the keys were.
    disagreement = json.loads(
        next((pytester.path / "out").rglob("disagreements-sums.jsonl")).read_text().splitlines()[0]
    )
    assert "You sent *** and *** and ***." in disagreement["candidate_output"]
    facts = json.loads((pytester.path / "parity.json").read_text())["tasks"][0]["endpoints"]
    assert "***" in json.dumps(facts) and KEY_OLD not in json.dumps(facts)


def test_scrubbing_masks_escaped_and_nested_echoes() -> None:
    secrets.register("sk-PLANTED-nested-7575")
    escaped = json.dumps({"k": "sk-PLANTED-nested-7575"}).replace("s", "\\u0073", 1).encode()
    assert b"sk-PLANTED-nested-7575" not in escaped and secrets.may_hold_secret(escaped)
    value = {"a": ["x sk-PLANTED-nested-7575 y", {"sk-PLANTED-nested-7575": 1}], "n": 3}
    assert secrets.scrub_value(value) == {"a": ["x *** y", {"***": 1}], "n": 3}
    assert not secrets.may_hold_secret(b'{"plain": "answer"}')
    assert repr(secrets.Secret("sk-PLANTED-nested-7575")) == "Secret('***')"
    headers = secrets.MaskedHeaders({"authorization": "Bearer x", "accept": "json"})
    assert repr(headers) == "{'authorization': '***', 'accept': 'json'}"


def test_showlocals_traceback_from_an_endpoint_shows_no_key(pytester: pytest.Pytester) -> None:
    """``pytest -l`` prints every frame's locals: the key must appear masked, if at all."""
    golden(pytester.path, 3)
    path = pytester.makefile(
        ".yaml",
        contract="""
        baseline:  {kind: openai, base_url: "https://old.invalid/v1", model: m, api_key_env: OLD_KEY}
        candidate: {kind: openai, base_url: "https://new.invalid/v1", model: m, api_key_env: OLD_KEY,
                    headers: {X-Team-Token: "${STACK_TOKEN}"}}
        tasks:
          - {name: sums, path: golden.jsonl, scorer: numeric}
        """,
    )
    # A CA bundle that cannot be read makes HttpEndpoint.__init__ raise (building its TLS
    # context), after the key was read: the traceback runs through the frame holding it.
    env = {
        "OLD_KEY": KEY_OLD,
        "STACK_TOKEN": TOKEN,  # a credential header: the frames hold the specs and their headers
        "SSL_CERT_FILE": str(pytester.path / "missing.pem"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),  # this checkout's plugin
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        result = pytester.runpytest_subprocess(
            f"--parity-contract={path}",
            "--parity-no-cache",
            "--parity-no-preflight",
            "-l",
            "--tb=long",
        )
    out = result.stdout.str() + result.stderr.str()
    assert "HttpEndpoint" in out or "__init__" in out, out[-3000:]
    assert re.search(r"key +=  ?Secret\('\*\*\*'\)", out), out[-3000:]
    assert KEY_OLD not in out
    assert "specs" in out and "X-Team-Token': '***'" in out, out[-3000:]  # the spec repr masks it
    assert TOKEN not in out
    assert result.ret != 0


def test_configured_headers_are_read_only_and_masked_in_every_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ${VAR}-expanded credential header lives in the EndpointSpec: `pytest -l` printed the
    # spec (a frame's `specs` local) with the token in clear before FrozenHeaders.
    from pytest_parity.contract.spec import load_contract, thaw

    monkeypatch.setenv("STACK_TOKEN", TOKEN)
    golden(tmp_path, 1)
    path = tmp_path / "contract.yaml"
    path.write_text(
        'baseline:  {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m,'
        ' headers: {X-Team-Token: "${STACK_TOKEN}", X-Variant: blue}}\n'
        'candidate: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}\n'
        "tasks:\n  - {name: t, path: golden.jsonl}\n"
    )
    contract = load_contract(path)
    spec = contract.baseline
    for shown in (repr(spec), str(spec.headers), repr(contract)):
        assert TOKEN not in shown
    assert "'X-Variant': 'blue'" in repr(spec)
    assert spec.headers["X-Team-Token"] == TOKEN  # what is sent is the value itself
    assert thaw(spec.headers) == {"X-Team-Token": TOKEN, "X-Variant": "blue"}
    assert spec == load_contract(path).baseline
    with pytest.raises(TypeError):
        spec.headers["X-Variant"] = "red"  # type: ignore[index]
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(spec.headers)
