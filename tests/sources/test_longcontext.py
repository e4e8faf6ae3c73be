"""``source: long-context``: generated items at set lengths, the server's token counts and
window, bad haystacks, and a scripted candidate that only fails at long contexts."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, closed_port

from pytest_parity import load_contract, registry
from pytest_parity.checks.buckets import BucketsCheck
from pytest_parity.contract.spec import ContractError, TaskSpec
from pytest_parity.runner import Runner, TaskRunError
from pytest_parity.sources.base import SourceError
from pytest_parity.sources.longcontext import GENERATORS, LongContextSource, match_all
from pytest_parity.sources.tokens import EstimateCounter


def contract(tmp_path: Path, opts: dict[str, Any], *, base: str | None = None,
             cand: str | None = None, kind: str = "llama-cpp", extra: str = "") -> Path:  # fmt: skip
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    text = (
        f"baseline: {{kind: {kind}, base_url: '{base or dead}', model: m}}\n"
        f"candidate: {{kind: {kind}, base_url: '{cand or dead}', model: m}}\n"
        "tasks:\n"
        f"  - {{name: lc, source: long-context, long_context: {json.dumps(opts)}{extra}}}\n"
    )
    path = tmp_path / "contract.yaml"
    path.write_text(text)
    return path


def prepared(path: Path) -> tuple[LongContextSource, TaskSpec, list[Any]]:
    c = load_contract(path)
    task = c.tasks[0]
    src = LongContextSource()
    src.bind(task, {"baseline": c.baseline, "candidate": c.candidate})
    src.prepare(task)
    return src, task, list(src.items(task))


def reader(wrong: bool = False) -> Any:
    """A model that reads perfectly: it finds the asked key's numbers in the prompt."""

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        question = prompt.rsplit("\n", 1)[-1]
        keys = re.findall(r"[a-z]+-[a-z]+", question.split("numbers for", 1)[-1].split("number for", 1)[-1])  # fmt: skip
        found = [v for k in keys for v in re.findall(rf"for {k} is: (\d+)", prompt)]
        if wrong:
            return "1234567"
        return ", ".join(found)

    return answer


# ----------------------------------------------------------------------------------------------
# generation


def test_items_are_seeded_reproducible_and_fit_their_lengths(tmp_path: Path) -> None:
    opts = {"lengths": [512, 2048], "depths": [0, 50, 100], "tokenizer": "estimate"}
    src, task, items = prepared(contract(tmp_path, opts))
    # 4 niah + vt at 3 depths x 2 lengths, common_words once per length
    assert len(items) == 5 * 3 * 2 + 2
    est = EstimateCounter()
    for it in items:
        n, length = it.metadata["context_tokens"], it.metadata["length"]
        assert n == est.count(it.prompt)
        assert length * 0.97 - 16 <= n <= length, (it.id, n)
        refs = it.metadata["references"]
        assert match_all(it.prompt, refs) == 1.0  # every expected string is in the context
    src2, task2, again = prepared(contract(tmp_path, opts))
    assert [i.prompt for i in again] == [i.prompt for i in items]
    assert src2.digest(task2) == src.digest(task)
    _, task3, other = prepared(contract(tmp_path, {**opts, "seed": 1}))
    assert [i.prompt for i in other] != [i.prompt for i in items]
    assert LongContextSource().digest(task3) != src.digest(task)


def test_needle_depth_is_where_it_was_asked(tmp_path: Path) -> None:
    opts = {"tasks": ["niah_single"], "lengths": [4096], "depths": [0, 50, 100],
            "tokenizer": "estimate"}  # fmt: skip
    _, _, items = prepared(contract(tmp_path, opts))
    for it in items:
        ref = it.metadata["references"][0]
        body = it.prompt.split("\n", 1)[1].rsplit("\n", 1)[0]
        at = body.index(ref) / len(body)
        assert abs(at - it.metadata["depth"] / 100) < 0.05, (it.id, at)


