"""``source: shadow``: the pairs the tee proxy stored, judged without asking either stack again.

Both answers of every pair already exist (``parity-shadow`` stored them, see
:mod:`pytest_parity.store.pairs`), so the source sends no request to the stacks
(``sends_requests = False``: no preflight, no engine probe); each item carries both answers under
``Item.captured`` and the task's scorer (the pairwise judge by default, both orders) compares them.
Options, under the task's ``shadow:`` key::

    shadow:
      store: shadow.sqlite          # a sqlite file (relative to the contract) or postgresql://...
      store_env: PARITY_STORE       # or: the variable holding the store's URL (a DSN with a secret)
      window: {last: 24h}           # or {since: 2026-11-01T00:00:00Z, until: ...}
      segment: checkout             # one segment; or segments: [a, b] -> one task per segment
      sample: 500                   # a seeded uniform sample of the window's pairs
      seed: 7
      baseline: auto                # which side is the old stack: auto | serving | shadow
      client_errors: false          # keep pairs the client broke (hung up, HTTP 4xx)? no

``baseline: auto`` reads each pair's stack names: the side stored as the contract's ``baseline``
endpoint is the baseline, so a window across the cutover (the old stack serving, then shadowing)
is paired the right way round; ``serving`` / ``shadow`` fix it for stores whose stacks have other
names. Each item's metadata holds the segment, the pair's id and time, the side that served
and both stacks' time to first token (the latency check reads it).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.sources.base import SourceError, TaskSource
from pytest_parity.sources.item import Item

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.records import ItemRecord
    from pytest_parity.store import Store, StoredPair

__all__ = ["OPTION_KEYS", "ShadowSource", "parse_duration", "store_url"]

OPTION_KEYS = (
    "store",
    "store_env",
    "window",
    "segment",
    "segments",
    "sample",
    "seed",
    "baseline",
    "client_errors",
)
WINDOW_KEYS = ("last", "since", "until")
SIDES = ("serving", "shadow")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SEGMENT_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")
# The proxy's error categories -> the endpoint layer's error kinds (ERROR_KINDS).
_ERROR_KIND = {"connect": "connect", "timeout": "timeout", "disconnect": "connect"}


def parse_duration(raw: Any) -> float | None:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` (or a number of seconds) -> seconds."""
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        return float(raw)
    m = _DURATION.match(str(raw))
    return None if m is None else float(m.group(1)) * _UNIT[m.group(2)]


