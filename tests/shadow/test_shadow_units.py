"""Shadow pieces without processes: reading answers (JSON and SSE of every dialect), the
example contract, the dashboard against the metrics the proxy exports."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest

from pytest_parity.shadow.answers import finish_label, parse_answer, protocol_of
from pytest_parity.shadow.config import load_shadow_config
from pytest_parity.shadow.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]


def _sse(*events: object) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def test_paths_understood_and_passed_through() -> None:
    assert protocol_of("/v1/chat/completions") == "chat"
    assert protocol_of("/openai/v1/completions") == "completions"
    assert protocol_of("/v1/messages") == "anthropic"
    assert protocol_of("/v1/embeddings") is None and protocol_of("/metrics") is None


def test_chat_stream_with_tool_calls_and_usage() -> None:
    body = _sse(
        {"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "get", "arguments": '{"a"'}}
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    )
    a = parse_answer("chat", body, streamed=True, encoding=None)
    assert (a.text, a.finish_reason, a.prompt_tokens, a.completion_tokens, a.model) == (
        "Hi",
        "tool_calls",
        3,
        4,
        "m",
    )
    assert a.tool_calls == [{"name": "get", "arguments": '{"a": 1}'}]
    # Metrics only: the tail gives the same finish reason and usage without the text.
    t = parse_answer("chat", body, streamed=True, encoding=None, text=False)
    assert (t.text, t.finish_reason, t.completion_tokens) == ("", "tool_calls", 4)


def test_anthropic_json_and_stream_and_gzip() -> None:
    msg = {
        "model": "claude",
        "content": [
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    raw = json.dumps(msg).encode()
    gz = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    a = parse_answer("anthropic", gz.compress(raw) + gz.flush(), streamed=False, encoding="gzip")
    assert (a.text, a.finish_reason, a.prompt_tokens, a.completion_tokens) == (
        "Hello",
        "tool_use",
        5,
        2,
    )
    assert a.tool_calls == [{"name": "f", "arguments": {"x": 1}}]
    s = _sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "He"}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "llo"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
    )
    b = parse_answer("anthropic", s, streamed=True, encoding=None)
    assert (b.text, b.finish_reason, b.prompt_tokens, b.completion_tokens) == (
        "Hello",
        "end_turn",
        5,
        2,
    )


def test_unreadable_answers_never_raise() -> None:
    for body, streamed in [
        (b'{"choices": [', False),
        (b"<html>", False),
        (b"data: {bad\n\n", True),
        (b"", True),
    ]:
        assert not parse_answer("chat", body, streamed=streamed, encoding=None).readable
    assert not parse_answer("chat", b"x", streamed=False, encoding="gzip").readable
    assert finish_label("weird-server-reason") == "other" and finish_label(None) == "none"


def test_stream_events_are_read_as_strictly_as_json_loads() -> None:
    """The stream reader decodes events with json's C scanner directly (half the cost of
    json.loads per event); it accepts and refuses exactly what json.loads does."""
    chunk = {"choices": [{"index": 0, "delta": {"content": "héllo"}, "finish_reason": None}]}
    good = json.dumps(chunk).encode()
    # CRLF lines, spaces around the payload, no space after the colon: all read.
    for body in (
        b"data: " + good + b"\r\n\r\ndata: [DONE]\r\n\r\n",
        b"data:" + good + b"  \n\n",
        b"  data: " + good + b"\n\n",
    ):
        ans = parse_answer("chat", body, streamed=True, encoding=None)
        assert ans.readable and ans.text == "héllo", body
    for bad in (
        good + b" x",  # extra data after the event
        good[:-1],  # cut short
        b'{"a": 1} {"b": 2}',  # two documents in one event
        b"\xff\xfe" + good,  # not UTF-8
        b"",  # only empty events: nothing readable
    ):
        body = b"data: " + bad + b"\n\n"
        assert not parse_answer("chat", body, streamed=True, encoding=None).readable, bad
        assert not parse_answer("chat", body, streamed=True, encoding=None, text=False).readable


def test_example_contract_and_dashboard_match_the_metrics() -> None:
    cfg = load_shadow_config(ROOT / "example_suite" / "shadow" / "shadow.yaml")
    assert cfg.sample_rate == 0.25 and cfg.serving_name == "baseline" and len(cfg.redact) == 2
    m = Metrics(3)
    m.observe(
        "serving",
        "baseline",
        "s",
        error="timeout",
        latency=0.1,
        ttft=0.01,
        prompt_tokens=1,
        completion_tokens=1,
        finish="stop",
    )
    for metric, labels in (
        (m.sampled, ("s",)),
        (m.dropped, ("s", "queue_full")),
        (m.pairs, ("s",)),
        (m.passthrough, ("baseline",)),
    ):
        m.count(metric, *labels)
    m.stored.inc()
    m.store_errors.inc()
    m.store_dropped.inc()
    exported = set(re.findall(r"^(parity_shadow_\w+?)(?:\{| )", m.exposition().decode(), re.M))
    dash = json.loads((ROOT / "example_suite" / "shadow" / "grafana-dashboard.json").read_text())
    used = {
        name
        for p in dash["panels"]
        for t in p["targets"]
        for name in re.findall(r"parity_shadow_\w+", t["expr"])
    }
    assert used and used <= exported, used - exported
    # Segments beyond the bound share one label.
    assert [m.segment(s) for s in ("s", "t", "u", "v")] == ["s", "t", "u", "other"]


def test_console_script_points_at_the_cli() -> None:
    import importlib

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = meta["project"]["scripts"]["parity-shadow"]
    mod, _, fn = target.partition(":")
    main = getattr(importlib.import_module(mod), fn)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    # --check validates and exits 0 without listening.
    assert main([str(ROOT / "example_suite" / "shadow" / "shadow.yaml"), "--check"]) == 0
    assert "prometheus_client" in " ".join(meta["project"]["optional-dependencies"]["shadow"])


def test_after_cutover_roles_swap_and_an_inline_second_copy_shadows(tmp_path: Path) -> None:
    import yaml

    base = {
        "baseline": {"kind": "vllm", "base_url": "http://old:8000/v1", "model": "m"},
        "candidate": {"kind": "sglang", "base_url": "http://new:30000/v1", "model": "m-fp8"},
    }
    c = tmp_path / "c.yaml"
    c.write_text(yaml.safe_dump({**base, "shadow": {"serving": "candidate", "target": "baseline"}}))
    cfg = load_shadow_config(c)
    assert (cfg.serving_name, cfg.serving.base_url, cfg.shadow.model) == (
        "candidate",
        "http://new:30000/v1",
        "m",
    )
    # A/A (Diffy's primary/secondary): a second copy of the old stack as the shadow.
    aa = {"kind": "vllm", "base_url": "http://old-copy:8000/v1", "model": "m"}
    c.write_text(yaml.safe_dump({**base, "shadow": {"target": aa}}))
    cfg = load_shadow_config(c)
    assert (cfg.shadow_name, cfg.shadow.base_url, cfg.shadow.kind) == (
        "shadow.target",
        "http://old-copy:8000/v1",
        "vllm",
    )
    assert cfg.store_url == str(tmp_path / "shadow.sqlite")  # relative to the contract
