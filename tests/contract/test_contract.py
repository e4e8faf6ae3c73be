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
        "tasks[0].scorer: unknown scorer 'numerik'; did you mean 'numeric'? (hint: known scorers:"
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
        " replay, captured, got 'opnai'; did you mean 'openai'? (hint: write one of: openai, vllm,"
        " sglang, tensorrt-llm, llama-cpp, anthropic, replay, captured)",
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
        "candidate.max_concurrency: expected a whole number in 1-4,096, got 0"
        " (hint: requests in flight to this endpoint, 1 to 4096)",
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
        " description, shadow, judge, monitor)",
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
        ContractError, match=r"tasks\[0\]\.lm_eval: only a task with source: lm-eval reads these"
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


def test_yaml_merge_keys_and_shared_anchors_work(folder: Path) -> None:
    text = """\
    x-stack: &stack {kind: openai, model: m, params: {max_tokens: 16}}
    baseline:  {<<: *stack, base_url: "http://127.0.0.1:8001/v1"}
    candidate: {<<: *stack, base_url: "http://127.0.0.1:8002/v1", model: n}
    tasks:
      - {name: arithmetic, path: golden.jsonl, scorer: numeric}
    """
    c = load_contract(write(folder, text))
    assert (c.baseline.model, c.candidate.model) == ("m", "n")  # an explicit key overrides
    assert c.candidate.params["max_tokens"] == 16
    assert c.candidate.base_url == "http://127.0.0.1:8002/v1"


def _bomb(levels: int) -> str:
    anchors = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return MINIMAL.replace(
        "model: m}\ntasks",
        f"model: m, x: {{{', '.join(anchors)}}}, params: {{stop: *l{levels - 1}}}}}\ntasks",
        1,
    )


def test_a_billion_laughs_alias_bomb_is_refused_fast_in_one_line(folder: Path) -> None:
    import time

    path = write(folder, _bomb(10))  # 9**10 = 3.5 billion strings once expanded
    t0 = time.perf_counter()
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert time.perf_counter() - t0 < 2.0
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: line 2, column ")
    assert "aliases here expand to more than 100,000 values" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("baseline: &a {kind: openai, x: *a}\n", "a recursive alias"),
        ("baseline: " + "[" * 70 + "]" * 70 + "\n", "nested deeper than 64 levels"),
        ("baseline: " + "[" * 20000 + "]" * 20000 + "\n", "nested deeper than 64 levels"),
        ("baseline: {" + "a: {" * 20000 + "}" * 20001 + "\n", "nested deeper than 64 levels"),
        ("baseline: \x00\n", "not valid YAML: unacceptable character #x0000"),
    ],
    ids=["recursive", "deep70", "deep20000", "deep-mapping", "nul"],
)
def test_pathological_yaml_is_one_line(folder: Path, text: str, message: str) -> None:
    path = folder / "contract.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert "\n" not in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("data", "line"),
    [("description: caf\u00e9\n".encode("latin-1"), 1), (b"version: 1\n" + bytes(range(256)), 3)],
    ids=["latin-1", "binary"],
)
def test_a_contract_that_is_not_utf8_is_one_line(folder: Path, data: bytes, line: int) -> None:
    path = folder / "contract.yaml"
    path.write_bytes(data)
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert str(err.value).startswith(
        f"{path}: line {line}: the contract is not UTF-8 text (byte 0x"
    )
    assert str(err.value).endswith("(hint: save it as UTF-8)")


def test_a_contract_with_a_utf8_bom_loads(folder: Path) -> None:
    path = folder / "contract.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode("utf-8"))
    assert load_contract(path).tasks[0].name == "arithmetic"


