"""``source: long-context``: generated retrieval and aggregation items at set lengths and depths.

Following RULER (Hsieh et al. 2024; NVIDIA/RULER's ``scripts/data/synthetic``), every item hides
what the model must find in a haystack of real text and asks for it at the end:

- ``niah_single``: one needle, "One of the special magic numbers for <key> is: <value>.";
- ``niah_multikey``: four needles with different keys, one asked (three distractors);
- ``niah_multivalue``: one key with four values, all asked;
- ``niah_multiquery``: four keys, all asked;
- ``variable_tracking``: a chain ``VAR A = 12345``, ``VAR B = VAR A``... (4 hops) spread through
  the text; asked: every variable that holds the value;
- ``common_words``: a numbered list of words, ten of them repeated far more often; asked: the
  ten most common (aggregation; no haystack).

Scored as RULER scores them: the share of the expected strings found in the answer (case
insensitive). The haystack is the customer's documents (``haystack:`` a folder of .txt/.md files
or a JSONL file with a text field), else the bundled public-domain text (Shakespeare, the first
300 KB of the tinyshakespeare corpus). Each item is fitted to its requested length in tokens, as
counted by the server's own tokenizer where it offers one (llama.cpp, vLLM), else estimated (see
:mod:`pytest_parity.sources.tokens`); ``metadata.context_tokens`` is the count, so the buckets
check groups items by it. A length beyond an endpoint's window (from the server, or the
contract's ``context_window``) is an error naming both before anything is sent: contexts are
never cut. Generation is seeded: the same options, haystack and tokenizer give the same items.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.sources.base import Answer, Ask, SourceError, TaskSource
from pytest_parity.sources.item import Item

if TYPE_CHECKING:
    from pytest_parity.contract.spec import EndpointSpec, TaskSpec
    from pytest_parity.endpoints.http import Request
    from pytest_parity.sources.tokens import TokenCounter

__all__ = ["GENERATORS", "LongContextSource", "match_all"]

VERSION = "long-context/1"  # bump when generation changes: part of the digest
OPTION_KEYS = (
    "tasks",
    "lengths",
    "depths",
    "samples",
    "haystack",
    "text_field",
    "tokenizer",
    "context_window",
    "seed",
    "template_tokens",
)
# Tokens a chat template adds around one user message, reserved in the window check (the
# contract's template_tokens overrides it). Measured: SmolLM2's own template adds 9 tokens;
# llama-cpp-python's chatml-function-calling format reported 91 more at 1k and 160 at 2k.
TEMPLATE_MARGIN = 128
DEFAULT_ANSWER_TOKENS = 128
FIT_SLACK = 0.02  # an item lands within 2% (or 16 tokens) below its length

_ADJ = ("amber", "brisk", "candid", "dusky", "eager", "frosty", "gilded", "hollow", "ivory",
        "jovial", "keen", "lucid", "mellow", "nimble", "opal", "placid", "quaint", "rustic",
        "silent", "tawny", "umber", "vivid", "wistful", "zesty")  # fmt: skip
_NOUN = ("anchor", "badger", "canyon", "dagger", "ember", "falcon", "glacier", "harbor", "island",
         "jasmine", "kettle", "lantern", "meadow", "nectar", "orchard", "pebble", "quarry",
         "raven", "saddle", "thistle", "umbrella", "violet", "walnut", "yarrow")  # fmt: skip

NIAH_TEMPLATE = (
    "Some special magic numbers are hidden within the following text. Make sure to memorize"
    " them. I will quiz you about the numbers afterwards.\n{context}\n{question}"
)
VT_TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n"
    "{context}\nQuestion: Find all variables that are assigned the value {value} in the text"
    " above. Answer with the variable names only."
)
CWE_TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others."
    " Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most"
    " common words in the above list? Answer with the words only."
)


def match_all(text: str, references: Sequence[str]) -> float:
    """RULER's string_match_all: the share of references found in the answer, ignoring case."""
    low = text.lower()
    return sum(1.0 for r in references if r.lower() in low) / len(references)


# ----------------------------------------------------------------------------------------------
# haystacks


def _sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s for s in re.split(r"(?<=[.!?;:])\s+", flat) if s]


def bundled_haystack() -> str:
    return (
        resources.files("pytest_parity.sources")
        .joinpath("data/shakespeare.txt")
        .read_text(encoding="utf-8")
    )


