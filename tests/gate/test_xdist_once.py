"""Under pytest-xdist every task is run by exactly one worker: each request is sent once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servers import FakeServer


def write_contract(root: Path, old: str, new: str, n: int, tasks: int) -> Path:
    lines = [
        json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 1?", "reference": str(i + 1)})
        for i in range(n)
    ]
    (root / "golden.jsonl").write_text("\n".join(lines) + "\n")
    rows = "\n".join(
        f"  - {{name: t{k}, source: golden, path: golden.jsonl, scorer: numeric, tolerance: 0.1}}"
        for k in range(tasks)
    )
    path = root / "contract.yaml"
    path.write_text(
        f'baseline:  {{kind: openai, base_url: "{old}", model: m}}\n'
        f'candidate: {{kind: openai, base_url: "{new}", model: m}}\n'
        f"tasks:\n{rows}\n"
    )
    return path


@pytest.mark.parametrize(
    ("dist", "n"), [([], 200), (["--dist", "worksteal"], 60)], ids=["load", "worksteal"]
)
def test_each_request_is_sent_once_with_two_workers(
    pytester: pytest.Pytester, dist: list[str], n: int
) -> None:
    tasks = 2
    with FakeServer() as old, FakeServer() as new:
        path = write_contract(pytester.path, old.base_url, new.base_url, n, tasks)
        rec = pytester.path / "rec.jsonl"
        result = pytester.runpytest(
            f"--parity-contract={path}",
            "--parity-no-cache",
            f"--parity-record={rec}",
            "-n",
            "2",
            *dist,
        )
        sent = (len(old.received), len(new.received))
    assert result.ret == 0, result.stdout.str()
    assert sent == (n * tasks, n * tasks)
    recorded = [json.loads(x) for x in rec.read_text().splitlines()]
    answers = [r for r in recorded if r.get("item_id")]
    assert len(answers) == n * tasks
