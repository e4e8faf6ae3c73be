"""The statistics of the gate as a user meets them: pytester runs against real local HTTP servers.

Each test writes a golden set and a contract, runs pytest with ``--parity-contract`` and reads
the verdict back from the test outcomes, the failure text and ``--parity-json``: continuous rubric
scores (t interval with its bootstrap cross-check), passage clusters (cluster-t), repeated
sampling (per-item means), the minimum number of items, and Holm across tasks.
"""

from __future__ import annotations

import json
import random
import re
import threading
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer

from pytest_parity import stats

# Plugins the inner runs do not use: hypothesis alone re-imports (and rewrites) its package in
# every in-process run, seconds per run on a loaded CI machine.
ARGS = (
    "--parity-no-cache",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:anyio",
)
NUMBER = re.compile(r"item (\d+)")
Answer = Callable[[dict[str, Any]], str]

RUBRIC = """
import re

def graded(response, reference):
    m = re.search(r"grade (\\d+)", response)
    return None if m is None else int(m.group(1)) / 100
"""


def item_of(body: dict[str, Any]) -> int:
    m = NUMBER.search(body["messages"][-1]["content"])
    assert m is not None, body
    return int(m.group(1))


def noise(i: int, salt: str, modulus: int) -> int:
    """A deterministic per-item draw in [0, modulus): the same in every run and process."""
    return zlib.crc32(f"{salt}:{i}".encode()) % modulus


def write_items(
    pytester: pytest.Pytester, n: int, name: str = "items.jsonl", start: int = 0
) -> None:
    lines = [
        json.dumps(
            {
                "id": f"q{i}",
                "prompt": f"Answer item {i}.",
                "reference": str(i),
                "metadata": {"passage": f"p{i // 10}"},
            }
        )
        for i in range(start, start + n)
    ]
    pytester.path.joinpath(name).write_text("\n".join(lines) + "\n")


def make_contract(pytester: pytest.Pytester, old: str, new: str, *tasks: str) -> Path:
    body = "\n".join(f"  - {t}" for t in tasks)
    return pytester.makefile(
        ".yaml",
        contract=f"""
baseline:  {{kind: openai, base_url: "{old}", model: m}}
candidate: {{kind: openai, base_url: "{new}", model: m}}
tasks:
{body}
""",
    )


@pytest.fixture
def stacks(
    fake_stacks: Callable[..., tuple[FakeServer, FakeServer]],
) -> Callable[[Answer, Answer], tuple[FakeServer, FakeServer]]:
    return fake_stacks


def run_gate(pytester: pytest.Pytester, contract: Path, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = pytester.path / "parity.json"
    result = pytester.runpytest(
        f"--parity-contract={contract}", f"--parity-json={out}", *ARGS, *extra
    )
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result, doc


def task_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in doc["tasks"] if t["task"] == name)
    return found


def delta_numbers(doc: dict[str, Any], name: str) -> dict[str, Any]:
    numbers: dict[str, Any] = task_of(doc, name)["checks"]["delta"]["numbers"]
    return numbers


def right(body: dict[str, Any]) -> str:
    return f"The answer is {item_of(body)}."


def wrong_where(pred: Callable[[int], bool]) -> Answer:
    def answer(body: dict[str, Any]) -> str:
        i = item_of(body)
        return "The answer is -1." if pred(i) else f"The answer is {i}."

    return answer


# --- continuous scores: the t interval, its bootstrap cross-check, Wilcoxon -----------------------


def grade(i: int) -> int:
    return 20 + noise(i, "grade", 71)  # 20 ... 90 points


def graded_old(body: dict[str, Any]) -> str:
    return f"This deserves grade {grade(item_of(body))}."


def graded_new(body: dict[str, Any]) -> str:
    # About 5 points lower, with item-level spread of a few points either way.
    i = item_of(body)
    return f"This deserves grade {grade(i) - 5 + noise(i, 'jitter', 9) - 4}."


