"""``bucket_by: context_tokens`` on an ordinary golden task (issue 16 item 1a): the task key is
the buckets check written short, and the items' lengths are counted by the server's tokenizer
(or the documented estimate) as they stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import livebed
import pytest
from servers import FakeServer

from pytest_parity import load_contract
from pytest_parity.contract.spec import ContractError
from pytest_parity.runner import Runner
from pytest_parity.sources.tokens import EstimateCounter

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def golden(tmp_path: Path, n: int = 160) -> Path:
    """Half the prompts short (3-30 words), half long (200-400 words); each asks for its id."""
    path = tmp_path / "golden.jsonl"
    with path.open("w") as fh:
        for i in range(n):
            words = 3 + i % 28 if i % 2 == 0 else 200 + (i * 7) % 200
            text = " ".join(WORDS[j % len(WORDS)] for j in range(words))
            fh.write(json.dumps({"id": f"q{i}", "prompt": f"{text} ANSWER q{i}",
                                 "reference": f"q{i}"}) + "\n")  # fmt: skip
    return path


def contract(
    tmp_path: Path, base: str, cand: str, task_extra: str, kind: str = "llama-cpp"
) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(
        f"baseline: {{kind: {kind}, base_url: '{base}', model: m}}\n"
        f"candidate: {{kind: {kind}, base_url: '{cand}', model: m}}\n"
        f"tasks:\n  - {{name: g, path: {golden(tmp_path)}, scorer: contains{task_extra}}}\n"
    )
    return path


def answer_id(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"].rsplit(" ", 1)[-1]


def forgets_long(body: dict[str, Any]) -> str:
    """Right on short prompts; wrong on every other prompt above 100 words."""
    prompt = body["messages"][-1]["content"]
    long = len(prompt.split()) > 100
    return "nothing" if long and int(prompt.rsplit("q", 1)[-1]) % 4 == 1 else answer_id(body)


def test_bucket_by_is_the_buckets_check_written_short(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/v1"
    short = load_contract(contract(tmp_path, dead, dead, ", bucket_by: context_tokens"))
    long_form = load_contract(
        contract(tmp_path, dead, dead, ", checks: {buckets: {by: context_tokens}}")
    )
    assert short.tasks[0].checks["buckets"] == long_form.tasks[0].checks["buckets"]
    assert short.tasks[0].checks["buckets"]["by"] == "context_tokens"
    # edges and tolerance still come from checks.buckets; a numeric metadata field works too
    both = load_contract(contract(
        tmp_path, dead, dead, ", bucket_by: n_words, checks: {buckets: {edges: [100], tolerance: 0.1}}"
    ))  # fmt: skip
    assert dict(both.tasks[0].checks["buckets"]) == {
        "by": "n_words", "edges": (100.0,), "tolerance": 0.1, "trend": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (", bucket_by: 3", "tasks[0].bucket_by: expected a non-empty string, got 3"),
        (", bucket_by: a, checks: {buckets: {by: b}}", "bucket_by: a contradicts checks.buckets.by: b"),
        (", bucket_by: a, checks: {buckets: false}", "bucket_by is set but checks.buckets is false"),
        (", bucket_by: a, checks: {buckets: {edges: [0]}}", "buckets.edges[0]: expected a positive"),
    ],
)  # fmt: skip
def test_bad_bucket_by_is_one_line_naming_the_field(
    tmp_path: Path, extra: str, message: str
) -> None:
    dead = "http://127.0.0.1:9/v1"
    with pytest.raises(ContractError) as err:
        load_contract(contract(tmp_path, dead, dead, extra))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_golden_task_is_counted_by_the_servers_tokenizer_and_fails_only_long(
    tmp_path: Path,
) -> None:
    with FakeServer(answer=answer_id) as old, FakeServer(answer=forgets_long) as new:
        extra = ", bucket_by: context_tokens, checks: {buckets: {edges: [100], tolerance: 0.05}}"
        c = load_contract(contract(tmp_path, old.base_url, new.base_url, extra))
        run = Runner(c).run(c.tasks[0])
        # one /tokenize per item (plus the probe), asked of the baseline only
        assert old.tokenized == 161 and new.tokenized == 0
    from pytest_parity.checks.buckets import BucketsCheck

    for r in run.records:
        meta = r["metadata"] or {}
        assert meta["context_tokens"] == len(r["prompt"].split())  # the server's tokens: words
        assert meta["token_count"] == f"server {old.root}"
    assert f"context_tokens of 160 items counted by server {old.root}" in run.notes
    out = {r["name"]: r["status"] for r in BucketsCheck().evaluate(c.tasks[0], run.records, 0)}
    assert out == {"buckets:0-100": "PASS", "buckets:100+": "FAIL", "buckets:trend": "FAIL"}


def test_servers_without_a_tokenizer_get_the_estimate_and_say_so(tmp_path: Path) -> None:
    with FakeServer(answer=answer_id) as srv:
        c = load_contract(contract(tmp_path, srv.base_url, srv.base_url,
                                   ", bucket_by: context_tokens", kind="openai"))  # fmt: skip
        run = Runner(c).run(c.tasks[0])
        assert srv.tokenized == 0
    meta = run.records[0]["metadata"] or {}
    assert meta["token_count"] == "estimate"
    assert meta["context_tokens"] == EstimateCounter().count(run.records[0]["prompt"])
    assert any("token counts are estimated (1 token per 3 bytes)" in n for n in run.notes)


def test_an_items_own_count_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "x ANSWER a", "reference": "a",
                                "metadata": {"context_tokens": 5000}}) + "\n")  # fmt: skip
    with FakeServer(answer=answer_id) as srv:
        spec = f"{{kind: llama-cpp, base_url: '{srv.base_url}', model: m}}"
        cpath = tmp_path / "c.yaml"
        cpath.write_text(f"baseline: {spec}\ncandidate: {spec}\ntasks:\n"
                         f"  - {{name: g, path: {path}, scorer: contains, bucket_by: context_tokens}}\n")  # fmt: skip
        c = load_contract(cpath)
        run = Runner(c).run(c.tasks[0])
    assert (run.records[0]["metadata"] or {})["context_tokens"] == 5000
    assert not any("counted by" in n for n in run.notes)


# ----------------------------------------------------------------------------------------------
# live: llama-cpp-python's server counts (its /extras/tokenize; llama.cpp's own server: /tokenize)

pair = livebed.pair_fixture("F32", "Q4_1")


@pytest.mark.live_model
def test_the_real_servers_tokenizer_counts_a_golden_tasks_items(
    tmp_path: Path, pair: dict[str, str]
) -> None:
    import urllib.request

    path = tmp_path / "golden.jsonl"
    prompts = ["What is 2 + 3?", "Name the capital of France.",
               "Ünïcödé and emoji 🙂 count differently from bytes: how many tokens is this?",
               " ".join(WORDS * 12) + " Which word comes first?"]  # fmt: skip
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p, "reference": "x"}) + "\n"
                            for i, p in enumerate(prompts)))  # fmt: skip
    cpath = tmp_path / "c.yaml"
    params = "{max_tokens: 2, temperature: 0, repeat_penalty: 1.0}"
    cpath.write_text(
        f"baseline: {{kind: llama-cpp, base_url: '{pair['F32']}', model: m}}\n"
        f"candidate: {{kind: llama-cpp, base_url: '{pair['Q4_1']}', model: m}}\n"
        f"tasks:\n  - {{name: g, path: {path}, scorer: contains, bucket_by: context_tokens,"
        f" params: {params}}}\n"
    )
    c = load_contract(cpath)
    run = Runner(c).run(c.tasks[0])
    root = pair["F32"].removesuffix("/v1")
    for r, prompt in zip(run.records, prompts, strict=True):
        req = urllib.request.Request(
            root + "/extras/tokenize",
            data=json.dumps({"input": prompt}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            want = len(json.loads(resp.read())["tokens"])
        meta = r["metadata"] or {}
        assert meta["token_count"] == f"server {root}"
        assert meta["context_tokens"] == want
    counts = [(r["metadata"] or {})["context_tokens"] for r in run.records]
    assert counts != [EstimateCounter().count(p) for p in prompts]  # not the estimate
