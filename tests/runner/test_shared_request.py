"""One request per item for every stack that would be sent the same one.

Real HTTP: two local servers; what is counted is how many requests the runner built.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servers import FakeServer

from pytest_parity import load_contract
from pytest_parity.runner import Runner
from pytest_parity.runner import pipeline as pipeline_module


def contract(tmp: Path, old: str, new: str, new_api: str, n: int = 12) -> Path:
    with (tmp / "g.jsonl").open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "prompt": f"Say {i}.", "reference": str(i)}) + "\n")
    path = tmp / "contract.yaml"
    path.write_text(
        f'baseline:  {{kind: vllm, base_url: "{old}", model: test-model, api: chat}}\n'
        f'candidate: {{kind: vllm, base_url: "{new}", model: test-model, api: {new_api}}}\n'
        "tasks:\n  - {name: t, path: g.jsonl, scorer: contains}\n"
    )
    return path


@pytest.mark.parametrize(("new_api", "per_item"), [("chat", 1), ("completions", 2)])
def test_both_stacks_on_one_api_share_the_item_s_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_api: str, per_item: int
) -> None:
    built = []
    real = pipeline_module.request_for

    def counting(*a: object, **kw: object) -> object:
        req = real(*a, **kw)  # type: ignore[arg-type]
        built.append(req)
        return req

    monkeypatch.setattr(pipeline_module, "request_for", counting)
    with FakeServer() as old, FakeServer() as new:
        c = load_contract(contract(tmp_path, old.base_url, new.base_url, new_api))
        run = Runner(c).run(c.tasks[0])
        assert len(old.received) == len(new.received) == 12  # each stack still asked once
    assert len(built) == 12 * per_item
    assert len(run.records) == 12
    # every answer is the stack's own, paired with its item
    for r in run.records:
        assert r["baseline"]["error"] is None and r["candidate"]["error"] is None
        assert r["prompt"].split()[-1].rstrip(".") in r["baseline"]["text"]
