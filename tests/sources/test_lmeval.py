"""The lm-eval bridge against real local HTTP servers: tasks from local YAML, a built-in task on a
local copy of its data, pairing per document, and the errors that keep a comparison honest."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lmeval_fakes import (
    DATA,
    TokServer,
    adder,
    knows_sums,
    make,
    prompt_text,
    questions,
)
from servers import FakeServer, Faults

from pytest_parity.checks.calibration import check_calibration
from pytest_parity.contract.spec import ContractError
from pytest_parity.sources.lmeval import tasks as lmeval_tasks
from pytest_parity.sources.lmeval.bridge import (
    LmEvalError,
    normalize_lm_eval_options,
    run_lmeval_task,
    validate_lm_eval_options,
)
from pytest_parity.sources.lmeval.pairing import option_confidence, pair_runs

ARITH = {"task": "parity_arith", "include_path": "."}


@pytest.fixture
def servers(fake_servers: Callable[..., FakeServer]) -> Callable[..., FakeServer]:
    return fake_servers


# ----------------------------------------------------------------------------------------------
# generate_until from local YAML


def test_local_generation_task_pairs_every_document_without_the_builtin_index(
    servers: Callable[..., FakeServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the YAML's relative data path must not depend on the cwd
    monkeypatch.setattr(lmeval_tasks, "_BUILTIN", [])
    task, b, c = make(servers(adder()), servers(adder()), ARITH)
    out = run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    assert not lmeval_tasks._BUILTIN  # a user task never pays for indexing ~15k built-ins
    assert list(out) == ["exact_match"]
    items = out["exact_match"]
    assert [it["id"] for it in items] == [str(i) for i in range(12)]
    first_q = questions(DATA / "data" / "arith.jsonl")[0]
    assert items[0]["prompt"] == f"Q: What is {first_q}?\nA:"
    for it in items:
        for side in (it["baseline"], it["candidate"]):
            assert side["score"] == 1.0
            assert side["finish_reason"] == "stop"
            assert (side["category"], side["direction"]) == ("correct", "C")
            assert side["cached"] is False
    assert items[0]["reference"] == str(eval(first_q))


def test_regression_is_found_on_exactly_the_documents_that_regressed(
    servers: Callable[..., FakeServer],
) -> None:
    qs = questions(DATA / "data" / "arith.jsonl")
    task, b, c = make(servers(adder()), servers(adder(wrong={qs[3], qs[7]})), ARITH)
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    lost = [it["id"] for it in items if it["candidate"]["score"] == 0.0]
    assert lost == ["3", "7"]
    assert all(it["baseline"]["score"] == 1.0 for it in items)
    assert items[3]["candidate"]["category"] == "wrong_answer"
    assert items[3]["candidate"]["direction"] == "W"
    assert items[3]["candidate"]["text"].strip() == str(eval(qs[3]) + 1)


def test_several_filters_gate_separately_and_parse_failures_show(
    servers: Callable[..., FakeServer],
) -> None:
    # The candidate answers in a sentence: the strict filter cannot parse it, the flexible one can.
    task, b, c = make(
        servers(adder()),
        servers(adder(verbose=True)),
        {**ARITH, "filter": ["strict", "flexible"], "metrics": ["exact_match"]},
    )
    out = run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    assert list(out) == ["exact_match,strict", "exact_match,flexible"]
    strict, flexible = out["exact_match,strict"], out["exact_match,flexible"]
    assert all(it["candidate"]["score"] == 0.0 and not it["candidate"]["parsed"] for it in strict)
    assert all(it["candidate"]["score"] == 1.0 and it["candidate"]["parsed"] for it in flexible)


def test_classify_hook_sees_the_answer_and_decides_the_category(
    servers: Callable[..., FakeServer],
) -> None:
    seen: list[dict[str, Any]] = []

    def classify(view: Any) -> tuple[str, str]:
        seen.append(dict(view))
        return ("refusal", "A") if view["score"] == 0.0 else ("correct", "C")

    qs = questions(DATA / "data" / "arith.jsonl")
    task, b, c = make(servers(adder()), servers(adder(wrong={qs[0]})), {**ARITH, "limit": 2})
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0, classify=classify)["exact_match"]
    assert len(items) == 2
    assert (items[0]["candidate"]["category"], items[0]["candidate"]["direction"]) == (
        "refusal",
        "A",
    )
    assert set(seen[0]) == {
        "text", "finish_reason", "error", "error_kind", "score", "parsed", "reference", "prompt",
        "task", "item_id", "side", "tool_calls", "custom", "tools",
    }  # fmt: skip
    assert (seen[0]["task"], seen[0]["item_id"], seen[0]["side"]) == ("bench", "0", "baseline")


def test_endpoint_settings_reach_the_server_and_the_benchmark_keeps_its_own(
    servers: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARITY_TEST_KEY", "sk-test-123")
    base, cand = servers(adder()), servers(adder())
    extra = {"api_key_env": "PARITY_TEST_KEY", "params": {"top_p": 0.5, "max_tokens": 300}}
    task, b, c = make(base, cand, {**ARITH, "limit": 3}, b_extra=extra)
    task = replace(task, params={"presence_penalty": 0.25})
    run_lmeval_task(task, b, c, cache_dir=tmp_path, seed=7)
    body = base.received[0]
    assert body["model"] == "m"
    assert body["top_p"] == 0.5  # the endpoint's sampling
    assert body["presence_penalty"] == 0.25  # the contract task's sampling
    assert body["max_tokens"] == 16 and body["stop"] == ["\n"]  # the benchmark's length and stops
    assert body["temperature"] == 0.0
    assert base.headers_seen[0]["Authorization"] == "Bearer sk-test-123"
    assert "Authorization" not in cand.headers_seen[0]
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert written and b"sk-test-123" not in written  # the key never reaches the caches


def test_chat_endpoints_get_the_chat_template_and_system_instruction(
    servers: Callable[..., FakeServer],
) -> None:
    base, cand = servers(adder()), servers(adder())
    opts = {**ARITH, "limit": 2, "system_instruction": "Answer with a number."}
    task, b, c = make(base, cand, opts, b_api="chat", c_api="chat")
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    msgs = base.received[0]["messages"]
    assert msgs[0] == {"role": "system", "content": "Answer with a number."}
    assert msgs[-1]["role"] == "user"
    assert items[0]["prompt"].startswith("system: Answer with a number.\nuser: Q: What is")
    assert all(it["candidate"]["score"] == 1.0 for it in items)


# ----------------------------------------------------------------------------------------------
# pairing errors


def test_different_prompts_on_the_two_stacks_are_an_error_naming_documents(
    servers: Callable[..., FakeServer],
) -> None:
    # The chat candidate gets a chat-templated prompt, the completions baseline plain text.
    task, b, c = make(servers(adder()), servers(adder()), {**ARITH, "limit": 3}, c_api="chat")
    with pytest.raises(LmEvalError) as err:
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("lm-eval task bench: prompts differ between baseline and candidate")
    assert "parity_arith/0, parity_arith/1, parity_arith/2" in msg


def _sample(doc_id: int, doc_hash: str = "d", prompt_hash: str = "p") -> dict[str, Any]:
    return {
        "doc_id": doc_id,
        "filter": "none",
        "metrics": ["acc"],
        "acc": 1.0,
        "doc_hash": doc_hash,
        "prompt_hash": prompt_hash,
        "arguments": [("ctx", " a")],
        "resps": [[(-1.0, True)]],
        "filtered_resps": [(-1.0, True)],
        "target": 0,
    }


def _pair(b: list[dict[str, Any]], c: list[dict[str, Any]]) -> Any:
    def error(problem: str, hint: str) -> Exception:
        return LmEvalError(f"{problem} (hint: {hint})")

    return pair_runs(
        "t", {}, "multiple_choice", ({"x": b}, {}), ({"x": c}, {}), classify=None, error=error
    )


def test_changed_documents_and_missing_documents_are_named() -> None:
    with pytest.raises(LmEvalError, match=r"documents differ .* documents x/1 \("):
        _pair([_sample(0), _sample(1)], [_sample(0), _sample(1, doc_hash="other")])
    with pytest.raises(LmEvalError, match=r"documents x/1 ran only on the baseline"):
        _pair([_sample(0), _sample(1)], [_sample(0)])
    out = _pair([_sample(0)], [_sample(0)])
    assert out["acc"][0]["baseline"]["text"] == "a"


def test_a_metric_that_is_not_a_per_document_score_is_refused() -> None:
    bad = {**_sample(0), "acc": 3.5}
    with pytest.raises(LmEvalError, match=r"metric 'acc' is 3.5 for document 0, not a score"):
        _pair([bad], [bad])


# ----------------------------------------------------------------------------------------------
# failures, cache, seeds, event loops


@pytest.mark.parametrize("concurrency", [1, 4], ids=["sequential", "concurrent"])
def test_a_failing_request_is_one_failed_item_and_is_asked_again_on_resume(
    servers: Callable[..., FakeServer], tmp_path: Path, concurrency: int
) -> None:
    qs = questions(DATA / "data" / "arith.jsonl")
    broken = {"on": True}
    good = adder()

    def flaky(body: dict[str, Any]) -> str:
        if broken["on"] and qs[2] in prompt_text(body):
            raise RuntimeError("server fell over")  # aiohttp answers HTTP 500
        return good(body)

    base, cand = servers(adder()), servers(flaky)
    task, b, c = make(base, cand, {**ARITH, "limit": 5})
    b, c = replace(b, max_concurrency=concurrency), replace(c, max_concurrency=concurrency)
    items = run_lmeval_task(task, b, c, cache_dir=tmp_path, seed=0)["exact_match"]
    failed = items[2]["candidate"]
    assert failed["score"] is None and "500" in (failed["error"] or "")
    assert (failed["category"], failed["direction"]) == ("request_error", "X")
    assert [it["candidate"]["score"] for i, it in enumerate(items) if i != 2] == [1.0] * 4

    broken["on"] = False
    n_base, n_cand = len(base.received), len(cand.received)
    again = run_lmeval_task(task, b, c, cache_dir=tmp_path, seed=0)["exact_match"]
    assert len(base.received) == n_base  # everything the baseline answered came from its cache
    assert len(cand.received) == n_cand + 1  # only the failed request is asked again
    assert again[2]["candidate"]["score"] == 1.0 and again[2]["candidate"]["error"] is None
    assert again[0]["baseline"]["cached"] is True
    assert again[0]["baseline"]["finish_reason"] == "stop"  # the cache keeps the whole answer
    assert again[2]["candidate"]["cached"] is False
    assert json.loads(json.dumps(again)) == again  # plain builtins: they cross xdist unchanged
    assert type(items[2]["candidate"]["text"]) is str
    n_base = len(base.received)
    run_lmeval_task(task, b, c, cache_dir=tmp_path, seed=0, refresh=True)
    assert len(base.received) == n_base + 5  # refresh asks everything again
    # lm-eval's own cache is not used: its key ignores the URL. The endpoint layer's cache is.
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".sqlite3-wal") == [
        "responses.sqlite3",
        *(["responses.sqlite3-shm"] if (tmp_path / "responses.sqlite3-shm").exists() else []),
    ]


def test_lm_eval_seeding_does_not_leak_into_the_test_process(
    servers: Callable[..., FakeServer],
) -> None:
    import numpy as np

    task, b, c = make(servers(adder()), servers(adder()), {**ARITH, "limit": 2})
    random.seed(99)
    np.random.seed(99)
    expected = (random.random(), float(np.random.random()))
    random.seed(99)
    np.random.seed(99)
    run_lmeval_task(task, b, c, cache_dir=None, seed=1234)
    assert (random.random(), float(np.random.random())) == expected


def test_runs_inside_a_running_event_loop_with_concurrent_requests(
    servers: Callable[..., FakeServer],
) -> None:
    task, b, c = make(servers(adder()), servers(adder()), {**ARITH, "limit": 6})
    b, c = replace(b, max_concurrency=3), replace(c, max_concurrency=3)

    async def main() -> Any:
        return run_lmeval_task(task, b, c, cache_dir=None, seed=0)

    items = asyncio.run(main())["exact_match"]
    assert [it["candidate"]["score"] for it in items] == [1.0] * 6
    assert all(it["candidate"]["finish_reason"] == "stop" for it in items)


# ----------------------------------------------------------------------------------------------
# a built-in task on a local copy of its data


def gsm8k_answer(wrong: int | None = None) -> Callable[[dict[str, Any]], str]:
    def answer(body: dict[str, Any]) -> str:
        q = prompt_text(body).rsplit("Question:", 1)[-1]
        a, b = map(int, re.findall(r"has (\d+) apples and buys (\d+)", q)[0])
        total = a + b + (1 if wrong is not None and a == wrong else 0)
        return f" They have {a} + {b} = {total} apples.\n#### {total}"

    return answer


def test_builtin_gsm8k_runs_on_a_local_copy_of_its_data(
    servers: Callable[..., FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lmeval_tasks, "_BUILTIN", [])
    first = json.loads((DATA / "gsm8k_test.jsonl").read_text().splitlines()[1])
    a = int(re.findall(r"has (\d+) apples", first["question"])[0])
    opts = {
        "task": "gsm8k",
        "data_files": {"test": "gsm8k_test.jsonl"},
        "num_fewshot": 0,
        "metrics": ["exact_match"],
        "filter": "strict-match",
    }
    task, b, c = make(servers(gsm8k_answer()), servers(gsm8k_answer(wrong=a)), opts)
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    assert len(items) == 8
    assert items[0]["prompt"].startswith("Question: Ann has")
    assert [it["id"] for it in items if it["candidate"]["score"] == 0.0] == ["1"]
    assert all(it["baseline"]["score"] == 1.0 for it in items)
    assert not lmeval_tasks._BUILTIN  # found in lm-eval's gsm8k/ without indexing 15k tasks


def test_builtin_task_needs_every_split_it_reads() -> None:
    srv = FakeServer()
    opts = {"task": "gsm8k", "data_files": {"test": "gsm8k_test.jsonl"}}  # 5-shot needs train
    task, b, c = make(srv, srv, opts)
    with pytest.raises(LmEvalError, match=r"data_files has no 'train' split .*num_fewshot: 0"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


def test_unknown_task_suggests_the_closest_name_and_indexes_builtins_once() -> None:
    srv = FakeServer()
    task, b, c = make(srv, srv, {"task": "parity_arth", "include_path": "."})
    with pytest.raises(LmEvalError, match=r"no lm-eval task named 'parity_arth'; did you mean"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    index = lmeval_tasks._BUILTIN[0]  # a user's name could be a misspelt built-in: all are known
    task, b, c = make(srv, srv, {"task": "gsm8k_typo"})
    with pytest.raises(LmEvalError, match=r"no lm-eval task named 'gsm8k_typo'; did you mean"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    assert len(lmeval_tasks._BUILTIN) == 1 and lmeval_tasks._BUILTIN[0] is index


# ----------------------------------------------------------------------------------------------
# multiple choice: loglikelihood through the servers' tokenizer


@pytest.fixture
def tok_servers() -> Iterator[Callable[..., TokServer]]:
    started: list[TokServer] = []

    def start(prefer: Callable[[str], bool], shift: int = 0, fail_on: str = "") -> TokServer:
        srv = TokServer(prefer, shift, fail_on)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


CHOICE = {"task": "parity_choice", "include_path": ".", "tokenizer": "remote"}


def test_multiple_choice_task_scores_by_loglikelihood_through_the_server_tokenizer(
    tok_servers: Callable[..., TokServer],
) -> None:
    rows = [json.loads(line) for line in (DATA / "data" / "choice.jsonl").read_text().splitlines()]
    base, cand = tok_servers(knows_sums()), tok_servers(knows_sums(rows[4]["question"]))
    task, b, c = make(base, cand, CHOICE)
    out = run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    assert list(out) == ["acc", "acc_norm"]
    items = out["acc"]
    assert len(items) == 10
    assert [it["id"] for it in items if it["candidate"]["score"] == 0.0] == ["4"]
    right = rows[0]["choices"][rows[0]["label"]]
    assert items[0]["reference"] == right and items[0]["baseline"]["text"] == right
    q, options = rows[0]["question"], rows[0]["choices"]
    assert items[0]["prompt"] == f"Q: What is {q}?\nA:" + "".join(
        f"\n  ({i}) {o}" for i, o in enumerate(options)
    )
    assert all(it["baseline"]["score"] == 1.0 for it in items)
    assert items[0]["baseline"]["latency_s"] > 0


def test_multiple_choice_confidence_is_the_chosen_options_share_of_the_loglikelihoods() -> None:
    two = {**_sample(0), "arguments": [("ctx", " a"), ("ctx", " b")]}
    two["resps"] = [[(math.log(0.6), False)], [(math.log(0.2), True)]]
    facts = _pair([two], [two])["acc"][0]["baseline"]["facts"]
    assert facts["confidence_method"] == "loglikelihood"
    assert facts["confidence"] == pytest.approx(0.75)  # 0.6 / (0.6 + 0.2)
    assert option_confidence([-1000.0, -1001.0], 0)["confidence"] == pytest.approx(
        1 / (1 + math.exp(-1))
    )  # no underflow far from zero


def test_calibration_check_reads_lm_eval_loglikelihoods_directly(
    tok_servers: Callable[..., TokServer],
) -> None:
    rows = [json.loads(line) for line in (DATA / "data" / "choice.jsonl").read_text().splitlines()]
    base, cand = tok_servers(knows_sums()), tok_servers(knows_sums(rows[4]["question"]))
    task, b, c = make(base, cand, CHOICE)
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["acc"]
    for it in items:
        for side in ("baseline", "candidate"):
            f = it[side]["facts"]
            assert f["confidence_method"] == "loglikelihood" and 0.25 <= f["confidence"] <= 1
    result = check_calibration(task, items, {}, 0)
    assert result["status"] != "ERROR", result["reasons"]
    nums = result["numbers"]
    assert nums["confidence_method"] == "loglikelihood" and nums["n_paired"] == len(items)
    assert nums["accuracy_candidate"] == pytest.approx(0.9)


def test_multiple_choice_needs_one_tokenizer_on_both_stacks(
    tok_servers: Callable[..., TokServer],
) -> None:
    task, b, c = make(tok_servers(knows_sums()), tok_servers(knows_sums(), shift=1), CHOICE)
    with pytest.raises(LmEvalError, match="baseline and candidate tokenize differently"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


def test_multiple_choice_refuses_chat_endpoints_and_a_missing_tokenizer(
    tok_servers: Callable[..., TokServer],
) -> None:
    srv = tok_servers(knows_sums())
    task, b, c = make(srv, srv, CHOICE, c_api="chat")
    with pytest.raises(LmEvalError, match=r"candidate's chat API .*set candidate.api: completions"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    task, b, c = make(srv, srv, {"task": "parity_choice", "include_path": "."})
    with pytest.raises(LmEvalError, match=r"needs the servers' tokenizer .*tokenizer: remote"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


def test_long_contexts_are_an_error_never_cut_silently(
    tok_servers: Callable[..., TokServer],
) -> None:
    srv = tok_servers(knows_sums())
    task, b, c = make(srv, srv, {**CHOICE, "max_length": 16, "limit": 2})
    with pytest.raises(LmEvalError, match=r"exceeds max_length 16; lm-eval would cut it"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


# ----------------------------------------------------------------------------------------------
# contract options


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (
            {"task": "gsm8k", "num_fewshots": 0},
            "c.yaml: tasks[0].lm_eval.num_fewshots: unknown key (hint: did you mean 'num_fewshot'?)",
        ),
        (
            {"task": "gsm8k", "limit": 0},
            "c.yaml: tasks[0].lm_eval.limit: expected a whole number >= 1, got 0",
        ),
        (
            {"task": "gsm8k", "limit": 5, "samples": [1, 2]},
            "c.yaml: tasks[0].lm_eval.samples: samples and limit exclude each other"
            " (hint: keep one of them)",
        ),
        (
            {"task": "gsm8k", "metrics": []},
            "c.yaml: tasks[0].lm_eval.metrics: expected a list of metric names"
            " (hint: write metrics: [exact_match])",
        ),
        (
            {"task": ""},
            "c.yaml: tasks[0].lm_eval.task: expected an lm-eval task name (hint: write task: gsm8k)",
        ),
        (
            {"task": "gsm8k", "apply_chat_template": "yes"},
            "c.yaml: tasks[0].lm_eval.apply_chat_template: expected true or false, got 'yes'"
            " (hint: write true or false)",
        ),
    ],
)
def test_option_errors_are_one_line(opts: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError) as err:
        validate_lm_eval_options(opts, "tasks[0].lm_eval", "c.yaml")
    assert str(err.value) == message


def test_paths_resolve_against_the_contract_and_must_exist(tmp_path: Path) -> None:
    out = normalize_lm_eval_options(
        {"task": "gsm8k", "include_path": ".", "data_files": {"test": "gsm8k_test.jsonl"}},
        "tasks[0].lm_eval",
        "c.yaml",
        DATA,
    )
    assert out["include_path"] == [str(DATA.resolve())]
    assert out["data_files"] == {"test": str((DATA / "gsm8k_test.jsonl").resolve())}
    with pytest.raises(ContractError, match=r"lm_eval.tokenizer: no tokenizer directory at .*org"):
        normalize_lm_eval_options(
            {"task": "mmlu", "tokenizer": "org/model"}, "tasks[0].lm_eval", "c.yaml", tmp_path
        )
    with pytest.raises(ContractError, match=r"lm_eval.data_files.test: file not found: .*nope"):
        normalize_lm_eval_options(
            {"task": "gsm8k", "data_files": {"test": "nope.jsonl"}}, "tasks[0].lm_eval", "c.yaml",
            tmp_path,
        )  # fmt: skip


def test_a_group_pairs_within_each_member_task(servers: Callable[..., FakeServer]) -> None:
    qs = questions(DATA / "data" / "arith.jsonl")
    base, cand = servers(adder()), servers(adder(wrong={qs[1]}))
    task, b, c = make(base, cand, {"task": "parity_group", "include_path": ".", "limit": 3})
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    ids = [it["id"] for it in items]
    assert ids == [f"parity_arith/{i}" for i in range(3)] + [
        f"parity_arith_words/{i}" for i in range(3)
    ]
    assert [it["cluster"] for it in items] == ["parity_arith"] * 3 + ["parity_arith_words"] * 3
    # the member task is the items' metadata too, for the exploratory slices (slice_by: subtask)
    assert [it["metadata"] for it in items] == [{"subtask": "parity_arith"}] * 3 + [
        {"subtask": "parity_arith_words"}
    ] * 3
    lost = [it["id"] for it in items if it["candidate"]["score"] == 0.0]
    assert lost == ["parity_arith/1", "parity_arith_words/1"]
    words = [b for b in base.received if b["prompt"].startswith("Question:")]
    assert len(words) == 3 and all(b["max_tokens"] == 8 for b in words)  # the group's override


def test_a_task_path_is_where_its_yaml_lives(
    servers: Callable[..., FakeServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task, b, c = make(servers(adder()), servers(adder()), {"task": "parity_arith", "limit": 2})
    task = replace(task, path=DATA / "arith.yaml")
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    assert [it["baseline"]["score"] for it in items] == [1.0, 1.0]


@pytest.mark.parametrize("concurrency", [1, 4], ids=["sequential", "concurrent"])
def test_a_failing_loglikelihood_request_fails_only_its_document(
    tok_servers: Callable[..., TokServer], concurrency: int
) -> None:
    rows = [json.loads(line) for line in (DATA / "data" / "choice.jsonl").read_text().splitlines()]
    cand = tok_servers(knows_sums(), fail_on=f"What is {rows[1]['question']}?")
    task, b, c = make(tok_servers(knows_sums()), cand, {**CHOICE, "limit": 3})
    b, c = replace(b, max_concurrency=concurrency), replace(c, max_concurrency=concurrency)
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["acc"]
    assert [it["candidate"]["score"] for it in items] == [1.0, None, 1.0]
    assert "503" in (items[1]["candidate"]["error"] or "")
    assert items[1]["candidate"]["direction"] == "X"
    assert items[1]["baseline"]["score"] == 1.0


def test_chat_template_and_api_must_agree() -> None:
    srv = FakeServer()
    task, b, c = make(srv, srv, {**ARITH, "apply_chat_template": True})
    with pytest.raises(LmEvalError, match=r"apply_chat_template on the baseline's completions API"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    task, b, c = make(srv, srv, {**ARITH, "apply_chat_template": False}, b_api="chat")
    with pytest.raises(LmEvalError, match=r"the baseline uses the chat API, which needs chat"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


def test_the_gate_runs_an_lm_eval_task_end_to_end(
    pytester: pytest.Pytester, servers: Callable[..., FakeServer]
) -> None:
    qs = questions(DATA / "data" / "arith.jsonl")
    old, new = servers(adder()), servers(adder(wrong=set(qs[:6])))
    path = pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: vllm, base_url: "{old.base_url}", model: test-model, api: completions}}
        candidate: {{kind: vllm, base_url: "{new.base_url}", model: test-model, api: completions}}
        tasks:
          - name: sums
            source: lm-eval
            path: {DATA}
            min_items: 10
            lm_eval: {{task: parity_arith, filter: flexible}}
        """,
    )
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    assert result.ret == 1
    out = result.stdout.str()
    assert "test_parity[sums-delta]" in out and "OVERALL: FAIL" in out
    row = next(line for line in result.outlines if line.startswith("sums "))
    assert "100.0" in row and "50.0" in row  # 12 documents, 6 lost on the candidate


