"""The ``shadow:`` block of a parity contract: what the tee proxy serves, mirrors and stores.

The contract's endpoints are the same ``baseline`` / ``candidate`` mappings the gate reads
(validated by :mod:`pytest_parity.contract.rules`); ``tasks`` are not needed here. Every problem is
a one-line :class:`~pytest_parity.contract.ContractError`, as for the plugin::

    shadow:
      listen: "0.0.0.0:8080"
      serving: baseline            # the stack whose answers clients get (default baseline)
      target: candidate            # the shadow stack: an endpoint name or an inline endpoint
      sample_rate: 0.1
      segments: {from: [header, model], header: x-parity-segment, max: 50}
      queue: {size: 1000, concurrency: 16, timeout: 60}
      store: {url: shadow.sqlite, batch: 200, flush_seconds: 1.0}
      retention: {days: 30, rows: 1000000}
      redact: ['\\b\\d{13,19}\\b', {pattern: '[\\w.+-]+@[\\w-]+\\.[\\w.]+', replace: '[EMAIL]'}]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_parity.contract.spec import (
    ContractError,
    Defaults,
    EndpointSpec,
    read_contract_yaml,
)

SHADOW_KEYS = (
    "listen",
    "serving",
    "target",
    "sample_rate",
    "segments",
    "queue",
    "store",
    "retention",
    "redact",
    "metrics",
    "drain_seconds",
    "instance",
)
SEGMENT_SOURCES = ("header", "model", "path", "hook")
SEGMENT_KEYS = ("from", "header", "max", "hook", "default")
QUEUE_KEYS = ("size", "concurrency", "timeout")
STORE_KEYS = ("url", "batch", "flush_seconds")
RETENTION_KEYS = ("days", "rows", "check_seconds")
METRICS_KEYS = ("listen", "path")
REDACT_KEYS = ("pattern", "replace")
ROLES = ("baseline", "candidate")


@dataclass(frozen=True)
class RedactRule:
    pattern: re.Pattern[str]
    replace: str = "[REDACTED]"


@dataclass(frozen=True)
class ShadowConfig:
    """A validated ``shadow:`` block with both stacks resolved."""

    path: Path
    serving: EndpointSpec
    shadow: EndpointSpec
    serving_name: str
    shadow_name: str
    host: str = "127.0.0.1"
    port: int = 8080
    sample_rate: float = 1.0
    segment_from: tuple[str, ...] = ("header", "model")
    segment_header: str = "x-parity-segment"
    segment_max: int = 50
    segment_default: str = "default"
    segment_hook: str | None = None  # "file.py:function" (relative to the contract) or "mod:func"
    queue_size: int = 1000
    shadow_concurrency: int = 16
    shadow_timeout: float = 120.0
    store_url: str = "shadow.sqlite"
    batch: int = 200
    flush_seconds: float = 1.0
    retention_days: float | None = None
    retention_rows: int | None = None
    retention_check_seconds: float = 60.0
    redact: tuple[RedactRule, ...] = field(default_factory=tuple)
    metrics_host: str | None = None  # None: /metrics on the proxy's own port
    metrics_port: int | None = None
    metrics_path: str = "/metrics"
    drain_seconds: float = 10.0
    instance: str | None = None  # this proxy's name in the store (default host:port:pid)

    @property
    def store_is_postgres(self) -> bool:
        return self.store_url.startswith(("postgresql://", "postgres://"))


def load_shadow_config(path: str | Path) -> ShadowConfig:
    """Read a contract's ``shadow:`` block; raises ContractError with a one-line message."""
    raw, _text = read_contract_yaml(path, option="contract")
    return shadow_config_from_data(raw, Path(path))


