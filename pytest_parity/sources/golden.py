"""Golden-set task source: a JSONL file, one item per line.

Each line is a JSON object::

    {"id": "q1", "prompt": "What is 2 + 3?", "reference": "5", "metadata": {"topic": "math"}}

``prompt`` is sent as a single user message (or through the task's template); ``messages`` (a list
of chat messages) may be given instead. ``reference`` is what the scorer compares against;
``metadata`` is optional and may carry the task's cluster key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_parity.sources.base import SourceError, TaskSource
from pytest_parity.sources.item import EMPTY, Item

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec

# human_score: a person's grade of the (baseline) answer, or {"baseline": g, "candidate": g};
# human_preference: "baseline" | "candidate" | "tie" (or -1 / 0 / +1)
HUMAN_LABELS = ("human_score", "human_preference")
ITEM_KEYS = ("id", "prompt", "messages", "reference", "metadata", "tools", *HUMAN_LABELS)
_KNOWN_KEYS = frozenset(ITEM_KEYS)
ROLES = ("system", "user", "assistant", "tool", "developer")
# Deeper data cannot be a chat item, and would exhaust Python's recursion limit downstream
# (reports, caches) instead of here, with a line number.
MAX_DEPTH = 64


class GoldenError(SourceError):
    """A golden-set file that cannot be used; the message is one line with file and line number."""


def load_golden(
    path: Path, *, limit: int | None = None, cluster_key: str | None = None
) -> list[Item]:
    """Read and check a golden set; every problem names the file and the line."""
    items = list(iter_golden(path, limit=limit, cluster_key=cluster_key))
    if not items:
        raise GoldenError(f"{path}: the golden set has no items (hint: one JSON object per line)")
    return items


def iter_golden(
    path: Path,
    *,
    limit: int | None = None,
    cluster_key: str | None = None,
    check_ids: bool = True,
) -> Iterator[Item]:
    """The golden set's items one at a time, each checked as it is read; ``check_ids=False``
    skips the duplicate-id check (a set already checked whole: no id table is kept)."""
    seen: dict[str, int] = {}
    count = 0
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise GoldenError(f"{path}: cannot read golden set: {exc.strerror}") from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise GoldenError(
                    f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column"
                    f" {exc.start + 1}) (hint: save the golden set as UTF-8)"
                ) from None
            if not line.strip():
                continue
            item = _parse_line(path, lineno, line, cluster_key)
            if check_ids:
                if item.id in seen:
                    raise GoldenError(
                        f"{path}:{lineno}: duplicate id {item.id!r} (first on line"
                        f" {seen[item.id]}) (hint: ids pair the two stacks' answers and must be"
                        " unique)"
                    )
                seen[item.id] = lineno
            yield item
            count += 1
            if limit is not None and count >= limit:
                break


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_deep(where: str) -> str:
    return (
        f"{where}: nested deeper than {MAX_DEPTH} levels (hint: an item is a prompt or a few"
        " messages, a reference and flat metadata)"
    )


def _parse_line(path: Path, lineno: int, line: str, cluster_key: str | None) -> Item:
    # where = "file:line", for the errors only: built per line it was a tenth of the read
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise GoldenError(
            f"{path}:{lineno}: not valid JSON: {exc.msg} at column {exc.colno}"
        ) from None
    except RecursionError:
        raise GoldenError(_too_deep(f"{path}:{lineno}")) from None
    except ValueError as exc:  # e.g. an integer of 4,300+ digits, which Python refuses to read
        problem = str(exc).split(";")[0].strip()
        raise GoldenError(
            f"{path}:{lineno}: not valid JSON here: {problem}"
            " (hint: write such a number as a string)"
        ) from None
    if ("\\ud" in line or "\\uD" in line) and _has_lone_surrogate(obj):
        # JSON can escape half of a UTF-16 pair; no request or report can carry it as text
        raise GoldenError(
            f"{path}:{lineno}: a lone surrogate escape (\\ud800-\\udfff) is not text"
            " (hint: write the character itself, or both halves of its pair)"
        )
    # Only a line with that many brackets can nest that deep: most lines skip the walk.
    if line.count("[") + line.count("{") > MAX_DEPTH and _depth(obj) > MAX_DEPTH:
        raise GoldenError(_too_deep(f"{path}:{lineno}"))
    if not isinstance(obj, dict):
        raise GoldenError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    if not obj.keys() <= _KNOWN_KEYS:
        unknown = [k for k in obj if k not in _KNOWN_KEYS]
        raise GoldenError(
            f"{path}:{lineno}: unknown key {unknown[0]!r}"
            f" (hint: known keys are {', '.join(ITEM_KEYS)};"
            " put anything else under metadata)"
        )
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or str(raw_id) == "":
        raise GoldenError(f"{path}:{lineno}: id: required, a non-empty string or number")
    prompt = obj.get("prompt")
    messages = obj.get("messages")
    if (prompt is None) == (messages is None):
        raise GoldenError(
            f"{path}:{lineno}: give exactly one of prompt (a string) or messages (a list)"
        )
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise GoldenError(f"{path}:{lineno}: prompt: expected a non-empty string")
    msgs: tuple[Mapping[str, Any], ...] | None = None
    if messages is not None:
        if not isinstance(messages, list) or not messages:
            raise GoldenError(
                f"{path}:{lineno}: messages: expected a non-empty list of chat messages"
            )
        for j, msg in enumerate(messages):
            if (
                not isinstance(msg, dict)
                or msg.get("role") not in ROLES
                or not isinstance(msg.get("content", ""), str | list)
            ):
                raise GoldenError(
                    f"{path}:{lineno}: messages[{j}]: expected {{'role': one of {', '.join(ROLES)},"
                    " 'content': text}"
                )
        msgs = tuple(messages)
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        if isinstance(reference, bool) or not isinstance(reference, int | float):
            raise GoldenError(f"{path}:{lineno}: reference: expected a string or a number")
        reference = str(reference)
    metadata = obj.get("metadata") or EMPTY
    if not isinstance(metadata, Mapping):
        raise GoldenError(f"{path}:{lineno}: metadata: expected a JSON object")
    # People's labels for the LLM judge's agreement figures: kept with the item's metadata.
    labels = {k: obj[k] for k in HUMAN_LABELS if obj.get(k) is not None}
    if labels:
        metadata = {**metadata, **labels}
    if cluster_key is not None and cluster_key not in metadata:
        raise GoldenError(
            f"{path}:{lineno}: metadata.{cluster_key}: missing (the task declares cluster_key:"
            f" {cluster_key}; every item needs it)"
        )
    tools = obj.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise GoldenError(f"{path}:{lineno}: tools: expected a list of tool definitions")
    return Item(
        id=str(raw_id),
        prompt=prompt,
        messages=msgs,
        reference=reference,
        metadata=metadata,
        tools=None if tools is None else tuple(tools),
    )


def _depth(value: Any) -> int:
    """How deep JSON data nests (iteratively: it is only asked of suspicious lines)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest


