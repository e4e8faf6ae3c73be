"""A source added from a conftest.py, in one file: a ``source:`` name, its own validated options,
items streamed from its data, gated through the endpoint layer like a golden set.

This is the seam every built-in source uses (golden, lm-eval, traffic, long-context, tool-use):
nothing in the package is touched to add one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from servers import FakeServer

CONFTEST = '''
import csv
import hashlib

from pytest_parity import registry
from pytest_parity.sources.base import SourceError, TaskSource
from pytest_parity.sources.item import Item


class CsvSource(TaskSource):
    """question,answer rows; the question column is named in the source's own options."""

    name = "csv"
    options_key = "csv"
    needs_path = True
    default_scorer = "contains"

    def options(self, raw, where, v, base):
        v.keys(raw, where, ("question",))
        return {"question": v.string(raw.get("question", "question"), f"{where}.question")}

    def prepare(self, task):
        with task.path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
        if task.source_options["question"] not in header:
            raise SourceError(f"{task.path}: no column {task.source_options['question']!r}")

    def items(self, task):
        with task.path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                yield Item(id=f"row{i}", prompt=row[task.source_options["question"]],
                           messages=None, reference=row["answer"])

    def digest(self, task):
        return hashlib.sha256(task.path.read_bytes()).hexdigest()


registry.sources.register("csv", CsvSource, replace=True)
'''


@pytest.fixture
def pair(
    fake_stacks: Callable[..., tuple[FakeServer, FakeServer]],
) -> tuple[FakeServer, FakeServer]:
    def wrong_on_odd(body: dict[str, object]) -> str:
        text = json.dumps(body)
        return "no idea" if any(f"q{i} " in text for i in range(1, 200, 2)) else "the answer"

    return fake_stacks(lambda body: "the answer", wrong_on_odd)


def _contract(old: str, new: str, options: str) -> str:
    return f"""
        baseline:  {{kind: openai, base_url: "{old}", model: m}}
        candidate: {{kind: openai, base_url: "{new}", model: m}}
        tasks:
          - {{name: sheet, source: csv, path: qa.csv{options}}}
        """


def test_a_conftest_source_is_gated_like_a_golden_set(
    pytester: pytest.Pytester, pair: tuple[FakeServer, FakeServer]
) -> None:
    old, new = pair
    pytester.makeconftest(CONFTEST)
    rows = "".join(f"q{i} what is it?,answer\n" for i in range(200))
    pytester.path.joinpath("qa.csv").write_text("text,answer\n" + rows)
    pytester.makefile(
        ".yaml", contract=_contract(old.base_url, new.base_url, ", csv: {question: text}")
    )
    result = pytester.runpytest(
        "--parity-contract=contract.yaml", "--parity-json=out.json", "-v", "-p", "no:cacheprovider"
    )
    out = result.stdout.str()
    assert "test_parity[sheet-delta] FAILED" in out, out
    doc = json.loads(pytester.path.joinpath("out.json").read_text())
    task = doc["tasks"][0]
    assert task["n_paired"] == 200 and task["verdict"] == "FAIL" and task["source"] == "csv"
    # the candidate is wrong on every odd row: a 50-point drop, through the endpoint layer
    assert task["checks"]["delta"]["numbers"]["delta"] == pytest.approx(-0.5)
    data = pytester.path.joinpath("qa.csv").read_bytes()
    assert hashlib.sha256(data).hexdigest() in json.dumps(task["data_digest"])
    assert len(old.received) == 200 and len(new.received) == 200


def test_a_conftest_source_validates_its_options_and_data(
    pytester: pytest.Pytester, pair: tuple[FakeServer, FakeServer]
) -> None:
    old, new = pair
    pytester.makeconftest(CONFTEST)
    pytester.path.joinpath("qa.csv").write_text("text,answer\nq0 what?,answer\n")
    pytester.makefile(
        ".yaml", contract=_contract(old.base_url, new.base_url, ", csv: {questoin: text}")
    )
    result = pytester.runpytest("--parity-contract=contract.yaml", "-p", "no:cacheprovider")
    assert result.ret == 4
    err = result.stderr.str()
    assert "tasks[0].csv" in err and "questoin" in err and "Traceback" not in err
    pytester.makefile(".yaml", contract=_contract(old.base_url, new.base_url, ""))
    result = pytester.runpytest("--parity-contract=contract.yaml", "-p", "no:cacheprovider")
    assert result.ret == 4
    assert "no column 'question'" in result.stderr.str() + result.stdout.str()
    assert old.received == [] and new.received == []  # nothing is sent before the data checks out
