"""Contract validation: every mistake is one line naming the file, the field and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_parity.contract.spec import ContractError, load_contract

MINIMAL = """\
baseline:  {kind: openai, base_url: "http://127.0.0.1:8001/v1", model: m}
candidate: {kind: openai, base_url: "http://127.0.0.1:8002/v1", model: m}
tasks:
  - {name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "golden.jsonl").write_text(
        '{"id": "q1", "prompt": "What is 2 + 3?", "reference": "5"}\n', encoding="utf-8"
    )
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "contract.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_minimal_contract_fills_defaults(folder: Path) -> None:
    c = load_contract(write(folder, MINIMAL))
    assert c.defaults.tolerance == 0.015
    assert c.defaults.alpha == 0.05
    assert c.baseline.params["temperature"] == 0.0
    assert c.baseline.params["seed"] == 0
    assert c.baseline.api == "chat"
    task = c.tasks[0]
    assert task.path == (folder / "golden.jsonl").resolve()  # relative to the contract file
    assert task.tolerance == 0.015 and not task.safety_critical
    assert len(c.digest) == 64


def test_safety_critical_task_gets_tighter_tolerance_and_strict_policy(folder: Path) -> None:
    text = MINIMAL.replace("scorer: numeric}", "scorer: numeric, safety_critical: true}")
    task = load_contract(write(folder, text)).tasks[0]
    assert task.tolerance == 0.005
    assert task.failure_min_count == 1
    assert task.inconclusive == "fail"


def test_marker_policy_matches_contract_policy(folder: Path) -> None:
    c = load_contract(write(folder, MINIMAL))
    marked = c.tasks[0].with_safety_critical(c.defaults)
    assert (marked.tolerance, marked.failure_min_count, marked.inconclusive) == (0.005, 1, "fail")


