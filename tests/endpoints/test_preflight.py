"""The preflight against real local servers: a stack that is down, refuses the key, has no model
listing (a base_url without /v1) or does not serve the model stops the run before the first task
with exit 4 and one line; a healthy pair runs, and what the preflight found is in the report."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, closed_port

from pytest_parity.contract.spec import load_contract
from pytest_parity.endpoints.preflight import PreflightError, run_preflight

GOLDEN = "".join(
    json.dumps({"id": f"q{i}", "prompt": f"p{i}", "reference": f"p{i}"}) + "\n" for i in range(5)
)


class ListingServer:
    """A real HTTP server whose GET /v1/models needs ``Bearer <key>`` (401 otherwise), or always
    answers ``status``; it counts every request it gets."""

    def __init__(
        self, *, key: str | None = None, status: int = 200, models: tuple[str, ...] = ("m",)
    ):
        self.key, self.status, self.models = key, status, models
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path))
                status, body = (
                    owner.status,
                    {"object": "list", "data": [{"id": m} for m in owner.models]},
                )
                if (
                    owner.key is not None
                    and self.headers.get("authorization") != f"Bearer {owner.key}"
                ):
                    status, body = 401, {"error": {"message": "Incorrect API key provided"}}
                if self.path != "/v1/models":
                    status, body = 404, {"error": "not found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                owner.requests.append(("POST", self.path))
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ListingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def good() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def write_contract(folder: Path, baseline: str, candidate: str) -> Path:
    (folder / "golden.jsonl").write_text(GOLDEN)
    path = folder / "contract.yaml"
    path.write_text(
        f"baseline:  {baseline}\ncandidate: {candidate}\n"
        "tasks:\n  - {name: echo, path: golden.jsonl, min_items: 1, tolerance: 0.5}\n"
    )
    return path


def openai(url: str, extra: str = "") -> str:
    return f'{{kind: openai, base_url: "{url}", model: m{extra}}}'


def one_error_line(result: pytest.RunResult) -> str:
    everything = result.stdout.str() + result.stderr.str()
    assert result.ret == 4, everything
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, everything
    assert "Traceback" not in everything and "INTERNALERROR" not in everything
    assert lines[0].startswith("ERROR: ")
    return lines[0]


def test_an_unset_key_variable_stops_the_run_before_anything_is_sent(
    pytester: pytest.Pytester, good: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARITY_PREFLIGHT_UNSET", raising=False)
    path = write_contract(
        pytester.path,
        openai(good.base_url),
        openai(good.base_url, ", api_key_env: PARITY_PREFLIGHT_UNSET"),
    )
    sent = len(good.received)
    line = one_error_line(pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache"))
    assert line == (
        f"ERROR: {path}: candidate.api_key_env: environment variable PARITY_PREFLIGHT_UNSET is not"
        " set (hint: export PARITY_PREFLIGHT_UNSET=<the key>, or pass --parity-no-preflight to run"
        " offline from the cache)"
    )
    assert len(good.received) == sent


def test_a_refused_key_stops_the_run_and_the_key_is_never_shown(
    pytester: pytest.Pytester, good: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARITY_PREFLIGHT_KEY", "sk-planted-preflight-0123456789")
    with ListingServer(key="sk-the-right-one") as srv:
        path = write_contract(
            pytester.path,
            openai(good.base_url),
            openai(srv.base_url, ", api_key_env: PARITY_PREFLIGHT_KEY"),
        )
        result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    line = one_error_line(result)
    assert line == (
        f"ERROR: {path}: candidate endpoint {srv.base_url}: the key was refused (HTTP 401 on GET"
        f" {srv.base_url}/models) (hint: check the key in $PARITY_PREFLIGHT_KEY)"
    )
    assert "sk-planted" not in result.stdout.str() + result.stderr.str()
    assert srv.requests == [("GET", "/v1/models")]  # one listing, no completion


def test_a_base_url_without_v1_gets_the_hint(pytester: pytest.Pytester, good: FakeServer) -> None:
    root = good.base_url.removesuffix("/v1")  # FakeServer has no /models at its root
    path = write_contract(pytester.path, openai(root), openai(good.base_url))
    line = one_error_line(pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache"))
    assert line == (
        f"ERROR: {path}: baseline.base_url: {root} has no model listing (HTTP 404 on GET"
        f" {root}/models) (hint: does base_url end in /v1?)"
    )


def test_a_down_endpoint_stops_the_run(pytester: pytest.Pytester, good: FakeServer) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    path = write_contract(pytester.path, openai(good.base_url), openai(down))
    line = one_error_line(pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache"))
    assert line.startswith(
        f"ERROR: {path}: candidate endpoint {down} is not reachable: GET {down}/models: "
    )
    assert line.endswith(
        "(hint: is the server running and base_url right? or pass --parity-no-preflight to run"
        " offline from the cache)"
    )


def test_a_vllm_server_that_does_not_serve_the_model_stops_the_run(tmp_path: Path) -> None:
    with ListingServer(models=("meta-llama/Llama-3.1-8B-Instruct", "lora-a")) as srv:
        vllm = f'{{kind: vllm, base_url: "{srv.base_url}", model: llama}}'
        path = write_contract(tmp_path, vllm, vllm.replace("model: llama", "model: lora-a"))
        with pytest.raises(PreflightError) as err:
            run_preflight(load_contract(path))
        # an OpenAI-compatible server of another kind may answer any name: only noted
        facts = run_preflight(
            load_contract(write_contract(tmp_path, openai(srv.base_url), openai(srv.base_url)))
        )
    assert str(err.value) == (
        f"{path}: baseline.model: 'llama' is not served by {srv.base_url} (it serves:"
        " meta-llama/Llama-3.1-8B-Instruct, lora-a) (hint: write model: meta-llama/Llama-3.1-8B-Instruct)"
    )
    assert facts["baseline"]["model_listed"] is False
    assert "'m' is not among the models listed" in facts["baseline"]["note"]


def test_a_server_still_loading_is_noted_not_fatal(tmp_path: Path) -> None:
    with ListingServer(status=503) as srv:
        facts = run_preflight(
            load_contract(write_contract(tmp_path, openai(srv.base_url), openai(srv.base_url)))
        )
    assert facts["baseline"]["reachable"] is True
    assert facts["baseline"]["status"] == 503
    assert facts["baseline"]["note"] == "the model listing answered HTTP 503"


def test_a_replay_baseline_needs_no_preflight(tmp_path: Path, good: FakeServer) -> None:
    (tmp_path / "baseline.jsonl").write_text("")
    replay = "{kind: replay, recording: baseline.jsonl, model: m}"
    facts = run_preflight(load_contract(write_contract(tmp_path, replay, openai(good.base_url))))
    assert facts["baseline"] == {"kind": "replay", "checked": False}
    assert facts["candidate"]["reachable"] is True


def test_a_healthy_pair_runs_and_the_preflight_is_in_the_json_report(
    pytester: pytest.Pytester, good: FakeServer
) -> None:
    from run_builders import validate

    from pytest_parity.report import SCHEMA_PATH

    path = write_contract(pytester.path, openai(good.base_url), openai(good.base_url))
    out = pytester.path / "parity.json"
    result = pytester.runpytest(
        f"--parity-contract={path}", "--parity-no-cache", f"--parity-json={out}"
    )
    assert result.ret == 0, result.stdout.str()
    doc = json.loads(out.read_text())
    schema = json.loads(Path(SCHEMA_PATH).read_text())
    assert validate(doc, schema, schema) == []
    pre = doc["contract"]["preflight"]
    for role in ("baseline", "candidate"):
        assert pre[role]["reachable"] is True and pre[role]["status"] == 200
        assert pre[role]["path"] == "/v1/models"
        assert pre[role]["models"] == ["test-model"] and pre[role]["model_listed"] is False
        assert 0 <= pre[role]["latency_s"] < 5


def test_no_preflight_option_leaves_it_out_of_the_report(
    pytester: pytest.Pytester, good: FakeServer
) -> None:
    path = write_contract(pytester.path, openai(good.base_url), openai(good.base_url))
    out = pytester.path / "parity.json"
    result = pytester.runpytest(
        f"--parity-contract={path}",
        "--parity-no-cache",
        "--parity-no-preflight",
        f"--parity-json={out}",
    )
    assert result.ret == 0
    assert "preflight" not in json.loads(out.read_text())["contract"]


def test_a_failed_preflight_keeps_the_last_recording(
    pytester: pytest.Pytester, good: FakeServer
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    path = write_contract(pytester.path, openai(down), openai(good.base_url))
    recording = pytester.path / "baseline.jsonl"
    recording.write_text('{"kept": true}\n')
    result = pytester.runpytest(f"--parity-contract={path}", f"--parity-record={recording}")
    assert "baseline endpoint" in one_error_line(result)
    assert recording.read_text() == '{"kept": true}\n'  # nothing was run: nothing is lost