def _time(v: Any, raw: Any, where: str) -> float:
    if isinstance(raw, datetime):  # YAML reads an unquoted date-time itself
        return (raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    try:
        dt = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise v.fail(
            where, f"not a time: {raw!r}", 'write an ISO 8601 time, e.g. "2026-11-01T00:00:00Z"'
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def window_options(v: Any, raw: Any, where: str) -> dict[str, Any]:
    """``{last: 24h}`` or ``{since: ..., until: ...}`` (validated; times as epoch seconds)."""
    m = v.mapping(raw, where)
    v.keys(m, where, WINDOW_KEYS)
    if "last" in m and ("since" in m or "until" in m):
        raise v.fail(f"{where}.last", "give last or since/until, not both", "write last: 24h")
    out: dict[str, Any] = {"last": None, "since": None, "until": None}
    if "last" in m:
        out["last"] = parse_duration(m["last"])
        if out["last"] is None:
            raise v.fail(f"{where}.last", f"not a duration: {m['last']!r}", "write e.g. 24h, 7d")
    for key in ("since", "until"):
        if m.get(key) is not None:
            out[key] = _time(v, m[key], f"{where}.{key}")
    if out["since"] is not None and out["until"] is not None and out["until"] <= out["since"]:
        raise v.fail(f"{where}.until", "is not after since", "the window is [since, until)")
    return out


def store_url(opts: Mapping[str, Any]) -> str:
    """The store's URL: the option, or the environment variable ``store_env`` names."""
    env = opts.get("store_env")
    if env:
        url = os.environ.get(str(env))
        if not url:
            raise SourceError(
                f"the shadow store's variable {env} is not set (hint: export {env}=<sqlite path"
                " or postgresql:// URL>)"
            )
        return url
    return str(opts["store"])


def shown_store(url: str) -> str:
    """The store as reports show it: a PostgreSQL URL without user and password."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    host = rest.split("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}://{host}"


class ShadowSource(TaskSource):
    name = "shadow"
    options_key = "shadow"
    options_required = True
    default_scorer = "judge-pairwise"
    sends_requests = False

    def __init__(self) -> None:
        self._notes: dict[str, list[str]] = {}
        self._digests: dict[str, str] = {}
        self._until: dict[str, float] = {}
        self._last: dict[str, tuple[float, int] | None] = {}

    # -- the contract ------------------------------------------------------------------------

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        v.keys(raw, where, OPTION_KEYS)
        out: dict[str, Any] = {}
        if ("store" in raw) == ("store_env" in raw):
            raise v.fail(
                f"{where}.store",
                "give exactly one of store and store_env",
                "write store: shadow.sqlite (the proxy's store.url)",
            )
        if "store_env" in raw:
            env = v.string(raw["store_env"], f"{where}.store_env")
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
                raise v.fail(f"{where}.store_env", f"not a variable name: {env!r}")
            out["store_env"], out["store"] = env, None
        else:
            url = v.string(raw["store"], f"{where}.store", "a sqlite path or postgresql:// URL")
            if url.startswith(("postgresql://", "postgres://")):
                userinfo = url.split("://", 1)[1].split("@", 1)
                if len(userinfo) == 2 and ":" in userinfo[0]:
                    raise v.fail(
                        f"{where}.store",
                        "the URL holds a password; a contract never holds a secret",
                        "drop it and export PGPASSWORD, or name the URL's variable in store_env",
                    )
            else:
                url = str((base / url).resolve())
            out["store"], out["store_env"] = url, None
        out["window"] = window_options(v, raw.get("window") or {}, f"{where}.window")
        out["segment"] = (
            None if raw.get("segment") is None else v.string(raw["segment"], f"{where}.segment")
        )
        segs = raw.get("segments")
        if segs is not None:
            if not isinstance(segs, list) or not segs:
                raise v.fail(f"{where}.segments", "expected a non-empty list of segment names")
            if out["segment"] is not None:
                raise v.fail(f"{where}.segments", "give segment or segments, not both")
            out["segments"] = [v.string(s, f"{where}.segments[{i}]") for i, s in enumerate(segs)]
        else:
            out["segments"] = None
        out["sample"] = (
            None if raw.get("sample") is None else v.integer(raw["sample"], f"{where}.sample", 1)
        )
        out["seed"] = v.integer(raw.get("seed", 0), f"{where}.seed", 0)
        out["baseline"] = v.choice(
            raw.get("baseline", "auto"), f"{where}.baseline", ("auto", *SIDES)
        )
        out["client_errors"] = v.boolean(raw.get("client_errors", False), f"{where}.client_errors")
        # Set by the monitor only: the checkpoint's stable key and a bound on the pairs read.
        out["after"] = None
        out["limit"] = None
        return MappingProxyType(out)

    def expand(self, task: TaskSpec, v: Any) -> list[TaskSpec]:
        from pytest_parity import registry
        from pytest_parity.contract.spec import _frozen, thaw

        if "latency" not in task.checks:
            # Both stacks answered the same requests under the same load: latency is comparable.
            latency = registry.checks.get("latency")
            at = f"{task.name}.checks.latency"
            task = replace(
                task,
                checks=_frozen({**thaw(task.checks), "latency": latency.options({}, at, v, {})}),
            )
        opts = thaw(task.source_options)
        if not opts.get("segments"):
            return [task]
        out = []
        seen: dict[str, str] = {}
        for seg in opts["segments"]:
            label = _SEGMENT_NAME.sub("_", seg) or "_"
            if label in seen:
                raise v.fail(
                    f"{task.name}.shadow.segments",
                    f"segments {seen[label]!r} and {seg!r} make the same test id {label!r}",
                )
            seen[label] = seg
            out.append(
                replace(
                    task,
                    name=f"{task.name}.{label}",
                    source_options=_frozen({**opts, "segment": seg, "segments": None}),
                )
            )
        return out

    # -- the window ----------------------------------------------------------------------------

    def window(self, task: TaskSpec) -> tuple[float | None, float | None]:
        """``[since, until)`` in epoch seconds; ``last:`` is fixed at the task's first use, so the
        count and the items read the same pairs."""
        w = task.source_options["window"]
        if w.get("last") is not None:
            until = self._until.setdefault(task.name, time.time())
            return until - float(w["last"]), until
        return w.get("since"), w.get("until")

    def _open(self, task: TaskSpec) -> Store:
        from pytest_parity.store import open_store

        url = store_url(task.source_options)
        if "://" not in url and not Path(url).is_file():
            raise SourceError(
                f"task {task.name}: shadow.store: no store at {url} (hint: the path the proxy's"
                " shadow.store.url names, relative to the contract)"
            )
        try:
            return open_store(url, readonly="://" not in url)
        except Exception as exc:
            raise SourceError(
                f"task {task.name}: shadow.store {shown_store(url)} cannot be opened:"
                f" {' '.join(str(exc).split())[:200]}"
            ) from None

    def _query(self, task: TaskSpec) -> dict[str, Any]:
        opts = task.source_options
        since, until = self.window(task)
        after = opts.get("after")
        return {
            "since": since,
            "until": until,
            "segment": opts.get("segment"),
            "after": None if after is None else (float(after[0]), int(after[1])),
            "client_errors": bool(opts.get("client_errors")),
        }

    def prepare(self, task: TaskSpec) -> None:
        with self._open(task) as st:
            st.count(**self._query(task))

    def count(self, task: TaskSpec) -> int:
        opts = task.source_options
        with self._open(task) as st:
            n = st.count(**self._query(task))
        for bound in (opts.get("sample"), opts.get("limit")):
            if bound is not None:
                n = min(n, int(bound))
        return n

    # -- the items -----------------------------------------------------------------------------

    def _pairs(self, task: TaskSpec, st: Store) -> Iterator[StoredPair]:
        opts = task.source_options
        query = self._query(task)
        limit = opts.get("limit")
        sample = opts.get("sample")
        if sample is None:
            yield from st.pairs(**query, limit=None if limit is None else int(limit))
            return
        # A uniform sample of the window (reservoir, seeded), given back in time order.
        rng = random.Random(int(opts["seed"]))
        kept: list[StoredPair] = []
        for i, p in enumerate(st.pairs(**query)):
            if i < sample:
                kept.append(p)
            else:
                j = rng.randrange(i + 1)
                if j < sample:
                    kept[j] = p
        kept.sort(key=lambda p: (p.ts, p.id))
        yield from kept

    def items(self, task: TaskSpec) -> Iterator[Item]:
        opts = task.source_options
        digest = hashlib.sha256()
        served = {"serving": 0, "shadow": 0}
        skipped = 0
        n = 0
        first = last = None
        self._last[task.name] = None
        with self._open(task) as st:
            for p in self._pairs(task, st):
                self._last[task.name] = (p.ts, p.id)
                item = pair_item(p, str(opts["baseline"]))
                if item is None:
                    skipped += 1
                    continue
                digest.update(f"{p.id}:{p.request_hash};".encode())
                served[str(item.metadata["baseline_side"])] += 1
                first = p.ts if first is None else first
                last = p.ts
                n += 1
                yield item
        self._digests[task.name] = digest.hexdigest()
        notes = [self._describe(task, n, first, last)]
        if served["shadow"]:
            notes.append(
                f"after the cutover on {served['shadow']:,} pairs: the new stack served, the old"
                " one shadowed (baseline = the shadow side)"
            )
        if skipped:
            notes.append(f"{skipped:,} pairs without a readable prompt were left out")
        self._notes[task.name] = notes

    def _describe(self, task: TaskSpec, n: int, first: float | None, last: float | None) -> str:
        opts = task.source_options
        since, until = self.window(task)

        def iso(t: float | None) -> str:
            if t is None:
                return "-"
            return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        seg = f", segment {opts['segment']}" if opts.get("segment") else ""
        sampled = f", a seeded sample (seed {opts['seed']})" if opts.get("sample") else ""
        return (
            f"{n:,} shadow pairs from {shown_store(store_url(opts))} in [{iso(since)},"
            f" {iso(until)}){seg}{sampled}; first {iso(first)}, last {iso(last)}; answers as"
            " stored (no request sent to either stack)"
        )

    def digest(self, task: TaskSpec) -> str | None:
        return self._digests.get(task.name)

    def last_key(self, task: TaskSpec) -> tuple[float, int] | None:
        """The stable key ``(ts, id)`` of the last pair the task's items read (the monitor's
        next checkpoint; None when it read none)."""
        return self._last.get(task.name)

    def notes(self, task: TaskSpec, records: Sequence[ItemRecord] = ()) -> list[str]:
        return list(self._notes.get(task.name, []))


def _prompt(p: StoredPair) -> tuple[str | None, tuple[Mapping[str, Any], ...] | None]:
    req = p.request if isinstance(p.request, dict) else {}
    messages = req.get("messages")
    if isinstance(messages, list) and messages:
        msgs = [m for m in messages if isinstance(m, dict)]
        system = req.get("system")  # the Anthropic protocol keeps it beside the messages
        if isinstance(system, str) and system:
            msgs.insert(0, {"role": "system", "content": system})
        return None, tuple(MappingProxyType(dict(m)) for m in msgs)
    prompt = req.get("prompt")
    if isinstance(prompt, list):
        prompt = "\n".join(str(x) for x in prompt)
    return (prompt, None) if isinstance(prompt, str) and prompt else (None, None)


def _side(p: StoredPair, side: str, role: str) -> dict[str, Any]:
    def g(name: str) -> Any:
        return getattr(p, f"{side}_{name}")

    error = g("error")
    usage = {k: int(g(k)) for k in ("prompt_tokens", "completion_tokens") if g(k) is not None}
    out: dict[str, Any] = {
        "text": "" if error else (g("text") or ""),
        "finish_reason": None if error else g("finish"),
        "tool_calls": list(g("tool_calls") or ()),
        "usage": usage,
        "latency_s": float(g("latency") or 0.0),
    }
    if error:
        stack = getattr(p, f"{side}_stack")
        status = g("status")
        out["error"] = f"{role} ({stack}, the {side} side of shadow pair {p.id}): {error}" + (
            f" (HTTP {status})" if status is not None else ""
        )
        out["error_kind"] = _ERROR_KIND.get(str(error), "http")
    return out


def pair_item(p: StoredPair, baseline: str) -> Item | None:
    """One stored pair as an item with both answers captured (None: no readable prompt)."""
    prompt, messages = _prompt(p)
    if prompt is None and messages is None:
        return None
    if baseline == "auto":
        if p.serving_stack == "baseline" or p.shadow_stack == "candidate":
            base_side = "serving"
        elif p.shadow_stack == "baseline" or p.serving_stack == "candidate":
            base_side = "shadow"
        else:
            raise SourceError(
                f"shadow pair {p.id}: neither stack is named baseline or candidate"
                f" ({p.serving_stack!r} served, {p.shadow_stack!r} shadowed) (hint: write"
                " shadow: {baseline: serving} or {baseline: shadow})"
            )
    else:
        base_side = baseline
    cand_side = "shadow" if base_side == "serving" else "serving"
    req = p.request if isinstance(p.request, dict) else {}
    tools = req.get("tools")
    return Item(
        id=f"pair{p.id}",
        prompt=prompt,
        messages=messages,
        reference=None,
        metadata=MappingProxyType(
            {
                "segment": p.segment,
                "pair_id": p.id,
                "ts": p.ts,
                "model": p.model,
                "baseline_side": base_side,
                "ttft": {
                    "baseline": getattr(p, f"{base_side}_ttft"),
                    "candidate": getattr(p, f"{cand_side}_ttft"),
                },
            }
        ),
        tools=tuple(tools) if isinstance(tools, list) and tools else None,
        captured=MappingProxyType(
            {
                "baseline": _side(p, base_side, "baseline"),
                "candidate": _side(p, cand_side, "candidate"),
            }
        ),
    )