def test_multikey_has_distractors_and_multivalue_asks_all(tmp_path: Path) -> None:
    opts = {"tasks": ["niah_multikey", "niah_multivalue", "variable_tracking", "common_words"],
            "lengths": [4096], "depths": [50], "tokenizer": "estimate"}  # fmt: skip
    _, _, items = prepared(contract(tmp_path, opts))
    by = {it.metadata["generator"]: it for it in items}
    mk = by["niah_multikey"]
    assert mk.prompt.count("One of the special magic numbers for") == 4
    assert len(mk.metadata["references"]) == 1
    assert len(by["niah_multivalue"].metadata["references"]) == 4
    vt = by["variable_tracking"]
    names = vt.metadata["references"]
    assert len(names) == 5 and f"VAR {names[1]} = VAR {names[0]}." in vt.prompt
    cw = by["common_words"]
    counts = {w: cw.prompt.count(f". {w} ") for w in cw.metadata["references"]}
    assert min(counts.values()) >= 25  # 30 repeats from 4k up


def test_customer_documents_as_a_folder_or_jsonl(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    rows = []
    for i in range(40):
        text = " ".join(
            f"Clause {i}.{j} of the agreement binds the lessee to pay on time." for j in range(30)
        )
        (docs / f"d{i:02d}.txt").write_text(text)
        rows.append(json.dumps({"body": text}))
    (tmp_path / "docs.jsonl").write_text("\n".join(rows))
    opts = {"tasks": ["niah_single"], "lengths": [2048], "depths": [50], "tokenizer": "estimate"}
    _, _, from_dir = prepared(contract(tmp_path, {**opts, "haystack": "docs"}))
    assert "binds the lessee" in from_dir[0].prompt
    _, _, from_jsonl = prepared(
        contract(tmp_path, {**opts, "haystack": "docs.jsonl", "text_field": "body"})
    )
    assert "binds the lessee" in from_jsonl[0].prompt
    with pytest.raises(SourceError, match=r"docs.jsonl:1: no string field 'text'"):
        prepared(contract(tmp_path, {**opts, "haystack": "docs.jsonl"}))


def test_a_haystack_too_short_for_the_length_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("A short memo. It says very little. " * 20)
    opts = {"tasks": ["niah_single"], "lengths": [1024, 8192], "haystack": "short.txt",
            "tokenizer": "estimate"}  # fmt: skip
    with pytest.raises(SourceError) as err:
        prepared(contract(tmp_path, opts))
    msg = str(err.value)
    assert "too short for the requested length 8,192" in msg and "short.txt" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"tasks": ["niah"]}, "long_context.tasks[0]: expected one of niah_single"),
        ({"lengths": "4k"}, "long_context.lengths: expected a list of token counts"),
        ({"depths": [150]}, "long_context.depths[0]: expected a number in [0, 100]"),
        ({"haystack": "missing.txt"}, "long_context.haystack: not found"),
        ({"needles": 2}, "long_context.needles: unknown key"),
    ],
)
def test_bad_options_are_contract_errors(
    tmp_path: Path, opts: dict[str, Any], message: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        load_contract(contract(tmp_path, opts))


def test_a_scorer_or_another_sources_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="the long-context source scores its own items"):
        load_contract(contract(tmp_path, {}, extra=", scorer: exact"))
    with pytest.raises(
        ContractError,
        match=re.escape("tasks[0].tool_use: only a task with source: tool-use reads these"),
    ):
        load_contract(contract(tmp_path, {}, extra=", tool_use: {}"))


def test_every_generator_is_reachable_from_the_contract() -> None:
    assert "long-context" in registry.sources
    assert set(GENERATORS) >= {"niah_single", "niah_multikey", "variable_tracking", "common_words"}


# ----------------------------------------------------------------------------------------------
# the server's tokenizer and window, over real HTTP


def test_token_counts_come_from_the_servers_tokenizer(tmp_path: Path) -> None:
    with FakeServer(answer=reader()) as srv:
        opts = {"tasks": ["niah_single"], "lengths": [1000], "depths": [50]}
        _, _, items = prepared(contract(tmp_path, opts, base=srv.base_url, cand=srv.base_url))
        assert srv.tokenized > 1
    words = len(items[0].prompt.split())  # the test server's tokens are words
    assert items[0].metadata["context_tokens"] == words
    assert items[0].metadata["token_count"].startswith("server http://127.0.0.1")
    assert words != EstimateCounter().count(items[0].prompt)


