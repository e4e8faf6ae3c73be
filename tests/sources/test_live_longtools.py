"""Long-context items and tool-use episodes against the real llama.cpp pair (SmolLM2 F32 vs
Q4_1, llama-cpp-python's server): its own tokenizer fits the items, and its function-calling
chat format (``--chat_format chatml-function-calling``) answers the tools.

Kept short on purpose (one 2k item): on 2 CPU cores with one thread per server, one prompt of
1k tokens took 27-29 s, 2k 30-44 s (F32, Q4_1) and 4k 177 s (F32); with other test beds sharing
the cores, this test's 2k item took 200-220 s. The 8k window SmolLM2 has would take several
minutes an item, so the live test stays at 2k and the window error is tested at 8k. What the
tiny model does with tools is recorded, not required: the test pins the plumbing (every turn
answered, facts and categories present, nothing an infrastructure error).

Needs ``bash example_suite/live/setup_testbed.sh`` first; skips (with the command) otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_parity import load_contract
from pytest_parity.runner import Runner, TaskRunError

pytestmark = [pytest.mark.live_model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "example_suite" / "live"
SETUP_HINT = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"
N_CTX = 4096


def _servers() -> Any:
    name = "parity_live_servers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, LIVE / "servers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _serve(*extra: str) -> Iterator[dict[str, str]]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    servers = _servers()
    files = {p: servers.model_file(p) for p in ("F32", "Q4_1")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        pytest.skip(f"model files missing: {', '.join(missing)}; {SETUP_HINT}")
    with servers.serve_many(files, extra_args=["--n_ctx", str(N_CTX), *extra]) as urls:
        yield urls


@pytest.fixture(scope="module")
def pair() -> Iterator[dict[str, str]]:
    """The pair with the model's own chat template (the long-context items)."""
    yield from _serve()


@pytest.fixture
def tool_pair() -> Iterator[dict[str, str]]:
    """The pair with llama-cpp-python's function-calling chat format (tool calls)."""
    yield from _serve("--chat_format", "chatml-function-calling")


def write_contract(tmp_path: Path, urls: dict[str, str], task: str) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(
        f"baseline: {{kind: llama-cpp, base_url: '{urls['F32']}', model: m}}\n"
        f"candidate: {{kind: llama-cpp, base_url: '{urls['Q4_1']}', model: m}}\n"
        f"tasks:\n  - {task}\n"
    )
    return path


def test_long_context_items_fitted_by_the_servers_tokenizer(
    pair: dict[str, str], tmp_path: Path
) -> None:
    opts = {"tasks": ["niah_single"], "lengths": [2048], "depths": [50], "context_window": N_CTX}
    task = (
        f"{{name: lc, source: long-context, long_context: {json.dumps(opts)},"
        " params: {max_tokens: 24}, min_items: 1}"
    )
    c = load_contract(write_contract(tmp_path, pair, task))
    started = time.monotonic()
    run = Runner(c).run(c.tasks[0])
    seconds = time.monotonic() - started
    assert [r["metadata"]["length"] for r in run.records] == [2048]
    for r in run.records:
        meta = r["metadata"]
        assert meta["token_count"].startswith("server http://127.0.0.1")
        assert meta["length"] * 0.97 - 16 <= meta["context_tokens"] <= meta["length"]
        # The server's own count of the chat prompt: the text plus what the chat template adds
        # (SmolLM2's: 9 tokens, tokenized locally; llama-cpp-python's chatml-function-calling
        # format reported +91 at 1k and +160 at 2k tokens of text).
        served = r["baseline"]["facts"]["prompt_tokens"]
        assert meta["context_tokens"] <= served <= meta["context_tokens"] + 64, served
        for role in ("baseline", "candidate"):
            assert r[role]["error"] is None and r[role]["score"] is not None
    print(
        "\nlong-context on the llama.cpp pair:",
        [
            (
                r["id"],
                r["metadata"]["context_tokens"],
                r["baseline"]["score"],
                r["candidate"]["score"],
            )
            for r in run.records
        ],
        f"{seconds:.0f} s",
    )


