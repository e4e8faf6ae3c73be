"""Recording the baseline and replaying it: provenance, pairing, mismatches, secrets, file errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from servers import FakeServer

from pytest_parity.contract.spec import EndpointSpec
from pytest_parity.endpoints.http import Request, Response, open_endpoint
from pytest_parity.endpoints.recording import Recorder, Recording, RecordingError

DIGEST = "c0ffee" * 10


def live(base_url: str, **kw: Any) -> EndpointSpec:
    base: dict[str, Any] = {
        "role": "baseline",
        "kind": "vllm",
        "base_url": base_url,
        "model": "test-model",
        "params": MappingProxyType({"temperature": 0.0, "max_tokens": 16}),
        "max_retries": 0,
    }
    base.update(kw)
    return EndpointSpec(**base)


def replay(path: Path) -> EndpointSpec:
    return EndpointSpec(
        role="baseline", kind="replay", base_url="", model="test-model", recording=path
    )


def ask(i: int | str, text: str | None = None) -> Request:
    content = text if text is not None else f"question {i}"
    return Request(str(i), messages=({"role": "user", "content": content},))


def run(
    s: EndpointSpec, requests: list[Request], recorder: Recorder | None = None
) -> tuple[list[Response], dict[str, Any]]:
    async def go() -> tuple[list[Response], dict[str, Any]]:
        ep = open_endpoint(s, recorder=recorder)
        try:
            out = list(await asyncio.gather(*(ep.complete(r) for r in requests)))
            return out, await ep.describe()
        finally:
            await ep.aclose()

    return asyncio.run(go())


def record(path: Path, base_url: str, n: int = 4, **kw: Any) -> list[Response]:
    rec = Recorder(path, contract_digest=DIGEST, truncate=True)
    try:
        out, _ = run(live(base_url, **kw), [ask(i) for i in range(n)], rec)
    finally:
        rec.close()
    return out


def test_recorded_baseline_replays_without_the_server(tmp_path: Path) -> None:
    path = tmp_path / "baseline.jsonl"
    with FakeServer(answer=lambda b: b["messages"][0]["content"].upper()) as srv:
        recorded = record(path, srv.base_url)
        sent = len(srv.received)
    out, described = run(replay(path), [ask(i) for i in range(4)])
    assert sent == 4
    assert (
        [r.text for r in out] == [r.text for r in recorded] == [f"QUESTION {i}" for i in range(4)]
    )
    assert [r.finish_reason for r in out] == ["stop"] * 4 and all(r.ok for r in out)
    assert described["engine"]["recorded_model"] == "test-model"
    assert described["engine"]["version"] == "0.0.1-test"


def test_header_carries_provenance(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    with FakeServer() as srv:
        record(path, srv.base_url, 1)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["type"] == "header" and header["contract_digest"] == DIGEST
    assert header["model"] == "test-model" and header["kind"] == "vllm"
    assert header["engine"]["version"] == "0.0.1-test"
    assert header["date"].startswith("20") and header["date"].endswith("+00:00")


def test_missing_item_and_changed_prompt_give_one_line_errors_naming_the_item(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.jsonl"
    with FakeServer() as srv:
        record(path, srv.base_url, 2)
    out, _ = run(replay(path), [ask(0), ask(1, "an edited question"), ask("q99")])
    assert out[0].ok
    assert out[1].error_kind == "replay" and out[1].error is not None
    assert "item '1' changed since it was recorded" in out[1].error
    assert out[2].error is not None and "no recorded answer for item 'q99'" in out[2].error
    for r in out[1:]:
        assert r.error is not None and "\n" not in r.error and "--parity-record" in r.error
        assert r.text == ""


def test_failed_requests_are_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    with FakeServer(require_key="nope") as srv:
        out = record(path, srv.base_url, 3)
    assert not any(r.ok for r in out)
    kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert "response" not in kinds


def test_api_key_never_reaches_the_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-PLANTED-record-5512"
    monkeypatch.setenv("REC_KEY", key)
    path = tmp_path / "b.jsonl"
    with FakeServer(require_key=key) as srv:
        out = record(path, srv.base_url, 3, api_key_env="REC_KEY")
    assert all(r.ok for r in out)
    assert key not in path.read_text()


def test_several_workers_append_to_one_recording(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    with FakeServer() as srv:
        for part in (range(0, 3), range(3, 6)):  # two processes' recorders, same file
            rec = Recorder(path, contract_digest=DIGEST)
            run(live(srv.base_url), [ask(i) for i in part], rec)
            rec.close()
    loaded = Recording.load(path)
    assert len(loaded) == 6
    assert sum(1 for line in path.read_text().splitlines() if '"header"' in line) == 2


def test_recordings_from_different_contracts_do_not_mix(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    for digest in ("aaa", "bbb"):
        with Recorder(path, contract_digest=digest) as rec:
            rec.header("baseline", {"model": "m"})
    with pytest.raises(RecordingError, match=r"b\.jsonl:2: mixes recordings.*contract_digest"):
        Recording.load(path)


def test_unusable_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"cannot read the recording.*--parity-record"):
        Recording.load(tmp_path / "absent.jsonl")
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\nworld\n")
    with pytest.raises(RecordingError, match=r"junk\.jsonl:1: not a recording line"):
        Recording.load(junk)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RecordingError, match="no header line"):
        Recording.load(empty)


def test_a_partial_last_line_from_a_killed_run_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    with FakeServer() as srv:
        record(path, srv.base_url, 2)
    with path.open("a") as f:
        f.write('{"type": "response", "item_id": "9", "resp')
    assert len(Recording.load(path)) == 2


def test_two_tasks_reusing_an_item_id_replay_their_own_answers(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    task_a = [ask(1, "capital of France?")]
    task_b = [ask(1, "2 + 2 = ?")]  # same item id "1", another task's question
    answer = lambda b: "answer to " + b["messages"][0]["content"]  # noqa: E731
    with FakeServer(answer=answer) as srv, Recorder(path, contract_digest=DIGEST) as rec:
        run(live(srv.base_url), task_a, rec)
        run(live(srv.base_url), task_b, rec)
    (a,), _ = run(replay(path), task_a)
    (b,), _ = run(replay(path), task_b)
    assert a.text == "answer to capital of France?" and b.text == "answer to 2 + 2 = ?"


def test_a_recording_that_cannot_be_written_keeps_the_answers_and_says_why(
    tmp_path: Path,
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full to simulate a full disk")
    rec = Recorder(Path("/dev/full"), contract_digest=DIGEST)
    with FakeServer() as srv:
        out, _ = run(live(srv.base_url), [ask(1), ask(2)], rec)
    rec.close()
    assert all(r.ok for r in out)
    assert rec.failures == 3 and rec.written == 0  # the header and both answers
    assert rec.error is not None and rec.error.startswith("/dev/full: cannot write the recording")
