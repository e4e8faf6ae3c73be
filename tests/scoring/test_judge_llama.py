"""The real llama.cpp model as the judge (SmolLM2-135M, Q4_1), gating F32 against Q4_1 on an
open-ended golden set without references, with the A/A pass.

A 135M-parameter model is a poor judge; this shows that the pipeline works end to end against a
server nobody here wrote (structured output through llama.cpp's JSON-schema grammar, both orders,
the consistency recheck, the A/A comparison) and that the judge's own noise is measured, not that
the judge is good. Needs `bash example_suite/live/setup_testbed.sh`; skips otherwise.
"""

from __future__ import annotations

import json

import livebed
import pytest

pytestmark = [pytest.mark.live_model, pytest.mark.slow]

PROMPTS = [
    "Name one fruit that is yellow.",
    "Say hello in French.",
    "What colour is the sky on a clear day?",
    "Give one word that rhymes with cat.",
]


urls = livebed.pair_fixture("F32", "Q4_1")


def test_the_real_model_judges_both_orders_and_its_aa_noise_is_measured(
    pytester: pytest.Pytester, urls: dict[str, str]
) -> None:
    lines = [json.dumps({"id": f"p{i}", "prompt": p}) for i, p in enumerate(PROMPTS)]
    (pytester.path / "open.jsonl").write_text("\n".join(lines) + "\n")
    contract = pytester.makefile(
        ".yaml",
        contract=f"""
        baseline:  {{kind: llama-cpp, base_url: "{urls["F32"]}", model: smollm2, params: {{max_tokens: 24}}}}
        candidate: {{kind: llama-cpp, base_url: "{urls["Q4_1"]}", model: smollm2, params: {{max_tokens: 24}}}}
        judge:     {{kind: llama-cpp, base_url: "{urls["Q4_1"]}", model: smollm2-judge, params: {{max_tokens: 120}}}}
        defaults: {{min_items: 3, tolerance: 0.2}}
        tasks:
          - name: open
            path: open.jsonl
            max_error_rate: 0.2
            scorer: {{name: judge-pairwise, recheck: 0.5, criteria: "Which answer answers the question correctly and briefly?"}}
        """,
    )
    out = pytester.path / "parity.json"
    html = pytester.path / "parity.html"
    result = pytester.runpytest(
        f"--parity-contract={contract}",
        "--parity-no-cache",
        "--parity-aa=rerun",
        f"--parity-json={out}",
        f"--parity-report={html}",
    )
    report = json.loads(out.read_text())
    task = report["tasks"][0]
    assert task["error"] is None, task["error"]
    j = task["judge"]
    assert j["mode"] == "pairwise" and j["structured"] == "json_object"
    # the judge gave verdicts in both orders for most items (a judge error is counted, not hidden)
    assert j["n"] + j["errors"] >= len(PROMPTS) and j["n"] >= len(PROMPTS) // 2
    assert j["wins"] + j["ties"] + j["losses"] == j["n"]
    # position bias is measured (SmolLM2-135M picked "A" in every order when this was written:
    # first_position_rate 1.0, every verdict flipped, every item a tie by the both-orders rule)
    assert 0.0 <= j["position"]["flip_rate"] <= 1.0
    assert (
        j["position"]["first_position_rate"] is None
        or 0 <= j["position"]["first_position_rate"] <= 1
    )
    # the A/A noise of the judge is measured: baseline against a second sample of itself
    aa = j["aa"]
    assert aa is not None and aa["n"] >= 1
    assert 0.0 <= aa["false_difference_rate"] <= 1.0
    assert task["aa"] is not None and task["aa"]["n"] == aa["n"]
    # the judge's identity as its server reported it, and the prompt digest, in provenance
    judge_ep = task["endpoints"]["judge"]
    assert judge_ep["role"] == "judge" and "Q4_1" in json.dumps(judge_ep["engine"])
    assert len(j["prompt_digest"]) == 64
    assert "LLM judge" in html.read_text()
    assert result.ret in (0, 1), result.stdout.str()
