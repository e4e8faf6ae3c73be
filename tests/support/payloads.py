"""A run built to break a report: every payload a model or a contract may hold (script tags,
event attributes, closing-tag breakouts, bidi controls, long unbroken tokens and URLs), long
answers, long names, engine facts with nulls, lists and nested mappings; and twenty tasks of it.
Shared by the browser tests of the standalone page and of pytest-html's."""

from __future__ import annotations

import copy
from typing import Any

from run_builders import make_run

# What a model (or a contract) may hold that a page must show as text, and lay out.
LONG_TOKEN = "x" * 30 + "".join(f"{i:04x}" for i in range(120))  # 510 characters, no break
LONG_URL = (
    "https://inference-gateway.eu-west-1.internal.example.com/v1/deployments/"
    "llama-3.1-8b-instruct-fp8-kv-cache-experiment-2026-11-26/chat/completions"
    "?api-version=2026-11-01&routing=shadow&trace=" + "ab12" * 20
)
PAYLOADS = (
    "<script>document.title='PWNED'</script>",
    "<img src=x onerror=\"document.title='PWNED'\">",
    "</td></tr></table></div></section></main><script>document.title='PWNED'</script>",
    "</pre></details><style>body{display:none}</style>",
    "\u202edetaler\u202c and \u2066isolated\u2069 text, \u200fmarks\u200e",
    LONG_TOKEN,
    LONG_URL,
)


def _answer(i: int) -> str:
    """A long model answer: paragraphs, a payload, an unbroken token, a URL."""
    para = (
        "The refund policy allows a return within 30 days of delivery when the item is unused. "
        "For damaged goods the customer should attach a photograph to the ticket. "
    )
    return (para * 6 + "\n\n").join(
        [f"Answer {i}.", PAYLOADS[i % len(PAYLOADS)], LONG_TOKEN, f"See {LONG_URL}", "Thanks."]
    )


def hostile_run() -> Any:
    """make_run() with long answers, every payload, long names and URLs, and engine facts that
    hold nulls, lists and nested mappings."""
    run = make_run()
    for t in run["tasks"]:
        for i, row in enumerate(t["disagreements"]):
            row["candidate_output"] = _answer(i)
            row["baseline_output"] = _answer(i + 1)[:900]
            row["prompt"] = f"Render this: {PAYLOADS[(i + 2) % len(PAYLOADS)]}"
            row["reference"] = PAYLOADS[(i + 3) % len(PAYLOADS)]
        t["endpoints"] = {
            "baseline": {
                "model": "llama-3.1-8b-instruct-fp16",
                "engine": "vllm 0.6.3.post1+cu124.torch2.4.0.flashinfer0.1.6.with-a-long-suffix",
                "server": {"version": None, "args": ["--max-model-len", "8192", "--kv-cache-dtype",
                           "auto"], "gpus": ["H100-80GB", "H100-80GB"], "build": LONG_TOKEN},
                "recorded_base_url": LONG_URL,
            },
            "candidate": {
                "model": "llama-3.1-8b-instruct-fp8\u202e8pf",
                "engine": "sglang 0.4.1 " + PAYLOADS[1],
                "server": {"version": "0.4.1", "args": [], "quantization": None,
                           "note": PAYLOADS[2]},
            },
        }  # fmt: skip
    run["tasks"][0]["task"] = "support_golden_multilingual_escalations_with_a_very_long_name_v2"
    run["contract"]["tasks"][0]["name"] = run["tasks"][0]["task"]
    run["contract"]["path"] = "/srv/contracts/" + "nested/" * 12 + "contract.yaml"
    run["contract"]["candidate"]["base_url"] = LONG_URL
    run["contract"]["candidate"]["model"] = "fp8</title>" + PAYLOADS[0]
    run["contract"]["description"] = "fp16 -> fp8 KV cache " + PAYLOADS[4] + " " + LONG_TOKEN
    run["overall_reasons"].append(PAYLOADS[0] + PAYLOADS[4])
    run["lock"] = {"digest": "ab" * 32, "entries": {"data": "cd" * 32, "judge prompt": None}}
    return run


def twenty_task_run() -> Any:
    run = hostile_run()
    for i in range(17):
        t = copy.deepcopy(run["tasks"][i % 3])
        t["task"] = f"golden_{i:02d}_" + ("regional_" * (i % 4))
        run["tasks"].append(t)
    assert len(run["tasks"]) == 20
    return run


def every_check_run() -> Any:
    """The hostile run with every registered check reported (seven columns' worth)."""
    from pytest_parity.records import check

    run = hostile_run()
    for i, t in enumerate(run["tasks"]):
        for name in ("buckets", "calibration", "tone", "latency"):
            status = ("PASS", "FAIL", "INCONCLUSIVE")[i % 3]
            t["checks"][name] = check(name, status, [f"{name}: {status.lower()}"])
    return run


# A conftest that renders a stored run through the plugin's pytest-html hooks, one test per
# task, without running any gate (the browser tests of the pytest-html page use it).
PYTEST_HTML_CONFTEST = """
import json
from pathlib import Path
from pytest_parity.report.pytest_html import ParityHtmlHooks

RUN = json.loads(Path(__file__).with_name("run.json").read_text(encoding="utf-8"))

def pytest_configure(config):
    config.pluginmanager.register(ParityHtmlHooks(lambda: RUN), "parity-html")

def pytest_generate_tests(metafunc):
    if "task" in metafunc.fixturenames:
        metafunc.parametrize("task", RUN["tasks"], ids=[t["task"][:20] for t in RUN["tasks"]])
"""
