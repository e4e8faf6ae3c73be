"""The example gates end to end against the real llama.cpp servers (SmolLM2 F32, Q4_1, Q2_K).

Each live contract of example_suite/live/ runs through pytest on reduced copies (which_is_heavier
in full, born_first's first 40 items: ~1 min per contract on 2 cores), and its verdicts, failure
categories and reports are checked. The same reduced copies of the offline twins
(example_suite/recorded/) must then give the very same JSON report, number for number: the shipped
recordings are what these servers answer today.

Needs `bash example_suite/live/setup_testbed.sh` first; skips (with the command to run) otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import livebed
import pytest
import yaml

pytestmark = pytest.mark.live_model

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "example_suite" / "live"
RECORDED = ROOT / "example_suite" / "recorded"

# Tasks kept in the reduced copies and their item limits (None: every item). which_is_heavier
# stays whole: its first 50 items hold no Q4_1 flip, and zero flips in a handful of items would
# be judged as exact parity, a claim these few items cannot carry.
LIMITS: dict[str, int | None] = {"which_is_heavier": None, "born_first": 40}
# Fields that say when and where a run happened, not what it found.
# the audit names the contract file, and the lock digests it (and a replay's recordings), which
# differ between the live and the replayed run
RUN_FACTS = frozenset(
    {"started", "finished", "endpoints", "contract", "latency_s", "audit", "lock"}
)


# example_suite is not a package, and tests/support/servers.py already owns the name "servers".
servers = livebed.servers()
testbed = livebed.pair_fixture("F32", "Q4_1", "Q2_K")


def reduced(contract: Path, dest: Path) -> Path:
    """A copy of ``contract`` with only LIMITS' tasks and limits; paths made absolute."""
    spec = yaml.safe_load(contract.read_text())
    for role in ("baseline", "candidate"):
        if "recording" in spec[role]:
            spec[role]["recording"] = str(contract.parent / spec[role]["recording"])
    tasks = []
    for task in spec["tasks"]:
        if task["name"] not in LIMITS:
            continue
        task = {k: v for k, v in task.items() if k != "limit"}
        task["path"] = str((contract.parent / task["path"]).resolve())
        if LIMITS[task["name"]] is not None:
            task["limit"] = LIMITS[task["name"]]
        tasks.append(task)
    spec["tasks"] = tasks
    dest.write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def findings(report: Any) -> Any:
    if isinstance(report, dict):
        return {k: findings(v) for k, v in report.items() if k not in RUN_FACTS}
    if isinstance(report, list):
        return [findings(v) for v in report]
    return report


def run_gate(
    pytester: pytest.Pytester, contract: Path, name: str
) -> tuple[pytest.RunResult, dict[str, Any], Path]:
    out, html = pytester.path / f"{name}.json", pytester.path / f"{name}.html"
    result = pytester.runpytest(
        f"--parity-contract={contract}",
        "--parity-no-cache",
        f"--parity-json={out}",
        f"--parity-report={html}",
    )
    return result, json.loads(out.read_text()), html


def by_task(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in report["tasks"]}


def gate_live_and_replayed(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    urls: dict[str, str],
    name: str,
    candidate: str,
) -> tuple[pytest.RunResult, dict[str, Any], Path]:
    monkeypatch.setenv("PARITY_LIVE_BASELINE_URL", urls["F32"])
    monkeypatch.setenv("PARITY_LIVE_CANDIDATE_URL", urls[candidate])
    live = reduced(LIVE / f"{name}.yaml", pytester.path / f"live_{name}.yaml")
    result, report, html = run_gate(pytester, live, f"live_{name}")
    for t in report["tasks"]:
        assert t["error"] is None and t["baseline_errors"] == t["candidate_errors"] == 0, t
    served = {
        role: Path(report["tasks"][0]["endpoints"][role]["engine"]["served_models"][0]).name
        for role in ("baseline", "candidate")
    }
    assert served == {
        "baseline": "SmolLM2-135M-Instruct.F32.gguf",
        "candidate": f"SmolLM2-135M-Instruct.{candidate}.gguf",
    }

    replay = reduced(RECORDED / f"{name}.yaml", pytester.path / f"replay_{name}.yaml")
    _, replayed, _ = run_gate(pytester, replay, f"replay_{name}")
    assert findings(replayed) == findings(report), (
        f"the recordings in {RECORDED} no longer match what the servers answer: re-record them "
        "(see example_suite/recorded/README.md)"
    )
    return result, report, html


def test_precision_change_live_is_inconclusive_and_says_how_many_items(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, testbed: dict[str, str]
) -> None:
    result, report, html = gate_live_and_replayed(
        pytester, monkeypatch, testbed, "precision", "Q4_1"
    )
    assert result.ret == 1
    assert report["overall"] == "INCONCLUSIVE"
    tasks = by_task(report)
    assert {name: t["verdict"] for name, t in tasks.items()} == {
        "which_is_heavier": "INCONCLUSIVE",
        "born_first": "INCONCLUSIVE",
    }
    heavier = tasks["which_is_heavier"]
    assert (heavier["baseline_score"], heavier["candidate_score"]) == (0.60, 0.59)
    assert (
        heavier["checks"]["delta"]["numbers"]["items_needed"] == 902
    )  # exact (the normal formula: 823)
    for t in tasks.values():
        assert t["checks"]["delta"]["numbers"]["items_needed"] > t["n_paired"]
        assert t["checks"]["failure_modes"]["status"] == "PASS"
        assert t["checks"]["error_direction"]["status"] == "PASS"
    assert "about 902 items in total (802 more) would settle it" in result.stdout.str()
    page = html.read_text()
    assert "INCONCLUSIVE" in page and "born_first" in page


def test_aggressive_quantization_live_fails_with_new_truncations(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, testbed: dict[str, str]
) -> None:
    result, report, html = gate_live_and_replayed(
        pytester, monkeypatch, testbed, "aggressive", "Q2_K"
    )
    assert result.ret == 1
    assert report["overall"] == "FAIL"
    tasks = by_task(report)
    # task -> (right -> wrong, wrong -> right); truncated (unreadable answers cut at the token
    # limit) grows on both, by how much depends on the server build's sampling of ties
    expected = {"which_is_heavier": (46, 9), "born_first": (13, 0)}
    for name, (c_to_w, w_to_c) in expected.items():
        t = tasks[name]
        assert t["verdict"] == "FAIL"
        assert t["checks"]["delta"]["status"] == "FAIL"
        modes = t["checks"]["failure_modes"]
        assert modes["status"] == "FAIL"
        categories = modes["numbers"]["categories"]
        assert {k for k, v in categories.items() if v["status"] == "grown"} == {"truncated"}
        grown = categories["truncated"]
        assert grown["candidate"] > grown["baseline"] and grown["p_holm"] < 0.05
        table = t["checks"]["error_direction"]["numbers"]["table"]
        assert (table["C"]["W"], table["W"]["C"]) == (c_to_w, w_to_c)
    assert "failure category 'truncated' grew: " in result.stdout.str()
    page = html.read_text()
    assert "FAIL" in page and "truncated" in page
