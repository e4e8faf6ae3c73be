"""source: traffic: importers, the slice, redaction and the contract options, on files in the
shapes real systems write (see traffic_data.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from traffic_data import batch_files, gateway_lines, otlp_export, question, write_gateway

from pytest_parity import registry
from pytest_parity.contract.spec import Contract, ContractError, TaskSpec, contract_from_data
from pytest_parity.sources.base import SourceError
from pytest_parity.sources.item import Item
from pytest_parity.sources.traffic.importers import parse_time


def load(tmp_path: Path, path: Path, traffic: dict[str, Any], **task: Any) -> Contract:
    raw = {
        "baseline": {"kind": "captured"},
        "candidate": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        "tasks": [
            {
                "name": "prod",
                "source": "traffic",
                "path": str(path),
                "scorer": "exact",
                "traffic": traffic,
                **task,
            }
        ],
    }
    return contract_from_data(raw, tmp_path / "contract.yaml")


def items_of(task: TaskSpec) -> list[Item]:
    source = registry.sources.get("traffic")
    source.prepare(task)
    return list(source.items(task))


def notes_of(task: TaskSpec) -> list[str]:
    return list(registry.sources.get("traffic").notes(task, []))


# ----------------------------------------------------------------------------------------------
# importers


def test_gateway_logs_replay_conversations_tools_and_sampling(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "gw.jsonl", 30)
    c = load(
        tmp_path,
        path,
        {
            "format": "openai",
            "segment": "metadata.route",
            "conversation": "metadata.conversation_id",
            "signals": {"thumbs": "feedback.thumbs", "clicked": "feedback.clicked"},
            "metadata": {"tenant": "metadata.tenant"},
        },
    )
    task = c.tasks[0]
    assert task.cluster_key == "conversation"  # conversations are clusters by default
    items = {i.id: i for i in items_of(task)}
    assert len(items) == 30
    tool_turn = items["req-10"]
    assert [m["role"] for m in tool_turn.messages or ()] == [
        "system",
        "user",
        "assistant",
        "tool",
        "user",
    ]
    assert tool_turn.messages[2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert tool_turn.tools and tool_turn.tools[0]["function"]["name"] == "get_weather"
    assert tool_turn.params == {
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "tool_choice": "auto",
    }
    one = items["req-7"]
    assert one.messages[0] == {"role": "system", "content": "You are the search assistant."}
    assert one.metadata["segment"] == "search"
    assert one.metadata["conversation"] == "conv-3"
    assert one.metadata["tenant"] == "t3"
    assert one.metadata["signals"] == {"thumbs": "up", "clicked": True}
    assert one.metadata["captured_at"] == "2026-11-08T10:00:00+00:00"
    prod = one.captured["production"]
    assert prod["text"] == "The answer is 17." and prod["finish_reason"] == "stop"
    assert one.reference is None
    notes = " | ".join(notes_of(task))
    assert "30 selected" in notes and "sampling parameters replayed as captured" in notes
    assert "stream (30)" in notes and "user (30)" in notes  # dropped, and said so


def test_batch_input_joined_with_its_output_file(tmp_path: Path) -> None:
    inp, out = batch_files(tmp_path, 8)
    c = load(tmp_path, inp, {"format": "openai", "responses": str(out)})
    items = {i.id: i for i in items_of(c.tasks[0])}
    assert set(items) == {f"task-{i}" for i in range(8)}
    assert items["task-5"].captured["production"]["text"] == "The answer is 14."
    assert items["task-5"].params == {"max_tokens": 32}
    assert items["task-3"].captured == {}  # production's request failed (status 500)
    c = load(tmp_path, inp, {"format": "openai", "responses": str(out), "require_response": True})
    assert "task-3" not in {i.id for i in items_of(c.tasks[0])}


def test_batch_output_alone_is_malformed_with_a_hint(tmp_path: Path) -> None:
    _, out = batch_files(tmp_path, 4)
    c = load(tmp_path, out, {"format": "openai"})
    with pytest.raises(SourceError, match=r"4 of 4 records are malformed.*traffic.responses"):
        items_of(c.tasks[0])


def test_stored_completion_and_bare_body_shapes(tmp_path: Path) -> None:
    stored = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": "gpt-4o",
        "temperature": 1.0,
        "metadata": {"route": "faq"},
        "messages": [{"role": "user", "content": "Hi"}],
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {"role": "assistant", "content": "Hello th"},
            }
        ],
    }
    bare = {
        "model": "m",
        "messages": [{"role": "user", "content": "Yo"}],
        "seed": 3,
        "response": "Hey",
    }
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(stored) + "\n" + json.dumps(bare) + "\n")
    items = items_of(
        load(tmp_path, path, {"format": "openai", "segment": "metadata.route"}).tasks[0]
    )
    first, second = items
    assert first.id == "chatcmpl-abc" and first.params == {"temperature": 1.0}
    assert first.captured["production"]["finish_reason"] == "length"
    assert first.metadata["segment"] == "faq"
    assert second.params == {"seed": 3} and second.captured["production"]["text"] == "Hey"


def test_otlp_genai_spans_all_generations(tmp_path: Path) -> None:
    path = otlp_export(tmp_path / "traces.jsonl", 12)
    c = load(tmp_path, path, {"format": "otel", "segment": "app.route", "max_malformed": 0.2})
    items = items_of(c.tasks[0])
    by_id = {i.id: i for i in items}
    assert len(items) == 14  # 12 semconv spans + event span + indexed span (HTTP span passed over)
    tool = by_id[f"{1:016x}"]  # span 0: a tool turn
    roles = [m["role"] for m in tool.messages or ()]
    assert roles == ["system", "user", "assistant", "tool"]
    assert tool.messages[0]["content"] == "Be brief."
    call = tool.messages[2]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert tool.messages[3] == {"role": "tool", "tool_call_id": "call_0", "content": "18C, clear"}
    assert tool.tools and tool.tools[0]["function"]["name"] == "get_weather"
    assert tool.params == {"temperature": 0.2, "max_tokens": 128, "seed": 7}
    prod = tool.captured["production"]
    assert prod["text"] == "The answer is 0." and prod["finish_reason"] == "stop"
    assert prod["latency_s"] == pytest.approx(0.85)
    assert prod["usage"] == {"prompt_tokens": 31, "completion_tokens": 9}
    assert tool.metadata["conversation"] == "conv-0" and tool.metadata["segment"] == "support"
    event = by_id[f"{13:016x}"]
    assert [m["role"] for m in event.messages or ()] == ["system", "user"]
    assert event.captured["production"]["text"] == "Event answer 12"
    indexed = by_id[f"{14:016x}"]
    assert indexed.messages[1]["content"] == question(13)
    assert indexed.captured["production"]["finish_reason"] == "length"
    notes = " | ".join(notes_of(c.tasks[0]))
    assert "1 malformed skipped" in notes and "content capture is opt-in" in notes
    assert "gen_ai.request.choice.count" in notes


def test_otlp_pretty_printed_document(tmp_path: Path) -> None:
    lines = otlp_export(tmp_path / "t.jsonl", 4).read_text().splitlines()
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(json.loads(lines[0]), indent=2))
    items = items_of(load(tmp_path, doc, {"format": "otel"}).tasks[0])
    assert len(items) == 4


def test_generic_jsonl_mapping(tmp_path: Path) -> None:
    rows = [
        {
            "ts": 1_790_000_000_000 + i,
            "in": {"text": f"Q{i}", "sys": "Be kind."},
            "out": {"text": f"A{i}"},
            "label": f"A{i}",
            "tags": {"team": "x" if i % 2 else "y"},
            "opts": {"temperature": 0.5, "stream": True},
        }
        for i in range(6)
    ]
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    c = load(
        tmp_path,
        path,
        {
            "format": "jsonl",
            "segment": "tags.team",
            "reference": "label",
            "fields": {
                "prompt": "in.text",
                "system": "in.sys",
                "response": "out",
                "params": "opts",
                "timestamp": "ts",
            },
        },
    )
    items = items_of(c.tasks[0])
    assert items[1].messages == (
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Q1"},
    )
    assert items[1].reference == "A1" and items[1].captured["production"]["text"] == "A1"
    assert items[1].params == {"temperature": 0.5}
    assert items[1].metadata["segment"] == "x"
    assert items[1].metadata["captured_at"].startswith("2026-09-")  # milliseconds read as such


def test_parse_time_units() -> None:
    t = 1_790_000_000
    assert parse_time(t) == parse_time(t * 1000) == parse_time(t * 10**6) == parse_time(t * 10**9)
    assert parse_time(str(t * 10**9)) == t
    assert parse_time("2026-09-21T14:13:20Z") == t
    assert parse_time("2026-09-21T14:13:20") == t  # no zone: UTC
    assert parse_time("yesterday") is None


# ----------------------------------------------------------------------------------------------
# malformed records


def test_malformed_records_skipped_with_count_and_lines(tmp_path: Path) -> None:
    lines = gateway_lines(200)
    lines[3] = "{not json"
    lines[50] = json.dumps({"request": {"messages": []}})
    lines[120] = "[1, 2]"
    path = tmp_path / "gw.jsonl"
    path.write_text("\n".join(lines) + "\n")
    c = load(tmp_path, path, {"format": "openai", "max_malformed": 0.02})
    assert len(items_of(c.tasks[0])) == 197
    note = notes_of(c.tasks[0])[0]
    assert "3 malformed skipped (lines 4, 51, 121; first: not valid JSON" in note
    c = load(tmp_path, path, {"format": "openai", "max_malformed": 0.01})
    with pytest.raises(SourceError) as err:
        items_of(c.tasks[0])
    msg = str(err.value)
    assert "\n" not in msg and "3 of 200 records are malformed" in msg and "line 4:" in msg


# ----------------------------------------------------------------------------------------------
# the slice


def ids(tmp_path: Path, path: Path, **traffic: Any) -> list[str]:
    return [i.id for i in items_of(load(tmp_path, path, {"format": "openai", **traffic}).tasks[0])]


def test_count_is_seeded_reproducible_and_independent_of_file_order(tmp_path: Path) -> None:
    lines = gateway_lines(500)
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    shuffled = tmp_path / "b.jsonl"
    random.Random(1).shuffle(lines)
    shuffled.write_text("\n".join(lines) + "\n")
    a = ids(tmp_path, path, count=40, seed=3)
    assert len(a) == 40 and a == ids(tmp_path, path, count=40, seed=3)
    assert set(a) == set(ids(tmp_path, shuffled, count=40, seed=3))
    other = ids(tmp_path, path, count=40, seed=4)
    assert len(set(a) & set(other)) < 20
    # the order of the items is the file's
    assert a == sorted(a, key=lambda s: int(s.split("-")[1]))


def test_rate_is_hash_based(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 2000)
    half = ids(tmp_path, path, rate=0.5)
    assert 880 < len(half) < 1120
    tenth = ids(tmp_path, path, rate=0.1)
    assert set(tenth) <= set(half)  # nested: a lower rate keeps a subset


def test_duplicates_dropped_by_request_hash(tmp_path: Path) -> None:
    lines = gateway_lines(50)
    dup = [json.loads(x) for x in lines[:10]]
    for d in dup:
        d["id"] = d["id"] + "-retry"
        d["timestamp"] = "2026-11-30T00:00:00Z"
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines + [json.dumps(d) for d in dup]) + "\n")
    assert len(ids(tmp_path, path)) == 50
    assert len(ids(tmp_path, path, count=30)) == 30
    assert not any(i.endswith("-retry") for i in ids(tmp_path, path, count=60))
    assert len(ids(tmp_path, path, dedup=False)) == 60
    note = notes_of(load(tmp_path, path, {"format": "openai"}).tasks[0])[0]
    assert "10 duplicate requests dropped" in note


def test_time_window_and_per_segment(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 600)
    got = items_of(
        load(
            tmp_path,
            path,
            {
                "format": "openai",
                "since": "2026-11-05T00:00:00Z",
                "until": "2026-11-10T00:00:00Z",
                "segment": "metadata.route",
                "per_segment": 20,
            },
        ).tasks[0]
    )
    days = {i.metadata["captured_at"][:10] for i in got}
    assert days == {f"2026-11-{d:02d}" for d in range(5, 10)}
    by = {}
    for i in got:
        by[i.metadata["segment"]] = by.get(i.metadata["segment"], 0) + 1
    assert by == {"support": 20, "search": 20, "billing": 20}


def test_split_by_segment_makes_one_task_per_segment(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 90)
    c = load(
        tmp_path,
        path,
        {"format": "openai", "segment": "metadata.route", "split_by_segment": True, "count": 10},
    )
    assert [t.name for t in c.tasks] == ["prod.billing", "prod.search", "prod.support"]
    for t in c.tasks:
        got = items_of(t)
        assert len(got) == 10 and {i.metadata["segment"] for i in got} == {t.name.split(".")[1]}
    c = load(
        tmp_path,
        path,
        {
            "format": "openai",
            "segment": "metadata.route",
            "split_by_segment": True,
            "segments": ["search"],
        },
    )
    assert [t.name for t in c.tasks] == ["prod.search"]


def test_sampling_override_is_applied_and_noted(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 10)
    c = load(tmp_path, path, {"format": "openai", "sampling": {"temperature": 0}})
    assert all(i.params["temperature"] == 0 for i in items_of(c.tasks[0]))
    assert any(
        "sampling overridden by the contract: temperature 0 on every item (the captured"
        " values differed on 10 of 10)" in n
        for n in notes_of(c.tasks[0])
    )
    c = load(tmp_path, path, {"format": "openai", "replay_params": False})
    assert all(i.params == {} for i in items_of(c.tasks[0]))


# ----------------------------------------------------------------------------------------------
# redaction


def test_redaction_rules_and_hook_cover_prompt_answer_and_signals(tmp_path: Path) -> None:
    lines = [json.loads(x) for x in gateway_lines(5, email=True)]
    lines[1]["response"]["choices"][0]["message"]["content"] = "Mail jane.doe1@example.com, 42."
    lines[1]["feedback"]["comment"] = "call me on +1 415 555 0100"
    path = tmp_path / "pii.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    c = load(
        tmp_path,
        path,
        {
            "format": "openai",
            "signals": {"comment": "feedback.comment"},
            "redact": ["email", "phone", {"pattern": r"user-\d+", "replace": "[USER]"}],
        },
    )
    items = items_of(c.tasks[0])
    text = json.dumps([[dict(m) for m in i.messages or ()] for i in items])
    text += json.dumps([dict(i.captured) for i in items] + [dict(i.metadata) for i in items])
    assert "@example.com" not in text and "555" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text
    assert items[1].metadata["signals"]["comment"] == "call me on [PHONE]"

    seen: list[str] = []

    def hook(task: str, field: str, value: str) -> str | None:
        seen.append(field)
        return value.replace("What is", "[Q]")

    source = registry.sources.get("traffic")
    source.set_redact_hook(hook)
    try:
        c = load(tmp_path, path, {"format": "openai"}, name="prod2")
        items = items_of(c.tasks[0])
    finally:
        source.set_redact_hook(None)
    assert items[0].messages[1]["content"].startswith("[Q] 0 + 0?")
    assert "messages[1].content" in seen and "response.text" in seen


# ----------------------------------------------------------------------------------------------
# the contract


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({}, "tasks[0].traffic.format: required but missing (hint: write format: openai, otel"),
        ({"format": "csv"}, "tasks[0].traffic.format: expected one of openai, otel, jsonl"),
        (
            {"format": "openai", "cout": 3},
            "tasks[0].traffic.cout: unknown key (hint: did you mean 'count'?)",
        ),
        (
            {"format": "openai", "per_segment": 5},
            "tasks[0].traffic.segment: required by per_segment and split_by_segment",
        ),
        ({"format": "openai", "since": "last week"}, "tasks[0].traffic.since: not a time"),
        ({"format": "openai", "rate": 2}, "tasks[0].traffic.rate: expected a number in (0, 1]"),
        (
            {"format": "openai", "redact": ["passport"]},
            "tasks[0].traffic.redact[0]: unknown built-in rule 'passport'",
        ),
        (
            {"format": "openai", "redact": [{"pattern": "("}]},
            "tasks[0].traffic.redact[0].pattern: not a valid regular expression",
        ),
        ({"format": "jsonl"}, "tasks[0].traffic.fields: required but missing"),
        (
            {"format": "openai", "sampling": {"temprature": 0}},
            "tasks[0].traffic.sampling.temprature: not a sampling",
        ),
        (
            {"format": "openai", "count": 5, "per_segment": 2, "segment": "x"},
            "tasks[0].traffic.per_segment: give count or per_segment, not both",
        ),
    ],
)
def test_bad_traffic_options_give_one_line(
    tmp_path: Path, traffic: dict[str, Any], message: str
) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 3)
    with pytest.raises(ContractError) as err:
        load(tmp_path, path, traffic)
    text = str(err.value)
    assert "\n" not in text and message in text, text


def test_traffic_contract_needs_a_scorer_until_a_judge_is_installed(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 3)
    raw = {
        "baseline": {"kind": "captured"},
        "candidate": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        "tasks": [
            {"name": "p", "source": "traffic", "path": str(path), "traffic": {"format": "openai"}}
        ],
    }
    # the default scorer is the pairwise judge: it needs a judge endpoint
    with pytest.raises(ContractError, match=r"tasks\[0\]\.scorer: judge-pairwise needs a judge"):
        contract_from_data(raw, tmp_path / "c.yaml")
    raw["judge"] = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "j"}
    task = contract_from_data(raw, tmp_path / "c.yaml").tasks[0]
    assert task.scorer == "judge-pairwise"
    raw["tasks"][0]["lm_eval"] = {"task": "x"}  # another source's key
    raw["tasks"][0]["scorer"] = "exact"
    with pytest.raises(
        ContractError, match=r"tasks\[0\]\.lm_eval: only a task with source: lm-eval"
    ):
        contract_from_data(raw, tmp_path / "c.yaml")


def test_captured_kind_is_only_a_baseline(tmp_path: Path) -> None:
    path = write_gateway(tmp_path / "a.jsonl", 3)
    raw = {
        "baseline": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
        "candidate": {"kind": "captured"},
        "tasks": [
            {
                "name": "p",
                "source": "traffic",
                "path": str(path),
                "scorer": "exact",
                "traffic": {"format": "openai"},
            }
        ],
    }
    with pytest.raises(ContractError, match=r"candidate\.kind: only the baseline can be the"):
        contract_from_data(raw, tmp_path / "c.yaml")


def test_llama_cpp_gets_tool_call_turns_with_empty_text_not_null() -> None:
    from pytest_parity.endpoints.kinds import KINDS, build_payload

    turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    msgs = [
        {"role": "user", "content": "hi"},
        turn,
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]
    llama = build_payload(KINDS["llama-cpp"], "chat", "m", {}, messages=msgs)
    assert llama["messages"][1]["content"] == "" and llama["messages"][1]["tool_calls"]
    assert turn["content"] is None  # the item itself is untouched
    openai = build_payload(KINDS["openai"], "chat", "m", {}, messages=msgs)
    assert openai["messages"][1]["content"] is None  # OpenAI's own spelling kept
