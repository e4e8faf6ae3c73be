"""The server's own tokenizer for lm-eval's loglikelihood tasks, over HTTP.

A multiple-choice task scores ``log P(continuation | context)`` from the server's echoed prompt
logprobs, after a context length that lm-eval counts CLIENT-side: the client must count exactly
the tokens the server does. Two kinds of server can do that counting for us:

- vLLM (``/tokenizer_info``, ``/tokenize``): lm-eval's own ``RemoteTokenizer``;
- llama.cpp's Python server (llama-cpp-python): ``POST /extras/tokenize`` ``{"input": text}`` ->
  ``{"tokens": [...]}`` and ``POST /extras/detokenize`` ``{"tokens": [...]}`` -> ``{"text": ...}``,
  adapted here by :class:`LlamaCppTokenizer`.

llama.cpp's /extras/tokenize adds the model's BOS token when the model asks for one, but its
echoed completion logprobs leave BOS out: the adapter strips that prefix, so a context's length is
counted in the same tokens the echo reports. It learns the prefix by tokenizing the empty string.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

# Texts both stacks must split into the same token ids before loglikelihoods are compared:
# plain words, the spacing and letters a multiple-choice answer uses, digits and non-ASCII.
PROBES = (
    "Hello, world!",
    " The answer is (B) 42.\n",
    "Question: 2+2=?\nA. 3\nB. 4\nAnswer: B",
    "naïve café ünïcödé — 東京",
)


class TokenizerError(RuntimeError):
    """A tokenizer endpoint that cannot be used; ``str()`` is one line."""


def tokenizer_root(base_url: str) -> str:
    """``http://h:p/v1`` or ``.../v1/completions`` -> ``http://h:p`` (where /extras lives)."""
    root = base_url.rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/v1"):
        if root.endswith(suffix):
            root = root[: -len(suffix)]
    return root


class LlamaCppTokenizer:
    """What lm-eval's TemplateAPI asks of ``self.tokenizer`` with the "remote" backend
    (``encode``, ``decode``, ``batch_decode``, ``eos_token(_id)``, ``bos_token(_id)``), answered by
    a llama-cpp-python server's /extras endpoints.

    llama.cpp reports neither its EOS nor its BOS token by name: ``eos_token`` is None (lm-eval
    only needs it to stop generations, and generation tasks run without a tokenizer), and
    ``bos_token_id`` is the token the server puts in front of every prompt, if any.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        attempts: int = 2,
    ) -> None:
        self.root = tokenizer_root(base_url)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        self._lock = threading.Lock()
        # Encodings are remembered both ways: lm-eval tokenizes each context once per choice,
        # and sends the text of ``context + continuation`` by decoding ids it got from encode().
        # Reading that text back from the cache makes the round trip exact (no detokenizer
        # normalisation of spaces or special tokens can change the prompt).
        self._enc: dict[str, list[int]] = {}
        self._dec: dict[tuple[int, ...], str] = {}
        self.prefix: list[int] = self._post("/extras/tokenize", {"input": ""}, "tokens")

    def _post(self, path: str, body: dict[str, Any], field: str) -> Any:
        data = json.dumps(body).encode("utf-8")
        last: BaseException | None = None
        for _ in range(self.attempts):
            req = urllib.request.Request(self.root + path, data=data, headers=self._headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                exc.close()  # it holds the response's socket
                # A 4xx/5xx is the server's answer, not a hiccup: asking again will not help.
                raise TokenizerError(
                    f"POST {self.root}{path}: HTTP {exc.code} (is this a llama-cpp-python server? "
                    "the C++ llama-server has neither /extras nor echoed prompt logprobs)"
                ) from None
            except (OSError, ValueError) as exc:
                last = exc
                continue
            value = payload.get(field) if isinstance(payload, dict) else None
            if field == "tokens" and not (
                isinstance(value, list) and all(isinstance(t, int) for t in value)
            ):
                raise TokenizerError(f"POST {self.root}{path}: no token list in the answer")
            if field == "text" and not isinstance(value, str):
                raise TokenizerError(f"POST {self.root}{path}: no text in the answer")
            return value
        reason = f"{type(last).__name__}: {last}" if last is not None else "no answer"
        raise TokenizerError(f"POST {self.root}{path} failed: {reason.splitlines()[0]}")

    def encode(self, text: str) -> list[int]:
        with self._lock:
            hit = self._enc.get(text)
        if hit is not None:
            return list(hit)
        tokens: list[int] = self._post("/extras/tokenize", {"input": text}, "tokens")
        if self.prefix and tokens[: len(self.prefix)] == self.prefix:
            tokens = tokens[len(self.prefix) :]
        with self._lock:
            self._enc[text] = tokens
            self._dec.setdefault(tuple(tokens), text)
        return list(tokens)

    def decode(self, tokens: Sequence[int]) -> str:
        key = tuple(int(t) for t in tokens)
        with self._lock:
            hit = self._dec.get(key)
        if hit is not None:
            return hit
        text: str = self._post("/extras/detokenize", {"tokens": list(key)}, "text")
        return text

    def batch_decode(self, tokens_list: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(t) for t in tokens_list]

    @property
    def tokenizer_info(self) -> dict[str, Any]:
        return {"eos_token": None, "bos_token": None, "pad_token": None, "prefix": self.prefix}

    eos_token: str | None = None
    bos_token: str | None = None
    pad_token: str | None = None
    eos_token_id: int | None = None
    eot_token: int | None = None

    @property
    def bos_token_id(self) -> int | None:
        return self.prefix[0] if len(self.prefix) == 1 else None


def uses_llama_cpp_tokenizer(kind: str, tokenizer: str | None) -> bool:
    """llama.cpp endpoints tokenize through /extras when the contract says ``remote`` or nothing:
    the server's own tokenizer is the one its logprobs are counted in, so it is the right default
    (and the only one needing no download); a local tokenizer directory still wins."""
    return kind == "llama-cpp" and tokenizer in (None, "remote")


def server_tokenizer(
    kind: str,
    base_url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    auth_token: str | None = None,
) -> Any:
    """The tokenizer object lm-eval's "remote" backend will use for this endpoint."""
    if kind == "llama-cpp":
        return LlamaCppTokenizer(base_url, timeout=timeout, headers=headers)
    from lm_eval.utils import RemoteTokenizer

    url = base_url.rstrip("/")
    if not url.endswith("/completions"):
        url += "/completions"
    return RemoteTokenizer(url, timeout=max(1, int(timeout)), max_retries=2, auth_token=auth_token)


def fingerprint(tok: Any, probes: Sequence[str] = PROBES) -> dict[str, Any]:
    """What two stacks must agree on before their loglikelihoods are compared: the token ids of
    the probe texts and, from the same kind of server, the special tokens it reports."""
    out: dict[str, Any] = {"probes": [list(tok.encode(p)) for p in probes]}
    info = tok.tokenizer_info
    out["info"] = {
        "kind": type(tok).__name__,
        **{k: info.get(k) for k in ("eos_token", "bos_token", "pad_token", "prefix")},
    }
    return out


def same_tokenizer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Probe ids must match; special tokens are compared only between servers of one kind (a
    vLLM and a llama.cpp server report them differently)."""
    if a["probes"] != b["probes"]:
        return False
    if a["info"]["kind"] != b["info"]["kind"]:
        return True
    return bool(a["info"] == b["info"])