def test_samples_runs_chosen_documents_under_their_own_ids(
    servers: Callable[..., FakeServer],
) -> None:
    base = servers(adder())
    task, b, c = make(base, servers(adder()), {**ARITH, "samples": [2, 5, 9]})
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    assert [it["id"] for it in items] == ["2", "5", "9"]
    assert len(base.received) == 3


@pytest.mark.parametrize("concurrency", [1, 4], ids=["sequential", "concurrent"])
def test_a_malformed_response_is_a_failed_item_not_a_crash(
    servers: Callable[..., FakeServer], concurrency: int
) -> None:
    views: list[dict[str, Any]] = []

    def classify(view: Any) -> tuple[str, str]:
        views.append(dict(view))
        return ("x", "X") if view["error"] else ("correct", "C")

    empty = Faults(rate=1.0, kinds=("empty",), max_per_request=100)
    task, b, c = make(servers(adder()), servers(adder(), faults=empty), {**ARITH, "limit": 3})
    b, c = replace(b, max_concurrency=concurrency), replace(c, max_concurrency=concurrency)
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0, classify=classify)["exact_match"]
    assert [it["candidate"]["score"] for it in items] == [None, None, None]
    assert all("the reply has no choices" in (it["candidate"]["error"] or "") for it in items)
    assert {v["error_kind"] for v in views if v["side"] == "candidate"} == {"malformed"}
    assert [it["baseline"]["score"] for it in items] == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------------------------