def test_continuous_rubric_scores_pass_exactly_when_identical_and_fail_by_t_when_shifted(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    pytester.syspathinsert()  # the contract names its scorer by import path: rubric:graded
    pytester.makepyfile(rubric=RUBRIC)
    write_items(pytester, 300)
    task = "{name: essays, source: golden, path: items.jsonl, scorer: 'rubric:graded'}"
    old, same = stacks(graded_old, graded_old)
    result, doc = run_gate(pytester, make_contract(pytester, old.base_url, same.base_url, task))
    assert result.ret == 0, result.stdout.str()
    nums = delta_numbers(doc, "essays")
    # No [0, 0]: the zero-event bound (fewer than 1 - .05^(1/300) of items could differ unseen).
    assert nums["method"] == "zero-spread" and nums["ci_high"] == pytest.approx(
        1 - 0.05 ** (1 / 300)
    )
    assert nums["ci_low"] == pytest.approx(-nums["ci_high"])
    assert nums["bootstrap_low"] is None and nums["p_value"] is None
    # Graded, not binary: the mean of g / 100 over the items.
    expected = sum(grade(i) for i in range(300)) / 300 / 100
    assert task_of(doc, "essays")["baseline_score"] == pytest.approx(expected, abs=1e-12)

    _, lower = stacks(graded_old, graded_new)
    result, doc = run_gate(pytester, make_contract(pytester, old.base_url, lower.base_url, task))
    assert result.ret == 1
    out = result.stdout.str()
    m = re.search(r"delta FAIL: delta (-\d+\.\d+) pts, 90% CI \[(-\d+\.\d+), (-\d+\.\d+)\]", out)
    assert m is not None, out
    assert -5.5 < float(m.group(1)) < -4.5 and float(m.group(3)) < -1.5
    # 300 bounded scores: the betting interval (valid at every n), t and the bootstrap beside it.
    assert re.search(r"items changed \d+\.\d%, method betting; Wilcoxon p=", out), out
    assert "cross-check: paired bootstrap 90% CI [" in out and "cross-check: t 90% CI [" in out
    nums = delta_numbers(doc, "essays")
    assert nums["method"] == "betting" and nums["b"] is None and nums["p_value"] < 1e-6
    assert nums["ci_low"] < nums["t_low"] < nums["t_high"] < nums["ci_high"]
    # The bootstrap cross-check agrees with t on normal-ish differences and on the verdict.
    width = nums["t_high"] - nums["t_low"]
    assert abs(nums["bootstrap_low"] - nums["t_low"]) < 0.1 * width
    assert abs(nums["bootstrap_high"] - nums["t_high"]) < 0.1 * width
    assert nums["bootstrap_high"] < -0.015
    # The resamples come from the task's own seed (run seed 0, "essays/delta"), in item order,
    # so every process and every rerun draws the same ones.
    scores = [(grade(i) / 100, (grade(i) - 9 + noise(i, "jitter", 9)) / 100) for i in range(300)]
    direct = stats.paired_interval(
        [a for a, _ in scores],
        [b for _, b in scores],
        rng=stats.task_rng(0, "essays/delta"),
    )
    assert (nums["bootstrap_low"], nums["bootstrap_high"]) == pytest.approx(
        (direct.bootstrap_low, direct.bootstrap_high), rel=1e-12
    )


def test_the_cross_check_draws_the_same_resamples_under_xdist(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(rubric=RUBRIC)
    write_items(pytester, 300)
    old, new = stacks(graded_old, graded_new)
    path = make_contract(
        pytester,
        old.base_url,
        new.base_url,
        "{name: essays, source: golden, path: items.jsonl, scorer: 'rubric:graded'}",
        "{name: more, source: golden, path: items.jsonl, scorer: 'rubric:graded', limit: 150}",
    )
    _, serial = run_gate(pytester, path, "-k", "delta")
    res, parallel = run_gate(pytester, path, "-k", "delta", "-n", "2")
    assert "2 workers [2 items]" in res.stdout.str()  # run in worker processes
    for name in ("essays", "more"):
        numbers = delta_numbers(parallel, name)
        assert numbers["method"] == "betting" and numbers["bootstrap_low"] is not None
        assert numbers == delta_numbers(serial, name)


# --- clustered items: cluster-t ------------------------------------------------------------------


def test_passage_clusters_use_cluster_t_and_widen_the_interval(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    # 40 passages x 10 questions; the candidate fails every question of two passages.
    write_items(pytester, 400)
    old, new = stacks(right, wrong_where(lambda i: i // 10 in (3, 17)))
    path = make_contract(
        pytester,
        old.base_url,
        new.base_url,
        "{name: passages, source: golden, path: items.jsonl, scorer: numeric,"
        " cluster_key: passage}",
        "{name: flat, source: golden, path: items.jsonl, scorer: numeric}",
    )
    result, doc = run_gate(pytester, path, "-k", "delta")
    clustered, flat = delta_numbers(doc, "passages"), delta_numbers(doc, "flat")
    assert clustered["method"] == "cluster-t" and clustered["clusters"] == 40
    assert flat["method"] == "tango" and flat["clusters"] is None
    assert clustered["delta"] == flat["delta"] == pytest.approx(-0.05)
    assert (clustered["b"], clustered["c"]) == (20, 0)
    # Treating 400 questions as independent claims a certainty the 40 passages do not give.
    assert clustered["ci_high"] - clustered["ci_low"] > 2 * (flat["ci_high"] - flat["ci_low"])
    assert task_of(doc, "flat")["checks"]["delta"]["status"] == "FAIL"
    assert task_of(doc, "passages")["checks"]["delta"]["status"] == "INCONCLUSIVE"
    out = result.stdout.str()
    assert "method cluster-t" in out and "cross-check: cluster bootstrap 90% CI [" in out
    assert clustered["bootstrap_low"] < clustered["delta"] < clustered["bootstrap_high"]


# --- repeated sampling: per-item means -----------------------------------------------------------


def coin(p_right: float, seed: int) -> tuple[Answer, Counter[str]]:
    """Right with probability p_right on each request, drawn per request; counts what it said."""
    gen = random.Random(seed)
    lock = threading.Lock()
    said: Counter[str] = Counter()

    def answer(body: dict[str, Any]) -> str:
        with lock:
            ok = gen.random() < p_right
            said["right" if ok else "wrong"] += 1
        return right(body) if ok else "The answer is -1."

    return answer, said


def test_repeats_send_each_item_three_times_and_score_the_mean(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    n = 120
    write_items(pytester, n)
    old_answer, old_said = coin(0.7, 1)
    new_answer, new_said = coin(0.7, 2)
    old, new = stacks(old_answer, new_answer)
    task = (
        "{name: sampled, source: golden, path: items.jsonl, scorer: numeric, repeats: 3,"
        " params: {temperature: 0.7}}"
    )
    _, doc = run_gate(pytester, make_contract(pytester, old.base_url, new.base_url, task))
    for server in (old, new):
        per_item = Counter(item_of(body) for body in server.received)
        assert per_item == {i: 3 for i in range(n)}
        assert {body["temperature"] for body in server.received} == {0.7}
    t = task_of(doc, "sampled")
    # Each item scores the mean of its three answers, so the task's score is exactly the share
    # of right answers over all 3n requests, and the scores are not binary: no Tango (120
    # bounded scores: the betting interval).
    assert t["baseline_score"] == pytest.approx(old_said["right"] / (3 * n), abs=1e-12)
    assert t["candidate_score"] == pytest.approx(new_said["right"] / (3 * n), abs=1e-12)
    nums = delta_numbers(doc, "sampled")
    assert nums["method"] == "betting" and nums["b"] is None and nums["n"] == n
    assert nums["bootstrap_low"] is not None


def test_repeats_ask_for_different_samples(pytester: pytest.Pytester, stacks: Any) -> None:
    write_items(pytester, 4)
    old, new = stacks(right, right)
    task = (
        "{name: sampled, source: golden, path: items.jsonl, scorer: numeric, repeats: 3,"
        " params: {temperature: 0.7}, min_items: 1}"
    )
    run_gate(pytester, make_contract(pytester, old.base_url, new.base_url, task))
    bodies: dict[int, list[str]] = {}
    for body in old.received:
        bodies.setdefault(item_of(body), []).append(json.dumps(body, sort_keys=True))
    assert all(len(set(b)) == 3 for b in bodies.values()), bodies


# --- how many items: min_items, and a clean PASS at n = 2,000 with Holm across tasks ---------------


def test_five_items_of_equal_accuracy_are_inconclusive_whatever_the_interval_says(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    write_items(pytester, 5)
    # Both right on 4 of 5, on different items: b = c = 1.
    old, new = stacks(wrong_where(lambda i: i == 1), wrong_where(lambda i: i == 3))
    wide = "{name: tiny, source: golden, path: items.jsonl, scorer: numeric, tolerance: 0.7}"
    result, doc = run_gate(pytester, make_contract(pytester, old.base_url, new.base_url, wide))
    nums = delta_numbers(doc, "tiny")
    assert (nums["b"], nums["c"], nums["n"]) == (1, 1, 5)
    assert nums["ci_low"] > -0.7  # the interval alone would pass at this tolerance ...
    delta = task_of(doc, "tiny")["checks"]["delta"]
    assert delta["status"] == "INCONCLUSIVE"  # ... but 5 items are fewer than min_items (30)
    assert "only 5 paired items; the contract asks for at least 30" in " ".join(delta["reasons"])
    assert result.ret == 1 and "delta INCONCLUSIVE" in result.stdout.str()

    tight = wide.replace(", tolerance: 0.7", "")
    result, doc = run_gate(pytester, make_contract(pytester, old.base_url, new.base_url, tight))
    delta = task_of(doc, "tiny")["checks"]["delta"]
    assert delta["status"] == "INCONCLUSIVE" and result.ret == 1
    assert "would settle it" in " ".join(delta["reasons"])


def test_five_noisy_items_name_min_items_even_when_the_interval_is_inconclusive(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    write_items(pytester, 5)
    old, new = stacks(wrong_where(lambda i: i == 1), wrong_where(lambda i: i == 3))
    task = "{name: tiny, source: golden, path: items.jsonl, scorer: numeric}"
    _, doc = run_gate(pytester, make_contract(pytester, old.base_url, new.base_url, task))
    delta = task_of(doc, "tiny")["checks"]["delta"]
    assert delta["status"] == "INCONCLUSIVE"
    assert "the contract asks for at least 30" in " ".join(delta["reasons"])


def test_symmetric_noise_at_2000_items_passes_and_holm_is_in_the_json(
    pytester: pytest.Pytester, stacks: Any
) -> None:
    n = 2000
    write_items(pytester, n)
    write_items(pytester, 400, "regressed.jsonl", start=10_000)
    # Each stack wrong on its own pseudo-random 5% of the items (different items); on the
    # second set the candidate is also wrong on every tenth item: a 10-point regression.
    old, new = stacks(
        wrong_where(lambda i: noise(i, "old", 20) == 0),
        wrong_where(lambda i: noise(i, "new", 20) == 0 or (i >= 10_000 and i % 10 == 0)),
    )
    names = ("large", "small", "regressed")
    path = make_contract(
        pytester,
        old.base_url,
        new.base_url,
        "{name: large, source: golden, path: items.jsonl, scorer: numeric}",
        "{name: small, source: golden, path: items.jsonl, scorer: numeric, limit: 200}",
        "{name: regressed, source: golden, path: regressed.jsonl, scorer: numeric}",
    )
    result, doc = run_gate(pytester, path, "-k", "delta")
    large = delta_numbers(doc, "large")
    assert large["method"] == "tango" and large["n"] == n
    assert 150 <= large["b"] + large["c"] <= 240  # about 2 x 5% of 2,000 items flipped
    assert task_of(doc, "large")["checks"]["delta"]["status"] == "PASS"
    assert -0.015 < large["ci_low"] < large["delta"] < large["ci_high"] < 0.015
    # The same noise on 200 of those items cannot tell; the regression is a FAIL.
    status = {name: task_of(doc, name)["checks"]["delta"]["status"] for name in names}
    assert status == {"large": "PASS", "small": "INCONCLUSIVE", "regressed": "FAIL"}
    assert result.parseoutcomes() == {"passed": 1, "failed": 2, "deselected": 6}
    # Holm's step-down over every alarm of the run: each check's one-sided p (delta: "worse than
    # the tolerance"; failure modes and direction where they test something).
    alarms = {
        f"{t['task']}/{c['name']}": c["numbers"]["p_alarm"]
        for t in doc["tasks"]
        for c in t["checks"].values()
        if c["numbers"].get("p_alarm") is not None
    }
    assert {k for k in alarms if k.endswith("/delta")} == {f"{n}/delta" for n in names}
    keys = list(alarms)
    assert doc["holm"] == pytest.approx(
        dict(zip(keys, stats.holm(list(alarms.values())), strict=True))
    )
    p_fail = [delta_numbers(doc, name)["p_fail"] for name in names]
    assert doc["holm"]["regressed/delta"] <= len(alarms) * p_fail[2] < 0.05
    assert doc["holm"]["large/delta"] > 0.5 and doc["holm"]["small/delta"] > 0.5
    assert doc["overall"] == "FAIL"  # the regression's alarm holds across the whole run
    assert any(
        r.startswith("regressed delta FAIL holds across") and "alarms of the run" in r
        for r in doc["overall_reasons"]
    ), doc["overall_reasons"]