def load_haystack(path: Path | None, text_field: str = "text") -> str:
    """The haystack text: a folder's .txt/.md files (sorted by path), a JSONL file's
    ``text_field`` values, a plain text file, or the bundled text when ``path`` is None."""
    if path is None:
        return bundled_haystack()
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".md"))
            if not files:
                raise SourceError(f"{path}: no .txt or .md files in the haystack folder")
            return "\n\n".join(p.read_text(encoding="utf-8") for p in files)
        if path.suffix == ".jsonl":
            texts = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{path}:{n}: not valid JSON: {exc.msg}") from None
                value = obj.get(text_field) if isinstance(obj, dict) else None
                if not isinstance(value, str):
                    raise SourceError(
                        f"{path}:{n}: no string field {text_field!r} (hint: set"
                        " long_context.text_field to the field holding the document text)"
                    )
                texts.append(value)
            return "\n\n".join(texts)
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the haystack: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SourceError(f"{path}: the haystack is not UTF-8 text") from None


# ----------------------------------------------------------------------------------------------
# generators: (rng, haystack words, vocabulary, size, depth) -> (prompt, references); ``size`` is
# how much filler the item takes (haystack words, or listed words), fitted to the length.


def _key(rng: random.Random, taken: set[str]) -> str:
    while True:
        key = f"{rng.choice(_ADJ)}-{rng.choice(_NOUN)}"
        if key not in taken:
            taken.add(key)
            return key