def data_digest(path: Path) -> str:
    """sha256 of a data file, for the report's provenance."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class GoldenSource(TaskSource):
    """``source: golden``: a JSONL golden set (``path``), scored by the task's scorer."""

    name = "golden"
    needs_path = True
    default_scorer = "exact"

    def prepare(self, task: TaskSpec) -> None:
        self._load(task)

    def items(self, task: TaskSpec) -> Iterator[Item]:
        # Checked whole first (every problem shows before a request is sent), then read again
        # as the runner pulls items: a 100,000-item set is never held in memory as Items
        # (~10 us an item to read twice, against ~350 bytes an item kept).
        self._load(task)
        assert task.path is not None
        return iter_golden(
            task.path, limit=task.limit, cluster_key=task.cluster_key, check_ids=False
        )

    def count(self, task: TaskSpec) -> int:
        return self._load(task)

    def digest(self, task: TaskSpec) -> str | None:
        return None if task.path is None else data_digest(task.path)

    def repeated_prompts(self, task: TaskSpec) -> int:
        """How many items repeat a prompt an earlier item has (the coverage audit's note)."""
        return self._facts(task)[1]

    def _load(self, task: TaskSpec) -> int:
        """Check the whole set once per file version; its number of items."""
        return self._facts(task)[0]

    def _facts(self, task: TaskSpec) -> tuple[int, int]:
        """(items, repeated prompts) from one checked pass per file version, per task: the
        preparation, the count, the audit and the run's stream share it."""
        assert task.path is not None
        st = task.path.stat()
        key = (str(task.path), task.limit, task.cluster_key, st.st_mtime_ns, st.st_size)
        facts = self._memo.get(key)
        if facts is None:
            seen: set[int] = set()  # hashes, not prompts: a 100,000-item set is not held
            n = repeated = 0
            for item in load_golden_checked(task):
                n += 1
                h = hash(item.display_prompt())
                if h in seen:
                    repeated += 1
                else:
                    seen.add(h)
            facts = self._memo[key] = (n, repeated)
        return facts

    def __init__(self) -> None:
        self._memo: dict[tuple[object, ...], tuple[int, int]] = {}


def load_golden_checked(task: TaskSpec) -> Iterator[Item]:
    """Every item of the task's set, checked (ids too); GoldenError when it has none."""
    assert task.path is not None
    n = 0
    for item in iter_golden(task.path, limit=task.limit, cluster_key=task.cluster_key):
        n += 1
        yield item
    if n == 0:
        raise GoldenError(
            f"{task.path}: the golden set has no items (hint: one JSON object per line)"
        )