def _listen(v: Any, value: Any, where: str) -> tuple[str, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"127.0.0.1:{value}"
    s = v.string(value, where, 'write e.g. listen: "0.0.0.0:8080"')
    m = re.match(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$", s.strip())
    if not m or int(m.group(2)) > 65535:
        raise v.fail(where, f"expected host:port, got {s!r}", 'write e.g. "0.0.0.0:8080"')
    return m.group(1).strip("[]"), int(m.group(2))


def shadow_config_from_data(raw: Any, path: Path) -> ShadowConfig:
    from pytest_parity.contract.rules import _V, _defaults, _endpoint, _join, _show

    file = str(path)
    v = _V(file)
    if raw is None:
        raise ContractError(file, "", "the contract is empty", "see the README's Shadow traffic")
    top = v.mapping(raw, "")
    block = top.get("shadow")
    if block is None:
        raise v.fail(
            "shadow", "required but missing", "add a shadow: block (README: Shadow traffic)"
        )
    m = v.mapping(block, "shadow")
    v.keys(m, "shadow", SHADOW_KEYS)
    base = path.resolve().parent
    defaults = _defaults(v, top.get("defaults")) if "defaults" in top else Defaults()

    def stack(value: Any, where: str) -> tuple[str, EndpointSpec]:
        if isinstance(value, str):
            name = v.choice(value, where, ROLES)
            raw_ep = v.required(top, "", name, f"describe the {name} stack under {name}:")
            return name, _endpoint(v, raw_ep, name, base, defaults)
        if isinstance(value, Mapping):
            return where, _endpoint(v, value, where, base, defaults)
        raise v.fail(
            where, f"expected an endpoint name or mapping, got {_show(value)}", "write candidate"
        )

    serving_name, serving = stack(m.get("serving", "baseline"), "shadow.serving")
    shadow_name, shadow = stack(m.get("target", "candidate"), "shadow.target")
    for name, ep in ((serving_name, serving), (shadow_name, shadow)):
        if ep.kind == "replay":
            raise v.fail(
                f"shadow.{'serving' if ep is serving else 'target'}",
                f"{name} is a replay endpoint; the proxy needs a live stack",
                "point it at a server (kind: openai, vllm, ...)",
            )
    from pytest_parity.endpoints.kinds import KINDS

    if KINDS[serving.kind].protocol != KINDS[shadow.kind].protocol:
        raise v.fail(
            "shadow.target",
            f"{shadow.kind} speaks another API than the serving {serving.kind}",
            "the proxy mirrors requests as they are: both stacks need the same API family",
        )
    if serving.base_url == shadow.base_url and serving.model == shadow.model:
        raise v.fail(
            "shadow.target",
            "the shadow stack is the serving stack itself",
            "name a different endpoint (a second copy of the old stack is fine: another URL)",
        )
    host, port = _listen(v, m.get("listen", "127.0.0.1:8080"), "shadow.listen")
    rate = v.number(
        m.get("sample_rate", 1.0),
        "shadow.sample_rate",
        0,
        1,
        lo_open=False,
        hi_open=False,
    )

    seg = dict(v.mapping(m.get("segments", {}) or {}, "shadow.segments"))
    v.keys(seg, "shadow.segments", SEGMENT_KEYS)
    seg_from_raw = seg.get("from", ["header", "model"])
    if isinstance(seg_from_raw, str):
        seg_from_raw = [seg_from_raw]
    if not isinstance(seg_from_raw, list) or not seg_from_raw:
        raise v.fail(
            "shadow.segments.from",
            f"expected a list of {', '.join(SEGMENT_SOURCES)}, got {_show(seg_from_raw)}",
            "write from: [header, model]",
        )
    seg_from = tuple(
        v.choice(s, _join("shadow.segments.from", i), SEGMENT_SOURCES)
        for i, s in enumerate(seg_from_raw)
    )
    hook = seg.get("hook")
    if hook is not None:
        hook = v.string(hook, "shadow.segments.hook", 'write hook: "segments.py:segment"')
        if ":" not in hook:
            raise v.fail(
                "shadow.segments.hook",
                f"expected file.py:function or module:function, got {hook!r}",
                'write e.g. hook: "conftest.py:parity_segment"',
            )
        mod, _, _fn = hook.rpartition(":")
        if mod.endswith(".py"):
            f = (base / mod).resolve()
            if not f.is_file():
                raise v.fail(
                    "shadow.segments.hook", f"file not found: {f}", "relative to the contract"
                )
            hook = f"{f}:{_fn}"
    if "hook" in seg_from and hook is None:
        raise v.fail(
            "shadow.segments.hook",
            "segments.from names hook but no hook is given",
            'write hook: "conftest.py:parity_segment"',
        )
    header = v.string(seg.get("header", "x-parity-segment"), "shadow.segments.header").lower()
    seg_max = v.integer(seg.get("max", 50), "shadow.segments.max", 1, "bounds metric labels")
    seg_default = v.string(seg.get("default", "default"), "shadow.segments.default")

    q = dict(v.mapping(m.get("queue", {}) or {}, "shadow.queue"))
    v.keys(q, "shadow.queue", QUEUE_KEYS)
    qsize = v.integer(q.get("size", 1000), "shadow.queue.size", 1)
    conc = v.integer(
        q.get("concurrency", shadow.max_concurrency * 2), "shadow.queue.concurrency", 1
    )
    qtimeout = v.number(q.get("timeout", shadow.timeout), "shadow.queue.timeout", 0, 86400)

    st = m.get("store", "shadow.sqlite")
    st = {"url": st} if isinstance(st, str) else dict(v.mapping(st, "shadow.store"))
    v.keys(st, "shadow.store", STORE_KEYS)
    from pytest_parity.contract.rules import _interpolate

    url = v.string(
        _interpolate(v, st.get("url", "shadow.sqlite"), "shadow.store.url"), "shadow.store.url"
    )
    if "://" in url and not url.startswith(("postgresql://", "postgres://", "sqlite://")):
        raise v.fail(
            "shadow.store.url",
            f"unknown store {url.split('://')[0]!r}",
            "write a sqlite file path or postgresql://user@host/db",
        )
    if url.startswith("sqlite://"):
        url = url[len("sqlite://") :]
    if not url.startswith(("postgresql://", "postgres://")):
        url = str((base / url).resolve())
    elif re.match(r"^postgres(ql)?://[^/@\s]+:[^/@\s]+@", url) and "${" not in str(st.get("url")):
        raise v.fail(
            "shadow.store.url",
            "a password written in the contract",
            "write postgresql://user:${PGPASSWORD}@host/db, or use PGPASSWORD / ~/.pgpass",
        )
    batch = v.integer(st.get("batch", 200), "shadow.store.batch", 1)
    flush = v.number(
        st.get("flush_seconds", 1.0), "shadow.store.flush_seconds", 0, 86400, hi_open=False
    )

    ret = dict(v.mapping(m.get("retention", {}) or {}, "shadow.retention"))
    v.keys(ret, "shadow.retention", RETENTION_KEYS)
    days = None
    if ret.get("days") is not None:
        days = v.number(ret["days"], "shadow.retention.days", 0, 1e6, hint="e.g. 30")
    rows = None if ret.get("rows") is None else v.integer(ret["rows"], "shadow.retention.rows", 1)
    check = v.number(
        ret.get("check_seconds", 60.0), "shadow.retention.check_seconds", 0, 86400, lo_open=False
    )

    rules: list[RedactRule] = []
    red = m.get("redact", []) or []
    if not isinstance(red, list):
        raise v.fail(
            "shadow.redact", f"expected a list, got {_show(red)}", "write redact: [regex, ...]"
        )
    for i, r in enumerate(red):
        w = _join("shadow.redact", i)
        if isinstance(r, str):
            pat, rep = r, "[REDACTED]"
        else:
            rm = v.mapping(r, w)
            v.keys(rm, w, REDACT_KEYS)
            pat = v.string(v.required(rm, w, "pattern", "write pattern: <regex>"), f"{w}.pattern")
            rep = rm.get("replace", "[REDACTED]")
            if not isinstance(rep, str):
                raise v.fail(f"{w}.replace", f"expected a string, got {_show(rep)}")
        try:
            rules.append(RedactRule(re.compile(pat), rep))
        except re.error as exc:
            raise v.fail(w, f"not a valid regular expression: {exc}") from None

    mt = dict(v.mapping(m.get("metrics", {}) or {}, "shadow.metrics"))
    v.keys(mt, "shadow.metrics", METRICS_KEYS)
    mhost: str | None = None
    mport: int | None = None
    if mt.get("listen") is not None:
        mhost, mport = _listen(v, mt["listen"], "shadow.metrics.listen")
    mpath = v.string(mt.get("path", "/metrics"), "shadow.metrics.path")
    if not mpath.startswith("/"):
        raise v.fail("shadow.metrics.path", f"expected a path, got {mpath!r}", "write /metrics")
    drain = v.number(m.get("drain_seconds", 10.0), "shadow.drain_seconds", 0, 3600, lo_open=False)
    instance = None if m.get("instance") is None else v.string(m["instance"], "shadow.instance")
    return ShadowConfig(
        path=path.resolve(),
        serving=serving,
        shadow=shadow,
        serving_name=serving_name,
        shadow_name=shadow_name,
        host=host,
        port=port,
        sample_rate=rate,
        segment_from=seg_from,
        segment_header=header,
        segment_max=seg_max,
        segment_default=seg_default,
        segment_hook=hook,
        queue_size=qsize,
        shadow_concurrency=conc,
        shadow_timeout=qtimeout,
        store_url=url,
        batch=batch,
        flush_seconds=flush,
        retention_days=days,
        retention_rows=rows,
        retention_check_seconds=check,
        redact=tuple(rules),
        metrics_host=mhost,
        metrics_port=mport,
        metrics_path=mpath,
        drain_seconds=drain,
        instance=instance,
    )
