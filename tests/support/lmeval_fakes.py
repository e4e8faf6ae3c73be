"""Shared by several test modules (moved out of test_lmeval.py so no test module imports another)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from pytest_parity.contract.spec import EndpointSpec, TaskSpec, contract_from_data
from pytest_parity.sources.lmeval.bridge import (
    normalize_lm_eval_options,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "lmeval"


QUESTION = re.compile(r"What is (\d+) \+ (\d+)\?")


def prompt_text(body: dict[str, Any]) -> str:
    if "prompt" in body:
        return str(body["prompt"])
    return str(body["messages"][-1]["content"])


def adder(wrong: set[str] = frozenset(), verbose: bool = False) -> Callable[[dict[str, Any]], str]:
    """Answers the arithmetic questions; ``wrong`` questions ("a + b") get a wrong sum."""

    def answer(body: dict[str, Any]) -> str:
        a, b = map(int, QUESTION.findall(prompt_text(body))[-1])
        total = a + b + (1 if f"{a} + {b}" in wrong else 0)
        return f" The answer is {total}." if verbose else f" {total}"

    return answer


def questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text().splitlines()]


class Stack(Protocol):
    base_url: str


def make(
    base: Stack,
    cand: Stack,
    lm_eval_opts: dict[str, Any],
    *,
    b_api: str = "completions",
    c_api: str = "completions",
    b_extra: dict[str, Any] | None = None,
    c_extra: dict[str, Any] | None = None,
) -> tuple[TaskSpec, EndpointSpec, EndpointSpec]:
    """A contract as a user writes it, with the lm_eval options resolved against DATA."""
    raw = {
        "baseline": {
            "kind": "vllm",
            "base_url": base.base_url,
            "model": "m",
            "api": b_api,
            "max_retries": 0,
            **(b_extra or {}),
        },
        "candidate": {
            "kind": "vllm",
            "base_url": cand.base_url,
            "model": "m",
            "api": c_api,
            "max_retries": 0,
            **(c_extra or {}),
        },
        "tasks": [{"name": "bench", "source": "lm-eval", "lm_eval": lm_eval_opts}],
    }
    contract = contract_from_data(raw, DATA / "contract.yaml")
    task = contract.tasks[0]
    opts = normalize_lm_eval_options(task.lm_eval, "tasks[0].lm_eval", "contract.yaml", DATA)
    return replace(task, source_options=opts), contract.baseline, contract.candidate


class TokServer:
    """/tokenize, /detokenize, /tokenizer_info and echo-logprob completions, one character per
    token (code point + ``shift``). A continuation gets logprob -0.1 per token where
    ``prefer(text)`` holds for the full text, else -3.0."""

    def __init__(self, prefer: Callable[[str], bool], shift: int = 0, fail_on: str = "") -> None:
        self.prefer, self.shift, self.fail_on = prefer, shift, fail_on
        self.completions = 0
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

            def do_GET(self) -> None:
                self._send({"eos_token": "</s>", "bos_token": None, "pad_token": None})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    self._send({"tokens": owner.encode(body["prompt"])})
                elif self.path == "/detokenize":
                    self._send({"prompt": "".join(chr(t - owner.shift) for t in body["tokens"])})
                elif owner.fail_on and owner.fail_on in json.dumps(owner.complete(body)):
                    self.send_error(503)
                else:
                    self._send(owner.complete(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def encode(self, text: str) -> list[int]:
        return [ord(ch) + self.shift for ch in text]

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.completions += 1
        prompts = body["prompt"]
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        choices = []
        for i, p in enumerate(prompts):
            text = p if isinstance(p, str) else "".join(chr(t - self.shift) for t in p)
            lp = -0.1 if self.prefer(text) else -3.0
            n = len(text)
            choices.append(
                {
                    "index": i,
                    "text": text + "x",
                    "finish_reason": "length",
                    "logprobs": {
                        "token_logprobs": [None] + [lp] * n,
                        "top_logprobs": [None] + [{"x": lp}] * n,
                    },
                }
            )
        return {"choices": choices, "usage": {"prompt_tokens": 1}}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def knows_sums(off_by_one_on: str | None = None) -> Callable[[str], bool]:
    def prefer(text: str) -> bool:
        m = re.search(r"What is (\d+) \+ (\d+)\?\nA: ?(-?\d+)$", text)
        if not m:
            return False
        a, b, ans = map(int, m.groups())
        wrong = off_by_one_on == f"{a} + {b}"
        return ans == a + b + (1 if wrong else 0)

    return prefer
