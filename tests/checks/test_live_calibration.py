"""Calibration and tone on the real llama.cpp pair (SmolLM2 F32 against Q4_1): confidence from the
chat API's top_logprobs, the same way on both stacks, and the length ratio of open-ended answers.

A reduced copy of example_suite/live/calibration.yaml (24 multiple-choice items, 4 support
questions with short answers) keeps this to about a minute on an idle 2-core machine. Q4_1 keeps
answering A or B; Q2_K stops naming an option at all on these questions, and its confidence is
then read at the answer's first token (``no_option: first_token``), so calibration still has
numbers to compare. What the quantisation does to calibration is measured, not assumed: the
tests check that the numbers exist, are computed from real logprobs and are consistent, not which
way they go (the README states the measured values on the full sets).

Needs `bash example_suite/live/setup_testbed.sh` first; skips (with the command to run) otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import livebed
import pytest
import yaml

pytestmark = pytest.mark.live_model

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "example_suite" / "live"


pair = livebed.pair_fixture("F32", "Q4_1", "Q2_K")


def _run(pytester: pytest.Pytester, spec: dict[str, Any]) -> dict[str, Any]:
    contract = pytester.path / "calibration.yaml"
    contract.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = pytester.path / "out.json"
    pytester.runpytest(
        f"--parity-contract={contract}",
        "--parity-no-cache",
        f"--parity-json={out}",
        f"--parity-report={pytester.path / 'out.html'}",
        "-p",
        "no:cacheprovider",
    )
    return {t["task"]: t for t in json.loads(out.read_text())["tasks"]}


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((LIVE / "calibration.yaml").read_text())
    for task in spec["tasks"]:
        task["path"] = str((LIVE / task["path"]).resolve())
    return spec


def test_logprob_confidence_and_length_ratio_on_the_real_pair(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pair: dict[str, str]
) -> None:
    monkeypatch.setenv("PARITY_LIVE_BASELINE_URL", pair["F32"])
    monkeypatch.setenv("PARITY_LIVE_CANDIDATE_URL", pair["Q4_1"])
    spec = _spec()
    spec["tasks"][0]["limit"] = 24
    spec["tasks"][1]["limit"] = 4
    spec["tasks"][1]["params"]["max_tokens"] = 40
    tasks = _run(pytester, spec)
    mc, tone = tasks["heavier_mc"], tasks["support_tone"]
    assert mc["error"] is None and mc["baseline_errors"] == mc["candidate_errors"] == 0
    cal = mc["checks"]["calibration"]
    assert cal["status"] != "ERROR", cal["reasons"]  # llama.cpp returns top_logprobs on chat
    nums = cal["numbers"]
    assert nums["confidence_method"] == "logprobs" and nums["n_paired"] >= 2
    for key in ("brier_baseline", "brier_candidate", "aurc_baseline", "aurc_candidate"):
        assert 0.0 <= nums[key] <= 1.0
    assert nums["brier_ci_low"] <= nums["brier_delta"] <= nums["brier_ci_high"]
    # Two options: every confidence is a probability among A and B, so at least one half.
    assert 0.5 <= nums["mean_confidence_baseline"] <= 1.0
    assert 0.5 <= nums["mean_confidence_candidate"] <= 1.0
    assert tone["checks"]["tone"]["status"] in ("PASS", "FAIL", "INCONCLUSIVE")
    ratio = tone["checks"]["tone"]["numbers"]["length_ratio"]
    assert math.isfinite(ratio) and ratio > 0


def test_q2k_names_no_option_and_its_first_token_confidence_is_compared(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pair: dict[str, str]
) -> None:
    monkeypatch.setenv("PARITY_LIVE_BASELINE_URL", pair["F32"])
    monkeypatch.setenv("PARITY_LIVE_CANDIDATE_URL", pair["Q2_K"])
    spec = _spec()
    spec["tasks"] = spec["tasks"][:1]
    spec["tasks"][0]["limit"] = 12
    mc = _run(pytester, spec)["heavier_mc"]
    assert mc["error"] is None and mc["candidate_errors"] == 0
    cal = mc["checks"]["calibration"]
    nums = cal["numbers"]
    assert cal["status"] != "ERROR", cal["reasons"]
    # every Q2_K answer named no option (measured: 48 of 48 on the full set) and still has a
    # confidence, read at its first token; the F32 answers name their option
    assert nums["n_paired"] == 12 and nums["missing_candidate"] == 0
    assert nums["first_token_candidate"] == 12 and nums["first_token_baseline"] == 0
    assert nums["accuracy_candidate"] == 0.0
    assert 0.5 <= nums["mean_confidence_candidate"] <= 1.0  # the top option among two
    # all wrong: the Brier score is the mean squared confidence
    assert nums["brier_candidate"] >= nums["mean_confidence_candidate"] ** 2 - 1e-9
    assert any("named no option" in r for r in cal["reasons"])
