"""A corpus of bad contracts and golden sets run through pytest itself: each stops the run with
exit 4 and one line naming the file (pytest's usage-error path), with no traceback, before any
request reaches the (real, local) servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import FakeServer

GOOD_GOLDEN = b'{"id": "q1", "prompt": "What is 2 + 3?", "reference": "5"}\n'
ENDPOINTS = """\
baseline:  {kind: openai, base_url: "OLD", model: m}
candidate: {kind: openai, base_url: "NEW", model: m}
"""
TASKS = """\
tasks:
  - {name: arithmetic, path: golden.jsonl, scorer: numeric}
"""
MINIMAL = ENDPOINTS + TASKS


def _bomb() -> str:
    anchors = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return MINIMAL.replace(
        "model: m}\ncandidate",
        f"model: m, x: {{{', '.join(anchors)}}}, params: {{stop: *l8}}}}\ncandidate",
    )


# name -> (contract text or bytes, golden bytes, a part of the one line expected)
CORPUS: dict[str, tuple[str | bytes, bytes, str]] = {
    "alias-bomb": (_bomb(), GOOD_GOLDEN, "aliases here expand to more than 100,000 values"),
    "recursive-alias": (
        MINIMAL.replace("model: m}\ncandidate", "model: m, x: &x [*x]}\ncandidate"),
        GOOD_GOLDEN,
        "a recursive alias",
    ),
    "contract-latin-1": (
        ("description: caf\u00e9\n" + MINIMAL).encode("latin-1"),
        GOOD_GOLDEN,
        "the contract is not UTF-8 text (byte 0xe9",
    ),
    "contract-binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), GOOD_GOLDEN, "not UTF-8"),
    "contract-nul": (MINIMAL + "description: \x00\n", GOOD_GOLDEN, "not valid YAML"),
    "contract-deep": (
        MINIMAL + "description: " + "[" * 20000 + "]" * 20000 + "\n",
        GOOD_GOLDEN,
        "nested deeper than 64 levels",
    ),
    "golden-latin-1": (MINIMAL, '{"id": "q1", "prompt": "caf\u00e9"}\n'.encode("latin-1"), "UTF-8"),
    "golden-binary": (MINIMAL, b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not UTF-8 text"),
    "golden-deep": (MINIMAL, b"[" * 20000 + b"]" * 20000 + b"\n", "nested deeper than 64"),
    "golden-deep-metadata": (
        MINIMAL,
        b'{"id": "q1", "prompt": "p", "metadata": '
        + b'{"a": ' * 100_000
        + b"1"
        + b"}" * 100_001
        + b"\n",
        "golden.jsonl:1: nested deeper than 64 levels",
    ),
    # accepted before, then a traceback (or a server error per request) at run time
    "base-url-newline": (
        MINIMAL.replace('"OLD"', '"OLD\\n"'),
        GOOD_GOLDEN,
        "baseline.base_url: contains a space, newline or control character",
    ),
    "logprobs-many": (
        MINIMAL.replace("model: m}\ncandidate", 'model: m, params: {logprobs: "many"}}\ncandidate'),
        GOOD_GOLDEN,
        "baseline.params.logprobs: expected a whole number in 0-20, got 'many'",
    ),
    "header-non-ascii": (
        MINIMAL.replace(
            "model: m}\ncandidate", 'model: m, headers: {X-Team: "caf\u00e9"}}\ncandidate'
        ),
        GOOD_GOLDEN,
        "baseline.headers.X-Team: an HTTP header value must be printable ASCII on one line",
    ),
    "header-crlf": (
        MINIMAL.replace(
            "model: m}\ncandidate", 'model: m, headers: {X-A: "a\\r\\nX-B: b"}}\ncandidate'
        ),
        GOOD_GOLDEN,
        "baseline.headers.X-A: an HTTP header value must be printable ASCII on one line",
    ),
    "scorer-module-missing": (
        MINIMAL.replace("scorer: numeric", "scorer: 'no_such_module_xyz:score'"),
        GOOD_GOLDEN,
        "tasks[0].scorer: scorer no_such_module_xyz:score: cannot import 'no_such_module_xyz'",
    ),
    "scorer-function-missing": (
        MINIMAL.replace("scorer: numeric", "scorer: 'json:no_such_function'"),
        GOOD_GOLDEN,
        "tasks[0].scorer: scorer json:no_such_function: json has no function 'no_such_function'",
    ),
    "task-param-not-for-the-kind": (
        MINIMAL.replace("scorer: numeric}", "scorer: numeric, params: {top_k: 5}}"),
        GOOD_GOLDEN,
        "tasks[0].params.top_k: not a parameter openai endpoints accept",
    ),
    "seed-10**30": (
        "defaults: {seed: " + str(10**30) + "}\n" + MINIMAL,
        GOOD_GOLDEN,
        "defaults.seed: expected a whole number in 0-4,294,967,295, got 100000...(31 digits)",
    ),
    "max-concurrency-10**30": (
        MINIMAL.replace(
            "model: m}\ncandidate", f"model: m, max_concurrency: {10**30}}}\ncandidate"
        ),
        GOOD_GOLDEN,
        "baseline.max_concurrency: expected a whole number in 1-4,096",
    ),
    "max-retries-10**12": (
        MINIMAL.replace("model: m}\ncandidate", f"model: m, max_retries: {10**12}}}\ncandidate"),
        GOOD_GOLDEN,
        "baseline.max_retries: expected a whole number in 0-20, got 1000000000000",
    ),
    "stop-5": (
        MINIMAL.replace("scorer: numeric}", "scorer: numeric, params: {stop: 5}}"),
        GOOD_GOLDEN,
        "tasks[0].params.stop: expected a string or a list of strings, got 5",
    ),
    "tools-1-2": (
        MINIMAL.replace("model: m}\ncandidate", "model: m, params: {tools: [1, 2]}}\ncandidate"),
        GOOD_GOLDEN,
        "baseline.params.tools[0]: expected a tool definition (a mapping), got 1",
    ),
    # found by a 650-case fuzz corpus (audit of issue 12): INTERNALERROR, a second line or a
    # run-time error before these
    "path-with-nul": (
        MINIMAL.replace("path: golden.jsonl", 'path: "golden\\0.jsonl"'),
        GOOD_GOLDEN,
        "a NUL character (\\0) in a value",
    ),
    "path-with-newline": (
        MINIMAL.replace("path: golden.jsonl", 'path: "gold\\nen.jsonl"'),
        GOOD_GOLDEN,
        "tasks[0].path: file not found: ",  # and the newline shown as \n, on the one line
    ),
    "int-of-5000-digits": (MINIMAL + "x-n: " + "9" * 5000 + "\n", GOOD_GOLDEN, "5,000 digits"),
    "date-out-of-range": (
        MINIMAL + "x-when: 2021-02-30\n",
        GOOD_GOLDEN,
        "a value YAML cannot read: day is out of range for month",
    ),
    "params-zero": (
        MINIMAL.replace("model: m}\ncandidate", "model: m, params: 0}\ncandidate"),
        GOOD_GOLDEN,
        "baseline.params: expected a mapping, got 0",
    ),
    "headers-empty-string": (
        MINIMAL.replace("model: m}\ncandidate", 'model: m, headers: ""}\ncandidate'),
        GOOD_GOLDEN,
        "baseline.headers: expected a mapping",
    ),
    "max-response-bytes-10**30": (
        MINIMAL.replace(
            "model: m}\ncandidate", f"model: m, max_response_bytes: {10**30}}}\ncandidate"
        ),
        GOOD_GOLDEN,
        "baseline.max_response_bytes: expected a whole number in 1024-4,294,967,296",
    ),
    "min-items-10**30": (
        MINIMAL.replace("scorer: numeric}", f"scorer: numeric, min_items: {10**30}}}"),
        GOOD_GOLDEN,
        "tasks[0].min_items: expected a whole number in 1-100,000,000",
    ),
    "unterminated-env-reference": (
        MINIMAL.replace("model: m}\ncandidate", 'model: "${MODEL"}\ncandidate'),
        GOOD_GOLDEN,
        "baseline.model: '${MODEL' has a '${' that is not a ${NAME} reference",
    ),
    "golden-number-of-5000-digits": (
        MINIMAL,
        b'{"id": "q1", "prompt": "p", "reference": ' + b"9" * 5000 + b"}\n",
        "golden.jsonl:1: not valid JSON here: Exceeds the limit (4300 digits)",
    ),
    "golden-lone-surrogate": (
        MINIMAL,
        b'{"id": "q1", "prompt": "a \\ud800 b"}\n',
        "golden.jsonl:1: a lone surrogate escape",
    ),
    "golden-cluster-key-newline": (
        MINIMAL.replace("scorer: numeric}", 'scorer: numeric, cluster_key: "a\\nb"}'),
        GOOD_GOLDEN,
        "metadata.a\\nb",
    ),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeServer, FakeServer]]:
    with FakeServer() as old, FakeServer() as new:
        yield old, new


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_input_is_one_line_and_exit_4_before_any_request(
    pytester: pytest.Pytester, servers: tuple[FakeServer, FakeServer], case: str
) -> None:
    contract, golden, expected = CORPUS[case]
    old, new = servers
    if isinstance(contract, str):
        contract = contract.replace("OLD", old.base_url).replace("NEW", new.base_url).encode()
    path = pytester.path / "contract.yaml"
    path.write_bytes(contract)
    (pytester.path / "golden.jsonl").write_bytes(golden)
    sent = len(old.received) + len(new.received)
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    lines = [line for line in result.stderr.lines if line.strip()]
    everything = result.stdout.str() + result.stderr.str()
    assert result.ret == 4, everything
    assert len(lines) == 1, everything
    assert lines[0].startswith(f"ERROR: {pytester.path}/"), lines[0]
    assert expected in lines[0]
    assert "Traceback" not in everything and "INTERNALERROR" not in everything
    assert len(old.received) + len(new.received) == sent  # nothing was sent


def test_a_golden_set_with_a_bom_runs(
    pytester: pytest.Pytester, servers: tuple[FakeServer, FakeServer]
) -> None:
    old, new = servers
    path = pytester.path / "contract.yaml"
    path.write_text(MINIMAL.replace("OLD", old.base_url).replace("NEW", new.base_url))
    (pytester.path / "golden.jsonl").write_bytes(b"\xef\xbb\xbf" + GOOD_GOLDEN)
    result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache")
    assert "Traceback" not in result.stdout.str()
    assert "arithmetic " in result.stdout.str()  # the task ran: its verdict row
