"""What reports are told about a contract (issue 21 item 5): each task's own request parameters,
and where a replay endpoint's answers come from instead of a blank base_url."""

from __future__ import annotations

from pathlib import Path

from pytest_parity.contract.spec import load_contract


def test_describe_carries_task_params_and_the_replay_recording(tmp_path: Path) -> None:
    (tmp_path / "golden.jsonl").write_text('{"id": "a", "prompt": "p", "reference": "r"}\n')
    (tmp_path / "old.jsonl").write_text("")
    path = tmp_path / "contract.yaml"
    path.write_text(
        "baseline:  {kind: replay, recording: old.jsonl, model: m}\n"
        'candidate: {kind: openai, base_url: "http://127.0.0.1:9/v1", model: m}\n'
        "tasks:\n"
        "  - {name: qa, path: golden.jsonl, scorer: exact, params: {max_tokens: 4}}\n"
    )
    described = load_contract(path).describe()
    assert described["tasks"][0]["params"] == {"max_tokens": 4}
    assert described["baseline"]["recording"] == "old.jsonl"
    assert "recording" not in described["candidate"]
    # the identity (cache keys, recordings) is unchanged: the recording is for reports only
    assert "recording" not in load_contract(path).baseline.identity()