def test_a_length_beyond_the_window_is_refused_before_any_request(
    pair: dict[str, str], tmp_path: Path
) -> None:
    opts = {"tasks": ["niah_single"], "lengths": [8192], "context_window": N_CTX}
    task = f"{{name: lc, source: long-context, long_context: {json.dumps(opts)}}}"
    c = load_contract(write_contract(tmp_path, pair, task))
    with pytest.raises(TaskRunError, match=r"length 8,192 tokens .* context window of 4,096"):
        Runner(c).run(c.tasks[0])


def _trips(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # tool_envs, by path
    search = {"type": "function", "function": {"name": "search_flights",
              "description": "Find flights between two cities", "parameters": {"type": "object",
              "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}},
              "required": ["origin", "destination"]}}}  # fmt: skip
    rows = [
        {"id": f"t{i}", "goal": f"Find the flights from {o} to Rome with the search tool.",
         "tools": [search], "environment": {"python": "tool_envs:Travel"},
         "expect": {"answer": n}}
        for i, (o, n) in enumerate((("Paris", "AZ 123"), ("Oslo", "SK 7")))
    ]  # fmt: skip
    (tmp_path / "trips.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


def test_tool_use_through_the_servers_function_calling_format(
    tool_pair: dict[str, str], tmp_path: Path
) -> None:
    _trips(tmp_path)
    task = (
        "{name: trips, source: tool-use, path: trips.jsonl, tool_use: {max_steps: 3},"
        " params: {max_tokens: 64}, min_items: 1}"
    )
    c = load_contract(write_contract(tmp_path, tool_pair, task))
    started = time.monotonic()
    run = Runner(c).run(c.tasks[0])
    seconds = time.monotonic() - started
    assert run.failed == {"baseline": 0, "candidate": 0}
    measured = []
    for r in run.records:
        for role in ("baseline", "candidate"):
            side = r[role]
            assert side["direction"] != "X" and side["facts"]["episode"]
            assert 1 <= side["facts"]["steps"] <= 3
            measured.append((r["id"], role, side["category"], side["facts"]["calls"],
                             side["facts"]["tool_names"]))  # fmt: skip
    print("\ntool use on the llama.cpp pair:", measured, f"{seconds:.0f} s")


def test_forced_tool_calls_run_the_environment_and_are_counted(
    tool_pair: dict[str, str], tmp_path: Path
) -> None:
    """Left to choose (``tool_choice: auto``) SmolLM2 answers in text without a call; forced
    (``tool_choice`` naming the function) it calls, in parallel, every turn: the calls are parsed
    from llama-cpp-python's function-calling format, run in the environment, their results sent
    back, and the repeats counted. Measured when written: 2 parallel calls a turn, 6 calls in 3
    steps, every episode at the step limit (``loop`` where the calls repeat exactly)."""
    _trips(tmp_path)
    forced = "{type: function, function: {name: search_flights}}"
    task = (
        "{name: trips, source: tool-use, path: trips.jsonl, tool_use: {max_steps: 3},"
        f" params: {{max_tokens: 64, temperature: 0, repeat_penalty: 1.0, tool_choice: {forced}}},"
        " min_items: 1}"
    )
    c = load_contract(write_contract(tmp_path, tool_pair, task))
    run = Runner(c).run(c.tasks[0])
    assert run.failed == {"baseline": 0, "candidate": 0}
    for r in run.records:
        for role in ("baseline", "candidate"):
            side = r[role]
            facts = side["facts"]
            assert side["direction"] != "X", side  # never an infrastructure error
            assert facts["calls"] >= 1 and set(facts["tool_names"]) == {"search_flights"}
            assert facts["invalid_calls"] == 0  # the grammar keeps the arguments valid JSON
            assert facts["hit_step_limit"] and side["category"] in ("loop", "step_limit")
            results = [t for t in side["trajectory"] if t["role"] == "tool"]
            assert len(results) == facts["calls"]  # every call ran in the environment
