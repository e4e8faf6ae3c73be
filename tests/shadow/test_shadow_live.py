"""parity-shadow in front of the real llama.cpp pair: SmolLM2 F32 serving, Q2_K shadowing.

The openai SDK calls the proxy, streamed and not; the answers must be what F32 says when called
directly (greedy decoding), and the stored pairs must hold both stacks' real answers, usage and
finish reasons. Needs `bash example_suite/live/setup_testbed.sh`; skips with that hint otherwise.
"""

from __future__ import annotations

from pathlib import Path

import livebed
import pytest
from shadow_servers import ProxyProcess, write_contract

from pytest_parity.store import open_store

pytestmark = pytest.mark.live_model

QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 2?"]


pair = livebed.pair_fixture("F32", "Q2_K")


def test_llama_pair_through_the_proxy(pair: dict[str, str], tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    c = write_contract(
        tmp_path / "c.yaml",
        pair["F32"],
        pair["Q2_K"],
        {"store": {"url": "pairs.sqlite", "flush_seconds": 0.05}, "segments": {"from": ["header"]}},
        baseline={"kind": "llama-cpp", "base_url": pair["F32"], "model": "smollm2"},
        candidate={"kind": "llama-cpp", "base_url": pair["Q2_K"], "model": "smollm2"},
    )
    args = {"model": "smollm2", "max_tokens": 12, "temperature": 0, "seed": 0}
    direct = openai.OpenAI(base_url=pair["F32"], api_key="none")
    with ProxyProcess(c) as px:
        via = openai.OpenAI(base_url=px.url + "/v1", api_key="none")
        for i, q in enumerate(QUESTIONS):
            msgs = [{"role": "user", "content": q}]
            want = direct.chat.completions.create(messages=msgs, **args).choices[0].message.content
            hdr = {"x-parity-segment": "live"}
            if i % 2:
                parts = [
                    ch.choices[0].delta.content or ""
                    for ch in via.chat.completions.create(
                        messages=msgs, stream=True, extra_headers=hdr, **args
                    )
                    if ch.choices
                ]
                got = "".join(parts)
            else:
                got = via.chat.completions.create(messages=msgs, extra_headers=hdr, **args)
                got = got.choices[0].message.content
            assert got == want, q
        assert px.wait_for("parity_shadow_pairs_stored_total", len(QUESTIONS), timeout=120) == 3
        # the shadow stack shares two cores with the rest of the test bed: one answer may time
        # out (counted and dropped); production was answered in full above either way
        assert px.total("parity_shadow_errors_total") <= 1
        assert px.total("parity_shadow_ttft_seconds_count", role="shadow", segment="live") == 1
        assert px.stop()[0] == 0
    with open_store(str(tmp_path / "pairs.sqlite")) as st:
        pairs = list(st.pairs(segment="live"))
    assert len(pairs) == 3
    # every production answer is stored; under a loaded test bed one shadow answer may have failed
    # (it is the one error counted above), the others are whole
    assert all(p.serving_text and p.serving_finish in ("stop", "length") for p in pairs)
    answered = [p for p in pairs if p.both_answered]
    assert len(answered) >= len(pairs) - 1
    for p in answered:
        assert p.shadow_text is not None and p.shadow_finish in ("stop", "length")
        assert p.serving_latency and p.shadow_latency
    plain = [p for p in pairs if not p.stream]
    assert all(p.serving_completion_tokens and p.serving_prompt_tokens for p in plain)
    assert [p.stream for p in pairs] == [False, True, False]
