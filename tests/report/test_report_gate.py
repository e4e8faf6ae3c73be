"""Every report from a real gate run: the plugin against two local HTTP stacks, as a user runs it
with ``--html``, ``--parity-report``, ``--parity-json`` and ``--parity-markdown``."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer

QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")
SCHEMA = Path(__file__).resolve().parents[2] / "pytest_parity" / "report" / "schema.json"
EVIL = "<img src=x onerror=\"document.title='PWNED'\"></td>"


def _validate() -> Any:
    from run_builders import validate

    return validate


def _old(body: dict[str, Any]) -> str:
    m = QUESTION.search(body["messages"][-1]["content"])
    assert m is not None
    return f"The answer is {int(m.group(1)) + int(m.group(2))}."


def _new(body: dict[str, Any]) -> str:
    # wrong on a fixed ~8% of items, with markup a report must show as text
    prompt = body["messages"][-1]["content"]
    if zlib.crc32(prompt.encode()) % 100 < 8:
        return f"The answer is 1000000. {EVIL}"
    return _old(body)


@pytest.fixture
def gate(pytester: pytest.Pytester) -> Iterator[Path]:
    old, new = FakeServer(answer=_old).start(), FakeServer(answer=_new).start()
    lines = [
        json.dumps(
            {
                "id": f"q{i}",
                "prompt": f"What is {i} + {i * 7 % 13}?",
                "reference": str(i + i * 7 % 13),
            }
        )
        for i in range(200)
    ]
    pytester.path.joinpath("golden.jsonl").write_text("\n".join(lines) + "\n")
    yield pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: openai, base_url: "{old.base_url}", model: old-model}}
        candidate: {{kind: openai, base_url: "{new.base_url}", model: new-model}}
        tasks:
          - {{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric}}
        """,
    )
    old.stop()
    new.stop()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blob = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.blob = next((v or "" for a, v in attrs if a == "data-jsonblob"), self.blob)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_real_gate_writes_every_report(
    pytester: pytest.Pytester, gate: Path, workers: list[str]
) -> None:
    pytest.importorskip("pytest_html")
    summary = pytester.path / "step_summary.md"
    summary.write_text("## Unit tests\n", encoding="utf-8")
    result = pytester.runpytest(
        f"--parity-contract={gate}",
        "--parity-no-cache",
        "--html=pytest.html",
        "--self-contained-html",
        "--parity-report=out/parity.html",
        "--parity-json=out/parity.json",
        f"--parity-markdown={summary}",
        *workers,
    )
    assert result.ret == 1, result.stdout.str()  # an 8% regression fails the 1.5 point gate

    doc = json.loads((pytester.path / "out" / "parity.json").read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert _validate()(doc, schema, schema) == []
    numbers = doc["tasks"][0]["checks"]["delta"]["numbers"]
    for key in ("delta", "ci_low", "ci_high", "confidence", "method", "n", "b", "c", "flip_rate"):
        assert key in numbers, key
    assert doc["overall"] == "FAIL" and doc["tasks"][0]["disagreements"]

    page = (pytester.path / "out" / "parity.html").read_text(encoding="utf-8")
    assert 'id="task-arithmetic"' in page and 'class="pp-flip"' in page
    assert "onerror=&quot;document.title=&#x27;PWNED&#x27;&quot;" in page
    assert "onerror=" not in page.replace("onerror=&quot;", "")

    md = summary.read_text(encoding="utf-8")
    assert md.startswith("## Unit tests\n\n## ") and "Parity FAIL" in md

    parsed = _Page()
    parsed.feed((pytester.path / "pytest.html").read_text(encoding="utf-8"))
    tests = json.loads(parsed.blob)["tests"]
    parity = {k: v[-1] for k, v in tests.items() if "test_parity[arithmetic-" in k}
    assert len(parity) == 3  # delta, failure_modes, error_direction
    for row in parity.values():
        cells = "".join(row["resultsTableRow"])
        assert re.search(r'class="col-parityBaseline">\d+\.\d%<', cells), cells
        assert "col-parityVerdict" in cells and "</span></td>" in cells
        html_extras = [e for e in row["extras"] if e["format_type"] == "html"]
        assert len(html_extras) == 1  # attached once, whoever attached it
        assert "pp-forest" in html_extras[0]["content"]
        assert "onerror=&quot;document.title" in html_extras[0]["content"]  # shown, as text
        assert "onerror=" not in html_extras[0]["content"].replace("onerror=&quot;", "")
