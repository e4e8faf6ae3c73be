"""Multiple-choice lm-eval tasks with a LOCAL tokenizer directory (``lm_eval.tokenizer: <dir>``,
lm-eval's "huggingface" backend), offline: the directory is built here from a small word-level
vocabulary, and two real HTTP servers score echoed prompts in that tokenizer's tokens.

The servers make the score depend on where lm-eval says the context ends: context tokens (and the
one generated token) of the preferred answer cost a lot, continuation tokens little. A context
length counted in any other tokens than the server's, a prompt text that does not tokenize back
to the ids lm-eval counted, or a context cut to fit a length, ranks the wrong answer first."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lmeval_fakes import DATA, TokServer, knows_sums, make

from pytest_parity.contract.spec import ContractError, contract_from_data
from pytest_parity.sources.lmeval.bridge import LmEvalError, run_lmeval_task

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

ROWS = [json.loads(line) for line in (DATA / "data" / "choice.jsonl").read_text().splitlines()]
# Words, whole numbers, single spaces/newlines and punctuation: several characters per token, so
# a count in characters (or in any other tokenizer's tokens) differs from this one's.
PIECES = r"[A-Za-z]+|\d+|\s|[^A-Za-z\d\s]"
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
PREFERRED_CONTEXT, OTHER_CONTEXT = -9.0, 0.0
PREFERRED_ANSWER, OTHER_ANSWER = -0.1, -3.0


def build_tokenizer_dir(path: Path, *, clean_up: bool = False, model_max_length: int = 8) -> Path:
    """A word-level tokenizer over the choice task's text, saved as a transformers directory.

    ``model_max_length`` is far below the task's prompt lengths: a backend that truncated to the
    tokenizer's own limit would cut every context. ``clean_up`` saves
    ``clean_up_tokenization_spaces: true`` (as many published tokenizers do): decoding then drops
    the space before "?", so decoded ids are not the text they came from."""
    texts = [f"Q: What is {r['question']}?\nA: " + " ".join(r["choices"]) for r in ROWS]
    words = sorted({w for t in texts for w in re.findall(PIECES, t)} | {"?"})
    vocab = {tok: i for i, tok in enumerate(SPECIALS + words)}
    model = tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(PIECES), behavior="isolated"
    )
    tok.decoder = tokenizers.decoders.Fuse()  # pieces keep their spaces: join them as they are
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=clean_up,
    )
    fast.save_pretrained(str(path))
    return path


class LocalTokServer(TokServer):
    """Echo-logprob completions counted in the tokens of the directory's tokenizer.json; prompts
    come as token ids (lm-eval's default) or as text (``tokenized_requests: false``)."""

    def __init__(self, tok_dir: Path, prefer: Callable[[str], bool]) -> None:
        self.tok = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        self.id_prompts = 0
        self.text_prompts = 0
        self.texts: list[str] = []  # each prompt as the server read it
        super().__init__(prefer)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False).ids)

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.completions += 1
        prompts = body["prompt"]
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        choices = []
        for i, p in enumerate(prompts):
            if isinstance(p, str):
                self.text_prompts += 1
                ids = self.encode(p)
            else:
                self.id_prompts += 1
                ids = list(p)
            pieces = [self.tok.id_to_token(t) for t in ids]
            text = "".join(pieces)
            preferred = self.prefer(text)
            # The answer is what follows the last "A:" ("A", ":" are the context's last tokens).
            cut = max(k for k in range(1, len(pieces)) if pieces[k - 1 : k + 1] == ["A", ":"]) + 1
            ctx_lp = PREFERRED_CONTEXT if preferred else OTHER_CONTEXT
            ans_lp = PREFERRED_ANSWER if preferred else OTHER_ANSWER
            # Echo: one logprob per prompt token (none for the first), then the generated token.
            lps = [ctx_lp] * cut + [ans_lp] * (len(ids) - cut) + [ctx_lp]
            choices.append(
                {
                    "index": i,
                    "text": text + "x",
                    "finish_reason": "length",
                    "logprobs": {
                        "token_logprobs": [None, *lps[1:]],
                        "top_logprobs": [None] + [{"x": lp} for lp in lps[1:]],
                    },
                }
            )
            self.texts.append(p if isinstance(p, str) else text)
        return {"choices": choices, "usage": {"prompt_tokens": len(ids)}}


@pytest.fixture
def local_servers() -> Iterator[Callable[..., LocalTokServer]]:
    started: list[LocalTokServer] = []

    def start(tok_dir: Path, prefer: Callable[[str], bool]) -> LocalTokServer:
        srv = LocalTokServer(tok_dir, prefer)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def choice_opts(tok_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"task": "parity_choice", "include_path": ".", "tokenizer": str(tok_dir), **extra}


