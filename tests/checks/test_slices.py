"""Exploratory slices by metadata field (checks/slices.py): which fields ``auto`` takes, the
numbers of each slice against a hand computation, Holm over the slices, and that slices never
touch a verdict; ``slice_by`` in the contract and its one-line errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from slice_data import T, rec, records

from pytest_parity import load_contract
from pytest_parity.checks.slices import (
    AUTO_MIN_ITEMS,
    MAX_SLICES,
    auto_fields,
    label,
    slice_breakdown,
)
from pytest_parity.contract.spec import ContractError
from pytest_parity.records import TaskRun
from pytest_parity.verdict import evaluate


def test_auto_takes_categorical_fields_with_few_values_of_enough_items() -> None:
    fields, more = auto_fields(T, [r for r in records() if r["candidate"]["score"] is not None])
    # score_x is a float (a measurement); id_ has 20 values of one item each
    assert fields == ["subject", "level"] and more == []
    assert label(True) == "true" and label(3) == "3" and label(["a"]) is None
    assert label(float("nan")) is None and label(None) is None


def test_each_slice_has_the_hand_computed_numbers() -> None:
    got = slice_breakdown(T, records(), seed=0)
    assert got is not None and got["by"] == "auto" and got["k"] == 4
    subject = got["fields"][0]
    assert subject["field"] == "subject" and subject["unsliced"] == 0
    math_, history = subject["slices"]
    assert (math_["value"], math_["n"], math_["b"], math_["c"]) == ("math", 40, 4, 0)
    assert math_["baseline_score"] == 1.0 and math_["candidate_score"] == pytest.approx(0.9)
    assert math_["delta"] == pytest.approx(-0.1)
    assert math_["ci_low"] < -0.1 < math_["ci_high"] < 0
    assert (history["value"], history["n"], history["b"], history["c"]) == ("history", 20, 0, 2)
    assert history["delta"] == pytest.approx(0.1)
    # 20 items is under min_items 30: at best INCONCLUSIVE, as a task's own delta would be
    assert history["status"] == "INCONCLUSIVE" and history["few_items"] is True
    assert subject["worst"] == "math" and subject["worse"] == 0
    # Holm over all 4 slices of the task, by hand: sorted p times 4, 3, 2, 1, running max
    rows = [s for f in got["fields"] for s in f["slices"]]
    ps = sorted((s["p_fail"], i) for i, s in enumerate(rows))
    running, want = 0.0, {}
    for rank, (p, i) in enumerate(ps):
        running = max(running, min(1.0, (4 - rank) * p))
        want[i] = running
    assert [s["p_holm"] for s in rows] == pytest.approx([want[i] for i in range(4)])
    assert json.loads(json.dumps(got)) == got  # plain builtins: crosses xdist unchanged


def test_a_named_field_is_sliced_even_with_small_slices_and_a_missing_one_is_a_note() -> None:
    t = replace(T, slice_by=("subject", "subjct", "level"))
    recs = [*records(), rec(99, {"level": 1}, 1.0, 1.0)]  # paired, without a subject
    got = slice_breakdown(t, recs, seed=0)
    assert got is not None and got["by"] == ["subject", "subjct", "level"]
    assert [f["field"] for f in got["fields"]] == ["subject", "level"]
    assert got["fields"][0]["unsliced"] == 1
    assert got["notes"] == [
        "slice_by: no paired item of task lc has a single value in metadata.subjct;"
        " did you mean 'subject'?"
    ]


def test_a_named_field_with_too_many_values_is_a_note_not_a_breakdown() -> None:
    many = [rec(i, {"row": i}, 1.0, 1.0) for i in range(MAX_SLICES + 1)]
    got = slice_breakdown(replace(T, slice_by=("row",)), many, seed=0)
    assert got is not None and got["fields"] == [] and got["k"] == 0
    assert got["notes"] == [
        f"slice_by: metadata.row has {MAX_SLICES + 1} values in task lc, more than {MAX_SLICES}:"
        " not a category to slice by (an identifier or a number?)"
    ]
    fine = slice_breakdown(replace(T, slice_by=("row",)), many[:MAX_SLICES], seed=0)
    assert fine is not None and fine["k"] == MAX_SLICES


def test_no_slices_when_turned_off_or_when_nothing_qualifies() -> None:
    assert slice_breakdown(replace(T, slice_by=()), records(), seed=0) is None
    few = [rec(i, {"subject": "ab"[i % 2]}, 1.0, 1.0) for i in range(2 * AUTO_MIN_ITEMS - 1)]
    assert slice_breakdown(T, few, seed=0) is None  # one slice under AUTO_MIN_ITEMS
    assert slice_breakdown(T, [rec(0, None, 1.0, 1.0)], seed=0) is None


def test_slices_are_seeded_by_the_run_seed() -> None:
    cont = [rec(i, {"g": "ab"[i % 2]}, (i % 7) / 7, ((i + 1) % 7) / 7) for i in range(40)]
    a, b = (slice_breakdown(T, cont, seed=3) for _ in range(2))
    assert a == b


def test_a_slice_far_worse_than_the_tolerance_leaves_the_verdict_alone() -> None:
    # physics: the candidate loses 20 of 100 items (-20 pts); math and law each gain 10 of 100:
    # the task's delta is 0 and it passes, while one slice alone is far below the tolerance
    recs = []
    for i in range(300):
        subject, j = ("physics", "math", "law")[i % 3], i // 3
        old, new = (1.0, 0.0 if j < 20 else 1.0) if subject == "physics" else (
            0.0 if j < 10 else 1.0, 1.0)  # fmt: skip
        recs.append(rec(i, {"subject": subject}, old, new))
    run = TaskRun(task=T, records=recs, endpoints={}, n_items=300,
                  failed={"baseline": 0, "candidate": 0}, last_error={})  # fmt: skip
    with_slices = evaluate(T, run, seed=0, disagreements=0)
    without = evaluate(replace(T, slice_by=()), run, seed=0, disagreements=0)
    physics = with_slices["slices"]["fields"][0]["slices"]
    assert {s["value"]: s["status"] for s in physics}["physics"] == "FAIL"
    assert "slices" not in without
    assert with_slices["verdict"] == without["verdict"] == "PASS"
    assert with_slices["checks"] == without["checks"]
    assert not any("slice" in name for name in with_slices["checks"])


def _contract(tmp_path: Path, task_extra: str, defaults: str = "") -> Path:
    data = tmp_path / "g.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "x", "reference": "y"}) + "\n")
    dead = "{kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
    path = tmp_path / "contract.yaml"
    path.write_text(
        f"baseline: {dead}\ncandidate: {dead}\n{defaults}"
        f"tasks:\n  - {{name: g, path: {data}, scorer: exact{task_extra}}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ("", "auto"),
        (", slice_by: subject", ("subject",)),
        (", slice_by: [subject, level]", ("subject", "level")),
        (", slice_by: false", ()),
        (", slice_by: []", ()),
        (", slice_by: auto", "auto"),
    ],
)
def test_slice_by_forms(tmp_path: Path, extra: str, want: object) -> None:
    assert load_contract(_contract(tmp_path, extra)).tasks[0].slice_by == want


def test_defaults_slice_by_applies_to_tasks_that_do_not_set_it(tmp_path: Path) -> None:
    c = load_contract(_contract(tmp_path, "", defaults="defaults: {slice_by: false}\n"))
    assert c.tasks[0].slice_by == ()
    c = load_contract(_contract(tmp_path, ", slice_by: x", defaults="defaults: {slice_by: y}\n"))
    assert c.tasks[0].slice_by == ("x",)
    assert c.describe()["tasks"][0]["slice_by"] == ["x"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (", slice_by: 3",
         "tasks[0].slice_by: expected a metadata field, a list of fields, auto or false, got 3"),
        (", slice_by: {a: 1}", "tasks[0].slice_by: expected a metadata field, a list of fields"),
        (", slice_by: [subject, subject]", "tasks[0].slice_by[1]: 'subject' is listed twice"),
        (", slice_by: [auto, subject]",
         "tasks[0].slice_by[0]: auto cannot be listed with fields (hint: write slice_by: auto"),
        (", slice_by: [subject, '']", "tasks[0].slice_by[1]: expected a non-empty string"),
        (", slice_by: [a, b, c, d, e, f, g, h, i]", "tasks[0].slice_by: 9 fields, at most 8"),
        (", slice_bi: subject", "tasks[0].slice_bi: unknown key (hint: did you mean 'slice_by'?)"),
    ],
)  # fmt: skip
def test_bad_slice_by_is_one_line_naming_file_field_and_fix(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ContractError) as err:
        load_contract(_contract(tmp_path, extra))
    text = str(err.value)
    assert message in text and "contract.yaml" in text and "hint:" in text
    assert "\n" not in text