def test_a_length_beyond_the_servers_window_is_an_error_naming_both(tmp_path: Path) -> None:
    with FakeServer(n_ctx=4096) as srv:
        opts = {"tasks": ["niah_single"], "lengths": [2048, 8192], "depths": [50]}
        path = contract(tmp_path, opts, base=srv.base_url, cand=srv.base_url)
        with pytest.raises(SourceError) as err:
            prepared(path)
    msg = str(err.value)
    assert "length 8,192 tokens" in msg and "context window of 4,096 tokens" in msg
    assert "/props default_generation_settings.n_ctx" in msg and "never cut" in msg
    with FakeServer(n_ctx=32768) as srv:  # vLLM reports max_model_len in /v1/models
        path = contract(tmp_path, opts, base=srv.base_url, cand=srv.base_url, kind="vllm",
                        extra="")  # fmt: skip
        _, _, items = prepared(path)
        assert len(items) == 2
        bad = contract(tmp_path, {**opts, "context_window": 6000}, base=srv.base_url,
                       cand=srv.base_url, kind="vllm")  # fmt: skip
        with pytest.raises(SourceError, match="the contract's context_window"):
            prepared(bad)


def test_the_window_error_stops_the_task_before_any_request(tmp_path: Path) -> None:
    with FakeServer(n_ctx=2048) as srv:
        path = contract(tmp_path, {"lengths": [4096]}, base=srv.base_url, cand=srv.base_url)
        c = load_contract(path)
        with pytest.raises(TaskRunError, match="exceeds the baseline endpoint's context window"):
            Runner(c).run(c.tasks[0])
        assert srv.received == []


def test_a_candidate_that_degrades_past_4k_fails_that_bucket_only(tmp_path: Path) -> None:
    def degrading(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        long = len(prompt.split()) > 4096
        flip = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 2 == 0
        return reader(wrong=long and flip)(body)

    with FakeServer(answer=reader()) as old, FakeServer(answer=degrading) as new:
        opts = {"tasks": ["niah_single", "niah_multikey"], "lengths": [1024, 2048, 3072, 6144],
                "depths": [0, 25, 50, 75, 100], "samples": 3}  # fmt: skip
        # checks: {buckets: {edges: [4096]}} once the integrator registers the check
        path = contract(tmp_path, opts, base=old.base_url, cand=new.base_url)
        c = load_contract(path)
        task = c.tasks[0]
        run = Runner(c).run(task)
    assert len(run.records) == 120
    assert run.data_digest is not None
    base_scores = [r["baseline"]["score"] for r in run.records]
    assert base_scores == [1.0] * 120
    from dataclasses import replace
    from types import MappingProxyType

    from pytest_parity.contract.rules import _V

    opts_b = BucketsCheck().options({"edges": [4096], "tolerance": 0.1}, "w", _V("c"), {})
    task_b = replace(task, checks=MappingProxyType({"buckets": opts_b}))
    out = {r["name"]: r["status"] for r in BucketsCheck().evaluate(task_b, run.records, 0)}
    assert out == {"buckets:0-4k": "PASS", "buckets:4k+": "FAIL", "buckets:trend": "FAIL"}


def test_servers_without_a_tokenizer_get_the_documented_estimate(tmp_path: Path) -> None:
    with FakeServer() as srv:
        opts = {"tasks": ["niah_single"], "lengths": [1000], "depths": [50]}
        path = contract(tmp_path, opts, base=srv.base_url, cand=srv.base_url, kind="openai")
        _, _, items = prepared(path)
        assert srv.tokenized == 0
    meta = items[0].metadata
    assert meta["token_count"] == "estimate"
    assert "no endpoint of a kind that tokenizes" in meta["token_count_note"]
    assert meta["context_tokens"] == EstimateCounter().count(items[0].prompt)


def test_the_gate_refuses_a_length_beyond_the_window_before_it_starts(
    pytester: pytest.Pytester,
) -> None:
    with FakeServer(n_ctx=2048) as srv:
        path = contract(pytester.path, {"lengths": [4096]}, base=srv.base_url, cand=srv.base_url)
        result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
        assert srv.received == []
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "length 4,096 tokens" in err and "context window of 2,048 tokens" in err