def test_environment_variables_fill_endpoint_urls(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLD_URL", "http://127.0.0.1:9/v1")
    text = MINIMAL.replace('"http://127.0.0.1:8001/v1"', '"${OLD_URL}"')
    assert load_contract(write(folder, text)).baseline.base_url == "http://127.0.0.1:9/v1"


# (what to change in MINIMAL, the exact message after "<file>: ")
BAD = [
    (
        ("scorer: numeric}", "scorer: numeric, tolerence: 0.02}"),
        "tasks[0].tolerence: unknown key (hint: did you mean 'tolerance'?)",
    ),
    (
        ("scorer: numeric}", "scorer: numeric, tolerance: '2%'}"),
        "tasks[0].tolerance: expected a number in (0, 1), got '2%' (hint: write 0.02)",
    ),
    (
        ("scorer: numeric}", "scorer: numeric, tolerance: 2}"),
        "tasks[0].tolerance: expected a number in (0, 1), got 2"
        " (hint: tolerances are absolute points on a 0-1 metric: write 0.02)",
    ),
    (
        ("scorer: numeric}", "scorer: numerik}"),
        "tasks[0].scorer: unknown scorer 'numerik'; did you mean 'numeric'? (hint: built-in scorers:"
        " exact, contains, regex, numeric, choice, json, judge-rubric, judge-pairwise; or"
        " 'package.module:function')",
    ),
    (
        ("path: golden.jsonl", "path: missing.jsonl"),
        "tasks[0].path: file not found: {folder}/missing.jsonl"
        " (hint: paths are relative to the contract file)",
    ),
    (
        (
            'kind: openai, base_url: "http://127.0.0.1:8001/v1"',
            'kind: opnai, base_url: "http://127.0.0.1:8001/v1"',
        ),
        "baseline.kind: expected one of openai, vllm, sglang, tensorrt-llm, llama-cpp, anthropic,"
        " replay, got 'opnai'; did you mean 'openai'? (hint: write one of: openai, vllm, sglang,"
        " tensorrt-llm, llama-cpp, anthropic, replay)",
    ),
    (
        ('base_url: "http://127.0.0.1:8002/v1", ', ""),
        'candidate.base_url: required but missing (hint: write base_url: "http://host:port/v1")',
    ),
    (
        ("model: m}\ntasks", "model: m, params: {temprature: 0}}\ntasks"),
        "candidate.params.temprature: not a parameter openai endpoints accept"
        " (hint: did you mean 'temperature'?)",
    ),
    (
        ("model: m}\ntasks", "model: m, max_concurrency: 0}\ntasks"),
        "candidate.max_concurrency: expected a whole number >= 1, got 0",
    ),
    (
        ("tasks:\n", "defaults: {alpha: 0.9}\ntasks:\n"),
        "defaults.alpha: expected a number in (0, 0.5), got 0.9 (hint: e.g. 0.05)",
    ),
    (
        ("scorer: numeric}", "scorer: numeric}\n  - {name: arithmetic, path: golden.jsonl}"),
        "tasks[1].name: duplicate task name 'arithmetic' (also tasks[0]) (hint: task names must be unique)",
    ),
    (
        ("model: m}\ntasks", "model: m, api_key_env: sk-abc123}\ntasks"),
        "candidate.api_key_env: expected the NAME of an environment variable, not a key"
        " (hint: write e.g. api_key_env: OPENAI_API_KEY and export the key in that variable)",
    ),
    (
        ('"http://127.0.0.1:8001/v1"', '"${NOT_SET_ANYWHERE_X}"'),
        "baseline.base_url: environment variable NOT_SET_ANYWHERE_X is not set"
        " (hint: export NOT_SET_ANYWHERE_X, or write ${NOT_SET_ANYWHERE_X:-default})",
    ),
    (
        ("tasks:\n", "tasks: []\nextra:\n"),
        "extra: unknown key (hint: known keys: version, baseline, candidate, defaults, tasks,"
        " description, judge)",
    ),
    (
        ("scorer: numeric}", "scorer: numeric, safety_critical: yes please}"),
        "tasks[0].safety_critical: expected true or false, got 'yes please' (hint: write true or false)",
    ),
    (
        ("scorer: numeric}", "scorer: numeric, inconclusive: pass}"),
        "tasks[0].inconclusive: expected one of fail, warn, got 'pass' (hint: write one of: fail, warn)",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_contract_gives_one_line_naming_the_field(
    folder: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in MINIMAL
    path = write(folder, MINIMAL.replace(change[0], change[1], 1))
    with pytest.raises(ContractError) as err:
        load_contract(path)
    text = str(err.value)
    assert "\n" not in text
    assert text == f"{path}: " + message.replace("{folder}", str(folder.resolve()))


def test_invalid_yaml_names_line_and_column(folder: Path) -> None:
    path = write(folder, "baseline: {kind: openai\ntasks: [")
    with pytest.raises(ContractError, match=r"contract.yaml: line \d+, column \d+: not valid YAML"):
        load_contract(path)


def test_missing_contract_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="contract file not found"):
        load_contract(tmp_path / "nope.yaml")


def test_contract_is_frozen(folder: Path) -> None:
    c = load_contract(write(folder, MINIMAL))
    with pytest.raises(TypeError):
        c.baseline.params["temperature"] = 1.0  # type: ignore[index]


def test_confidence_level_sets_alpha(folder: Path) -> None:
    text = MINIMAL.replace("scorer: numeric}", "scorer: numeric, confidence: 0.80}")
    text = "defaults: {confidence: 0.98}\n" + text
    c = load_contract(write(folder, text))
    assert c.defaults.alpha == pytest.approx(0.01)
    assert c.tasks[0].alpha == pytest.approx(0.10)


def test_alpha_and_confidence_together_is_an_error(folder: Path) -> None:
    text = MINIMAL.replace("scorer: numeric}", "scorer: numeric, confidence: 0.9, alpha: 0.05}")
    with pytest.raises(ContractError, match=r"tasks\[0\]\.confidence: give alpha or confidence"):
        load_contract(write(folder, text))


def test_lm_eval_task_options_are_validated_with_the_contract(folder: Path) -> None:
    text = MINIMAL.replace(
        "{name: arithmetic, source: golden, path: golden.jsonl, scorer: numeric}",
        "{name: gsm, source: lm-eval, lm_eval: {task: gsm8k, num_fewshot: 0, limt: 5}}",
    )
    path = write(folder, text)
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert (
        str(err.value)
        == f"{path}: tasks[0].lm_eval.limt: unknown key (hint: did you mean 'limit'?)"
    )


def test_lm_eval_options_on_a_golden_task_are_an_error(folder: Path) -> None:
    text = MINIMAL.replace("scorer: numeric}", "scorer: numeric, lm_eval: {task: gsm8k}}")
    with pytest.raises(
        ContractError, match=r"tasks\[0\]\.lm_eval: only an lm-eval task reads these"
    ):
        load_contract(write(folder, text))


def test_vendor_key_variable_is_a_default_only_for_the_vendors_own_api(folder: Path) -> None:
    local = load_contract(write(folder, MINIMAL))
    assert local.baseline.api_key_env is None  # never send OPENAI_API_KEY to a self-hosted server
    hosted = MINIMAL.replace('"http://127.0.0.1:8001/v1"', '"https://api.openai.com/v1"')
    assert load_contract(write(folder, hosted)).baseline.api_key_env == "OPENAI_API_KEY"


def test_a_key_given_twice_is_an_error_not_last_wins(folder: Path) -> None:
    text = MINIMAL.replace(
        "tasks:", 'baseline:  {kind: openai, base_url: "http://x/v1", model: n}\ntasks:'
    )
    path = write(folder, text)
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert (
        str(err.value)
        == f"{path}: line 3, column 1: duplicate key 'baseline' (hint: each key may appear once)"
    )