# a real server nobody here wrote


@pytest.mark.live_model
def test_real_llama_cpp_pair_runs_deterministically_through_lm_eval() -> None:
    import importlib.util
    import sys

    live = Path(__file__).resolve().parents[2] / "example_suite" / "live"
    hint = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {hint}")
    spec = importlib.util.spec_from_file_location("parity_live_servers", live / "servers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    models = {p: mod.model_file(p) for p in ("F32", "Q2_K")}
    if not all(m.is_file() for m in models.values()):
        pytest.skip(f"model files missing; {hint}")
    with mod.serve_many(models) as urls:

        class Url:
            def __init__(self, url: str) -> None:
                self.base_url = url

        old, new = Url(urls["F32"]), Url(urls["Q2_K"])
        one = {"kind": "llama-cpp", "max_concurrency": 1}
        opts = {**ARITH, "filter": "flexible"}
        task, b, c = make(
            old,
            new,
            opts,
            b_api="chat",
            c_api="chat",
            b_extra=one,
            c_extra=one,
        )
        first = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
        again = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["exact_match"]
    assert len(first) == 12
    for it in first:
        for side in (it["baseline"], it["candidate"]):
            assert side["error"] is None and side["text"].strip()
            assert side["finish_reason"] in ("stop", "length")
            assert side["score"] in (0.0, 1.0)

    def answers(items: list[Any]) -> list[tuple[str, str, Any, Any]]:
        return [
            (it["id"], side, it[side]["text"], it[side]["score"])
            for it in items
            for side in ("baseline", "candidate")
        ]

    assert answers(first) == answers(again)  # greedy decoding on a real server: same every run


def test_a_task_whose_helpers_need_a_missing_package_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "needs.yaml").write_text(
        "task: parity_needs\ndataset_path: json\noutput_type: generate_until\n"
        "doc_to_text: !function helpers.text\ndoc_to_target: answer\n"
    )
    (tmp_path / "helpers.py").write_text("import parity_no_such_package\n")
    srv = FakeServer()
    task, b, c = make(srv, srv, {"task": "parity_needs", "include_path": str(tmp_path)})
    with pytest.raises(LmEvalError, match=r"'parity_needs' needs 'parity_no_such_package'.*pip"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