def test_typed_parameters_that_servers_read_still_load(folder: Path) -> None:
    tool = "{type: function, function: {name: get, parameters: {type: object}}}"
    text = MINIMAL.replace("kind: openai", "kind: vllm").replace(
        "scorer: numeric}",
        "scorer: numeric, params: {top_k: 5, stop: ['\\n\\n', 'Q:'], logprobs: true,"
        f" top_logprobs: 5, tools: [{tool}], tool_choice: auto, seed: 4294967295,"
        " response_format: {type: json_object}, ignore_eos: false}}",
    )
    task = load_contract(write(folder, text)).tasks[0]
    assert task.params["top_k"] == 5 and task.params["seed"] == 2**32 - 1
    anthropic = MINIMAL.replace("kind: openai", "kind: anthropic").replace(
        "scorer: numeric}", "scorer: numeric, params: {tools: [{name: get, input_schema: {}}]}}"
    )
    assert load_contract(write(folder, anthropic)).tasks[0].params["tools"][0]["name"] == "get"


def test_task_params_must_suit_both_endpoint_kinds(folder: Path) -> None:
    text = MINIMAL.replace("kind: openai", "kind: vllm", 1).replace(
        "scorer: numeric}", "scorer: numeric, params: {top_k: 5}}"
    )
    with pytest.raises(ContractError) as err:  # the baseline is vllm, the candidate openai
        load_contract(write(folder, text))
    assert "tasks[0].params.top_k: not a parameter openai endpoints accept" in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('base_url: "http://127.0.0.1:8001/v1"', 'base_url: "http://127.0.0.1:80x1/v1"'),
            "baseline.base_url: the port is not a number in 0-65535",
        ),
        (
            ("model: m}\ntasks", "model: m, headers: {'Bad Name': x}}\ntasks"),
            "candidate.headers.Bad Name: not a usable HTTP header name",
        ),
        (
            ("scorer: numeric}", "scorer: numeric, repeats: 100000}"),
            "tasks[0].repeats: expected a whole number in 1-1,000, got 100000",
        ),
        (
            ("scorer: numeric}", "scorer: numeric, params: {max_tokens: 100000000000}}"),
            "tasks[0].params.max_tokens: expected a whole number in 1-10,000,000",
        ),
        (
            ("scorer: numeric}", "scorer: numeric, params: {stop: ['a', 3]}}"),
            "tasks[0].params.stop[1]: expected a non-empty string, got 3",
        ),
        (
            ("scorer: numeric}", "scorer: numeric, params: {tools: [{type: function}]}}"),
            "tasks[0].params.tools[0].function: a tool needs a function with a name",
        ),
        (
            ("scorer: numeric}", "scorer: numeric, params: {presence_penalty: 9}}"),
            "tasks[0].params.presence_penalty: expected a number in [-2, 2], got 9",
        ),
        (
            ("scorer: numeric}", "scorer: numeric, params: {parallel_tool_calls: 'no'}}"),
            "tasks[0].params.parallel_tool_calls: expected true or false, got 'no'",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) and "." in x else None,
)
def test_absurd_or_mistyped_values_are_refused(
    folder: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in MINIMAL
    with pytest.raises(ContractError) as err:
        load_contract(write(folder, MINIMAL.replace(change[0], change[1], 1)))
    assert "\n" not in str(err.value)
    assert message in str(err.value)


def test_the_description_is_kept_for_the_reports(folder: Path) -> None:
    c = load_contract(write(folder, "description: fp16 -> fp8, same kernels\n" + MINIMAL))
    assert c.description == "fp16 -> fp8, same kernels"
    assert c.describe()["description"] == "fp16 -> fp8, same kernels"
    assert load_contract(write(folder, MINIMAL)).describe()["description"] is None
    with pytest.raises(ContractError, match="description: expected a non-empty string, got 5"):
        load_contract(write(folder, "description: 5\n" + MINIMAL))


def test_a_scorer_mapping_carries_its_options_inline(folder: Path) -> None:
    inline = MINIMAL.replace("scorer: numeric}", 'scorer: {name: regex, pattern: "\\\\d+"}}')
    spelled = MINIMAL.replace(
        "scorer: numeric}", 'scorer: regex, scorer_options: {pattern: "\\\\d+"}}'
    )
    a, b = (
        load_contract(write(folder, inline)).tasks[0],
        load_contract(write(folder, spelled)).tasks[0],
    )
    assert (
        (a.scorer, dict(a.scorer_options))
        == (b.scorer, dict(b.scorer_options))
        == ("regex", {"pattern": "\\d+"})
    )
