"""The real-model test bed: llama.cpp servers over SmolLM2 in two precisions answer like OpenAI.

Needs `bash example_suite/live/setup_testbed.sh` first; skips (with the command to run) otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.live_model

LIVE_DIR = Path(__file__).resolve().parents[2] / "example_suite" / "live"
SETUP_HINT = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"


def _load_servers() -> ModuleType:
    # example_suite is not a package: load the helper by path, registered so dataclasses and
    # pickling inside it see a real module.
    spec = importlib.util.spec_from_file_location("parity_live_servers", LIVE_DIR / "servers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


servers = _load_servers()


def _post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        result: dict[str, Any] = json.loads(r.read())
        return result


@pytest.fixture(scope="module")
def pair() -> Iterator[dict[str, str]]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    files = {p: servers.model_file(p) for p in ("F32", "Q4_1")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        pytest.skip(f"model files missing: {', '.join(missing)}; {SETUP_HINT}")
    with servers.serve_many(files) as urls:
        yield urls


GREEDY = {
    "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    "temperature": 0,
    "repeat_penalty": 1.0,
    "max_tokens": 8,
    "seed": 0,
}


@pytest.mark.parametrize("precision", ["F32", "Q4_1"])
def test_chat_completion_has_openai_shape_and_is_deterministic(
    pair: dict[str, str], precision: str
) -> None:
    base_url = pair[precision]
    first = _post(base_url, "/chat/completions", {"model": precision, **GREEDY})
    assert first["object"] == "chat.completion"
    assert isinstance(first["id"], str) and first["id"]
    (choice,) = first["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert isinstance(text, str) and text.strip(), f"{precision}: empty answer {first!r}"
    assert choice["finish_reason"] in ("stop", "length")
    usage = first["usage"]
    assert 0 < usage["completion_tokens"] <= GREEDY["max_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    second = _post(base_url, "/chat/completions", {"model": precision, **GREEDY})
    assert second["choices"][0]["message"]["content"] == text


def test_models_endpoint_lists_the_served_file(pair: dict[str, str]) -> None:
    with urllib.request.urlopen(f"{pair['Q4_1']}/models", timeout=10) as r:
        listing = json.loads(r.read())
    assert listing["object"] == "list"
    # llama-cpp-python names the model by its file path, not the alias the client sends.
    assert [m["id"] for m in listing["data"]] == [str(servers.model_file("Q4_1"))]


def test_serve_reports_a_missing_model_file_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    expected = r"nope\.gguf: model file not found.*setup_testbed"
    with pytest.raises(servers.ServerError, match=expected), servers.serve(missing):
        pass


def test_a_server_that_dies_on_start_keeps_its_log_and_names_it(tmp_path: Path) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    not_a_model = tmp_path / "garbage.gguf"
    not_a_model.write_bytes(b"this is not a gguf file")
    expected = r"exited with code .* log kept at "
    with (
        pytest.raises(servers.ServerError, match=expected) as info,
        servers.serve(not_a_model, log_dir=tmp_path / "logs", ready_timeout=60.0),
    ):
        pass
    logs = list((tmp_path / "logs").glob("garbage.*.log"))
    assert len(logs) == 1 and str(logs[0]) in str(info.value)


def test_servers_die_with_a_killed_parent(tmp_path: Path) -> None:
    # A CI timeout SIGKILLs pytest and runs no cleanup; the servers must not outlive it.
    if importlib.util.find_spec("llama_cpp") is None or not servers.model_file("Q4_1").is_file():
        pytest.skip(f"llama_cpp or the Q4_1 model is missing; {SETUP_HINT}")
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(LIVE_DIR)!r})\n"
        "import servers\n"
        "with servers.serve(servers.model_file('Q4_1'), log_dir=servers.Path(sys.argv[1])) as url:\n"
        "    print(url, flush=True)\n"
        "    time.sleep(120)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            url = parent.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), (
                f"no URL from the parent; logs in {tmp_path}"
            )
            urllib.request.urlopen(f"{url}/models", timeout=10).close()
        finally:
            parent.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1).close()
        except OSError:
            return
        time.sleep(0.2)
    pytest.fail(f"server at {url} still answers 10 s after its parent was killed")


def test_cli_serves_a_pair_for_a_command_and_passes_its_exit_code(tmp_path: Path) -> None:
    # How a person (or CI) runs the live gate by hand: serve, run pytest, stop, keep pytest's rc.
    if importlib.util.find_spec("llama_cpp") is None or not all(
        servers.model_file(p).is_file() for p in ("Q4_1", "Q2_K")
    ):
        pytest.skip(f"llama_cpp or the Q4_1/Q2_K models are missing; {SETUP_HINT}")
    child = (
        "import json, os, urllib.request\n"
        "for role in ('BASELINE', 'CANDIDATE'):\n"
        "    url = os.environ[f'PARITY_LIVE_{role}_URL']\n"
        "    with urllib.request.urlopen(url + '/models', timeout=10) as r:\n"
        "        print(role, url, json.loads(r.read())['data'][0]['id'], flush=True)\n"
        "raise SystemExit(7)\n"
    )
    cli = [sys.executable, str(LIVE_DIR / "servers.py"), "Q4_1", "Q2_K"]
    done = subprocess.run(
        [*cli, "--", sys.executable, "-c", child],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 7, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [(role, Path(model).name) for role, _, model in lines] == [
        ("BASELINE", servers.model_file("Q4_1").name),
        ("CANDIDATE", servers.model_file("Q2_K").name),
    ]
    for _, url, _ in lines:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/models", timeout=2).close()
