"""``max_error_rate`` has a documented cap (README, Defaults: at most 0.2, ``MAX_ERROR_RATE``):
failed requests are not missing at random, so a verdict on what is left after many failures would
describe another golden set. Above it is a one-line contract error, per task and in ``defaults``;
the cap itself is accepted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_parity.contract.rules import MAX_ERROR_RATE
from pytest_parity.contract.spec import ContractError, load_contract

CONTRACT = """\
baseline:  {{kind: openai, base_url: "http://127.0.0.1:8001/v1", model: m}}
candidate: {{kind: openai, base_url: "http://127.0.0.1:8002/v1", model: m}}
defaults: {{{defaults}}}
tasks:
  - {{name: arithmetic, path: golden.jsonl, scorer: numeric{task}}}
"""


def write(folder: Path, defaults: str = "", task: str = "") -> Path:
    (folder / "golden.jsonl").write_text(
        '{"id": "q1", "prompt": "What is 2 + 3?", "reference": "5"}\n', encoding="utf-8"
    )
    path = folder / "contract.yaml"
    text = CONTRACT.format(defaults=defaults, task=f", {task}" if task else "")
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_cap_is_the_documented_one() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `max_error_rate` |"))
    assert MAX_ERROR_RATE == 0.2 and "at most `0.2`" in row


@pytest.mark.parametrize("value", ["0.9", "0.21", "0.2000001", "1", "5"])
def test_above_the_cap_on_a_task_is_one_line(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, task=f"max_error_rate: {value}")
    with pytest.raises(ContractError) as err:
        load_contract(path)
    text = str(err.value)
    assert "\n" not in text
    assert text == (
        f"{path}: tasks[0].max_error_rate: expected a number in [0, 0.2], got {value}"
        " (hint: at most 0.2: failed requests are not missing at random)"
    )


@pytest.mark.parametrize("value", ["0.9", "0.21", "0.2000001"])
def test_above_the_cap_in_defaults_is_one_line(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, defaults=f"max_error_rate: {value}")
    with pytest.raises(ContractError) as err:
        load_contract(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(
        f"{path}: defaults.max_error_rate: expected a number in [0, 0.2], got {value} (hint:"
    )
    assert "at most 0.2" in text


def test_a_task_within_the_cap_does_not_lift_defaults_above_it(tmp_path: Path) -> None:
    """The defaults are checked on their own: a task's valid override does not excuse them."""
    path = write(tmp_path, defaults="max_error_rate: 0.5", task="max_error_rate: 0.1")
    with pytest.raises(ContractError, match=r"defaults\.max_error_rate: expected a number"):
        load_contract(path)


@pytest.mark.parametrize(
    ("defaults", "task", "expected"),
    [
        ("max_error_rate: 0.2", "", 0.2),  # the cap in defaults, inherited by the task
        ("", "max_error_rate: 0.2", 0.2),  # the cap on the task
        ("max_error_rate: 0.2", "max_error_rate: 0.05", 0.05),  # a task's own, below
        ("max_error_rate: 0", "", 0.0),  # no failed request allowed at all
        ("", "", 0.02),  # the documented default
    ],
)
def test_the_cap_itself_and_below_are_accepted(
    tmp_path: Path, defaults: str, task: str, expected: float
) -> None:
    c = load_contract(write(tmp_path, defaults=defaults, task=task))
    assert c.tasks[0].max_error_rate == expected


def test_the_cli_refuses_it_before_any_request_in_one_line(pytester: pytest.Pytester) -> None:
    path = write(pytester.path, task="max_error_rate: 0.9")
    result = pytester.runpytest(f"--parity-contract={path}", "-p", "no:cacheprovider")
    assert result.ret == 4
    err = result.stderr.str()
    lines = [line for line in err.splitlines() if "max_error_rate" in line]
    assert len(lines) == 1 and "tasks[0].max_error_rate: expected a number in [0, 0.2]" in lines[0]
    assert "Traceback" not in err
