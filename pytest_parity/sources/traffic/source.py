"""``source: traffic``: a captured slice of production traffic, replayed against both stacks.

The task's ``path`` is the captured file; its options live under ``traffic:`` (see
:data:`OPTION_KEYS` and the README's "Production replay" section). The file is streamed through
an importer (:mod:`.importers`), the slice (:mod:`.select`) keeps a reproducible sample in bounded
memory, and only the chosen requests are redacted (:mod:`.redact`) and become items: messages,
tools and sampling parameters as production sent them (the contract may override sampling), the
production answer under ``Item.captured["production"]`` (the baseline of ``kind: captured``),
production signals under ``metadata["signals"]``, the segment under ``metadata["segment"]`` and
the conversation under ``metadata["conversation"]`` (the task's cluster key by default: turns of
one conversation are not independent).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pytest_parity.sources.base import SourceError, TaskSource
from pytest_parity.sources.item import Item
from pytest_parity.sources.traffic.importers import FORMATS, parse_time, read_records
from pytest_parity.sources.traffic.records import REPLAYED_PARAMS, Captured
from pytest_parity.sources.traffic.redact import BUILTIN_RULES, Hook, Redactor
from pytest_parity.sources.traffic.select import SliceSpec, SliceStats, describe_stats, select

if TYPE_CHECKING:
    from pytest_parity.contract.spec import TaskSpec
    from pytest_parity.records import ItemRecord

__all__ = ["OPTION_KEYS", "TrafficSource"]

OPTION_KEYS = (
    "format",
    "responses",
    "fields",
    "timestamp",
    "conversation",
    "segment",
    "signals",
    "metadata",
    "reference",
    "since",
    "until",
    "rate",
    "count",
    "per_segment",
    "split_by_segment",
    "segments",
    "dedup",
    "require_response",
    "replay_params",
    "sampling",
    "redact",
    "redact_hook",
    "max_malformed",
    "seed",
)
FIELD_KEYS = (
    "id",
    "messages",
    "prompt",
    "system",
    "response",
    "finish_reason",
    "tools",
    "params",
    "timestamp",
    "conversation",
    "model",
)
_SEGMENT_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}"


def _path_option(v: Any, m: Mapping[str, Any], where: str, key: str) -> str | None:
    if m.get(key) is None:
        return None
    return str(v.string(m[key], _join(where, key), "a dotted field path, e.g. metadata.route"))


def _time_option(v: Any, m: Mapping[str, Any], where: str, key: str) -> float | None:
    raw = m.get(key)
    if raw is None:
        return None
    if isinstance(raw, datetime):  # YAML reads an unquoted date-time itself
        dt = raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    t = parse_time(str(raw)) if not isinstance(raw, int | float) else parse_time(raw)
    if t is None:
        raise v.fail(
            _join(where, key),
            f"not a time: {raw!r}",
            'write an ISO 8601 time, e.g. "2026-11-01T00:00:00Z", or seconds since the epoch',
        )
    return t


def traffic_options(raw: Mapping[str, Any], where: str, v: Any, base: Path) -> dict[str, Any]:
    """Validate the ``traffic:`` options; every problem is one ``v.fail`` line."""
    v.keys(raw, where, OPTION_KEYS)
    fmt = v.choice(
        v.required(raw, where, "format", "write format: openai, otel or jsonl"),
        _join(where, "format"),
        FORMATS,
    )
    out: dict[str, Any] = {"format": fmt}
    if raw.get("responses") is not None:
        if fmt != "openai":
            raise v.fail(
                _join(where, "responses"),
                "only the openai format joins a separate responses file",
                "remove responses, or write format: openai",
            )
        p = (base / v.string(raw["responses"], _join(where, "responses"))).resolve()
        if not p.is_file():
            raise v.fail(
                _join(where, "responses"),
                f"file not found: {p}",
                "the Batch API output file, relative to the contract",
            )
        out["responses"] = str(p)
    fields = raw.get("fields")
    if fmt == "jsonl":
        fm = v.mapping(
            v.required(raw, where, "fields", "write fields: {messages: path} or {prompt: path}"),
            _join(where, "fields"),
        )
        v.keys(fm, _join(where, "fields"), FIELD_KEYS)
        for k, p in fm.items():
            v.string(p, _join(_join(where, "fields"), k), "a dotted field path")
        if "messages" not in fm and "prompt" not in fm:
            raise v.fail(
                _join(where, "fields"),
                "names neither messages nor prompt",
                "write fields: {messages: request.messages} or {prompt: input.text}",
            )
        out["fields"] = dict(fm)
    elif fields is not None:
        raise v.fail(
            _join(where, "fields"),
            "field paths are for format: jsonl",
            "the openai and otel formats read their own fields; use timestamp, conversation,"
            " segment, signals or metadata to name more",
        )
    for key in ("timestamp", "conversation", "segment", "reference"):
        out[key] = _path_option(v, raw, where, key)
    for key in ("signals", "metadata"):
        mm = v.mapping(raw.get(key) or {}, _join(where, key))
        for name, p in mm.items():
            v.string(p, _join(_join(where, key), name), "a dotted field path")
        out[key] = dict(mm)
    out["since"] = _time_option(v, raw, where, "since")
    out["until"] = _time_option(v, raw, where, "until")
    if out["since"] is not None and out["until"] is not None and out["until"] <= out["since"]:
        raise v.fail(_join(where, "until"), "is not after since", "until must be the later time")
    out["rate"] = (
        None
        if raw.get("rate") is None
        else v.number(raw["rate"], _join(where, "rate"), 0, 1, hi_open=False, hint="e.g. 0.01")
    )
    out["count"] = (
        None if raw.get("count") is None else v.integer(raw["count"], _join(where, "count"), 1)
    )
    out["per_segment"] = (
        None
        if raw.get("per_segment") is None
        else v.integer(raw["per_segment"], _join(where, "per_segment"), 1)
    )
    if out["count"] is not None and out["per_segment"] is not None:
        raise v.fail(
            _join(where, "per_segment"),
            "give count or per_segment, not both",
            "count samples the whole slice, per_segment samples each segment",
        )
    split = v.boolean(raw.get("split_by_segment", False), _join(where, "split_by_segment"))
    if (out["per_segment"] is not None or split) and out["segment"] is None:
        raise v.fail(
            _join(where, "segment"),
            "required by per_segment and split_by_segment",
            "write segment: <field path of the route, tenant or use case>",
        )
    out["split_by_segment"] = split
    segs = raw.get("segments")
    if segs is not None:
        if not isinstance(segs, list) or not segs:
            raise v.fail(_join(where, "segments"), "expected a non-empty list of segment values")
        if not split:
            raise v.fail(
                _join(where, "segments"),
                "only split_by_segment reads these",
                "write split_by_segment: true",
            )
        out["segments"] = [str(s) for s in segs]
    else:
        out["segments"] = None
    for key, default in (("dedup", True), ("require_response", False), ("replay_params", True)):
        out[key] = v.boolean(raw.get(key, default), _join(where, key))
    sampling = dict(v.mapping(raw.get("sampling") or {}, _join(where, "sampling")))
    for k in sampling:
        if k not in REPLAYED_PARAMS:
            raise v.fail(
                _join(_join(where, "sampling"), k),
                "not a sampling parameter that is replayed",
                f"one of: {', '.join(sorted(REPLAYED_PARAMS))}",
            )
    if "temperature" in sampling:
        v.number(
            sampling["temperature"],
            _join(where, "sampling.temperature"),
            0,
            2,
            lo_open=False,
            hi_open=False,
        )
    out["sampling"] = sampling
    rules = []
    redact = raw.get("redact") or []
    if not isinstance(redact, list):
        raise v.fail(
            _join(where, "redact"),
            "expected a list of rules",
            "write redact: [email, {pattern: '...', replace: '[ID]'}]",
        )
    for i, rule in enumerate(redact):
        rw = f"{where}.redact[{i}]"
        if isinstance(rule, str):
            if rule not in BUILTIN_RULES:
                raise v.fail(
                    rw,
                    f"unknown built-in rule {rule!r}",
                    f"built-in: {', '.join(BUILTIN_RULES)}; or {{pattern, replace}}",
                )
            pattern, repl = BUILTIN_RULES[rule]
            rules.append({"pattern": pattern, "replace": repl, "name": rule})
            continue
        rm = v.mapping(rule, rw)
        v.keys(rm, rw, ("pattern", "replace", "name"))
        pattern = v.string(v.required(rm, rw, "pattern", "a regular expression"), f"{rw}.pattern")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise v.fail(f"{rw}.pattern", f"not a valid regular expression: {exc}") from None
        repl = rm.get("replace", "[REDACTED]")
        if not isinstance(repl, str):
            raise v.fail(f"{rw}.replace", "expected text", "e.g. replace: '[ID]'")
        rules.append({"pattern": pattern, "replace": repl, "name": str(rm.get("name", "custom"))})
    out["redact"] = rules
    hook = raw.get("redact_hook")
    if hook is not None:
        hook = v.string(hook, _join(where, "redact_hook"))
        if ":" not in hook:
            raise v.fail(
                _join(where, "redact_hook"),
                "expected package.module:function",
                "e.g. redact_hook: my_pii:scrub",
            )
    out["redact_hook"] = hook
    out["max_malformed"] = v.number(
        raw.get("max_malformed", 0.01),
        _join(where, "max_malformed"),
        0,
        1,
        lo_open=False,
        hi_open=False,
        hint="the share of records that may be unreadable before the task errors, e.g. 0.01",
    )
    out["seed"] = v.integer(raw.get("seed", 0), _join(where, "seed"), 0)
    out["only_segment"] = None
    return out


class TrafficSource(TaskSource):
    """``source: traffic`` (see the module docstring)."""

    name = "traffic"
    options_key = "traffic"
    default_scorer = "judge-pairwise"
    needs_path = True
    options_required = True  # traffic.format at least

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], tuple[list[Item], list[str]]] = {}
        self._redact_hook: Hook | None = None
        self._digests: dict[tuple[str, int, int], str] = {}

    def set_redact_hook(self, hook: Hook | None) -> None:
        """The plugin hands over the conftest's ``pytest_parity_redact`` (None: none)."""
        self._redact_hook = hook
        self._memo.clear()

    def options(self, raw: Mapping[str, Any], where: str, v: Any, base: Path) -> Mapping[str, Any]:
        return MappingProxyType(traffic_options(raw, where, v, base))

    def expand(self, task: TaskSpec, v: Any) -> list[TaskSpec]:
        from pytest_parity.contract.spec import _frozen, thaw

        opts = thaw(task.source_options)
        if task.cluster_key is None:
            # Turns of one conversation share context: a cluster for the statistics.
            task = replace(task, cluster_key="conversation")
        if not opts.get("split_by_segment"):
            return [task]
        segments = opts.get("segments")
        if segments is None:
            try:
                segments = self._segments(task)
            except (OSError, ValueError) as exc:
                raise v.fail(f"{task.name}.traffic.segment", str(exc)) from None
        out = []
        seen: dict[str, str] = {}
        for seg in segments:
            label = _SEGMENT_NAME.sub("_", seg) or "_"
            if label in seen:
                raise v.fail(
                    f"{task.name}.traffic.segments",
                    f"segments {seen[label]!r} and {seg!r} make the same test id {label!r}",
                )
            seen[label] = seg
            out.append(
                replace(
                    task,
                    name=f"{task.name}.{label}",
                    source_options=_frozen(
                        {**opts, "only_segment": seg, "split_by_segment": False}
                    ),
                )
            )
        return out

    def _segments(self, task: TaskSpec) -> list[str]:
        """The segment values of the file (one streaming pass), most frequent first."""
        assert task.path is not None
        opts = task.source_options
        stats = SliceStats()
        spec = SliceSpec(
            seed=int(opts["seed"]),
            since=opts["since"],
            until=opts["until"],
            rate=opts["rate"],
            segment=opts["segment"],
            require_response=bool(opts["require_response"]),
            count=1,
        )
        select(read_records(task.path, str(opts["format"]), opts), spec, stats)
        return sorted(stats.eligible, key=lambda s: (-stats.eligible[s], s))

    # -- the items ----------------------------------------------------------------------------

    def prepare(self, task: TaskSpec) -> None:
        self._load(task)

    def items(self, task: TaskSpec) -> Iterator[Item]:
        return iter(self._load(task)[0])

    def count(self, task: TaskSpec) -> int:
        return len(self._load(task)[0])

    def digest(self, task: TaskSpec) -> str | None:
        from pytest_parity.sources.golden import data_digest

        assert task.path is not None
        files = [task.path]
        if task.source_options.get("responses"):
            files.append(Path(task.source_options["responses"]))
        h = hashlib.sha256()
        for f in files:
            st = f.stat()
            key = (str(f), st.st_mtime_ns, st.st_size)
            if key not in self._digests:  # split tasks share one file: hash it once
                self._digests[key] = data_digest(f)
            h.update(self._digests[key].encode())
        return h.hexdigest() if len(files) > 1 else self._digests[key]

    def notes(self, task: TaskSpec, records: Sequence[ItemRecord] = ()) -> list[str]:
        from pytest_parity.sources.traffic.signals import segment_lines, signal_lines

        notes = list(self._load(task)[1])
        notes.extend(segment_lines(records))
        notes.extend(signal_lines(records))
        return notes

    def _load(self, task: TaskSpec) -> tuple[list[Item], list[str]]:
        from pytest_parity.contract.spec import thaw

        assert task.path is not None
        st = task.path.stat()
        opts = json.dumps(thaw(task.source_options), sort_keys=True, default=str)
        key = (task.name, str(task.path), st.st_mtime_ns, st.st_size, task.limit, opts)
        if key not in self._memo:
            self._memo[key] = self._build(task)
        return self._memo[key]

    def _build(self, task: TaskSpec) -> tuple[list[Item], list[str]]:
        from pytest_parity.contract.spec import thaw

        assert task.path is not None
        opts: dict[str, Any] = thaw(task.source_options)
        fmt = str(opts["format"])
        spec = SliceSpec(
            seed=int(opts["seed"]),
            since=opts["since"],
            until=opts["until"],
            rate=opts["rate"],
            count=opts["count"],
            per_segment=opts["per_segment"],
            segment=opts["segment"],
            only_segment=opts.get("only_segment"),
            dedup=bool(opts["dedup"]),
            require_response=bool(opts["require_response"]) and not opts.get("responses"),
        )
        stats = SliceStats()
        where = f"{task.path}"
        try:
            chosen = select(read_records(task.path, fmt, opts), spec, stats)
        except OSError as exc:
            raise SourceError(
                f"{where}: cannot read the captured traffic: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise SourceError(f"{where}: {exc}") from None
        if stats.malformed and stats.malformed > opts["max_malformed"] * max(stats.read, 1):
            shown = ", ".join(f"line {n}: {r}" for n, r in stats.malformed_lines[:3])
            raise SourceError(
                f"{where}: {stats.malformed:,} of {stats.read:,} records are malformed, more than"
                f" traffic.max_malformed ({opts['max_malformed']:g}) allows; {shown}"
                f" (hint: check traffic.format ({fmt}), or raise max_malformed)"
            )
        if opts.get("responses"):
            chosen = self._join_batch(task, opts, chosen, bool(opts["require_response"]), stats)
        if task.limit is not None:
            chosen = chosen[: task.limit]
        if not chosen:
            raise SourceError(
                f"{where}: no captured request is left in the slice ({describe_stats(stats, spec)})"
                " (hint: check traffic.format, the time window and the sampling options)"
            )
        redactor = Redactor.from_options(
            task.name, opts["redact"], opts["redact_hook"], self._redact_hook
        )
        try:
            items, facts = self._items(task, opts, chosen, redactor)
        except ValueError as exc:
            raise SourceError(f"task {task.name}: redaction failed: {exc}") from None
        notes = [f"traffic ({fmt}, {task.path.name}): {describe_stats(stats, spec)}"]
        notes.extend(facts)
        return items, notes

    def _join_batch(
        self,
        task: TaskSpec,
        opts: Mapping[str, Any],
        chosen: list[tuple[Captured, str]],
        require: bool,
        stats: SliceStats,
    ) -> list[tuple[Captured, str]]:
        """Batch API outputs for the chosen requests (a second pass reads only those)."""
        from pytest_parity.sources.traffic.importers import batch_outputs

        wanted = {rec.id for rec, _ in chosen if rec.id is not None}
        answers = batch_outputs(Path(opts["responses"]), wanted)
        out = []
        for rec, seg in chosen:
            if rec.response is None and rec.id in answers:
                rec.response = answers[rec.id]
            if require and rec.response is None:
                stats.no_response += 1
                continue
            out.append((rec, seg))
        stats.selected = len(out)
        return out

    def _items(
        self,
        task: TaskSpec,
        opts: Mapping[str, Any],
        chosen: list[tuple[Captured, str]],
        redactor: Redactor,
    ) -> tuple[list[Item], list[str]]:
        from pytest_parity.sources.traffic.records import field_path, request_digest

        items: list[Item] = []
        ids: set[str] = set()
        sampling = dict(opts["sampling"])
        overridden = 0
        dropped: dict[str, int] = {}
        with_answer = 0
        conv_path = opts["conversation"] or (opts.get("fields") or {}).get("conversation")
        for rec, seg in chosen:
            messages = redactor.messages(rec.messages) if redactor.active else rec.messages
            params = dict(rec.params) if opts["replay_params"] else {}
            if sampling:
                if any(k in params and params[k] != v for k, v in sampling.items()):
                    overridden += 1
                params.update(sampling)
            for name in rec.dropped:
                dropped[name] = dropped.get(name, 0) + 1
            item_id = rec.id or "r" + request_digest(messages, rec.tools, params).hex()[:12]
            base_id, n = item_id, 1
            while item_id in ids:
                n += 1
                item_id = f"{base_id}~{n}"
            ids.add(item_id)
            conversation = rec.conversation
            if conversation is None and conv_path and opts["format"] != "otel":
                found = field_path(rec.source, conv_path)
                if found is not None and not isinstance(found, dict | list):
                    conversation = str(found)
            conversation = conversation or item_id
            metadata: dict[str, Any] = {
                "segment": seg,
                "conversation": conversation,
                "line": rec.line,
            }
            if rec.timestamp is not None:
                metadata["captured_at"] = datetime.fromtimestamp(
                    rec.timestamp, tz=timezone.utc
                ).isoformat(timespec="seconds")
            if rec.model:
                metadata["production_model"] = rec.model
            signals = {}
            for name, p in opts["signals"].items():
                value = field_path(rec.source, p)
                if value is not None:
                    signals[name] = redactor.value(value, f"signals.{name}")
            if signals:
                metadata["signals"] = signals
            for name, p in opts["metadata"].items():
                value = field_path(rec.source, p)
                if value is not None:
                    metadata[name] = redactor.value(value, f"metadata.{name}")
            captured: dict[str, Any] = {}
            if rec.response is not None:
                with_answer += 1
                response = redactor.response(rec.response) if redactor.active else rec.response
                response = {**response, "tool_calls": list(response.get("tool_calls") or [])}
                captured["production"] = response
                metadata["production_answer"] = response.get("text", "")
            reference = None
            if opts["reference"]:
                ref = field_path(rec.source, opts["reference"])
                reference = None if ref is None else redactor.value(str(ref), "reference")
            items.append(
                Item(
                    id=item_id,
                    prompt=None,
                    messages=tuple(messages),
                    reference=reference,
                    metadata=metadata,
                    tools=None if not rec.tools else tuple(rec.tools),
                    params=params,
                    captured=captured,
                )
            )
        facts = []
        if sampling:
            shown = ", ".join(f"{k} {v}" for k, v in sampling.items())
            facts.append(
                f"sampling overridden by the contract: {shown} on every item (the captured"
                f" values differed on {overridden:,} of {len(items):,})"
            )
        elif opts["replay_params"]:
            facts.append("sampling parameters replayed as captured")
        if dropped:
            names = ", ".join(f"{k} ({n:,})" for k, n in sorted(dropped.items()))
            facts.append(f"captured request fields not replayed: {names}")
        facts.append(f"{with_answer:,} of {len(items):,} items carry the production answer")
        if redactor.active:
            names = ", ".join(r.get("name", "custom") for r in opts["redact"])
            hook = f"; {redactor.function}" if redactor.function else ""
            hook += "; the conftest's pytest_parity_redact" if redactor.hook else ""
            facts.append(f"redacted before anything is sent or written: {names or '-'}{hook}")
        return items, facts
