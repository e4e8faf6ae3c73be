"""The shipped example gates, replayed offline from answers recorded on the real llama.cpp servers.

example_suite/recorded/ holds the F32, Q4_1 and Q2_K answers of SmolLM2-135M-Instruct to the live
contracts' items (example_suite/live/{precision,aggressive}.yaml). Replayed, the gate must say
exactly what it said live (pinned below from the live runs of 2026-11-26): F32 -> Q4_1 is
INCONCLUSIVE at the default 1.5 points with the items needed, F32 -> Q2_K FAILs with new
'truncated' answers. tests/gate/test_live_gate.py checks the same against the running servers.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_parity import load_contract

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "example_suite" / "recorded"
LIVE = ROOT / "example_suite" / "live"

# What the live runs showed: task -> (baseline %, candidate %), from the recordings' own answers.
PRECISION_SCORES = {"which_is_heavier": (60, 59), "born_first": (31, 29), "mmlu": (26, 24)}
# Exact over the 2x2 table at the observed flip rates (3%, 8%, 2% of 100 items); the normal
# formula said 823, 2,197 and 548.
PRECISION_ITEMS_NEEDED = {"which_is_heavier": 902, "born_first": 2222, "mmlu": 648}


def gate(pytester: pytest.Pytester, contract: Path, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = pytester.path / f"{contract.stem}.json"
    result = pytester.runpytest(
        f"--parity-contract={contract}", "--parity-no-cache", f"--parity-json={out}", *extra
    )
    return result, json.loads(out.read_text())


def tasks_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in report["tasks"]}


def test_precision_change_is_inconclusive_with_the_items_that_would_settle_it(
    pytester: pytest.Pytester,
) -> None:
    html = pytester.path / "precision.html"
    result, report = gate(pytester, RECORDED / "precision.yaml", f"--parity-report={html}")
    assert result.ret == 1  # INCONCLUSIVE never passes
    assert report["overall"] == "INCONCLUSIVE"
    tasks = tasks_of(report)
    assert set(tasks) == set(PRECISION_SCORES)
    for name, (old, new) in PRECISION_SCORES.items():
        t = tasks[name]
        assert (round(t["baseline_score"] * 100), round(t["candidate_score"] * 100)) == (old, new)
        assert t["baseline_errors"] == t["candidate_errors"] == 0
        delta = t["checks"]["delta"]
        assert delta["status"] == "INCONCLUSIVE", (name, delta["reasons"])
        assert delta["numbers"]["items_needed"] == PRECISION_ITEMS_NEEDED[name]
        assert delta["numbers"]["items_needed"] > t["n_paired"]
        # Q4_1 brings no new way of failing and keeps the errors as they were.
        assert t["checks"]["failure_modes"]["status"] == "PASS"
        assert t["checks"]["error_direction"]["status"] == "PASS"
    out = result.stdout.str()
    assert "about 902 items in total (802 more) would settle it" in out
    assert "OVERALL: INCONCLUSIVE" in out
    page = html.read_text()
    assert "INCONCLUSIVE" in page and "which_is_heavier" in page and "902" in page


def test_aggressive_quantization_fails_with_new_truncations_and_its_error_direction(
    pytester: pytest.Pytester,
) -> None:
    html = pytester.path / "aggressive.html"
    result, report = gate(pytester, RECORDED / "aggressive.yaml", f"--parity-report={html}")
    assert result.ret == 1
    assert report["overall"] == "FAIL"
    tasks = tasks_of(report)
    # task -> (old %, new %, old truncated, new truncated, right->wrong, wrong->right); an
    # answer cut at the token limit counts as truncated only when the scorer could not read it
    expected = {
        "which_is_heavier": (60, 23, 2, 46, 46, 9),
        "born_first": (31, 1, 36, 99, 30, 0),
        "mmlu": (26, 8, 1, 6, 12, 3),
    }
    for name, (old, new, trunc_old, trunc_new, c_to_w, w_to_c) in expected.items():
        t = tasks[name]
        assert (round(t["baseline_score"] * 100), round(t["candidate_score"] * 100)) == (old, new)
        assert t["verdict"] == "FAIL"
        delta = t["checks"]["delta"]
        assert delta["status"] == "FAIL"
        assert delta["numbers"]["high"] < -t["tolerance"]  # the whole interval is a regression
        modes = t["checks"]["failure_modes"]
        assert modes["status"] == "FAIL"
        grown = {k for k, v in modes["numbers"]["categories"].items() if v["status"] == "grown"}
        assert grown == {"truncated"}
        truncated = modes["numbers"]["categories"]["truncated"]
        assert (truncated["baseline"], truncated["candidate"]) == (trunc_old, trunc_new)
        # Error direction is shown: every error on both sides is a confident wrong or cut-off
        # answer (neither stack abstains), so the direction is preserved while accuracy falls.
        direction = t["checks"]["error_direction"]
        table = direction["numbers"]["table"]
        assert (table["C"]["W"], table["W"]["C"]) == (c_to_w, w_to_c)
        assert direction["numbers"]["a_to_w"] == direction["numbers"]["w_to_a"] == 0
        assert direction["status"] == "PASS"
    out = result.stdout.str()
    assert "failure category 'truncated' grew: 2 -> 46 of 100 items" in out
    assert "OVERALL: FAIL" in out
    page = html.read_text()
    assert "FAIL" in page and "truncated" in page and "born_first" in page


@pytest.mark.parametrize("name", ["precision", "aggressive"])
def test_replay_contracts_ask_exactly_what_the_live_ones_ask(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("PARITY_LIVE_BASELINE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("PARITY_LIVE_CANDIDATE_URL", "http://127.0.0.1:2/v1")
    live, replay = load_contract(LIVE / f"{name}.yaml"), load_contract(RECORDED / f"{name}.yaml")
    assert [t.path for t in replay.tasks] == [t.path for t in live.tasks]
    assert all(t.path is not None and t.path.resolve().is_file() for t in live.tasks)
    # Everything but the endpoints: the same items, scorers, parameters and tolerances.
    assert replay.tasks == live.tasks
    assert (replay.baseline.kind, replay.candidate.kind) == ("replay", "replay")
    assert live.baseline.kind == live.candidate.kind == "llama-cpp"
    assert (replay.baseline.model, replay.candidate.model) == (
        live.baseline.model,
        live.candidate.model,
    )


def test_recordings_name_the_real_engines_and_model_files() -> None:
    files = {"f32.jsonl": "F32", "q4_1.jsonl": "Q4_1", "q2_k.jsonl": "Q2_K"}
    for name, precision in files.items():
        lines = [json.loads(x) for x in (RECORDED / name).read_text().splitlines()]
        headers = [x for x in lines if x["type"] == "header"]
        assert headers and all(h["kind"] == "llama-cpp" for h in headers)
        served = headers[0]["engine"]["served_models"]
        assert [Path(s).name for s in served] == [f"SmolLM2-135M-Instruct.{precision}.gguf"]
        answers = [x for x in lines if x["type"] == "response"]
        assert len(answers) == 250  # 100 + 100 + 50 items of the live contracts
        assert all(not x["response"]["error"] for x in answers)
        assert (RECORDED / name).stat().st_size < 1_000_000


def test_a_changed_item_is_an_error_naming_it_never_a_verdict(pytester: pytest.Pytester) -> None:
    # The replay contracts read the live contracts' data: an edited item no longer matches its
    # recorded request, and the gate refuses to judge rather than compare different questions.
    shutil.copytree(RECORDED, pytester.path / "recorded")
    shutil.copytree(LIVE / "data", pytester.path / "live" / "data")
    data = pytester.path / "live" / "data" / "which_is_heavier.jsonl"
    lines = data.read_text().splitlines()
    first = json.loads(lines[0])
    first["messages"][-1]["content"] += " Think twice."
    data.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = pytester.runpytest(
        f"--parity-contract={pytester.path / 'recorded' / 'precision.yaml'}", "--parity-no-cache"
    )
    outcome = result.parseoutcomes()
    assert outcome.get("errors") == 3, result.stdout.str()  # every check of the changed task
    assert re.search(rf"item '?which_is_heavier/{first['id']}'? changed", result.stdout.str())
    assert "passed" in outcome  # the untouched tasks still give their verdicts