@pytest.mark.parametrize("tokenized", [True, False], ids=["token-ids", "text-prompts"])
def test_local_tokenizer_directory_pairs_every_document_and_finds_the_regressions(
    tmp_path: Path, local_servers: Callable[..., LocalTokServer], tokenized: bool
) -> None:
    tok_dir = build_tokenizer_dir(tmp_path / "tok")
    regressed = {"4", "7"}

    def cand_prefer(text: str) -> bool:
        m = re.search(r"What is (\d+) \+ (\d+)\?\nA: ?(-?\d+)$", text)
        if m and f"{m[1]} + {m[2]}" in {ROWS[int(i)]["question"] for i in regressed}:
            return int(m[3]) == int(m[1]) + int(m[2]) + 1
        return knows_sums()(text)

    base = local_servers(tok_dir, knows_sums())
    cand = local_servers(tok_dir, cand_prefer)
    task, b, c = make(base, cand, choice_opts(tok_dir, tokenized_requests=tokenized))
    out = run_lmeval_task(task, b, c, cache_dir=None, seed=0)

    assert list(out) == ["acc", "acc_norm"]
    items = out["acc"]
    assert [it["id"] for it in items] == [str(i) for i in range(len(ROWS))]
    assert all(it["baseline"]["score"] == 1.0 for it in items)
    assert {it["id"] for it in items if it["candidate"]["score"] == 0.0} == regressed
    for it, row in zip(items, ROWS, strict=True):
        assert it["reference"] == row["choices"][row["label"]]
        assert it["baseline"]["text"] == row["choices"][row["label"]]
        assert it["baseline"]["error"] is None and it["candidate"]["error"] is None
        assert it["prompt"].startswith(f"Q: What is {row['question']}?\nA:")
    # One request per (document, choice) on each stack, in the form the option asked for.
    for srv in (base, cand):
        sent = srv.id_prompts if tokenized else srv.text_prompts
        assert sent == sum(len(r["choices"]) for r in ROWS)
        assert (srv.text_prompts if tokenized else srv.id_prompts) == 0


def test_text_prompts_are_the_documents_own_text_even_when_decoding_is_lossy(
    tmp_path: Path, local_servers: Callable[..., LocalTokServer]
) -> None:
    """lm-eval sends text prompts by decoding the ids it counted: a tokenizer that cleans up
    spaces on decode would send a prompt that tokenizes to fewer tokens than the context length
    lm-eval slices the echoed logprobs at."""
    tok_dir = build_tokenizer_dir(tmp_path / "tok", clean_up=True)
    spaced = (DATA / "choice.yaml").read_text().replace("{{question}}?", "{{question}} ?")
    spaced = spaced.replace("task: parity_choice", "task: parity_choice_spaced")
    spaced = spaced.replace("data/choice.jsonl", str(DATA / "data" / "choice.jsonl"))
    (tmp_path / "spaced.yaml").write_text(spaced)

    def prefer(text: str) -> bool:
        return knows_sums()(text.replace(" ?", "?"))

    srv = local_servers(tok_dir, prefer)
    opts = {**choice_opts(tok_dir, tokenized_requests=False), "task": "parity_choice_spaced"}
    task, b, c = make(srv, srv, {**opts, "include_path": str(tmp_path)})
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["acc"]
    sent = [f"Q: What is {r['question']} ?\nA: {ch}" for r in ROWS for ch in r["choices"]]
    assert sorted(srv.texts) == sorted(sent + sent)  # both stacks, every choice, text unchanged
    assert [it["baseline"]["score"] for it in items] == [1.0] * len(ROWS)


def test_local_tokenizer_contexts_are_never_cut_to_fit(
    tmp_path: Path, local_servers: Callable[..., LocalTokServer]
) -> None:
    tok_dir = build_tokenizer_dir(tmp_path / "tok")
    srv = local_servers(tok_dir, knows_sums())
    longest = max(
        len(srv.encode(f"Q: What is {r['question']}?\nA: {c}")) for r in ROWS for c in r["choices"]
    )
    # lm-eval keeps one token for generation: max_length N fits N - 1 prompt tokens.
    task, b, c = make(srv, srv, choice_opts(tok_dir, max_length=longest))
    with pytest.raises(LmEvalError, match=rf"exceeds max_length {longest}; lm-eval would cut it"):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    task, b, c = make(srv, srv, choice_opts(tok_dir, max_length=longest + 1))
    items = run_lmeval_task(task, b, c, cache_dir=None, seed=0)["acc"]
    assert [it["baseline"]["score"] for it in items] == [1.0] * len(ROWS)


def test_one_local_tokenizer_serves_both_stacks_and_a_per_stack_one_is_refused(
    tmp_path: Path,
) -> None:
    """The contract names one tokenizer per task, used by both stacks: two different local
    directories cannot be configured, and an endpoint-level tokenizer key is refused."""
    raw = {
        "baseline": {"kind": "vllm", "base_url": "http://127.0.0.1:1/v1", "model": "m"},
        "candidate": {
            "kind": "vllm",
            "base_url": "http://127.0.0.1:2/v1",
            "model": "m",
            "tokenizer": "other-tok",
        },
        "tasks": [
            {
                "name": "bench",
                "source": "lm-eval",
                "lm_eval": {"task": "parity_choice", "tokenizer": "tok"},
            }
        ],
    }
    with pytest.raises(ContractError, match=r"candidate\.tokenizer"):
        contract_from_data(raw, tmp_path / "contract.yaml")


def test_a_missing_directory_or_a_missing_transformers_is_named(
    tmp_path: Path, local_servers: Callable[..., LocalTokServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    tok_dir = build_tokenizer_dir(tmp_path / "tok")
    srv = local_servers(tok_dir, knows_sums())
    task, b, c = make(srv, srv, choice_opts(tok_dir))
    real_find_spec = importlib.util.find_spec

    def no_transformers(name: str, *args: Any) -> Any:
        return None if name == "transformers" else real_find_spec(name, *args)

    with monkeypatch.context() as m:
        m.setattr(importlib.util, "find_spec", no_transformers)
        with pytest.raises(LmEvalError, match=r"needs the transformers package .*pip install"):
            run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    assert srv.completions == 0
    shutil.rmtree(tok_dir)
    with pytest.raises(
        LmEvalError, match=rf"tokenizer directory not found: {re.escape(str(tok_dir))}"
    ):
        run_lmeval_task(task, b, c, cache_dir=None, seed=0)
    assert srv.completions == 0