def _number(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def _span(rng: random.Random, hay: Sequence[str], size: int) -> list[str]:
    """``size`` consecutive haystack words from a seeded place, split into hay (the
    start hardly moves with ``size``, so the prompt grows steadily while it is fitted)."""
    start = min(int(rng.random() * len(hay)), len(hay) - size)
    return _sentences(" ".join(hay[start : start + size]))


def _insert(haystack: Sequence[str], needles: Sequence[str], depths: Sequence[float]) -> str:
    """The haystack hay with each needle placed at its depth (percent of the text)."""
    n = len(haystack)
    slots = sorted(
        (round(n * d / 100), i) for i, d in enumerate(depths)
    )  # stable: equal depths keep the needles' order
    out: list[str] = []
    last = 0
    for pos, i in slots:
        out.extend(haystack[last:pos])
        out.append(needles[i])
        last = pos
    out.extend(haystack[last:])
    return " ".join(out)


def _other_depths(rng: random.Random, k: int, lo: float = 0.0) -> list[float]:
    return [rng.uniform(lo, 100.0) for _ in range(k)]


def _niah(keys: int, values: int, queries: int) -> Callable[..., tuple[str, list[str]]]:
    def make(
        rng: random.Random, hay: Sequence[str], words: Sequence[str], size: int, depth: float
    ) -> tuple[str, list[str]]:
        taken: set[str] = set()
        pairs = [(_key(rng, taken), [_number(rng) for _ in range(values)]) for _ in range(keys)]
        needles = [f"One of the special magic numbers for {k} is: {v}." for k, vs in pairs
                   for v in vs]  # fmt: skip
        rng.shuffle(needles)
        asked = pairs[:queries]
        refs = [v for _, vs in asked for v in vs]
        # The first needle asked sits at the requested depth; the others anywhere.
        first = next(i for i, n in enumerate(needles) if refs[0] in n)
        depths = _other_depths(rng, len(needles))
        depths[first] = depth
        context = _insert(_span(rng, hay, size), needles, depths)
        names = [k for k, _ in asked]
        query = ", ".join(names[:-1]) + ", and " + names[-1] if len(names) > 1 else names[0]
        if len(refs) == 1:
            question = (
                f"What is the special magic number for {query} mentioned in the provided text?"
                " Answer with the number only."
            )
        else:
            question = (
                f"What are all the special magic numbers for {query} mentioned in the provided"
                " text? Answer with the numbers only."
            )
        return NIAH_TEMPLATE.format(context=context, question=question), refs

    return make


def _variable_tracking(
    rng: random.Random, hay: Sequence[str], words: Sequence[str], size: int, depth: float
) -> tuple[str, list[str]]:
    names: list[str] = []
    while len(names) < 5:
        name = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
        if name not in names:
            names.append(name)
    value = str(rng.randint(10000, 99999))
    chain = [f"VAR {names[0]} = {value}."] + [
        f"VAR {names[i + 1]} = VAR {names[i]}." for i in range(4)
    ]
    # In order through the text: the first assignment at the depth, the rest after it.
    depths = [depth, *sorted(_other_depths(rng, 4, depth))]
    context = _insert(_span(rng, hay, size), chain, depths)
    return VT_TEMPLATE.format(context=context, value=value), names


def _common_words(
    rng: random.Random,
    hay: Sequence[str],
    words: Sequence[str],
    size: int,
    depth: float,
    length: int = 4096,
) -> tuple[str, list[str]]:
    picked = rng.sample(list(words), 10 + size)
    common, rare = picked[:10], picked[10:]
    # RULER's frequencies: 30 vs 3 repeats from 4k tokens up, 6 vs 1 below (a short list
    # cannot hold 300 repeats of the common words).
    often, seldom = (30, 3) if length >= 4096 else (6, 1)
    listed = common * often + rare * seldom
    rng.shuffle(listed)
    context = " ".join(f"{i + 1}. {w}" for i, w in enumerate(listed))
    return CWE_TEMPLATE.format(context=context), common


GENERATORS: dict[str, Callable[..., tuple[str, list[str]]]] = {
    "niah_single": _niah(1, 1, 1),
    "niah_multikey": _niah(4, 1, 1),
    "niah_multivalue": _niah(1, 4, 1),
    "niah_multiquery": _niah(4, 1, 4),
    "variable_tracking": _variable_tracking,
    "common_words": _common_words,
}
USES_DEPTH = frozenset(GENERATORS) - {"common_words"}


# ----------------------------------------------------------------------------------------------
# the plan: which items, each fitted to its length


@dataclass(frozen=True)
class Planned:
    id: str
    task: str
    length: int
    depth: float | None
    sample: int
    size: int
    tokens: int


@dataclass
class Prepared:
    key: str
    hay: list[str]  # the haystack's words
    words: list[str]
    plan: list[Planned]
    counter_source: str
    note: str | None
    haystack_sha: str


class LongContextSource(TaskSource):
    """See the module docstring. Options under the task's ``long_context:`` key."""

    name = "long-context"
    options_key = "long_context"
    scores_itself = True

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, EndpointSpec]] = {}
        self._prepared: dict[str, Prepared] = {}

    # -- contract ---------------------------------------------------------------------------

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        v.keys(raw, where, OPTION_KEYS)
        tasks = raw.get("tasks", list(GENERATORS))
        if isinstance(tasks, str):
            tasks = [tasks]
        if not isinstance(tasks, list) or not tasks:
            raise v.fail(f"{where}.tasks", "expected a list of generator names",
                         f"known: {', '.join(GENERATORS)}")  # fmt: skip
        for i, t in enumerate(tasks):
            v.choice(t, f"{where}.tasks[{i}]", tuple(GENERATORS))
        lengths = self._ints(v, raw.get("lengths", [1024, 4096]), f"{where}.lengths", 64)
        depths_raw = raw.get("depths", [0, 25, 50, 75, 100])
        if not isinstance(depths_raw, list) or not depths_raw:
            raise v.fail(f"{where}.depths", "expected a list of percents, e.g. [0, 50, 100]")
        depths = [
            v.number(d, f"{where}.depths[{i}]", 0, 100, lo_open=False, hi_open=False)
            for i, d in enumerate(depths_raw)
        ]
        haystack = None
        if raw.get("haystack") is not None:
            haystack = (base / v.string(raw["haystack"], f"{where}.haystack")).resolve()
            if not haystack.exists():
                raise v.fail(f"{where}.haystack", f"not found: {haystack}",
                             "a folder of .txt/.md files or a JSONL file, relative to the"
                             " contract; leave it out for the bundled text")  # fmt: skip
        window = raw.get("context_window")
        return MappingProxyType(
            {
                "tasks": tuple(tasks),
                "lengths": tuple(lengths),
                "depths": tuple(float(d) for d in depths),
                "samples": v.integer(raw.get("samples", 1), f"{where}.samples", 1),
                "haystack": None if haystack is None else str(haystack),
                "text_field": v.string(raw.get("text_field", "text"), f"{where}.text_field"),
                "tokenizer": v.choice(
                    raw.get("tokenizer", "auto"), f"{where}.tokenizer", ("auto", "estimate")
                ),
                "context_window": None
                if window is None
                else v.integer(window, f"{where}.context_window", 64),
                "seed": v.integer(raw.get("seed", 0), f"{where}.seed", 0),
                "template_tokens": v.integer(
                    raw.get("template_tokens", TEMPLATE_MARGIN), f"{where}.template_tokens", 0
                ),
            }
        )

    @staticmethod
    def _ints(v: Any, value: Any, where: str, lo: int) -> list[int]:
        if not isinstance(value, list) or not value:
            raise v.fail(where, f"expected a list of token counts, got {value!r}",
                         "e.g. [1024, 4096, 8192]")  # fmt: skip
        return sorted({v.integer(x, f"{where}[{i}]", lo) for i, x in enumerate(value)})

    # -- the run ----------------------------------------------------------------------------

    def bind(self, task: TaskSpec, endpoints: Mapping[str, EndpointSpec]) -> None:
        self._specs[task.name] = dict(endpoints)

    def prepare(self, task: TaskSpec) -> None:
        self._prepare(task)

    def _answer_tokens(self, task: TaskSpec, spec: EndpointSpec) -> int:
        for params in (task.params, spec.params):
            for key in ("max_tokens", "max_completion_tokens"):
                if isinstance(params.get(key), int):
                    return int(params[key])
        return DEFAULT_ANSWER_TOKENS

    def _check_windows(self, task: TaskSpec, specs: Mapping[str, EndpointSpec]) -> None:
        from pytest_parity.sources.tokens import Window, window_of

        opts = task.source_options
        longest = max(opts["lengths"])
        for role, spec in specs.items():
            if spec.kind == "replay":
                continue
            window = (
                Window(int(opts["context_window"]), "the contract's context_window")
                if opts["context_window"] is not None
                else window_of(spec)
            )
            if window is None:
                continue
            need = longest + self._answer_tokens(task, spec) + int(opts["template_tokens"])
            if need > window.tokens:
                raise SourceError(
                    f"task {task.name}: length {longest:,} tokens (+ {need - longest} for the"
                    f" answer and the chat template) exceeds the {role} endpoint's context window"
                    f" of {window.tokens:,} tokens ({window.source}) (hint: drop the lengths"
                    f" above {window.tokens - need + longest:,}, or serve a longer window;"
                    " contexts are never cut)"
                )

    def _prepare(self, task: TaskSpec) -> Prepared:
        from pytest_parity.sources.tokens import counter_for

        opts = task.source_options
        specs = self._specs.get(task.name, {})
        # Items depend on the servers too (their tokenizer, their window): part of the memo key.
        served = sorted((r, s.kind, s.base_url, s.model) for r, s in specs.items())
        key = json.dumps([dict(opts), task.limit, served], sort_keys=True, default=str)
        got = self._prepared.get(task.name)
        if got is not None and got.key == key:
            return got
        self._check_windows(task, specs)
        path = None if opts["haystack"] is None else Path(opts["haystack"])
        text = load_haystack(path, opts["text_field"])
        haystack_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        hay = text.split()  # the haystack's words: items take spans of them
        words = sorted({w.lower() for w in re.findall(r"[A-Za-z]{4,12}", text)})
        counter, note = counter_for(specs, opts["tokenizer"])
        where = "the bundled haystack" if path is None else str(path)
        total = counter.count(" ".join(hay))
        longest = max(opts["lengths"])
        if total < longest:
            raise SourceError(
                f"task {task.name}: the haystack ({where}) has {total:,} tokens"
                f" ({counter.source}), too short for the requested length {longest:,} (hint:"
                " add documents, or request shorter lengths; the haystack is never repeated)"
            )
        plan: list[Planned] = []
        for spec in self._specs_of(task):
            if spec[0] == "common_words" and len(words) < 400:
                raise SourceError(
                    f"task {task.name}: common_words needs 400+ distinct words in the haystack"
                    f" ({where}) and it has {len(words)}"
                )
            plan.append(self._fit(task, counter, hay, words, spec, where))
            if task.limit is not None and len(plan) >= task.limit:
                break
        prepared = Prepared(key, hay, words, plan, counter.source, note, haystack_sha)
        self._prepared[task.name] = prepared
        return prepared

    @staticmethod
    def _specs_of(task: TaskSpec) -> Iterator[tuple[str, int, float | None, int]]:
        opts = task.source_options
        for gen_name in opts["tasks"]:
            for length in opts["lengths"]:
                depths = opts["depths"] if gen_name in USES_DEPTH else (None,)
                for depth in depths:
                    for sample in range(opts["samples"]):
                        yield gen_name, length, depth, sample

    @staticmethod
    def _item_id(gen: str, length: int, depth: float | None, sample: int) -> str:
        at = "" if depth is None else f"-d{depth:g}"
        return f"{gen}-{length}{at}-s{sample}"

    def _rng(self, task: TaskSpec, item_id: str) -> random.Random:
        # A string seed is hashed with sha512 by random: the same in every process.
        return random.Random(f"{VERSION}/{task.source_options['seed']}/{item_id}")

    def _render(
        self, task: TaskSpec, hay: list[str], words: list[str], p: Planned | tuple[Any, ...]
    ) -> tuple[str, list[str]]:
        if isinstance(p, Planned):
            gen, depth, size, item_id, length = p.task, p.depth, p.size, p.id, p.length
        else:
            gen, depth, size, item_id, length = p
        rng = self._rng(task, item_id)
        if gen == "common_words":
            return _common_words(rng, hay, words, size, 0.0, length)
        return GENERATORS[gen](rng, hay, words, size, depth or 0.0)

    def _fit(
        self,
        task: TaskSpec,
        counter: TokenCounter,
        hay: list[str],
        words: list[str],
        spec: tuple[str, int, float | None, int],
        where: str,
    ) -> Planned:
        """The largest filler size whose prompt stays within the length (RULER searches the
        same way); sizes are tried by the measured tokens per unit, a few tokenizer calls."""
        gen, length, depth, sample = spec
        item_id = self._item_id(gen, length, depth, sample)
        limit = len(hay) if gen != "common_words" else len(words) - 10
        lo, lo_tokens = 0, 0  # the largest size known to fit, and its tokens
        hi = limit + 1  # the smallest size known not to fit
        size = max(1, min(limit, length // 2))
        for _ in range(30):
            prompt, _ = self._render(task, hay, words, (gen, depth, size, item_id, length))
            tokens = counter.count(prompt)
            if tokens <= length:
                lo, lo_tokens = size, tokens
                if length - tokens <= max(16, length * FIT_SLACK):
                    break
            else:
                hi = size
            if hi - lo <= 1:
                break
            # Aim at the length by the tokens per unit of this try, kept inside the bracket.
            per_unit = max(tokens / size, 0.5)
            guess = size + round((length * (1 - FIT_SLACK / 2) - tokens) / per_unit)
            size = min(max(guess, lo + 1), hi - 1)
        if lo == 0:
            raise SourceError(
                f"task {task.name}: item {item_id}: the question alone exceeds {length:,} tokens"
                " (hint: request longer lengths)"
            )
        if lo >= limit and lo_tokens < length * (1 - 4 * FIT_SLACK):
            raise SourceError(
                f"task {task.name}: the haystack ({where}) is too short for length {length:,}:"
                f" all of it makes {lo_tokens:,} tokens (hint: add documents, or request shorter"
                " lengths; the haystack is never repeated)"
            )
        return Planned(item_id, gen, length, depth, sample, lo, lo_tokens)

    def items(self, task: TaskSpec) -> Iterator[Item]:
        prepared = self._prepare(task)
        for p in prepared.plan:
            prompt, refs = self._render(task, prepared.hay, prepared.words, p)
            yield Item(
                id=p.id,
                prompt=prompt,
                messages=None,
                reference=", ".join(refs),
                metadata=MappingProxyType(
                    {
                        "generator": p.task,
                        "length": p.length,
                        "depth": p.depth,
                        "context_tokens": p.tokens,
                        "token_count": prepared.counter_source,
                        **({} if prepared.note is None else {"token_count_note": prepared.note}),
                        "references": refs,
                    }
                ),
            )

    def count(self, task: TaskSpec) -> int:
        return len(self._prepare(task).plan)

    def digest(self, task: TaskSpec) -> str | None:
        prepared = self._prepare(task)
        opts = {k: v for k, v in task.source_options.items() if k != "haystack"}
        blob = {
            "version": VERSION,
            "options": opts,
            "limit": task.limit,
            "haystack": prepared.haystack_sha,
            "token_count": prepared.counter_source.split(" ")[0],
            "sizes": [p.size for p in prepared.plan],
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()

    async def answer(
        self, task: TaskSpec, item: Item, ask: Ask, build: Callable[[Item, int], Request]
    ) -> Answer:
        from pytest_parity.scoring.builtin import Score

        got = await super().answer(task, item, ask, build)
        if got.response.error:
            return got
        refs = list(item.metadata.get("references") or [])
        responses = got.responses or (got.response,)
        value = sum(match_all(r.text, refs) for r in responses) / len(responses)
        facts = {"context_tokens": item.metadata.get("context_tokens")}
        usage = got.response.usage.get("prompt_tokens")
        if isinstance(usage, int):
            facts["prompt_tokens"] = usage  # what the server counted, chat template included
        return Answer(
            response=got.response,
            responses=got.responses,
            facts=MappingProxyType(facts),
            score=Score(value, True),
        )
