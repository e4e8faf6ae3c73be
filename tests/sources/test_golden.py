"""Golden sets: one item per line; every bad line is reported with its line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_parity.sources.golden import GoldenError, load_golden


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_prompt_and_message_items(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"id": "q1", "prompt": "What is 2 + 3?", "reference": "5"}',
        "",
        '{"id": 2, "messages": [{"role": "system", "content": "Be brief."},'
        ' {"role": "user", "content": "Capital of France?"}], "reference": "Paris",'
        ' "metadata": {"topic": "geo"}}',
    )
    items = load_golden(path)
    assert [i.id for i in items] == ["q1", "2"]
    assert items[0].display_prompt() == "What is 2 + 3?"
    assert items[1].display_prompt() == "system: Be brief.\nuser: Capital of France?"
    assert items[1].metadata == {"topic": "geo"}


def test_limit(tmp_path: Path) -> None:
    path = write(
        tmp_path, *[f'{{"id": "{i}", "prompt": "p", "reference": "r"}}' for i in range(10)]
    )
    assert len(load_golden(path, limit=3)) == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "prompt": "p"', "golden.jsonl:2: not valid JSON"),
        ('{"prompt": "p"}', "golden.jsonl:2: id: required"),
        ('{"id": "b", "reference": "r"}', "golden.jsonl:2: give exactly one of prompt"),
        ('{"id": "q1", "prompt": "p"}', "golden.jsonl:2: duplicate id 'q1' (first on line 1)"),
        ('{"id": "c", "prompt": "p", "answer": "x"}', "golden.jsonl:2: unknown key 'answer'"),
        (
            '{"id": "d", "messages": [{"role": "robot", "content": "x"}]}',
            "golden.jsonl:2: messages[0]",
        ),
        ("[1, 2]", "golden.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, '{"id": "q1", "prompt": "p", "reference": "r"}', line)
    with pytest.raises(GoldenError) as err:
        load_golden(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_cluster_key_must_be_present(tmp_path: Path) -> None:
    path = write(tmp_path, '{"id": "q1", "prompt": "p", "reference": "r", "metadata": {}}')
    with pytest.raises(GoldenError, match=r"metadata\.passage: missing"):
        load_golden(path, cluster_key="passage")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(GoldenError, match="has no items"):
        load_golden(write(tmp_path, ""))


GOOD = '{"id": "q1", "prompt": "p", "reference": "r"}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            GOOD.encode() + b'\n{"id": "q2", "prompt": "caf\xe9"}\n',
            "golden.jsonl:2: not UTF-8 text (byte 0xe9 at column 28)"
            " (hint: save the golden set as UTF-8)",
        ),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "golden.jsonl:1: not UTF-8 text (byte 0x89"),
        (
            GOOD.encode() + b"\n" + b"[" * 20000 + b"]" * 20000 + b"\n",
            "golden.jsonl:2: nested deeper than 64 levels",
        ),
        (
            b'{"id": "q1", "prompt": "p", "metadata": '
            + b'{"a": ' * 100_000
            + b"1"
            + b"}" * 100_001
            + b"\n",
            "golden.jsonl:1: nested deeper than 64 levels",
        ),
        (
            b'{"id": "q1", "prompt": "p", "metadata": ' + b"[" * 70 + b"]" * 70 + b"}\n",
            "golden.jsonl:1: nested deeper than 64 levels",
        ),
    ],
    ids=["latin-1", "binary", "deep-array", "deep-metadata", "deep-70"],
)
def test_unreadable_lines_are_one_line_errors(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(data)
    with pytest.raises(GoldenError) as err:
        load_golden(path)
    assert str(err.value).startswith(f"{path.parent}/{message}")
    assert "\n" not in str(err.value)


def test_a_golden_set_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b'\n{"id": "q2", "prompt": "\xc3\xa9"}\n')
    items = load_golden(path)
    assert [i.id for i in items] == ["q1", "q2"]
    assert items[1].prompt == "\u00e9"


def test_metadata_nested_a_few_levels_is_fine(tmp_path: Path) -> None:
    meta = '{"a": ' * 30 + "1" + "}" * 30
    path = write(tmp_path, f'{{"id": "q1", "prompt": "p", "metadata": {meta}}}')
    assert load_golden(path)[0].metadata["a"]["a"]["a"]


def test_each_golden_set_is_checked_once_for_preparing_counting_and_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One checked pass per set serves the preparation, the count and the audit's notes (size,
    repeated prompts), also with several tasks; the run's stream is the only other read."""
    from pytest_parity import registry
    from pytest_parity.contract.spec import load_contract
    from pytest_parity.report.audit import audit
    from pytest_parity.sources import golden

    for name, n in (("a", 40), ("b", 7)):
        rows = [{"id": f"{name}{i}", "prompt": f"q{i % 30}", "reference": "1"} for i in range(n)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stack = "{kind: vllm, base_url: 'http://127.0.0.1:9/v1', model: m}"
    (tmp_path / "contract.yaml").write_text(
        f"baseline: {stack}\ncandidate: {stack}\ntasks:\n"
        "  - {name: a, source: golden, path: a.jsonl, scorer: exact}\n"
        "  - {name: b, source: golden, path: b.jsonl, scorer: exact}\n"
    )
    contract = load_contract(tmp_path / "contract.yaml")
    parsed: list[str] = []
    real = golden._parse_line
    monkeypatch.setattr(
        golden, "_parse_line", lambda p, *a: parsed.append(Path(p).name) or real(p, *a)
    )
    source = registry.sources.get("golden")
    monkeypatch.setattr(source, "_memo", {})
    for task in contract.tasks:
        source.prepare(task)
    notes: dict[str, str] = {}
    for a in audit(contract):
        if a.area == "golden set":
            notes[a.name] = notes.get(a.name, "") + a.hint
    assert [source.count(t) for t in contract.tasks] == [40, 7]
    assert parsed.count("a.jsonl") == 40 and parsed.count("b.jsonl") == 7  # one pass each
    assert "10 duplicated prompt(s)" in notes["a"] and "7 items, fewer than" in notes["b"]
    assert len(list(source.items(contract.tasks[0]))) == 40  # the stream: the second read
    assert parsed.count("a.jsonl") == 80
